"""Shared pieces of the orchestration end-to-end tests (process and Docker runtimes).

Everything is real: the API and worker binaries from `bin_dir`, PostgreSQL, Redis, Prometheus,
WebSocket clients (the `websockets` library) and, for Docker, a private dockerd. The scenario is
written once (`Scenario`) and driven through a small runtime adapter (how to list and kill workers).
"""
import json
import os
import signal
import socket
import struct
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests
from websockets.sync.client import connect as ws_connect

from conftest import OUT, free_port, wait_until


def make_database(postgres) -> str:
    """A fresh database owned by vectorflow on the session's PostgreSQL; returns its URL."""
    name = "orch_" + uuid.uuid4().hex[:12]
    postgres.psql(f"CREATE DATABASE {name} OWNER vectorflow")
    return f"postgresql://vectorflow:vectorflow@127.0.0.1:{postgres.port}/{name}", name


def prometheus_config(api_port: int, file_sd: Path) -> str:
    return f"""
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: vectorflow-api
    static_configs:
      - targets: ["127.0.0.1:{api_port}"]
  - job_name: vectorflow-workers
    honor_labels: true
    scrape_interval: 1s
    file_sd_configs:
      - files: ["{file_sd}"]
        refresh_interval: 1s
"""


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def decode_envelope(message: bytes) -> tuple[dict, bytes]:
    """docs/frame-envelope.md: uint32 BE header length, JSON header, JPEG bytes."""
    assert isinstance(message, (bytes, bytearray)), f"text message on /ws/frames: {message!r}"
    n = struct.unpack(">I", message[:4])[0]
    header = json.loads(message[4:4 + n])
    return header, bytes(message[4 + n:])


def make_envelope(stream_id: str, seq: int, payload_size: int) -> bytes:
    header = json.dumps({"stream_id": stream_id, "stream_name": "injected", "seq": seq, "captured_at": time.time(),
                         "width": 768, "height": 576, "fps": 10, "jpeg": True, "preview_width": 640,
                         "preview_height": 480, "stats": {"vector_count": 0, "magnitude_avg": 0,
                                                          "magnitude_max": 0}, "vectors": []}).encode()
    return struct.pack(">I", len(header)) + header + b"\xff\xd8" + b"\0" * max(0, payload_size - 4) + b"\xff\xd9"


class FrameClient(threading.Thread):
    """A WebSocket viewer of one stream, reading as fast as frames come, keeping every header."""

    def __init__(self, base_ws: str, stream_id: str):
        super().__init__(daemon=True)
        self.url = f"{base_ws}/ws/frames?stream_id={stream_id}"
        self.headers: list[dict] = []
        self.times: list[float] = []
        self.jpeg_bytes = 0
        self.error = None
        self._halt = threading.Event()
        # Entered by hand: the connection outlives this call (closed in close()).
        self.ws = ws_connect(self.url, open_timeout=5, max_size=None, close_timeout=1).__enter__()

    def run(self):
        try:
            while not self._halt.is_set():
                try:
                    m = self.ws.recv(timeout=0.5)
                except TimeoutError:
                    continue
                header, jpeg = decode_envelope(m)
                self.headers.append(header)
                self.times.append(time.monotonic())
                self.jpeg_bytes += len(jpeg)
        except Exception as e:  # noqa: BLE001 - reported by the test
            if not self._halt.is_set():
                self.error = e

    def count_since(self, t: float) -> int:
        return sum(1 for x in list(self.times) if x >= t)

    def close(self):
        self._halt.set()
        try:
            self.ws.close()
        except Exception:  # noqa: BLE001
            pass
        self.join(3)


def stalled_viewer(port: int, stream_id: str) -> socket.socket:
    """A raw WebSocket client that completes the handshake and then never reads (4 KiB buffer)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall((f"GET /ws/frames?stream_id={stream_id} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
               "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    s.settimeout(5)
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        assert chunk, "connection closed during the handshake"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


class RedisPublisher:
    """PUBLISH over a raw RESP connection (no client library needed)."""

    def __init__(self, port: int):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.f = self.s.makefile("rb")

    def publish(self, channel: str, payload: bytes) -> int:
        parts = [b"PUBLISH", channel.encode(), payload]
        self.s.sendall(b"*3\r\n" + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts))
        line = self.f.readline()
        assert line.startswith(b":"), line
        return int(line[1:])

    def close(self):
        self.s.close()


class Api:
    """vectorflow-api as a child process (output in test-output/<name>.log)."""

    def __init__(self, spawn, bin_dir: Path, name: str, port: int, env: dict):
        self.spawn, self.bin_dir, self.name, self.port, self.env = spawn, bin_dir, name, port, env
        self.base = f"http://127.0.0.1:{port}"
        self.ws_base = f"ws://127.0.0.1:{port}"
        self.proc = None
        self.starts = 0

    def start(self):
        self.starts += 1
        full = {"VF_HOST": "127.0.0.1", "VF_PORT": str(self.port), "VF_STATIC_DIR": str(OUT / "no-static")}
        full.update(self.env)
        self.proc = self.spawn(f"{self.name}-{self.starts}", [str(self.bin_dir / "vectorflow-api")], env=full)
        wait_until(lambda: "vectorflow-api listening" in self.proc.output() or
                   (not self.proc.alive() and pytest.fail(f"api exited: {self.proc.output()}")), 20,
                   what="the API to listen")
        return self

    @property
    def pid(self) -> int:
        return self.proc.proc.pid

    def stop(self):
        rc = self.proc.stop(signal.SIGTERM, timeout=15)
        assert rc == 0, f"API stop exit code {rc}: {self.proc.output()[-2000:]}"

    def get(self, path):
        r = requests.get(self.base + path, timeout=10)
        r.raise_for_status()
        return r.json()

    def create(self, name, url, active):
        r = requests.post(self.base + "/streams", json={"name": name, "rtsp_url": url, "grid_size": 16,
                                                        "threshold": 1.2, "is_active": active}, timeout=30)
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def set_active(self, sid, active):
        r = requests.post(f"{self.base}/streams/{sid}/{'activate' if active else 'deactivate'}", timeout=60)
        assert r.status_code == 200, r.text
        return r.json()


class Scenario:
    """The orchestration scenario of the issue, for one runtime.

    `runtime` must provide: `env()` (extra API environment), `workers()` → {stream_id: identifier}
    of the workers that exist right now (running or not, one entry per worker: duplicates are
    reported as a list), `kill(stream_id)`, `cleanup()`, and `adoption_may_replace` (False: a
    restarted API must keep the very same worker).
    """

    def __init__(self, *, runtime, spawn, bin_dir, postgres, redis_server, prometheus_factory, source_url, tmp: Path,
                 name: str):
        self.rt, self.redis, self.postgres, self.source_url = runtime, redis_server, postgres, source_url
        self.db_url, self.db_name = make_database(postgres)
        self.file_sd = tmp / "file_sd" / "workers.json"
        self.file_sd.parent.mkdir(parents=True)
        self.file_sd.write_text("[]")
        self.state_dir = tmp / "state"
        port = free_port()
        env = {"DATABASE_URL": self.db_url, "REDIS_URL": redis_server.url, "VF_FILE_SD_PATH": str(self.file_sd),
               "VF_STATE_DIR": str(self.state_dir), "VF_RECONCILE_INTERVAL": "1", "VF_ALLOW_FILE_SOURCES": "true",
               "VF_MEDIA_DIR": os.path.dirname(source_url[len("file://"):]),
               "VF_WORKER_STOP_TIMEOUT": "3"}
        env.update(runtime.env())
        self.api = Api(spawn, bin_dir, name, port, env)
        self.prom = prometheus_factory(prometheus_config(port, self.file_sd))
        self.ids: list[str] = []
        self.timings: dict[str, float] = {}

    def shutdown(self):
        """Stops the API (if running) so that nothing restarts the workers the test then removes."""
        if self.api.proc is not None and self.api.proc.alive():
            self.api.proc.stop(signal.SIGTERM, timeout=15)

    def log(self, msg):
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    # --- checks -------------------------------------------------------------------------------
    def wait_workers(self, expected: set, timeout=30, what="workers"):
        """Waits until exactly one worker exists for each id in `expected` and none for the others."""
        def ok():
            w = self.rt.workers()
            mine = {k: v for k, v in w.items() if k in self.ids}
            if set(mine) == expected and all(not isinstance(v, list) for v in mine.values()):
                return mine
            return None
        try:
            return wait_until(ok, timeout, interval=0.2, what=f"{what}: exactly one worker for each of {sorted(expected)}")
        except AssertionError as e:
            raise AssertionError(f"{e}; workers now: {self.rt.workers()}") from None

    def file_sd_ids(self) -> set:
        return {t["labels"]["stream_id"] for t in json.loads(self.file_sd.read_text() or "[]")}

    def prom_target_ids(self) -> dict:
        return {t["labels"].get("stream_id"): t for t in self.prom.targets()
                if t["labels"].get("job") == "vectorflow-workers"}

    def check_record(self, sid, present: bool):
        s = self.api.get(f"/streams/{sid}")
        if present:
            assert s["worker_container_name"] == f"vector-worker-{sid}", s
            assert s["worker_started_at"], s
        else:
            assert s["worker_container_name"] is None and s["worker_started_at"] is None, s
        return s

    def frames_of(self, sid, n=5, timeout=20) -> list[dict]:
        """n envelopes from a fresh viewer of `sid`; every one must carry that stream's id."""
        got = []
        with ws_connect(f"{self.api.ws_base}/ws/frames?stream_id={sid}", open_timeout=5, max_size=None) as ws:
            deadline = time.monotonic() + timeout
            while len(got) < n:
                left = deadline - time.monotonic()
                assert left > 0, f"only {len(got)} frames of {sid} within {timeout}s"
                header, jpeg = decode_envelope(ws.recv(timeout=left))
                assert header["stream_id"] == sid, (sid, header)
                got.append(header)
        return got

    def statuses(self) -> dict:
        return {s["id"]: (s.get("status") or {}) for s in self.api.get("/streams")}

    # --- the scenario ---------------------------------------------------------------------------
    def run(self):
        api = self.api.start()
        t0 = time.monotonic()
        a = api.create("Gate A", self.source_url, True)
        b = api.create("Gate B", self.source_url, True)
        c = api.create("Idle C", self.source_url, False)
        self.ids += [a, b, c]
        self.log(f"streams a={a} b={b} c={c}")

        # create + activate → one worker each for A and B, none for C, recorded in the row.
        workers = self.wait_workers({a, b}, 60, "first start")
        self.timings["workers_up"] = time.monotonic() - t0
        wait_until(lambda: self.check_record(a, True) and self.check_record(b, True), 15, what="worker records")
        self.check_record(c, False)

        # Frames arrive on each stream's WebSocket, and only that stream's.
        t = time.monotonic()
        fa = self.frames_of(a, 5, 40)
        self.timings["first_frames"] = time.monotonic() - t
        fb = self.frames_of(b, 5)
        assert {h["stream_name"] for h in fa} == {"Gate A"} and {h["stream_name"] for h in fb} == {"Gate B"}

        # GET /streams: the live status of the workers.
        wait_until(lambda: (st := self.statuses())[a].get("state") == "running" and st[b].get("state") == "running",
                   20, what="status.state running for a and b")
        assert self.statuses()[c].get("state") in (None, ""), self.statuses()[c]

        # Prometheus: the targets with their stream_id label, and the worker metric scraped.
        assert self.file_sd_ids() == {a, b}
        wait_until(lambda: {a, b} <= {k for k, t in self.prom_target_ids().items() if t["health"] == "up"}, 30,
                   what="prometheus worker targets up")
        series = wait_until(lambda: self.prom.query(f'vector_flow_frames_processed_total{{stream_id="{a}"}}'), 30,
                            what="frames_processed_total of a in prometheus")
        assert float(series[0]["value"][1]) > 0, series
        assert series[0]["metric"]["stream_id"] == a
        self.timings["prometheus_ready"] = time.monotonic() - t0
        api_up = wait_until(lambda: self.prom.query('up{job="vectorflow-api"} == 1'), 20, what="api target up")
        assert api_up

        # Isolation and a viewer that never reads.
        self.fanout(a, b)

        # Kill A's worker → replaced within a bounded time, and frames flow again.
        old = workers[a]
        started_before = self.check_record(a, True)["worker_started_at"]
        t = time.monotonic()
        self.rt.kill(a)
        # A new worker (another pid / container id), running: a stopped container is marked "(state)id".
        new = wait_until(lambda: (w := self.rt.workers().get(a)) and not isinstance(w, list) and w != old
                         and not str(w).startswith("(") and w, 30, interval=0.1, what="a replacement worker for a")
        self.timings["replaced_after_kill"] = time.monotonic() - t
        self.log(f"a's worker {old} killed → {new} in {self.timings['replaced_after_kill']:.2f}s")
        self.frames_of(a, 3, 30)
        self.wait_workers({a, b}, 10, "after the kill")
        # The row tells when the current worker started.
        wait_until(lambda: self.check_record(a, True)["worker_started_at"] != started_before, 10,
                   what="worker_started_at of a updated after the replacement")

        # Deactivate B → worker gone, record cleared, target removed from the file and from Prometheus.
        t = time.monotonic()
        api.set_active(b, False)
        self.wait_workers({a}, 20, "after deactivating b")
        self.timings["stopped_after_deactivate"] = time.monotonic() - t
        wait_until(lambda: self.file_sd_ids() == {a}, 10, what="b's target removed from file_sd")
        self.check_record(b, False)
        wait_until(lambda: b not in self.prom_target_ids(), 20, what="b's target gone from prometheus")
        assert a in self.prom_target_ids()

        # A worker stopped right after it started (before it has set up its signal handling) must
        # stop at once too, not after the stop timeout (VF_WORKER_STOP_TIMEOUT=3) with a SIGKILL.
        api.set_active(b, True)
        self.wait_workers({a, b}, 60, "b reactivated")
        t = time.monotonic()
        api.set_active(b, False)
        self.wait_workers({a}, 20, "young b stopped")
        self.timings["young_worker_stopped"] = time.monotonic() - t
        assert self.timings["young_worker_stopped"] < 2.5, self.timings
        wait_until(lambda: self.file_sd_ids() == {a}, 10, what="b's target removed from file_sd again")

        # Restart the API: C activated, then while the API is down C is deleted in the database
        # (its worker is an orphan) — the new API adopts A's worker and removes C's.
        api.set_active(c, True)
        workers = self.wait_workers({a, c}, 60, "after activating c")
        api.stop()
        assert self.rt.workers().get(a) == workers[a], "the worker must outlive the API"
        self.postgres.psql(f"DELETE FROM camera_streams WHERE id = '{c}'", db=self.db_name)
        t = time.monotonic()
        api.start()
        after = self.wait_workers({a}, 30, "after the API restart")
        self.timings["orphan_removed_after_restart"] = time.monotonic() - t
        assert after[a] == workers[a] or self.rt.adoption_may_replace, (workers, after)
        # Stays that way over a few reconcile passes (no duplicate started later).
        time.sleep(3)
        assert self.wait_workers({a}, 1, "steady after restart")[a] == after[a]
        wait_until(lambda: self.statuses()[a].get("state") == "running", 20, what="a running after restart")
        assert self.file_sd_ids() == {a}
        self.check_record(a, True)
        self.frames_of(a, 3, 20)
        self.log(f"timings: {json.dumps({k: round(v, 2) for k, v in self.timings.items()})}")

    def fanout(self, a, b):
        """Two active streams: a viewer of A never gets B's frames (and vice versa); a viewer that
        never reads does not slow the others nor grow the API's memory without bound, even while
        large frames (0.5 MB) are published for its stream at 30/s."""
        ca, cb, fast_a = (FrameClient(self.api.ws_base, a), FrameClient(self.api.ws_base, b),
                          FrameClient(self.api.ws_base, a))
        for c in (ca, cb, fast_a):
            c.start()
        stalled = [stalled_viewer(self.api.port, a) for _ in range(2)]
        pub = RedisPublisher(self.redis.port)
        try:
            time.sleep(1.0)
            rss0 = rss_kb(self.api.pid)
            t_start = time.monotonic()
            sent = 0
            seq = 10**6
            big = 500_000
            while time.monotonic() - t_start < 10:
                seq += 1
                pub.publish(f"vectorflow:frames:{a}", make_envelope(a, seq, big))
                sent += 1
                time.sleep(1 / 30)
            t_end = time.monotonic()
            rss1 = rss_kb(self.api.pid)
            time.sleep(0.5)
            elapsed = time.monotonic() - t_start
            for c in (ca, cb, fast_a):
                assert c.error is None, c.error
            assert all(h["stream_id"] == a for h in ca.headers + fast_a.headers), "a viewer of a got another stream"
            assert all(h["stream_id"] == b for h in cb.headers), "a viewer of b got another stream's frame"
            b_rate = cb.count_since(t_start) / elapsed
            injected_seen = [h["seq"] for h in fast_a.headers if h["stream_name"] == "injected"]
            growth_mb = (rss1 - rss0) / 1024
            self.timings.update({"fanout_b_fps": b_rate, "fanout_injected_sent": sent,
                                 "fanout_injected_received_fast_a": len(injected_seen),
                                 "fanout_rss_growth_mb": growth_mb})
            self.log(f"fan-out: b {b_rate:.1f} fps, injected {sent} × {big} B, fast a got {len(injected_seen)}, "
                     f"RSS {rss0 // 1024} → {rss1 // 1024} MB")
            # The worker publishes at PREVIEW_FPS (10): b's viewer keeps a normal rate.
            assert b_rate >= 5, f"b's viewer got {b_rate:.1f} fps while a viewer of a stalls"
            # The fast viewer of a is current: it got the newest injected frames (latest wins: a worker
            # frame published just after the last one may replace it) and frames after the last publish.
            assert injected_seen and max(injected_seen) >= seq - 2, (injected_seen[-3:], seq)
            assert fast_a.count_since(t_end) >= 1, "the fast viewer of a got nothing after the last publish" 
            assert len(injected_seen) >= sent * 0.3, (len(injected_seen), sent)
            # ~150 MB went to the stalled viewers: a queueing server would hold most of it.
            assert growth_mb < 50, f"API RSS grew by {growth_mb:.1f} MB"
        finally:
            pub.close()
            for s in stalled:
                s.close()
            for c in (ca, cb, fast_a):
                c.close()


def proc_workers(worker_bin: Path, ids) -> dict:
    """{stream_id: pid or [pids]} of live worker processes (argv[0] = worker binary, STREAM_ID in environ)."""
    found: dict = {}
    want = set(ids)
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            argv0 = Path(f"/proc/{d}/cmdline").read_bytes().split(b"\0")[0].decode()
            if argv0 != str(worker_bin):
                continue
            stat = Path(f"/proc/{d}/stat").read_text()
            if stat.rsplit(")", 1)[1].split()[0] == "Z":
                continue
            env = dict(x.split("=", 1) for x in Path(f"/proc/{d}/environ").read_bytes().decode(errors="replace")
                       .split("\0") if "=" in x)
        except (FileNotFoundError, ProcessLookupError, IndexError, PermissionError):
            continue
        sid = env.get("STREAM_ID")
        if sid in want:
            pid = int(d)
            found[sid] = (found[sid] if isinstance(found[sid], list) else [found[sid]]) + [pid] if sid in found else pid
    return found
