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


class PipedRun:
    """`make run | tee LOG` as a terminal's foreground job, on private ports and VF_HOME.

    Its own session and process group: a signal to the group reaches make, the script, tee, the
    API and Prometheus, exactly as Ctrl-C / a hang-up does. The outer bash stands for the user's
    interactive shell, which outlives the job: it traps the signals (a trap, not an ignore, so
    make and tee get the default disposition) and waits for the whole pipeline, so its end means
    make and tee have both ended, and make ends only after the script has."""

    def __init__(self, bin_dir, samples, name):
        self.home = Path(tempfile.mkdtemp(prefix="vf-home-int-"))
        self.home.chmod(0o755)  # like a checkout's .vf: the postgres user can reach its data folder
        OUT.mkdir(exist_ok=True)
        self.tee_log = OUT / f"run-interrupt-{name}.tee.log"
        self.outer_log = OUT / f"run-interrupt-{name}.log"
        self.tee_log.unlink(missing_ok=True)  # a previous run's copy would pass the start-up wait
        self.ports = {k: free_port() for k in PORT_NAMES}
        env = dict(os.environ, VF_BIN_DIR=str(bin_dir), VF_HOME=str(self.home), VF_SAMPLES_DIR=str(samples),
                   **{k: str(v) for k, v in self.ports.items()})
        self.api = f"http://127.0.0.1:{self.ports['VF_PORT']}"
        with open(self.outer_log, "w") as out:
            self.proc = subprocess.Popen(["bash", "-c", f"trap : INT TERM HUP; make run | tee {self.tee_log}; wait"],
                                         cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def output(self):
        tee = self.tee_log.read_text(errors="replace") if self.tee_log.exists() else ""
        return tee, self.outer_log.read_text(errors="replace")

    def wait_output(self, text, timeout):
        wait_until(lambda: text in self.output()[0] or self.proc.poll() is not None, timeout, interval=0.02,
                   what=f"{text!r} in the run's output")
        assert self.proc.poll() is None, self.output()[1][-3000:]

    def left(self):
        return [p for p in platform_processes(self.home, self.ports, self.proc.pid) if p[0] != self.proc.pid]

    def check_stopped(self, exit_code):
        # bash -c ends after both ends of its pipeline; make ends after the script's cleanup.
        self.proc.wait(90)
        left = self.left()
        assert not left, f"processes left behind: {left}\n{self.output()[1][-3000:]}"
        # make reports how the script ended: 128+n means it exited from its signal handler, after
        # the whole cleanup (killed mid-cleanup, make would say "Interrupt"/"Terminated"). The
        # script's own "stopped." may be lost on its way to a tee that is dying at that moment.
        assert f"[Makefile:3: run] Error {exit_code}" in self.output()[1], self.output()[1][-3000:]
        for port in self.ports.values():
            with pytest.raises(requests.ConnectionError):
                requests.get(f"http://127.0.0.1:{port}/", timeout=2)

    def close(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        # Whatever a failed run left: only this run's own processes, by pid.
        for pid, _ in platform_processes(self.home, self.ports, self.proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.home, ignore_errors=True)


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "SIGHUP", "tee-killed"])
def test_run_piped_through_tee_and_interrupted_leaves_no_process(bin_dir, samples, how):
    run = PipedRun(bin_dir, samples, how)
    try:
        run.wait_output("Vector Flow is running", 120)
        api = run.api
        wait_until(lambda: requests.get(api + "/health", timeout=2).status_code == 200, 30, interval=0.2,
                   what="/health")
        auth = {"Authorization": "Bearer " + (Path(run.home) / "api-token").read_text()}
        demo = [s for s in requests.get(api + "/streams", headers=auth, timeout=5).json()
                if s["name"].startswith("Demo")]
        assert len(demo) == 1, demo
        sid = demo[0]["id"]
        wait_until(lambda: worker_pids(sid), 30, interval=0.2, what="the demo stream's worker process")
        wait_until(lambda: (requests.get(f"{api}/streams/{sid}", headers=auth, timeout=5).json().get("status")
                            or {}).get("state")
                   == "running", 30, interval=0.2, what="the demo worker to report running")
        names = " ".join(c for _, c in run.left())
        for part in ("postgres", "redis-server", "prometheus", "vectorflow-api", "vectorflow-worker"):
            assert part in names, f"{part} not found among {run.left()}"

        if how == "tee-killed":
            # The output pipe closes with no signal to the script (the reader went away).
            tees = children(run.proc.pid, "tee")
            assert len(tees) == 1, tees
            os.kill(tees[0], signal.SIGTERM)
            code = 128 + signal.SIGPIPE
        else:
            os.killpg(run.proc.pid, getattr(signal, how))
            code = 128 + getattr(signal, how)
        run.check_stopped(code)
        assert not worker_pids(sid)
    finally:
        run.close()


def test_run_interrupted_during_start_up_leaves_no_process(bin_dir, samples):
    """Ctrl-C while the API is being started: PostgreSQL, Redis and Prometheus are up, the API may
    or may not be; the script is then inside a foreground command (bash runs the trap after it)."""
    run = PipedRun(bin_dir, samples, "start-up")
    try:
        run.wait_output("starting the API", 120)
        os.killpg(run.proc.pid, signal.SIGINT)
        run.check_stopped(130)
    finally:
        run.close()
