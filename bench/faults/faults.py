#!/usr/bin/env python3
"""The fault matrix (issue 13): the real platform, one fault at a time, what it costs.

The platform: a private PostgreSQL 15 and Redis on loopback, the real vectorflow-api with the process
worker runtime, four streams on looped sample videos (file://) and one on GStreamer's RTSP server
(Debian's /usr/bin/python3, the only Python with `gi`). Then, one at a time, each followed by a wait
until the platform has settled again (bounded):

  postgres-kill   SIGKILL the postmaster (its backends follow), restart it after a hold
  redis-kill      SIGKILL redis-server, restart it after a hold
  worker-kill     SIGKILL one worker; the API's process runtime must replace it (no restart by us)
  api-kill        SIGKILL the API, start it again at once; it must adopt the running workers
  api-kill-activating  the same while four streams are being activated concurrently: the kill
                  comes as the first new worker appears in /proc (spawned, maybe not yet recorded)
  rtsp-kill       SIGKILL the RTSP server (the camera), restart it after a hold
  postgres-freeze SIGSTOP every PostgreSQL process for 10 s, then SIGCONT

Measured for each, by observers that run through the whole matrix:
  frames again    seconds from the restore (restart / SIGCONT; the kill itself for worker-kill) until
                  every stream's frames flow steadily again on WS /ws/frames (the `websockets`
                  library, reconnecting while the API is down): the first frame after which no gap
                  exceeds GAP seconds for STEADY seconds
  longest gap     the longest pause between two frames of one stream, fault to settled
  /health again   seconds from the restore until GET /health answers 200 with database and redis ok
  /health during  what probes (every 0.25 s, each bounded at 20 s) got from the fault until
                  /health was ok again
  writes          an inactive probe stream POSTed every 0.5 s from the fault until settled:
                  how many were acknowledged (201) of those tried
  rows lost       GET /streams before the fault against after it (ids, names, URLs, active flags),
                  plus acknowledged probe rows missing afterwards; must be 0
  rows doubled    names present more than once afterwards (a retried INSERT); must be 0
  duplicates      streams that had more than one live vectorflow-worker process (STREAM_ID in
                  /proc/<pid>/environ) at any /proc sample (every 0.25 s) from fault to settled;
                  must be 0. Workers of no stream are counted as orphans.

A duplicate worker does not go away by itself: once all else has settled, it may last DUP_GRACE
(15 s) more, then the row is marked as not settled, the pids are reported, and the worker that is not
on the runtime's record (VF_STATE_DIR) is killed so that the faults after it measure themselves.
A fault that fails is reported as a row and the matrix goes on. Exit code: 0 only if every row
settled with no row lost or doubled and no duplicate worker.

Every wait has a timeout; everything started is stopped on every way out (signals included).
Usage: bench/faults/run.sh (builds, fetches samples) or
  python3 bench/faults/faults.py --bin-dir DIR --samples DIR [--out FILE] [--logs DIR]
"""
import argparse
import bisect
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
from websockets.sync.client import connect as ws_connect

ROOT = Path(__file__).resolve().parents[2]
PGBIN = Path("/usr/lib/postgresql/15/bin")
GAP = 1.5      # a pause longer than this between two frames of a stream is an interruption
STEADY = 3.0   # frames "flow again" once they keep coming, without such a pause, this long
SETTLE_TIMEOUT = 60.0
DUP_GRACE = 15.0  # how long a duplicate worker may last once all else is fine

RTSP_SERVER = """
import sys
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst, GstRtspServer, GLib
Gst.init(None)
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(sys.argv[1])
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch("( filesrc location=%s ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )"
                   % sys.argv[2])
factory.set_shared(False)
server.get_mount_points().add_factory("/vtest", factory)
server.attach(None)
print("ready", flush=True)
GLib.MainLoop().run()
"""


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout, what, interval=0.1):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            v = predicate()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - the service may not answer yet
            last = e
        time.sleep(interval)
    raise TimeoutError(f"{what}: not within {timeout} s (last error: {last})")


def port_open(port):
    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True


def read_proc(pid, name) -> bytes:
    try:
        with open(f"/proc/{pid}/{name}", "rb") as f:
            return f.read()
    except OSError:
        return b""


def proc_state(pid) -> str:
    stat = read_proc(pid, "stat").decode(errors="replace")
    return stat.rsplit(")", 1)[1].split()[0] if ")" in stat else ""


def alive(pid) -> bool:
    s = proc_state(pid)
    return s != "" and s != "Z"


def signal_pids(pids, sig):
    for p in pids:
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass


class Platform:
    """The services, each started and stopped by this script; nothing shared with anyone else."""

    def __init__(self, work: Path, bin_dir: Path, samples: Path, reconcile_interval: str | None):
        self.work, self.bin_dir, self.samples = work, bin_dir, samples
        self.worker_bin = str(bin_dir / "vectorflow-worker")
        self.pg_port, self.redis_port, self.api_port, self.rtsp_port = (free_port() for _ in range(4))
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.api = f"http://127.0.0.1:{self.api_port}"
        self.as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.pg_dir = work / "pg"
        self.logs = work / "logs"
        self.logs.mkdir(parents=True)
        self.api_proc = None
        self.api_starts = 0
        self.rtsp_proc = None
        self.rtsp_starts = 0
        self.frozen: list[int] = []
        self.reconcile_interval = reconcile_interval
        self.rtsp_video = work / "long.mp4"

    # --- PostgreSQL ---------------------------------------------------------------------------
    def init_pg(self):
        self.pg_dir.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.pg_dir, "postgres", "postgres")
        subprocess.run(self.as_pg + [str(PGBIN / "initdb"), "-D", str(self.pg_dir / "data"), "-U", "postgres",
                                     "--auth=trust", "-E", "UTF8", "--no-sync"], check=True, capture_output=True,
                       timeout=120, cwd="/")
        self.start_pg()
        for sql in ("CREATE ROLE vectorflow LOGIN PASSWORD 'vectorflow'", "CREATE DATABASE vectorflow OWNER vectorflow"):
            subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.pg_port), "-U", "postgres", "-v", "ON_ERROR_STOP=1",
                            "-c", sql], check=True, capture_output=True, timeout=30)

    def start_pg(self):
        subprocess.run(self.as_pg + [str(PGBIN / "pg_ctl"), "-D", str(self.pg_dir / "data"), "-l",
                                     str(self.pg_dir / "postgres.log"), "-w", "-t", "60", "-o",
                                     f"-c listen_addresses=127.0.0.1 -p {self.pg_port} -k {self.pg_dir} -c fsync=off",
                                     "start"], check=True, capture_output=True, timeout=90, cwd="/")

    def postmaster(self) -> int | None:
        try:
            pid = int((self.pg_dir / "data" / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None
        return pid if alive(pid) else None

    def pg_pids(self) -> list[int]:
        """The postmaster and its children (backends, checkpointer, ...)."""
        pm = self.postmaster()
        if pm is None:
            return []
        out = [pm]
        for d in os.listdir("/proc"):
            if d.isdigit():
                stat = read_proc(d, "stat").decode(errors="replace")
                if ")" in stat and int(stat.rsplit(")", 1)[1].split()[1]) == pm:
                    out.append(int(d))
        return out

    def kill_pg(self):
        pids = self.pg_pids()
        signal_pids(pids[:1], signal.SIGKILL)
        # Its children notice the postmaster's death and exit; a restart needs them gone.
        try:
            wait_for(lambda: not any(alive(p) for p in pids), 15, "PostgreSQL's processes to exit")
        except TimeoutError:
            signal_pids(pids, signal.SIGKILL)
            wait_for(lambda: not any(alive(p) for p in pids), 5, "PostgreSQL's processes to die")

    def freeze_pg(self):
        self.frozen = self.pg_pids()
        signal_pids(self.frozen, signal.SIGSTOP)

    def thaw_pg(self):
        signal_pids(self.frozen, signal.SIGCONT)
        self.frozen = []

    def stop_pg(self):
        self.thaw_pg()
        r = subprocess.run(self.as_pg + [str(PGBIN / "pg_ctl"), "-D", str(self.pg_dir / "data"), "-m", "fast", "-w",
                                         "-t", "30", "stop"], capture_output=True, timeout=45, cwd="/")
        if r.returncode != 0 and self.pg_pids():
            signal_pids(self.pg_pids(), signal.SIGKILL)

    # --- Redis --------------------------------------------------------------------------------
    def start_redis(self):
        d = self.work / "redis"
        d.mkdir(exist_ok=True)
        subprocess.run(["redis-server", "--bind", "127.0.0.1", "--port", str(self.redis_port), "--save", "",
                        "--appendonly", "no", "--daemonize", "yes", "--pidfile", str(d / "r.pid"), "--dir", str(d),
                        "--logfile", str(self.logs / "redis.log")], check=True, capture_output=True, timeout=30)
        wait_for(lambda: port_open(self.redis_port), 20, "Redis to listen")

    def redis_pid(self) -> int | None:
        try:
            pid = int((self.work / "redis" / "r.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if alive(pid) else None

    def kill_redis(self):
        pid = self.redis_pid()
        if pid:
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda: not alive(pid), 10, "redis-server to die")
        (self.work / "redis" / "r.pid").unlink(missing_ok=True)

    def stop_redis(self):
        pid = self.redis_pid()
        subprocess.run(["redis-cli", "-p", str(self.redis_port), "shutdown", "nosave"], capture_output=True, timeout=10)
        if pid:
            try:
                wait_for(lambda: not alive(pid), 5, "redis-server to stop")
            except TimeoutError:
                signal_pids([pid], signal.SIGKILL)

    # --- the API ------------------------------------------------------------------------------
    def start_api(self):
        self.api_starts += 1
        env = dict(os.environ)
        env.update({
            "DATABASE_URL": f"postgresql://vectorflow:vectorflow@127.0.0.1:{self.pg_port}/vectorflow",
            "REDIS_URL": self.redis_url, "VF_HOST": "127.0.0.1", "VF_PORT": str(self.api_port),
            "VF_RUNTIME": "process", "VF_WORKER_BIN": self.worker_bin,
            "VF_FILE_SD_PATH": str(self.work / "file_sd" / "workers.json"), "VF_STATE_DIR": str(self.work / "workers"),
            "VF_STATIC_DIR": str(ROOT / "frontend-static"), "VF_ALLOW_FILE_SOURCES": "true",
            "VF_MEDIA_DIR": str(self.samples),
        })
        if self.reconcile_interval:
            env["VF_RECONCILE_INTERVAL"] = self.reconcile_interval
        (self.work / "file_sd").mkdir(exist_ok=True)
        out = open(self.logs / f"api-{self.api_starts}.log", "w")
        # Its own session: a signal meant for this script does not reach it; the cleanup stops it.
        self.api_proc = subprocess.Popen([str(self.bin_dir / "vectorflow-api")], env=env, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True, cwd=self.work)
        out.close()

    def kill_api(self):
        self.api_proc.kill()
        self.api_proc.wait(10)

    def stop_api(self):
        if self.api_proc is not None and self.api_proc.poll() is None:
            self.api_proc.terminate()
            try:
                self.api_proc.wait(15)
            except subprocess.TimeoutExpired:
                self.api_proc.kill()
                self.api_proc.wait(5)

    # --- the RTSP camera ----------------------------------------------------------------------
    def prepare_rtsp(self):
        # vtest.mp4 is 79.5 s: a ten-fold copy (no re-encoding) outlasts the whole matrix, so the
        # stream's only interruption is the one this script makes.
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-stream_loop", "9", "-i", str(self.samples / "vtest.mp4"),
                        "-c", "copy", str(self.rtsp_video)], check=True, timeout=120)
        (self.work / "rtsp.py").write_text(RTSP_SERVER)

    def start_rtsp(self):
        self.rtsp_starts += 1
        out = open(self.logs / f"rtsp-{self.rtsp_starts}.log", "w")
        self.rtsp_proc = subprocess.Popen(["/usr/bin/python3", str(self.work / "rtsp.py"), str(self.rtsp_port),
                                           str(self.rtsp_video)], stdout=out, stderr=subprocess.STDOUT,
                                          start_new_session=True)
        out.close()
        wait_for(lambda: port_open(self.rtsp_port), 20, "the RTSP server to listen")

    def kill_rtsp(self):
        if self.rtsp_proc is not None and self.rtsp_proc.poll() is None:
            self.rtsp_proc.kill()
            self.rtsp_proc.wait(10)

    # --- workers (whoever started them) ---------------------------------------------------------
    def workers(self) -> dict[str, list[int]]:
        """{STREAM_ID: [pids]} of live vectorflow-worker processes talking to this platform's Redis."""
        found: dict[str, list[int]] = {}
        want = f"REDIS_URL={self.redis_url}".encode()
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            if read_proc(d, "cmdline").split(b"\0", 1)[0].decode(errors="replace") != self.worker_bin:
                continue
            env = read_proc(d, "environ").split(b"\0")
            if want not in env or not alive(d):
                continue
            sid = next((e[10:].decode() for e in env if e.startswith(b"STREAM_ID=")), "")
            found.setdefault(sid, []).append(int(d))
        return found

    def recorded_pid(self, sid) -> int | None:
        """The pid the API's process runtime has on record for a stream (VF_STATE_DIR)."""
        try:
            return int(json.loads((self.work / "workers" / f"{sid}.json").read_text())["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def remove_unmanaged(self) -> list[str]:
        """SIGKILLs every worker of a stream that has more than one, except the one on record:
        the extra is a worker nobody manages (it would survive deactivation and deletion), and
        left running it would spoil the faults that follow. Returns what it did, for the table."""
        done = []
        for sid, pids in self.workers().items():
            if len(pids) < 2:
                continue
            keep = self.recorded_pid(sid)
            for pid in pids:
                if pid != keep:
                    ppid = read_proc(pid, "stat").decode(errors="replace").rsplit(")", 1)[-1].split()[1:2]
                    signal_pids([pid], signal.SIGKILL)
                    done.append(f"pid {pid} (parent {ppid[0] if ppid else '?'}, not on record)")
        return done

    def stop_workers(self):
        pids = [p for ps in self.workers().values() for p in ps]
        for p in pids:
            try:
                os.killpg(p, signal.SIGTERM)  # each worker leads its own process group
            except (ProcessLookupError, PermissionError):
                signal_pids([p], signal.SIGTERM)
        try:
            wait_for(lambda: not any(alive(p) for p in pids), 5, "the workers to stop")
        except TimeoutError:
            signal_pids(pids, signal.SIGKILL)

    def cleanup(self):
        for step in (self.thaw_pg, self.stop_api, self.stop_workers, self.kill_rtsp, self.stop_redis, self.stop_pg):
            try:
                step()
            except Exception as e:  # noqa: BLE001 - every step runs, whatever the one before did
                log(f"cleanup: {step.__name__}: {e}")


class FrameMonitor(threading.Thread):
    """One viewer of every stream (/ws/frames without stream_id); keeps each frame's arrival time
    per stream. Reconnects every 0.2 s while the API is away."""

    def __init__(self, ws_url):
        super().__init__(daemon=True)
        self.url = ws_url
        self.times: dict[str, list[float]] = {}
        self.lock = threading.Lock()
        self.halt = threading.Event()
        self.connects = 0

    def run(self):
        while not self.halt.is_set():
            try:
                with ws_connect(self.url, open_timeout=2, close_timeout=1, max_size=None) as ws:
                    self.connects += 1
                    while not self.halt.is_set():
                        try:
                            m = ws.recv(timeout=0.5)
                        except TimeoutError:
                            continue
                        if isinstance(m, str):
                            continue
                        n = struct.unpack(">I", m[:4])[0]
                        sid = json.loads(m[4:4 + n]).get("stream_id", "")
                        now = time.monotonic()
                        with self.lock:
                            self.times.setdefault(sid, []).append(now)
            except Exception:  # noqa: BLE001 - the API is down or restarting: try again
                self.halt.wait(0.2)

    def of(self, sid) -> list[float]:
        with self.lock:
            return list(self.times.get(sid, []))

    def flowing_since(self, sid, t) -> float | None:
        """The first frame at or after t from which frames kept coming, no pause over GAP, for
        STEADY seconds (a frame still in flight when a worker dies does not count), or None."""
        ts = self.of(sid)
        i = bisect.bisect_left(ts, t)
        while i < len(ts):
            start, j = ts[i], i
            while j + 1 < len(ts) and ts[j + 1] - ts[j] <= GAP:
                j += 1
                if ts[j] - start >= STEADY:
                    return start
            i = j + 1  # the run broke off (or is still short): the next candidate follows the pause
        return None

    def longest_gap(self, sid, t0, t1) -> float:
        ts = [x for x in self.of(sid) if t0 <= x <= t1]
        if not ts:
            return t1 - t0
        edges = [t0] + ts + [t1]
        return max(b - a for a, b in zip(edges, edges[1:]))


class HealthMonitor(threading.Thread):
    """GET /health every 0.25 s (each bounded at 20 s): (start, end, ok, what it got)."""

    def __init__(self, api):
        super().__init__(daemon=True)
        self.url = api + "/health"
        self.probes: list[tuple[float, float, bool, str]] = []
        self.lock = threading.Lock()
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            t0 = time.monotonic()
            try:
                r = requests.get(self.url, timeout=20)
                body = r.json() if r.headers.get("Content-Type", "").startswith("application/json") else {}
                ok = r.status_code == 200 and body.get("status") == "ok" and body.get("redis") == "ok"
                what = f"{r.status_code} db={body.get('database')} redis={body.get('redis')}"
            except requests.Timeout:
                ok, what = False, "timeout"
            except requests.ConnectionError:
                ok, what = False, "refused"
            except Exception as e:  # noqa: BLE001
                ok, what = False, type(e).__name__
            with self.lock:
                self.probes.append((t0, time.monotonic(), ok, what))
            self.halt.wait(0.25)

    def between(self, t0, t1):
        with self.lock:
            return [p for p in self.probes if p[1] >= t0 and p[0] <= t1]

    def ok_since(self, t) -> float | None:
        """End time of the first ok probe that ended at or after t, with no failed probe after it."""
        with self.lock:
            probes = [p for p in self.probes if p[1] >= t]
        first = None
        for p in probes:
            if p[2] and first is None:
                first = p[1]
            elif not p[2]:
                first = None
        return first


class WorkerMonitor(threading.Thread):
    """Samples /proc every 0.25 s: per sample, the streams with more than one live worker, and
    the workers of no known stream."""

    def __init__(self, platform: Platform):
        super().__init__(daemon=True)
        self.platform = platform
        self.ids: set[str] = set()
        self.samples: list[tuple[float, set, list]] = []
        self.lock = threading.Lock()
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            try:
                w = self.platform.workers()
                dups = {(sid, tuple(sorted(pids))) for sid, pids in w.items() if len(pids) > 1}
                orphans = [p for sid, pids in w.items() if sid not in self.ids for p in pids]
                with self.lock:
                    self.samples.append((time.monotonic(), dups, orphans))
            except Exception:  # noqa: BLE001 - /proc entries vanish while read
                pass
            self.halt.wait(0.25)

    def between(self, t0, t1):
        with self.lock:
            s = [x for x in self.samples if t0 <= x[0] <= t1]
        seen: dict[str, set] = {}
        for x in s:
            for sid, pids in x[1]:
                seen.setdefault(sid, set()).update(pids)
        orphans = max((len(x[2]) for x in s), default=0)
        return seen, orphans  # {stream with more than one worker at a sample: every pid seen}


class Writer(threading.Thread):
    """POSTs an inactive probe stream every 0.5 s (each request bounded at 15 s) from the fault
    until the platform has settled: an acknowledged (201) row must exist afterwards exactly once;
    a failed or timed-out one at most once (it may have committed before the reply was lost)."""

    def __init__(self, api, label):
        super().__init__(daemon=True)
        self.api, self.label = api, label
        self.tried: list[str] = []
        self.acked: list[str] = []
        self.halt = threading.Event()

    def run(self):
        n = 0
        while not self.halt.is_set():
            n += 1
            name = f"probe {self.label} {n}"
            self.tried.append(name)
            try:
                r = requests.post(self.api + "/streams", json={"name": name, "rtsp_url": "rtsp://127.0.0.1:9/probe",
                                                               "is_active": False}, timeout=15)
                if r.status_code == 201:
                    self.acked.append(name)
            except requests.RequestException:
                pass
            self.halt.wait(0.5)


def streams(api) -> list[dict]:
    r = requests.get(api + "/streams", timeout=15)
    r.raise_for_status()
    return r.json()


def row_key(s):
    return (s["id"], s["name"], s["rtsp_url"], s["is_active"])


class Matrix:
    def __init__(self, p: Platform):
        self.p = p
        self.frames = FrameMonitor(f"ws://127.0.0.1:{p.api_port}/ws/frames")
        self.health = HealthMonitor(p.api)
        self.workers = WorkerMonitor(p)
        self.ids: list[str] = []
        self.rtsp_id = None
        self.rows: list[dict] = []

    def start(self):
        p = self.p
        log(f"ports: api {p.api_port}, postgres {p.pg_port}, redis {p.redis_port}, rtsp {p.rtsp_port}; work {p.work}")
        p.init_pg()
        p.start_redis()
        p.prepare_rtsp()
        p.start_rtsp()
        p.start_api()
        wait_for(lambda: requests.get(p.api + "/health", timeout=2).status_code == 200, 60, "the API's /health")
        sources = [("file vtest.avi", f"file://{p.samples}/vtest.avi"), ("file vtest.mp4", f"file://{p.samples}/vtest.mp4"),
                   ("file tree.avi", f"file://{p.samples}/tree.avi"), ("file Megamind.avi", f"file://{p.samples}/Megamind.avi"),
                   ("rtsp vtest", f"rtsp://127.0.0.1:{p.rtsp_port}/vtest")]
        for name, url in sources:
            r = requests.post(p.api + "/streams", json={"name": f"fault {name}", "rtsp_url": url, "grid_size": 16,
                                                        "threshold": 1.2, "is_active": True}, timeout=30)
            r.raise_for_status()
            self.ids.append(r.json()["id"])
        self.rtsp_id = self.ids[-1]
        self.workers.ids = set(self.ids)
        for t in (self.frames, self.health, self.workers):
            t.start()
        self.settle(time.monotonic(), "start-up")
        log(f"platform up: {len(self.ids)} streams, workers {self.p.workers()}")

    def settled(self, since):
        """"ok": health ok, exactly one worker per stream, every stream's frames flowing since
        `since`; "duplicate": all that but some stream has more than one worker; else None."""
        w = self.p.workers()
        if not (self.health.ok_since(since) is not None
                and all(len(w.get(s, [])) >= 1 for s in self.ids)
                and all(self.frames.flowing_since(s, since) is not None for s in self.ids)):
            return None
        return "ok" if all(len(w.get(s, [])) == 1 for s in self.ids) else "duplicate"

    def settle(self, since, what):
        """Waits (bounded) for "ok". A duplicate worker does not go away by itself (nobody manages
        it), so once everything else is fine, DUP_GRACE seconds of a duplicate end the wait."""
        deadline = time.monotonic() + SETTLE_TIMEOUT
        dup_since = None
        while time.monotonic() < deadline:
            state = self.settled(since)
            if state == "ok":
                return True
            if state == "duplicate":
                dup_since = dup_since or time.monotonic()
                if time.monotonic() - dup_since > DUP_GRACE:
                    log(f"after {what}: a stream still has two workers after {DUP_GRACE:.0f} s: {self.p.workers()}")
                    return False
            else:
                dup_since = None
            time.sleep(0.25)
        log(f"the platform did not settle within {SETTLE_TIMEOUT:.0f} s after {what}")
        return False

    def run_fault(self, name, inject, restore, hold, note=""):
        log(f"--- {name}")
        # A few seconds of steady operation first, so the window shows the fault alone.
        self.settle(time.monotonic() - STEADY, f"the quiet before {name}")
        before = streams(self.p.api)
        workers_before = self.p.workers()
        writer = Writer(self.p.api, name)
        t_fault = time.monotonic()
        what = inject()
        writer.start()
        if hold:
            time.sleep(hold)  # the outage lasts this long, by design
        t_restore = time.monotonic()
        restore()
        recovered = self.settle(t_restore, name)
        t_end = time.monotonic()
        writer.halt.set()
        writer.join(20)
        try:
            after = streams(self.p.api)
        except Exception as e:  # noqa: BLE001
            after = None
            log(f"GET /streams after {name}: {e}")
        again = [self.frames.flowing_since(s, t_restore) for s in self.ids]
        frames_again = max(a - t_restore for a in again) if all(a is not None for a in again) else None
        gap = max(self.frames.longest_gap(s, t_fault, t_end) for s in self.ids)
        ok_at = self.health.ok_since(t_restore)
        # From the fault until /health is ok again: what a client got while it was not.
        during = self.health.between(t_fault, max(t_restore, ok_at if ok_at is not None else t_end))
        dups, orphans = self.workers.between(t_fault, t_end)
        if after is None:
            lost, extra, doubled = "?", "?", "?"
        else:
            probes = set(writer.tried)
            b = {row_key(s) for s in before}
            a = {row_key(s) for s in after if s["name"] not in probes}
            count = {}
            for r in after:
                count[r["name"]] = count.get(r["name"], 0) + 1
            lost = len(b - a) + sum(1 for n in writer.acked if count.get(n, 0) == 0)
            extra = len(a - b)
            doubled = sum(1 for n in probes if count.get(n, 0) > 1) + sum(1 for r in before if count.get(r["name"], 0) > 1)
            # The probe rows go again, so the next fault starts from the same five streams.
            for r in after:
                if r["name"] in probes:
                    try:
                        requests.delete(f"{self.p.api}/streams/{r['id']}", timeout=15)
                    except requests.RequestException as e:
                        log(f"deleting probe row {r['id']}: {e}")
        workers_after = self.p.workers()
        kept = sum(1 for s in self.ids if workers_before.get(s) == workers_after.get(s))
        if dups:
            log(f"duplicate workers during {name}: {dups}")
        removed = self.p.remove_unmanaged() if not recovered else []
        if removed:
            note = f"{note}; it outlived the rest settling by {DUP_GRACE:.0f} s, then this script removed unmanaged worker(s) {', '.join(removed)}"
            log(note)
            self.settle(time.monotonic(), f"removing the unmanaged workers after {name}")
        row = {
            "fault": name, "injected": what, "held_s": hold, "duplicates_seen": {k: sorted(v) for k, v in dups.items()},
            "removed_unmanaged": removed,
            "frames_again_s": None if frames_again is None else round(max(0.0, frames_again), 2),
            "longest_gap_s": round(gap, 2),
            "health_again_s": None if ok_at is None else round(max(0.0, ok_at - t_restore), 2),
            "health_during": summarize_probes(during),
            "writes": f"{len(writer.acked)}/{len(writer.tried)}",
            "rows_lost": lost, "rows_extra": extra, "rows_doubled": doubled, "duplicate_workers": len(dups), "orphan_workers": orphans,
            "workers_kept": f"{kept}/{len(self.ids)}", "recovered": recovered, "note": note,
        }
        log(json.dumps(row))
        self.rows.append(row)

    def run(self, only=None):
        p = self.p
        victim = {}

        def kill_worker():
            sid = self.ids[0]
            pid = p.workers()[sid][0]
            victim["pid"] = pid
            os.kill(pid, signal.SIGKILL)
            return f"SIGKILL worker pid {pid}"

        def kill_api():
            pid = p.api_proc.pid
            p.kill_api()
            return f"SIGKILL API pid {pid}"

        def post(path, timeout=30):
            return requests.post(p.api + path, timeout=timeout)

        def kill_api_activating():
            # Issue 13's duplicate: the runtime spawns a worker, then records it; a crash in
            # between leaves a worker nobody knows, and the restarted API starts a second one.
            # The kill comes as soon as the first of four concurrently activated workers exists
            # in /proc (polled every 5 ms), right inside that window.
            ids = self.ids[:4]
            for sid in ids:
                post(f"/streams/{sid}/deactivate").raise_for_status()
            wait_for(lambda: not any(p.workers().get(sid) for sid in ids), 30, "the deactivated workers to stop")

            def activate(sid):
                try:
                    post(f"/streams/{sid}/activate", timeout=15)
                except requests.RequestException:
                    pass  # the API dies under it: expected
            threads = [threading.Thread(target=activate, args=(sid,), daemon=True) for sid in ids]
            for t in threads:
                t.start()
            try:
                wait_for(lambda: any(p.workers().get(sid) for sid in ids), 15, "a first activated worker", 0.005)
            except TimeoutError:
                pass
            started = sum(1 for sid in ids if p.workers().get(sid))
            pid = p.api_proc.pid
            p.kill_api()
            for t in threads:
                t.join(20)
            return f"SIGKILL API pid {pid} with {started}/4 activated workers up"

        def restart_and_activate():
            p.start_api()
            wait_for(lambda: requests.get(p.api + "/health", timeout=2).status_code == 200, 30, "the API's /health")
            # What a client whose requests were cut off does: activate again (idempotent).
            for sid in self.ids[:4]:
                wait_for(lambda: post(f"/streams/{sid}/activate").status_code == 200, 30, f"activating {sid}", 0.5)

        faults = [
            ("postgres-kill", lambda: (p.kill_pg(), "SIGKILL postmaster")[1], p.start_pg, 3.0,
             "restarted with pg_ctl"),
            ("redis-kill", lambda: (p.kill_redis(), "SIGKILL redis-server")[1], p.start_redis, 3.0,
             "restarted empty (no persistence)"),
            ("worker-kill", kill_worker, lambda: None, 0.0, "replaced by the API's process runtime"),
            ("api-kill", kill_api, p.start_api, 0.0, "started again at once"),
            *[(f"api-kill-activating #{i}", kill_api_activating, restart_and_activate, 0.0,
               "4 streams deactivated, then activated concurrently; the API killed as the first worker appears")
              for i in (1, 2, 3)],  # a race: three rounds
            ("rtsp-kill", lambda: (p.kill_rtsp(), "SIGKILL RTSP server")[1], p.start_rtsp, 3.0,
             "the RTSP stream's worker reconnects"),
            ("postgres-freeze", lambda: (p.freeze_pg(), f"SIGSTOP {len(p.frozen)} PostgreSQL processes")[1],
             p.thaw_pg, 10.0, "SIGCONT after the hold"),
        ]
        for name, inject, restore, hold, note in faults:
            if only and name.split(" ")[0] not in only:
                continue
            try:
                self.run_fault(name, inject, restore, hold, note)
            except Exception as e:  # noqa: BLE001 - one broken fault must not hide the others
                log(f"{name} failed: {type(e).__name__}: {e}")
                self.rows.append({"fault": name, "injected": f"failed: {type(e).__name__}: {e}"[:200], "held_s": hold,
                                  "frames_again_s": None, "longest_gap_s": "-", "health_again_s": None,
                                  "health_during": "-", "writes": "-", "rows_lost": "?", "rows_extra": "?",
                                  "rows_doubled": "?", "duplicate_workers": len(self.p.workers()) and sum(
                                      1 for v in self.p.workers().values() if len(v) > 1),
                                  "orphan_workers": 0, "workers_kept": "-", "recovered": False, "note": note})
                self.p.remove_unmanaged()

    def stop(self):
        for t in (self.frames, self.health, self.workers):
            t.halt.set()
        for t in (self.frames, self.health, self.workers):
            if t.is_alive():
                t.join(3)


def summarize_probes(probes) -> str:
    if not probes:
        return "-"
    bad = [p for p in probes if not p[2]]
    worst = max(p[1] - p[0] for p in probes)
    kinds = sorted({p[3] for p in bad})
    head = f"{len(probes) - len(bad)}/{len(probes)} ok" if bad else f"all {len(probes)} ok"
    return f"{head}; slowest {worst:.2f} s" + (f"; {', '.join(kinds)}" if kinds else "")


def fmt(v, unit=""):
    if v is None:
        return "**no**"
    return f"{v}{unit}"


def table(rows) -> str:
    lines = ["| fault | injected | outage held (s) | frames flow again (s) | longest frame gap (s) | /health ok again (s) "
             "| /health from fault to ok | writes acked/tried | rows lost | rows doubled | duplicate workers "
             "| workers kept (same pid) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lost = r["rows_lost"] if r["rows_extra"] in (0, "?") else f"{r['rows_lost']} (+{r['rows_extra']} new)"
        dup = str(r["duplicate_workers"]) + (f" (+{r['orphan_workers']} orphans)" if r["orphan_workers"] else "")
        settled = "" if r["recovered"] else " (did not settle)"
        lines.append(f"| {r['fault']}{settled} | {r['injected']} | {r['held_s']:g} | {fmt(r['frames_again_s'])} | "
                     f"{r['longest_gap_s']} | {fmt(r['health_again_s'])} | {r['health_during']} | {r['writes']} | {lost} | "
                     f"{r['rows_doubled']} | {dup} | "
                     f"{r['workers_kept']} |")
    for r in rows:
        if r.get("removed_unmanaged") or r.get("duplicates_seen"):
            lines.append(f"\n{r['fault']}: workers of one stream seen at once: {r.get('duplicates_seen')}; "
                         f"{r['note']}")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin-dir", required=True, type=Path, help="folder with vectorflow-api and vectorflow-worker")
    ap.add_argument("--samples", required=True, type=Path, help="folder with vtest.avi, vtest.mp4, tree.avi, Megamind.avi")
    ap.add_argument("--out", type=Path, help="also write the table (markdown) and the raw rows (JSON) here")
    ap.add_argument("--logs", type=Path, help="copy the API, worker, PostgreSQL, Redis and RTSP logs here")
    ap.add_argument("--only", nargs="*", help="run only these faults")
    ap.add_argument("--reconcile-interval", help="VF_RECONCILE_INTERVAL for the API (default: the API's own)")
    args = ap.parse_args()

    # Any way out runs the cleanup: SIGTERM and SIGHUP become an exception like Ctrl-C's.
    def stop_now(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, stop_now)
    signal.signal(signal.SIGHUP, stop_now)

    work = Path(tempfile.mkdtemp(prefix="vf-faults-"))
    work.chmod(0o755)  # the postgres user must reach its data folder inside
    p = Platform(work, args.bin_dir.resolve(), args.samples.resolve(), args.reconcile_interval)
    m = Matrix(p)
    t0 = time.monotonic()
    code = 0
    try:
        m.start()
        m.run(args.only)
    except BaseException as e:  # noqa: BLE001 - report, then clean up whatever happened
        if not isinstance(e, SystemExit):
            log(f"fault matrix aborted: {type(e).__name__}: {e}")
        code = (e.code if isinstance(e, SystemExit) and isinstance(e.code, int)
                else 128 + signal.SIGINT if isinstance(e, KeyboardInterrupt) else 1)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the cleanup itself is not cut short
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        m.stop()
        p.cleanup()
        left = p.workers()
        if left:
            log(f"workers still alive after cleanup: {left}")
        if args.logs:
            shutil.rmtree(args.logs, ignore_errors=True)  # this run's logs only
            args.logs.mkdir(parents=True, exist_ok=True)
            for src in [*p.logs.glob("*.log"), *(work / "workers" / "logs").glob("*.log*"), p.pg_dir / "postgres.log"]:
                if src.is_file():
                    shutil.copy(src, args.logs / src.name)
        shutil.rmtree(work, ignore_errors=True)
    text = table(m.rows)
    meta = (f"\n{len(m.rows)} faults, {len(m.ids)} streams (4 file, 1 RTSP), whole run {time.monotonic() - t0:.0f} s; "
            f"GAP {GAP} s, STEADY {STEADY} s, settle timeout {SETTLE_TIMEOUT:.0f} s.")
    try:
        print(text + meta, flush=True)
    except BrokenPipeError:
        pass
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + meta + "\n")
        args.out.with_suffix(".json").write_text(json.dumps(m.rows, indent=1) + "\n")
    bad = [r for r in m.rows if r["rows_lost"] != 0 or r["rows_doubled"] != 0 or r["duplicate_workers"] != 0
           or not r["recovered"]]
    return code or (1 if bad or len(m.rows) == 0 else 0)


if __name__ == "__main__":
    sys.exit(main())
