"""`make run | tee run.log`, then Ctrl-C (or SIGTERM, or SIGHUP, or the tee going away on its own),
leaves no process behind: PostgreSQL, Redis, Prometheus, the API and the workers it started are
all gone by the time the pipeline has ended (issue 13, item 4).

Why this is its own test: with the output piped, the terminal's signal kills tee together with the
script, so every message the script's cleanup writes hits a closed pipe; a cleanup that dies of
SIGPIPE there leaves PostgreSQL (its own session: no terminal signal reaches it) and the workers
(their own process groups, adopted across API restarts on purpose) running with parent pid 1.

The platform is the real one (`make run` with the binaries this test run built, VF_BIN_DIR, so no
second compile), on private ports and a private VF_HOME; every wait polls a condition, bounded.
"""
import os
import signal
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import requests

from conftest import OUT, ROOT, free_port, wait_until

PORT_NAMES = ("VF_PORT", "VF_PG_PORT", "VF_REDIS_PORT", "VF_PROMETHEUS_PORT")


def _read(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read().replace(b"\0", b"\n").decode(errors="replace")
    except OSError:
        return ""


def _stat(pid: str):
    """(state, ppid, pgrp) of a process, or None once it is gone."""
    text = _read(f"/proc/{pid}/stat")
    if not text:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1]), int(fields[2])


def platform_processes(home: Path, ports: dict, pgrp: int):
    """Every live process that belongs to the run under test: in its process group, or naming its
    VF_HOME or one of its ports in argv or environment (PostgreSQL and Redis run in sessions of
    their own; workers get only their own environment, with this platform's REDIS_URL)."""
    marks = [str(home), f"redis://127.0.0.1:{ports['VF_REDIS_PORT']}/", f"-p {ports['VF_PG_PORT']}",
             f"127.0.0.1:{ports['VF_REDIS_PORT']}", f"127.0.0.1:{ports['VF_PROMETHEUS_PORT']}",
             f"VF_PORT={ports['VF_PORT']}", f"127.0.0.1:{ports['VF_PORT']}"]
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        st = _stat(pid)
        if st is None or st[0] == "Z":  # a zombie runs nothing; its parent reaps it
            continue
        cmd = _read(f"/proc/{pid}/cmdline").replace("\n", " ").strip()
        env = _read(f"/proc/{pid}/environ")
        if st[2] == pgrp or any(m in cmd or m in env for m in marks):
            found.append((int(pid), cmd))
    return found


def worker_pids(stream_id: str):
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        argv0 = _read(f"/proc/{pid}/cmdline").split("\n", 1)[0]
        st = _stat(pid)
        if argv0.endswith("vectorflow-worker") and st and st[0] != "Z" \
                and f"STREAM_ID={stream_id}" in _read(f"/proc/{pid}/environ").split("\n"):
            out.append(int(pid))
    return out


def children(pid: int, comm: str):
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            st = _stat(p)
            if st and st[1] == pid and _read(f"/proc/{p}/comm").strip() == comm:
                out.append(int(p))
    return out


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "SIGHUP", "tee-killed"])
def test_run_piped_through_tee_and_interrupted_leaves_no_process(bin_dir, samples, how):
    home = Path(tempfile.mkdtemp(prefix="vf-home-int-"))
    home.chmod(0o755)  # like a checkout's .vf: the postgres user can reach its data folder
    OUT.mkdir(exist_ok=True)
    tee_log = OUT / f"run-interrupt-{how}.tee.log"
    outer_log = OUT / f"run-interrupt-{how}.log"
    tee_log.unlink(missing_ok=True)  # a previous run's copy would pass the start-up wait below
    ports = {k: free_port() for k in PORT_NAMES}
    env = dict(os.environ, VF_BIN_DIR=str(bin_dir), VF_HOME=str(home), VF_SAMPLES_DIR=str(samples),
               **{k: str(v) for k, v in ports.items()})
    api = f"http://127.0.0.1:{ports['VF_PORT']}"
    # Its own session and process group, as a terminal's foreground job: the signal goes to the
    # group (make, the script, tee, the API, Prometheus), exactly as Ctrl-C / a hang-up does.
    # The outer bash stands for the user's interactive shell, which outlives the job: it traps
    # the signals (a trap, not an ignore, so make and tee get the default disposition) and waits
    # for the whole pipeline, so its end means make and tee have both ended.
    with open(outer_log, "w") as out:
        proc = subprocess.Popen(["bash", "-c", f"trap : INT TERM HUP; make run | tee {tee_log}; wait"], cwd=ROOT,
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(lambda: "Vector Flow is running" in tee_log.read_text(errors="replace")
                   or proc.poll() is not None, 120, interval=0.2, what="the platform to start")
        assert proc.poll() is None, outer_log.read_text(errors="replace")
        wait_until(lambda: requests.get(api + "/health", timeout=2).status_code == 200, 30, interval=0.2,
                   what="/health")
        demo = [s for s in requests.get(api + "/streams", timeout=5).json() if s["name"].startswith("Demo")]
        assert len(demo) == 1, demo
        sid = demo[0]["id"]
        wait_until(lambda: worker_pids(sid), 30, interval=0.2, what="the demo stream's worker process")
        wait_until(lambda: (requests.get(f"{api}/streams/{sid}", timeout=5).json().get("status") or {}).get("state")
                   == "running", 30, interval=0.2, what="the demo worker to report running")
        before = platform_processes(home, ports, proc.pid)
        names = " ".join(c for _, c in before)
        for part in ("postgres", "redis-server", "prometheus", "vectorflow-api", "vectorflow-worker"):
            assert part in names, f"{part} not found among {before}"

        if how == "tee-killed":
            # The output pipe closes with no signal to the script (the reader went away).
            tees = children(proc.pid, "tee")
            assert len(tees) == 1, tees
            os.kill(tees[0], signal.SIGTERM)
        else:
            os.killpg(proc.pid, getattr(signal, how))
        # bash -c ends after both ends of its pipeline; make ends after the script's cleanup.
        proc.wait(90)

        left = [p for p in platform_processes(home, ports, proc.pid) if p[0] != proc.pid]
        assert not left, f"processes left behind after {how}: {left}\n{outer_log.read_text(errors='replace')[-3000:]}"
        assert not worker_pids(sid)
        text = outer_log.read_text(errors="replace") + tee_log.read_text(errors="replace")
        assert "stopped." in text, text[-3000:]  # the cleanup ran to its end (on stderr when stdout is gone)
        for name, port in ports.items():
            with pytest.raises(requests.ConnectionError):
                requests.get(f"http://127.0.0.1:{port}/", timeout=2)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        # Whatever a failed run left: only this run's own processes, by pid.
        for pid, _ in platform_processes(home, ports, proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(home, ignore_errors=True)
