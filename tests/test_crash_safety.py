"""Crash safety of worker orchestration: the real API is `kill -9`ed at random moments while
streams are being activated, deactivated and changed; after each restart, reconciliation must
settle to exactly one worker per active stream (with the stream's current settings) and none for
the others, checked against the engine's own view (/proc for the process runtime, the container
list for Docker), the process runtime's state records and the database. A sampler watches /proc
during the whole run: two live workers of one stream at any moment fail the test.

Bounded: a fixed number of rounds, every wait with a timeout; the moments are drawn from a seeded
generator, so a failure can be replayed with the same seed (printed in the log).
"""
import json
import os
import random
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import requests

from _orchestration_helpers import Api, make_database
from conftest import OUT, free_port, wait_until
from test_orchestration_docker import build_context, docker_engine, engine  # noqa: F401 (fixture)

SEED = int(os.environ.get("VF_CRASH_SEED", "13"))
GRIDS = [8, 16, 24, 32]


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def environ_of(pid: str) -> dict:
    raw = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
    return dict(x.split("=", 1) for x in raw.split("\0") if "=" in x)


def live_workers(worker_bin: Path, ids) -> dict:
    """{stream_id: [(pid, grid_size)]} of live processes running `worker_bin` for one of `ids`
    (found by what they run, not by any mark of the runtime's own)."""
    found: dict = {}
    want = set(ids)
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            if Path(f"/proc/{d}/cmdline").read_bytes().split(b"\0")[0].decode() != str(worker_bin):
                continue
            if Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                continue
            env = environ_of(d)
        except (FileNotFoundError, ProcessLookupError, IndexError, PermissionError):
            continue
        if env.get("STREAM_ID") in want:
            found.setdefault(env["STREAM_ID"], []).append((int(d), int(env.get("GRID_SIZE", "0"))))
    return found


class DuplicateSampler(threading.Thread):
    """Looks at the workers every few milliseconds; remembers any moment with two of one stream."""

    def __init__(self, look):
        super().__init__(daemon=True)
        self.look = look
        self.stop_flag = threading.Event()
        self.duplicates: list = []
        self.samples = 0

    def run(self):
        while not self.stop_flag.is_set():
            try:
                for sid, ws in self.look().items():
                    if len(ws) > 1:
                        self.duplicates.append((time.time(), sid, ws))
            except Exception as e:  # the engine busy for a moment: the next sample counts
                log(f"sampler: {e}")
            self.samples += 1
            self.stop_flag.wait(0.02)

    def stop(self):
        self.stop_flag.set()
        self.join(10)


def desired(postgres, db) -> dict:
    """{id: (is_active, grid_size)} straight from PostgreSQL."""
    out = postgres.psql("SELECT id, is_active, grid_size FROM camera_streams", db=db)
    rows = {}
    for line in out.splitlines():
        sid, active, grid = line.split("|")
        rows[sid] = (active == "t", int(grid))
    return rows


def churn(api: Api, ids: list, rng: random.Random, pool: ThreadPoolExecutor):
    """One burst of concurrent changes; answers are ignored (the API may die under them)."""
    def one(sid, action, grid):
        try:
            if action == "activate":
                requests.post(f"{api.base}/streams/{sid}/activate", timeout=20)
            elif action == "deactivate":
                requests.post(f"{api.base}/streams/{sid}/deactivate", timeout=20)
            else:
                requests.put(f"{api.base}/streams/{sid}", json={"grid_size": grid, "is_active": True}, timeout=20)
        except requests.RequestException:
            pass
    return [pool.submit(one, sid, rng.choice(["activate", "activate", "deactivate", "grid"]), rng.choice(GRIDS))
            for sid in ids]


def crash_rounds(api: Api, ids: list, rounds: int, rng: random.Random, settled, max_delay: float):
    """`rounds` times: a burst of changes, kill -9 of the API after a random delay, restart,
    then wait (bounded) until `settled()` returns None (else it returns what is still wrong)."""
    settle_times = []
    with ThreadPoolExecutor(max_workers=len(ids)) as pool:
        for k in range(rounds):
            futures = churn(api, ids, rng, pool)
            delay = rng.uniform(0, max_delay)
            time.sleep(delay)  # the random moment of the crash (not a wait for a condition)
            os.kill(api.pid, signal.SIGKILL)
            api.proc.proc.wait(10)
            for f in futures:
                f.result(30)
            api.start()
            t0 = time.monotonic()
            problem = ["not checked"]

            def ok():
                problem[0] = settled()
                return problem[0] is None
            try:
                wait_until(ok, 40, interval=0.2, what=f"round {k} to settle")
            except AssertionError:
                raise AssertionError(f"round {k} (seed {SEED}) did not settle: {problem[0]}") from None
            settle_times.append(time.monotonic() - t0)
            log(f"round {k}: killed after {delay:.2f}s, settled {settle_times[-1]:.2f}s after the restart")
    return settle_times


def test_process_runtime_survives_kill_9_during_activations(spawn, bin_dir, postgres, redis_server, samples):
    tmp = Path(tempfile.mkdtemp(prefix="vf-crash-proc-"))
    state = tmp / "state"
    db_url, db = make_database(postgres)
    worker_bin = bin_dir / "vectorflow-worker"
    env = {"DATABASE_URL": db_url, "REDIS_URL": redis_server.url, "VF_FILE_SD_PATH": str(tmp / "sd.json"),
           "VF_STATE_DIR": str(state), "VF_RECONCILE_INTERVAL": "1", "VF_ALLOW_FILE_SOURCES": "true",
           "VF_MEDIA_DIR": str(samples),
           "VF_WORKER_STOP_TIMEOUT": "3", "VF_RUNTIME": "process", "VF_WORKER_BIN": str(worker_bin)}
    api = Api(spawn, bin_dir, "crash-process-api", free_port(), env).start()
    rng = random.Random(SEED)
    log(f"seed {SEED}")
    ids = [api.create(f"crash-{k}", f"file://{samples}/vtest.avi", False) for k in range(10)]

    def settled():
        rows = desired(postgres, db)
        workers = live_workers(worker_bin, ids)
        records = {}
        for r in state.glob("*.json"):
            try:
                records[r.stem] = json.loads(r.read_text())
            except (OSError, ValueError):
                return f"unreadable record {r}"
        for sid in set(workers) | set(records):
            if sid not in rows:
                return f"a worker or record for unknown stream {sid}"
        for sid, (active, grid) in rows.items():
            ws = workers.get(sid, [])
            if active:
                if len(ws) != 1:
                    return f"{sid} active with workers {ws}"
                if ws[0][1] != grid:
                    return f"{sid} worker runs grid {ws[0][1]}, the database says {grid}"
                if records.get(sid, {}).get("pid") != ws[0][0]:
                    return f"{sid} record {records.get(sid)} does not name worker {ws[0][0]}"
            elif ws or sid in records:
                return f"{sid} inactive but has workers {ws} / record {sid in records}"
        return None

    sampler = DuplicateSampler(lambda: live_workers(worker_bin, ids))
    sampler.start()
    try:
        times = crash_rounds(api, ids, 20, rng, settled, max_delay=1.0)
        assert settled() is None, settled()
        assert sampler.duplicates == [], f"two workers of one stream at once: {sampler.duplicates[:5]}"
        assert sampler.samples > 100
        log(f"settle after restart: median {sorted(times)[len(times) // 2]:.2f}s, max {max(times):.2f}s")
        # And the end of it all: deactivation and deletion leave nothing behind.
        for sid in ids:
            r = requests.delete(f"{api.base}/streams/{sid}", timeout=30)
            assert r.status_code == 204, r.text
        assert wait_until(lambda: not live_workers(worker_bin, ids) and not list(state.glob("*.json")), 30,
                          what="no worker and no record after deletion")
    finally:
        sampler.stop()
        if api.proc and api.proc.alive():
            api.proc.stop(signal.SIGTERM, timeout=15)
        for ws in live_workers(worker_bin, ids).values():
            for pid, _ in ws:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        logs = state / "logs"
        if logs.is_dir():
            shutil.rmtree(OUT / "crash-process-workers", ignore_errors=True)
            shutil.copytree(logs, OUT / "crash-process-workers")
        shutil.rmtree(tmp, ignore_errors=True)


def test_docker_runtime_survives_kill_9_during_activations(docker_engine, spawn, bin_dir, postgres,  # noqa: F811
                                                            redis_server, samples):
    tmp = Path(tempfile.mkdtemp(prefix="vf-crash-dk-"))
    context = tmp / "context"
    build_context(bin_dir / "vectorflow-worker", samples, context)
    sock = docker_engine[len("unix://"):]
    db_url, db = make_database(postgres)
    env = {"DATABASE_URL": db_url, "REDIS_URL": redis_server.url, "VF_FILE_SD_PATH": str(tmp / "sd.json"),
           "VF_RECONCILE_INTERVAL": "1", "VF_ALLOW_FILE_SOURCES": "true", "VF_MEDIA_DIR": "/samples",
           "VF_WORKER_STOP_TIMEOUT": "2",
           "VF_RUNTIME": "docker", "DOCKER_HOST": docker_engine, "VF_WORKER_IMAGE": f"vf-crash-worker:{os.getpid()}",
           "VF_WORKER_NETWORK": "host", "VF_WORKER_BUILD_CONTEXT": str(context)}
    api = Api(spawn, bin_dir, "crash-docker-api", free_port(), env).start()
    rng = random.Random(SEED)
    log(f"seed {SEED}")
    ids = [api.create(f"crash-dk-{k}", "file:///samples/vtest.avi", False) for k in range(4)]

    def containers() -> dict:
        """{stream_id: [(id, state, grid_size)]} of every managed container."""
        filters = quote(json.dumps({"label": ["vectorflow.managed=true"]}))
        found: dict = {}
        for c in json.loads(engine(sock, "GET", f"/containers/json?all=1&filters={filters}")):
            inspect = json.loads(engine(sock, "GET", f"/containers/{c['Id']}/json"))
            grid = next((int(e.split("=", 1)[1]) for e in inspect["Config"]["Env"] if e.startswith("GRID_SIZE=")), 0)
            found.setdefault(c["Labels"].get("vectorflow.stream_id"), []).append((c["Id"][:12], c["State"], grid))
        return found

    def running() -> dict:
        return {sid: [c for c in cs if c[1] == "running"] for sid, cs in containers().items()}

    def settled():
        rows = desired(postgres, db)
        found = containers()
        for sid in found:
            if sid not in rows:
                return f"a container for unknown stream {sid}: {found[sid]}"
        for sid, (active, grid) in rows.items():
            cs = found.get(sid, [])
            if active:
                if len(cs) != 1 or cs[0][1] != "running" or cs[0][2] != grid:
                    return f"{sid} active (grid {grid}) with containers {cs}"
            elif cs:
                return f"{sid} inactive with containers {cs}"
        return None

    # The first activation builds the image; do it before the crashes so they hit start/stop.
    api.set_active(ids[0], True)
    sampler = DuplicateSampler(running)
    sampler.start()
    try:
        times = crash_rounds(api, ids, 6, rng, settled, max_delay=1.5)
        assert settled() is None, settled()
        assert sampler.duplicates == [], f"two running containers of one stream at once: {sampler.duplicates[:5]}"
        log(f"settle after restart: median {sorted(times)[len(times) // 2]:.2f}s, max {max(times):.2f}s")
        for sid in ids:
            assert requests.delete(f"{api.base}/streams/{sid}", timeout=30).status_code == 204
        assert wait_until(lambda: not containers(), 30, what="no container after deletion")
    finally:
        sampler.stop()
        if api.proc and api.proc.alive():
            api.proc.stop(signal.SIGTERM, timeout=15)
        filters = quote(json.dumps({"label": ["vectorflow.managed=true"]}))
        for c in json.loads(engine(sock, "GET", f"/containers/json?all=1&filters={filters}")):
            subprocess.run(["curl", "-s", "--max-time", "20", "-X", "DELETE", "--unix-socket", sock,
                            f"http://localhost/containers/{c['Id']}?force=1"], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
