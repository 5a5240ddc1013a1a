"""Shared fixtures for the integration tests: real services started on loopback, on free ports.

Every service lives in a temporary folder and is stopped at the end of the session. Nothing here is a
fake: PostgreSQL, Redis and Prometheus are Debian's real servers.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "test-output"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout=20.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - the predicate may fail until the service is up
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last})")


def wait_port(port, host="127.0.0.1", timeout=20.0):
    def up():
        with socket.create_connection((host, port), timeout=0.5):
            return True
    wait_until(up, timeout, what=f"{host}:{port} to accept connections")


@pytest.fixture(scope="session")
def bin_dir() -> Path:
    """The folder holding the debug build of the project's executables (built by scripts/test.sh)."""
    path = os.environ.get("VF_BIN_DIR")
    if not path:
        path = subprocess.check_output(["swift", "build", "--show-bin-path"], cwd=ROOT, text=True).strip()
    p = Path(path)
    assert (p / "vfnet-testserver").exists() or (p / "vectorflow-api").exists(), f"no build in {p}: run swift build"
    return p


@pytest.fixture(scope="session")
def samples() -> Path:
    d = os.environ.get("VF_SAMPLES_DIR")
    if not d:
        d = subprocess.check_output(["bash", str(ROOT / "scripts/fetch-samples.sh")], text=True).strip().splitlines()[-1]
    p = Path(d)
    assert (p / "vtest.avi").exists()
    return p


class Postgres:
    """A private PostgreSQL 15 cluster (initdb as the postgres user: initdb refuses root)."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="vf-pg-"))
        self.port = free_port()
        self.bin = Path("/usr/lib/postgresql/15/bin")
        self.as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        subprocess.run(self.as_pg + [str(self.bin / "initdb"), "-D", str(self.dir / "data"), "-U", "postgres",
                                     "--auth=trust", "-E", "UTF8", "--no-sync"], check=True, capture_output=True)
        self.start()
        # Two separate commands: CREATE DATABASE cannot run inside the implicit transaction of one -c.
        self.psql("CREATE ROLE vectorflow LOGIN PASSWORD 'vectorflow'")
        self.psql("CREATE DATABASE vectorflow OWNER vectorflow")
        self.url = f"postgresql://vectorflow:vectorflow@127.0.0.1:{self.port}/vectorflow"

    def start(self):
        subprocess.run(self.as_pg + [str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-l", str(self.dir / "log"),
                                     "-w", "-o", f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off",
                                     "start"], check=True, capture_output=True)

    def stop(self):
        subprocess.run(self.as_pg + [str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "fast", "-w", "stop"],
                       capture_output=True)

    def psql(self, sql, db="postgres"):
        return subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", db,
                               "-v", "ON_ERROR_STOP=1", "-At", "-c", sql],
                              check=True, capture_output=True, text=True).stdout

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres():
    pg = Postgres()
    yield pg
    pg.close()


class Redis:
    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="vf-redis-"))
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.start()

    def start(self):
        subprocess.run(["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
                        "--daemonize", "yes", "--pidfile", str(self.dir / "r.pid"), "--dir", str(self.dir)], check=True,
                       capture_output=True)
        wait_port(self.port)

    def stop(self):
        subprocess.run(["redis-cli", "-p", str(self.port), "shutdown", "nosave"], capture_output=True)

    def cli(self, *args):
        return subprocess.run(["redis-cli", "-p", str(self.port), *args], check=True, capture_output=True,
                              text=True).stdout

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server():
    r = Redis()
    yield r
    r.close()


class Prometheus:
    def __init__(self, config_text: str):
        self.dir = Path(tempfile.mkdtemp(prefix="vf-prom-"))
        self.port = free_port()
        (self.dir / "p.yml").write_text(config_text)
        self.log = open(self.dir / "log", "w")
        self.proc = subprocess.Popen(["prometheus", f"--config.file={self.dir / 'p.yml'}",
                                      f"--storage.tsdb.path={self.dir / 'data'}",
                                      f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-lifecycle"],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"
        wait_until(lambda: requests.get(self.url + "/-/ready", timeout=1).status_code == 200, 30, what="prometheus")

    def query(self, promql):
        r = requests.get(self.url + "/api/v1/query", params={"query": promql}, timeout=5)
        r.raise_for_status()
        return r.json()["data"]["result"]

    def targets(self):
        return requests.get(self.url + "/api/v1/targets", timeout=5).json()["data"]["activeTargets"]

    def close(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def prometheus_factory():
    """Call with a prometheus.yml text; every instance is stopped after the test."""
    made = []

    def make(config_text):
        p = Prometheus(config_text)
        made.append(p)
        return p
    yield make
    for p in made:
        p.close()


class Proc:
    """A child process whose output goes to test-output/<name>.log; always stopped at teardown."""

    def __init__(self, name, argv, env=None, cwd=None):
        OUT.mkdir(exist_ok=True)
        self.name = name
        self.log_path = OUT / f"{name}.log"
        self.log = open(self.log_path, "w")
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.proc = subprocess.Popen(argv, env=full_env, cwd=cwd or ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def alive(self):
        return self.proc.poll() is None

    def output(self):
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


@pytest.fixture
def spawn():
    """spawn(name, argv, env=...) → Proc; all are stopped after the test."""
    procs = []

    def make(name, argv, env=None, cwd=None):
        p = Proc(name, argv, env, cwd)
        procs.append(p)
        return p
    yield make
    for p in procs:
        p.stop()


def start_testserver(spawn, bin_dir, *flags, name="vfnet"):
    """Runs `vfnet-testserver` on a free port; returns (Proc, port) once it listens."""
    proc = spawn(name, [str(bin_dir / "vfnet-testserver"), "--port", "0", "--loops", "2", *flags])

    def port():
        m = re.search(r"listening on (\d+)", proc.output())
        return int(m.group(1)) if m else None
    return proc, wait_until(port, timeout=15, what="vfnet-testserver to listen")


def rss_kib(pid):
    """Resident memory of a process, in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")
