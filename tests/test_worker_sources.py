"""The worker (`vectorflow-worker run`) end to end: real sources (file, HTTP, RTSP), a real Redis it
publishes to (read back with a small raw-socket RESP subscriber), failures it must survive, its exit
codes, and a real Prometheus scraping it.
"""
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import time

import pytest
import requests

from conftest import OUT, Redis, free_port, wait_port, wait_until

CHANNEL = "vectorflow:frames:{}"


class Subscriber:
    """PSUBSCRIBE over a plain socket, RESP parsed by hand: no client library involved."""

    def __init__(self, port, pattern):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""
        parts = [b"PSUBSCRIBE", pattern.encode()]
        self.sock.sendall(b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts))
        assert self._reply()[0] == b"psubscribe"

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(max(65536, n))
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"*":
            return [self._reply() for _ in range(int(rest))]
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if kind == b":":
            return int(rest)
        return rest

    def messages(self, count, timeout):
        """Up to `count` (channel, payload) pairs within `timeout` seconds."""
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < count and time.monotonic() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                r = self._reply()
            except (socket.timeout, TimeoutError):
                break
            if r and r[0] == b"pmessage":
                out.append((r[2].decode(), r[3]))
        return out

    def close(self):
        self.sock.close()


def decode(payload):
    (n,) = struct.unpack(">I", payload[:4])
    header = json.loads(payload[4:4 + n].decode("utf-8"))
    return header, payload[4 + n:]


@pytest.fixture
def worker_bin(bin_dir):
    return str(bin_dir / "vectorflow-worker")


def start_worker(spawn, worker_bin, redis, name, source, **env):
    stream_id = env.pop("STREAM_ID", name)
    e = {"STREAM_ID": stream_id, "STREAM_NAME": f"Camera {name}", "SOURCE_URL": str(source),
         "REDIS_URL": redis.url, "METRICS_HOST": "127.0.0.1", "METRICS_PORT": str(free_port())}
    e.update({k: str(v) for k, v in env.items()})
    proc = spawn(f"worker-{name}", [worker_bin, "run"], env=e)
    proc.stream_id = stream_id
    proc.metrics_port = int(e["METRICS_PORT"])
    return proc


def frames(redis, stream_id, count, timeout=15):
    sub = Subscriber(redis.port, CHANNEL.format(stream_id))
    try:
        return [decode(p) for _, p in sub.messages(count, timeout)]
    finally:
        sub.close()


def status(redis, stream_id):
    out = redis.cli("HGETALL", f"vectorflow:status:{stream_id}").split("\n")
    return dict(zip(out[0::2], out[1::2]))


def test_file_source_envelopes_status_and_viewer_gating(spawn, worker_bin, redis_server, samples):
    w = start_worker(spawn, worker_bin, redis_server, "file", samples / "vtest.avi", PREVIEW_MAX_WIDTH=320)
    got = frames(redis_server, w.stream_id, 12)
    assert len(got) >= 10, w.output()
    for h, jpeg in got:
        assert h["stream_id"] == "file" and h["stream_name"] == "Camera file"
        assert (h["width"], h["height"]) == (768, 576)
        assert h["jpeg"] is False and jpeg == b"", "no viewer: header-only messages"
        assert set(h["stats"]) == {"vector_count", "magnitude_avg", "magnitude_max", "rejected", "directions", "mean_vector"}
        assert len(h["vectors"]) == min(h["stats"]["vector_count"], 2000)
        assert all(len(v) == 4 and (v[2] ** 2 + v[3] ** 2) ** 0.5 > 1.2 - 0.02 for v in h["vectors"])
        assert abs(h["captured_at"] - time.time()) < 30
    seqs = [h["seq"] for h, _ in got]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert any(h["stats"]["vector_count"] > 0 for h, _ in got), "people walk in vtest.avi"
    # Paced at the file's own 10 fps, like a camera (not as fast as it decodes).
    span = got[-1][0]["captured_at"] - got[0][0]["captured_at"]
    assert 0.6 < (len(got) - 1) / span < 14, f"{len(got)} frames in {span:.2f}s"
    assert 7 < got[-1][0]["fps"] < 13

    # The hash is refreshed every 2 s; the first write (on entering `running`) has no fps yet.
    st = wait_until(lambda: (lambda s: s if float(s.get("fps", 0)) > 0 else None)(status(redis_server, w.stream_id)),
                    5, what="status with fps")
    assert st["state"] == "running" and 7 < float(st["fps"]) < 13 and st["last_error"] == ""
    assert abs(float(st["updated_at"]) - time.time()) < 5
    assert 0 < int(redis_server.cli("TTL", f"vectorflow:status:{w.stream_id}")) <= 15

    # A viewer appears: annotated JPEG previews, scaled to PREVIEW_MAX_WIDTH.
    redis_server.cli("SET", f"vectorflow:viewers:{w.stream_id}", "1", "EX", "10")
    time.sleep(1.5)
    got = frames(redis_server, w.stream_id, 5)
    assert got and all(h["jpeg"] for h, _ in got)
    h, jpeg = got[-1]
    assert jpeg[:2] == b"\xff\xd8" and jpeg[-2:] == b"\xff\xd9"
    assert (h["preview_width"], h["preview_height"]) == (320, 240)
    (OUT / "worker-preview.jpg").write_bytes(jpeg)
    redis_server.cli("DEL", f"vectorflow:viewers:{w.stream_id}")
    time.sleep(1.5)
    assert all(not h["jpeg"] for h, _ in frames(redis_server, w.stream_id, 3))

    t = time.monotonic()
    assert w.stop(signal.SIGTERM) == 0
    assert time.monotonic() - t < 2
    assert redis_server.cli("EXISTS", f"vectorflow:status:{w.stream_id}").strip() == "0"


def test_preview_rate_is_capped(spawn, worker_bin, redis_server, samples):
    # Megamind.avi is 24 fps; previews at PREVIEW_FPS=5 (PREVIEW_ALWAYS: JPEG without a viewer).
    w = start_worker(spawn, worker_bin, redis_server, "rate", samples / "Megamind.avi", PREVIEW_FPS=5,
                     PREVIEW_ALWAYS="true")
    got = frames(redis_server, w.stream_id, 4, timeout=10)  # let it settle
    got = frames(redis_server, w.stream_id, 100, timeout=3)
    assert 10 <= len(got) <= 17, f"{len(got)} previews in 3 s at PREVIEW_FPS=5"
    assert all(h["jpeg"] for h, _ in got)
    seqs = [h["seq"] for h, _ in got]
    assert sum(b - a for a, b in zip(seqs, seqs[1:])) / (len(seqs) - 1) > 3, "frames analysed between previews"


def test_http_source(spawn, worker_bin, redis_server, samples):
    port = free_port()
    spawn("worker-http-server", [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                                 "--directory", str(samples)])
    wait_port(port)
    w = start_worker(spawn, worker_bin, redis_server, "http", f"http://127.0.0.1:{port}/vtest.mp4")
    got = frames(redis_server, w.stream_id, 5)
    assert len(got) == 5, w.output()
    assert (got[0][0]["width"], got[0][0]["height"]) == (768, 576)
    assert status(redis_server, w.stream_id)["state"] == "running"


RTSP_SERVER = textwrap.dedent("""
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
""")


def have_rtsp():
    r = subprocess.run(["/usr/bin/python3", "-c", "import gi; gi.require_version('GstRtspServer', '1.0'); "
                        "from gi.repository import GstRtspServer"], capture_output=True)
    return r.returncode == 0


def test_rtsp_source_and_reconnect(spawn, worker_bin, redis_server, samples, tmp_path):
    if not have_rtsp():
        pytest.skip("GStreamer's RTSP server (gir1.2-gst-rtsp-server-1.0) is not installed")
    script = tmp_path / "rtsp.py"
    script.write_text(RTSP_SERVER)
    port = free_port()
    argv = ["/usr/bin/python3", str(script), str(port), str(samples / "vtest.mp4")]
    server = spawn("worker-rtsp-server", argv)
    wait_port(port)
    w = start_worker(spawn, worker_bin, redis_server, "rtsp", f"rtsp://127.0.0.1:{port}/vtest")
    got = frames(redis_server, w.stream_id, 5, timeout=20)
    assert len(got) == 5, w.output()
    assert (got[0][0]["width"], got[0][0]["height"]) == (768, 576)

    server.stop(signal.SIGKILL)  # the camera disappears mid-stream
    wait_until(lambda: status(redis_server, w.stream_id).get("state") == "reconnecting", 15, what="reconnecting")
    assert status(redis_server, w.stream_id)["last_error"] != ""
    assert w.alive()
    spawn("worker-rtsp-server2", argv)
    wait_port(port)
    got = frames(redis_server, w.stream_id, 3, timeout=30)
    assert len(got) == 3, w.output()
    wait_until(lambda: status(redis_server, w.stream_id).get("state") == "running", 10, what="running again")
    t = time.monotonic()
    assert w.stop(signal.SIGINT) == 0
    assert time.monotonic() - t < 2


def test_redis_down_and_back(spawn, worker_bin, samples):
    redis = Redis()
    try:
        w = start_worker(spawn, worker_bin, redis, "redisdown", samples / "vtest.avi")
        assert len(frames(redis, w.stream_id, 3)) == 3
        redis.stop()
        time.sleep(2)
        assert w.alive(), w.output()
        redis.start()
        got = frames(redis, w.stream_id, 3, timeout=15)
        assert len(got) == 3, w.output()
        wait_until(lambda: status(redis, w.stream_id).get("state") == "running", 10, what="status written again")
        assert w.stop() == 0
    finally:
        redis.close()


def test_worker_starts_without_redis_and_stops_cleanly(spawn, worker_bin, samples):
    dead = f"redis://127.0.0.1:{free_port()}/0"
    w = spawn("worker-noredis", [worker_bin, "run"], env={"STREAM_ID": "nr", "SOURCE_URL": str(samples / "vtest.avi"),
                                                          "REDIS_URL": dead, "METRICS_PORT": str(free_port()),
                                                          "METRICS_HOST": "127.0.0.1"})
    time.sleep(2)
    assert w.alive()
    t = time.monotonic()
    assert w.stop() == 0
    assert time.monotonic() - t < 2


@pytest.mark.parametrize("name", ["Megamind_bugy.avi", "damaged"])
def test_corrupt_input_is_survived(spawn, worker_bin, redis_server, samples, tmp_path, name):
    source = samples / name
    if name == "damaged":
        # vtest.avi with 40 runs of 2 KB of noise written over its frames: decoding errors galore.
        data = bytearray((samples / "vtest.avi").read_bytes())
        import random
        rng = random.Random(3)
        for _ in range(40):
            off = rng.randrange(len(data) // 10, len(data) - 2000)
            data[off:off + 2000] = bytes(rng.getrandbits(8) for _ in range(2000))
        source = tmp_path / "damaged.avi"
        source.write_bytes(bytes(data))
    w = start_worker(spawn, worker_bin, redis_server, name.split(".")[0].lower(), source, PREVIEW_ALWAYS="true")
    got = frames(redis_server, w.stream_id, 10, timeout=15)
    assert len(got) == 10, w.output()
    assert all(j[:2] == b"\xff\xd8" for _, j in got)
    assert w.alive()
    assert w.stop() == 0


@pytest.mark.parametrize("env,needle", [
    ({"SOURCE_URL": "ftp://example.org/x"}, "scheme"),
    ({"SOURCE_URL": "file://http://127.0.0.1:9/x.mp4"}, "absolute path"),
    ({"SOURCE_URL": "file:///x", "GRID_SIZE": "2"}, "GRID_SIZE"),
    ({"SOURCE_URL": "file:///x", "GRID_SIZE": "sixteen"}, "GRID_SIZE"),
    ({"SOURCE_URL": "file:///x", "THRESHOLD": "-1"}, "THRESHOLD"),
    ({"SOURCE_URL": "file:///x", "THRESHOLD": "nan"}, "THRESHOLD"),
    ({"SOURCE_URL": "file:///x", "METRICS_PORT": "70000"}, "METRICS_PORT"),
    ({"SOURCE_URL": "file:///x", "LOOP": "perhaps"}, "LOOP"),
    ({"SOURCE_URL": "file:///x", "REDIS_URL": "http://localhost"}, "REDIS_URL"),
    ({"SOURCE_URL": "file:///x", "PREVIEW_FPS": "0"}, "PREVIEW_FPS"),
    ({}, "SOURCE_URL"),
])
def test_bad_configuration_exits_2(worker_bin, env, needle):
    full = {k: v for k, v in os.environ.items() if k not in ("SOURCE_URL", "GRID_SIZE", "THRESHOLD")}
    full.update(env)
    r = subprocess.run([worker_bin, "run"], env=full, capture_output=True, text=True, timeout=10)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and needle in r.stderr, r.stderr


def test_bad_flags_and_commands_exit_2(worker_bin):
    for argv in (["run", "--source-url", "rtsp://h/x", "--grid-size", "1000"], ["bogus"],
                 ["bench", "gopher://x"], ["bench", "/x", "--frames", "0"]):
        r = subprocess.run([worker_bin, *argv], capture_output=True, text=True, timeout=10)
        assert r.returncode == 2 and r.stderr.count("\n") == 1, (argv, r.stderr)


def test_unreachable_source_reconnects_with_backoff_and_stops_fast(spawn, worker_bin, redis_server):
    port = free_port()  # nothing listens there
    w = start_worker(spawn, worker_bin, redis_server, "unreachable", f"rtsp://127.0.0.1:{port}/cam")
    wait_until(lambda: status(redis_server, w.stream_id).get("state") in ("connecting", "reconnecting"), 10,
               what="status")
    time.sleep(2.5)
    st = status(redis_server, w.stream_id)
    assert st["state"] in ("connecting", "reconnecting") and st["last_error"], st
    t = time.monotonic()
    assert w.stop() == 0
    assert time.monotonic() - t < 2


def test_loop_false_ends(spawn, worker_bin, redis_server, samples, tmp_path):
    clip = tmp_path / "clip.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(samples / "vtest.mp4"), "-frames:v", "15",
                    "-c", "copy", str(clip)], check=True)
    w = start_worker(spawn, worker_bin, redis_server, "ends", clip, LOOP="false")
    rc = w.proc.wait(15)
    assert rc == 0, w.output()
    assert status(redis_server, w.stream_id)["state"] == "ended"


def test_loop_true_replays_finite_source(spawn, worker_bin, redis_server, samples, tmp_path):
    clip = tmp_path / "clip.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(samples / "vtest.mp4"), "-frames:v", "10",
                    "-c", "copy", str(clip)], check=True)
    w = start_worker(spawn, worker_bin, redis_server, "loops", clip)
    got = frames(redis_server, w.stream_id, 25, timeout=6)
    assert len(got) >= 20, "a 1 s clip keeps playing"
    assert w.alive() and status(redis_server, w.stream_id)["state"] == "running"
    assert w.stop() == 0


FIVE = ["vector_flow_magnitude_avg", "vector_flow_magnitude_max", "vector_flow_vector_count", "vector_flow_fps",
        "vector_flow_frames_processed_total"]


def test_metrics_health_and_real_prometheus_scrape(spawn, worker_bin, redis_server, samples, prometheus_factory):
    w = start_worker(spawn, worker_bin, redis_server, "prom", samples / "vtest.avi", STREAM_NAME="Front door")
    base = f"http://127.0.0.1:{w.metrics_port}"
    wait_until(lambda: requests.get(base + "/health", timeout=1).status_code == 200, 10, what="/health")
    health = requests.get(base + "/health", timeout=2).json()
    assert health["status"] == "ok" and health["state"] in ("connecting", "running")
    text = requests.get(base + "/metrics", timeout=2).text
    for name in FIVE + ["vector_flow_frames_dropped_total"]:
        assert f'{name}{{stream_id="prom",stream_name="Front door"}}' in text, name
    assert "# TYPE vector_flow_frames_processed_total counter" in text
    assert "# TYPE vector_flow_fps gauge" in text

    prom = prometheus_factory(textwrap.dedent(f"""
        global: {{scrape_interval: 1s, evaluation_interval: 1s}}
        scrape_configs:
          - job_name: worker
            static_configs: [{{targets: ["127.0.0.1:{w.metrics_port}"]}}]
    """))

    def all_series():
        found = {}
        for name in FIVE:
            r = prom.query(name)
            if not r:
                return None
            found[name] = r[0]
        return found
    series = wait_until(all_series, 30, interval=0.5, what="all five series in Prometheus")
    for name, s in series.items():
        assert s["metric"]["stream_id"] == "prom" and s["metric"]["stream_name"] == "Front door", s
    assert float(series["vector_flow_frames_processed_total"]["value"][1]) > 0
    first = float(series["vector_flow_frames_processed_total"]["value"][1])
    wait_until(lambda: float(prom.query("vector_flow_frames_processed_total")[0]["value"][1]) >= first + 10, 10,
               interval=0.5, what="the counter to grow between scrapes")
    assert w.stop() == 0


def test_sigterm_during_a_hanging_open_exits_0_within_2s(spawn, worker_bin, redis_server):
    # A server that accepts connections and never answers: FFmpeg's open blocks (up to its 5 s timeout).
    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(8)
    try:
        port = hang.getsockname()[1]
        w = start_worker(spawn, worker_bin, redis_server, "hang", f"http://127.0.0.1:{port}/live.mp4")
        wait_until(lambda: status(redis_server, w.stream_id).get("state") == "connecting", 10, what="connecting")
        time.sleep(1)
        t = time.monotonic()
        assert w.stop(signal.SIGTERM) == 0
        assert time.monotonic() - t < 2
    finally:
        hang.close()


def test_a_text_file_is_not_rendered_as_video(spawn, worker_bin, redis_server, tmp_path):
    """FFmpeg reads a text file as video (its tty demuxer), which would show the file's text in the
    preview: the worker allows video containers only, whatever the file is called."""
    secret = tmp_path / "notes.mp4"
    secret.write_text("db password: hunter2\n" * 200)
    w = start_worker(spawn, worker_bin, redis_server, "textfile", f"file://{secret}")
    st = wait_until(lambda: (lambda s: s if s.get("state") in ("reconnecting", "failed", "ended") else None)(
        status(redis_server, w.stream_id)), 20, what="the worker to refuse the file")
    assert "cannot open" in st.get("last_error", ""), st
    text = requests.get(f"http://127.0.0.1:{w.metrics_port}/metrics", timeout=5).text
    processed = [line for line in text.splitlines() if line.startswith("vector_flow_frames_processed_total")]
    assert processed and all(line.rstrip().endswith(" 0") for line in processed), processed
    assert w.stop() == 0
