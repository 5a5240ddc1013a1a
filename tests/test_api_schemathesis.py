"""Property-based conformance: schemathesis generates requests from the API's own /openapi.json and
checks every answer (status, content type, body schema, negative data rejected, positive data
accepted, deleted resources gone, ...). Bounded: a fixed seed and a small example budget."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import OUT
from test_api_crud import make_database, postgres, start_api  # noqa: F401 (postgres: fixture)

# Per-operation exceptions, each explained there (the zones' geometry a schema cannot state).
CONFIG = Path(__file__).parent / "schemathesis.toml"


def _schemathesis():
    """The CLI through the running Python, so a console script missing from PATH does not matter."""
    try:
        import schemathesis  # noqa: F401
    except ImportError:
        pytest.fail("schemathesis is not installed: run scripts/install-deps.sh --test")
    return [sys.executable, "-m", "schemathesis.cli"]


@pytest.mark.parametrize("allow_file,token,send_token", [
    ("false", None, False),
    ("true", None, False),
    ("false", "s3cret", True),   # with VF_API_TOKEN and the right header
    ("false", "s3cret", False),  # with VF_API_TOKEN and no header: 401s must be documented and exact
], ids=["plain", "file-sources", "auth", "auth-missing"])
def test_schemathesis_all_checks(request, bin_dir, postgres, redis_server, allow_file, token, send_token):
    url, _ = make_database(postgres)
    env = {"DATABASE_URL": url, "REDIS_URL": redis_server.url, "VF_ALLOW_FILE_SOURCES": allow_file,
           "VF_MEDIA_DIR": "/srv/media"}
    if token:
        env["VF_API_TOKEN"] = token
    name = f"schemathesis-{allow_file}-{token is not None}-{send_token}"
    p, base = start_api(request, bin_dir, "api-" + name, env)
    report = OUT / f"{name}.txt"
    extra = ["-H", f"Authorization: Bearer {token}"] if send_token else []
    r = subprocess.run([*_schemathesis(), "--config-file", str(CONFIG), "run", base + "/openapi.json", *extra, "--checks", "all", "--max-examples", "30",
                        "--seed", "1", "--generation-database", "none",
                        # One worker: CPython 3.11.7's ast.parse is not thread-safe (hypothesis calls it).
                        "--workers", "1"],
                       capture_output=True, text=True, timeout=240, env={**os.environ, "NO_COLOR": "1"})
    report.write_text(r.stdout + r.stderr)
    assert p.alive(), p.output()
    assert r.returncode == 0, r.stdout[-6000:]
    assert p.stop() == 0
