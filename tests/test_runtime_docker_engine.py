"""scripts/docker-engine.sh: the private Docker engine other tests start (real dockerd).

Skips only when dockerd cannot start on this machine, printing why.
"""
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "docker-engine.sh"


def engine_get(sock: str, path: str) -> str:
    return subprocess.run(["curl", "-sf", "--max-time", "10", "--unix-socket", sock, f"http://localhost{path}"],
                          check=True, capture_output=True, text=True).stdout


def test_start_answers_and_stop_leaves_nothing_behind():
    d = tempfile.mkdtemp(prefix="vf-dk-")  # short: unix socket paths are limited to 108 bytes
    try:
        started = subprocess.run(["bash", str(SCRIPT), "start", d], capture_output=True, text=True, timeout=60)
        if started.returncode == 3:
            pytest.skip(f"dockerd cannot start here: {started.stderr.strip()}")
        assert started.returncode == 0, started.stderr
        host = started.stdout.strip().splitlines()[-1]
        assert host == f"unix://{d}/docker.sock"
        sock = host[len("unix://"):]
        assert '"ApiVersion"' in engine_get(sock, "/version")
        # No bridge and no iptables: only host networking is available, as the tests expect.
        info = engine_get(sock, "/info")
        assert '"DockerRootDir":"%s/root"' % d in info
        pid = int(Path(d, "dockerd.pid").read_text())
        assert Path(f"/proc/{pid}").exists()
    finally:
        stopped = subprocess.run(["bash", str(SCRIPT), "stop", d], capture_output=True, text=True, timeout=60)
        assert stopped.returncode == 0, stopped.stderr
    # The daemon is gone and none of its mounts stay behind, so the folder can be deleted.
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
    mounts = Path("/proc/mounts").read_text()
    assert d not in mounts, [line for line in mounts.splitlines() if d in line]
    shutil.rmtree(d)
    assert not os.path.exists(d)


def test_usage_errors_are_clear():
    r = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True)
    assert r.returncode == 2 and "usage" in r.stderr
