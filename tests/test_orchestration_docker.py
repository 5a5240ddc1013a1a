"""Orchestration end to end through the real API, Docker runtime (VF_RUNTIME=docker).

A private dockerd (Debian's docker.io, scripts/docker-engine.sh) is started by the test. Images
cannot be pulled here, so the API itself builds the worker image through the engine's /build
(VF_WORKER_BUILD_CONTEXT): a `FROM scratch` image holding the debug vectorflow-worker, its `ldd`
closure and vtest.avi (the container runs as user 10001 on a read-only root: every file is
world-readable). Containers use the host network, so they reach the test's Redis on loopback and
Prometheus scrapes them on the loopback port the API gives each one.

Same scenario as the process runtime (tests/_orchestration_helpers.py); a killed container is
replaced by a new one, and a restarted API adopts the running container (same id).
Skips only when dockerd cannot run on this machine (the script exits 3), with its reason.
"""
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from _orchestration_helpers import Scenario

ROOT = Path(__file__).resolve().parent.parent
ENGINE = ROOT / "scripts" / "docker-engine.sh"
WORKER_PATH = "/usr/local/bin/vectorflow-worker"


def engine(sock: str, method: str, path: str) -> str:
    return subprocess.run(["curl", "-sSf", "--max-time", "20", "-X", method, "--unix-socket", sock,
                           f"http://localhost{path}"], check=True, capture_output=True, text=True).stdout


def build_context(worker_bin: Path, samples: Path, dest: Path):
    """Dockerfile.worker + rootfs/ (the worker, its ldd closure, the sample video), all readable."""
    rootfs = dest / "rootfs"
    files = {WORKER_PATH: worker_bin}
    ldd = subprocess.run(["ldd", str(worker_bin)], check=True, capture_output=True, text=True).stdout
    for line in ldd.splitlines():
        assert "not found" not in line, line
        path = next((p for p in line.split() if p.startswith("/")), None)
        if path:
            files[path] = Path(path)
    files["/samples/vtest.avi"] = samples / "vtest.avi"
    for inside, src in files.items():
        target = rootfs / inside.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        real = src.resolve()
        mode = real.stat().st_mode
        if mode & 0o004 and (inside != WORKER_PATH or mode & 0o001):
            try:
                os.link(real, target)  # same filesystem: no copy of ~350 MB (modes already fit)
                continue
            except OSError:
                pass
        # A copy whose modes we may change (never chmod a hard link: that would change the original).
        shutil.copy2(real, target)
        os.chmod(target, 0o755 if inside == WORKER_PATH else 0o644)
    for d, _, _ in os.walk(rootfs):
        os.chmod(d, 0o755)
    (dest / "Dockerfile.worker").write_text(
        f'FROM scratch\nCOPY rootfs/ /\nENTRYPOINT ["{WORKER_PATH}"]\nCMD ["run"]\n')


class DockerRuntime:
    adoption_may_replace = False  # a restarted API must keep the running container

    def __init__(self, host: str, image: str, context: Path):
        self.host, self.sock, self.image, self.context = host, host[len("unix://"):], image, context
        self.ids: list[str] = []

    def env(self):
        return {"VF_RUNTIME": "docker", "DOCKER_HOST": self.host, "VF_WORKER_IMAGE": self.image,
                "VF_WORKER_NETWORK": "host", "VF_WORKER_BUILD_CONTEXT": str(self.context)}

    def containers(self) -> list[dict]:
        filters = quote(json.dumps({"label": ["vectorflow.managed=true"]}))
        return json.loads(engine(self.sock, "GET", f"/containers/json?all=1&filters={filters}"))

    def workers(self):
        """{stream_id: container id} of every managed container; a non-running one is marked."""
        found: dict = {}
        for c in self.containers():
            sid = c["Labels"].get("vectorflow.stream_id")
            ident = c["Id"] if c["State"] == "running" else f"({c['State']}){c['Id']}"
            found[sid] = (found[sid] if isinstance(found[sid], list) else [found[sid]]) + [ident] if sid in found else ident
        return found

    def kill(self, stream_id):
        engine(self.sock, "POST", f"/containers/vector-worker-{stream_id}/kill?signal=SIGKILL")

    def cleanup(self):
        for c in self.containers():
            subprocess.run(["curl", "-s", "--max-time", "20", "-X", "DELETE", "--unix-socket", self.sock,
                            f"http://localhost/containers/{c['Id']}?force=1"], capture_output=True)


@pytest.fixture
def docker_engine():
    d = tempfile.mkdtemp(prefix="vf-dk-")  # short: unix socket paths are limited to 108 bytes
    started = subprocess.run(["bash", str(ENGINE), "start", d], capture_output=True, text=True, timeout=60)
    try:
        if started.returncode == 3:
            pytest.skip(f"dockerd cannot start here: {started.stderr.strip()}")
        assert started.returncode == 0, started.stderr
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run(["bash", str(ENGINE), "stop", d], capture_output=True, text=True, timeout=60)
        shutil.rmtree(d, ignore_errors=True)


def test_docker_runtime_end_to_end(docker_engine, spawn, bin_dir, postgres, redis_server, prometheus_factory,
                                   samples):
    tmp = Path(tempfile.mkdtemp(prefix="vf-orch-dk-"))
    context = tmp / "context"
    build_context(bin_dir / "vectorflow-worker", samples, context)
    runtime = DockerRuntime(docker_engine, f"vf-e2e-worker:{os.getpid()}", context)
    scenario = Scenario(runtime=runtime, spawn=spawn, bin_dir=bin_dir, postgres=postgres, redis_server=redis_server,
                        prometheus_factory=prometheus_factory, source_url="file:///samples/vtest.avi", tmp=tmp,
                        name="orch-docker-api")
    runtime.ids = scenario.ids
    try:
        t = time.monotonic()
        scenario.run()
        print(f"docker scenario {time.monotonic() - t:.1f}s")
        # The API built the image itself through the engine's /build.
        image = json.loads(engine(runtime.sock, "GET", f"/images/{runtime.image}/json"))
        assert image["Config"]["Entrypoint"] == [WORKER_PATH], image["Config"]
        first_log = (Path(scenario.api.proc.log_path).parent / "orch-docker-api-1.log").read_text()
        assert "build: Step 1/" in first_log or "built " + runtime.image in first_log, first_log[-2000:]
        # The surviving container runs as the unprivileged user on a read-only root.
        [c] = [c for c in runtime.containers() if c["State"] == "running"]
        inspect = json.loads(engine(runtime.sock, "GET", f"/containers/{c['Id']}/json"))
        assert inspect["Config"]["User"] == "10001:10001" and inspect["HostConfig"]["ReadonlyRootfs"] is True
        # docker-init as PID 1, so a young worker still gets its SIGTERM (see young_worker_stopped).
        assert inspect["HostConfig"]["Init"] is True, inspect["HostConfig"]
    finally:
        scenario.shutdown()
        runtime.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
