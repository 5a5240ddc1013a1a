"""What a stream URL may reach (VF_SOURCE_ALLOW / VF_SOURCE_DENY), against the real worker and the
real API: the worker checks every address a source's host resolves to before it connects, HTTP(S)
sources go through the worker's own proxy, which follows a redirect only to the source's own host
and port, and the platform's services (its database, its Redis) are never a source. Every server
here listens on loopback; the denied addresses are refused before any packet is sent."""
import http.server
import socket
import threading

import pytest
import requests

from conftest import free_port, wait_until
from test_api_crud import make_database, start_api
from test_worker_sources import frames, start_worker, status, worker_bin  # noqa: F401 (fixture)


class Site:
    """A loopback HTTP server of the test's own: serves `files`, answers `redirects` with a 302,
    and counts the requests it gets."""

    def __init__(self, files=None, redirects=None):
        self.files = files or {}
        self.redirects = redirects or {}
        self.requests = []
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                site.requests.append(self.path)
                if self.path in site.redirects:
                    self.send_response(302)
                    self.send_header("Location", site.redirects[self.path])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif self.path in site.files:
                    data = site.files[self.path]
                    self.send_response(200)
                    self.send_header("Content-Type", "video/mp4")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    try:
                        self.wfile.write(data)
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                else:
                    self.send_error(404)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def site_factory():
    made = []

    def make(**kw):
        s = Site(**kw)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def failed_with(redis, stream_id, needle):
    st = status(redis, stream_id)
    return st.get("state") == "failed" and needle in st.get("last_error", "")


def test_a_redirect_to_another_host_is_not_followed(spawn, worker_bin, redis_server, samples, site_factory):
    target = site_factory(files={"/vtest.mp4": (samples / "vtest.mp4").read_bytes()})
    origin = site_factory(redirects={"/cam.mp4": f"http://127.0.0.1:{target.port}/vtest.mp4"})
    w = start_worker(spawn, worker_bin, redis_server, "redirect-away", f"http://127.0.0.1:{origin.port}/cam.mp4")
    wait_until(lambda: failed_with(redis_server, w.stream_id, "not followed"), 20, what="redirect refused")
    # The worker keeps trying (slowly): a second attempt, and still the other server hears nothing.
    wait_until(lambda: len(origin.requests) >= 2, 20, what="a second attempt")
    assert target.requests == [], target.requests
    st = status(redis_server, w.stream_id)
    assert f"127.0.0.1:{target.port}" in st["last_error"], st
    assert w.alive()
    assert w.stop() == 0


def test_a_redirect_on_the_same_host_is_followed(spawn, worker_bin, redis_server, samples, site_factory):
    site = site_factory(files={"/vtest.mp4": (samples / "vtest.mp4").read_bytes()})
    site.redirects["/old.mp4"] = f"http://127.0.0.1:{site.port}/vtest.mp4"
    w = start_worker(spawn, worker_bin, redis_server, "redirect-here", f"http://127.0.0.1:{site.port}/old.mp4")
    got = frames(redis_server, w.stream_id, 3)
    assert len(got) == 3, w.output()
    assert "/old.mp4" in site.requests and "/vtest.mp4" in site.requests, site.requests
    assert w.stop() == 0


@pytest.mark.parametrize("url, needle", [
    # Cloud metadata (link-local): refused before any connection is made.
    ("http://169.254.169.254/latest/meta-data/", "VF_SOURCE_DENY"),
    ("rtsp://169.254.169.254/cam", "VF_SOURCE_DENY"),
    ("rtsp://[fe80::1]:554/cam", "VF_SOURCE_DENY"),
    ("http://0.0.0.0:8080/x.mp4", "VF_SOURCE_DENY"),
])
def test_metadata_and_unspecified_addresses_are_denied(spawn, worker_bin, redis_server, url, needle):
    w = start_worker(spawn, worker_bin, redis_server, "deny-" + str(abs(hash(url)) % 10000), url)
    wait_until(lambda: failed_with(redis_server, w.stream_id, needle), 15, what="refusal")
    assert w.stop() == 0


def test_the_workers_own_redis_is_not_a_source(spawn, worker_bin, redis_server):
    for i, url in enumerate([f"http://127.0.0.1:{redis_server.port}/", f"rtsp://localhost:{redis_server.port}/x"]):
        w = start_worker(spawn, worker_bin, redis_server, f"redis-src-{i}", url)
        wait_until(lambda: failed_with(redis_server, w.stream_id, "VF_SOURCE_DENY"), 15, what="refusal")
        assert w.stop() == 0


def test_an_allow_list_keeps_sources_inside_it(spawn, worker_bin, redis_server, samples, site_factory):
    site = site_factory(files={"/vtest.mp4": (samples / "vtest.mp4").read_bytes()})
    url = f"http://127.0.0.1:{site.port}/vtest.mp4"
    w = start_worker(spawn, worker_bin, redis_server, "allow-out", url, VF_SOURCE_ALLOW="198.18.0.0/15")
    wait_until(lambda: failed_with(redis_server, w.stream_id, "not in VF_SOURCE_ALLOW"), 15, what="refusal")
    assert site.requests == []
    assert w.stop() == 0
    w = start_worker(spawn, worker_bin, redis_server, "allow-in", url, VF_SOURCE_ALLOW="127.0.0.0/8")
    assert len(frames(redis_server, w.stream_id, 3)) == 3, w.output()
    assert w.stop() == 0


def test_a_bad_policy_is_a_configuration_error(worker_bin):
    import subprocess
    r = subprocess.run([worker_bin, "run"], env={"SOURCE_URL": "rtsp://cam/x", "VF_SOURCE_DENY": "10.0.0.0/99"},
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "VF_SOURCE_DENY" in r.stderr, r.stderr


def test_the_api_hands_workers_a_policy_that_denies_its_database(request, bin_dir, postgres, redis_server, tmp_path):
    """Through the real API and the process runtime: a stream aimed at the platform's own
    PostgreSQL fails with the policy's reason in its status."""
    url, _ = make_database(postgres)
    p, base = start_api(request, bin_dir, "api-source-policy", {
        "DATABASE_URL": url, "REDIS_URL": redis_server.url, "VF_RUNTIME": "process",
        "VF_RECONCILE_INTERVAL": "0.5", "VF_FILE_SD_PATH": str(tmp_path / "workers.json")})
    r = requests.post(base + "/streams", json={
        "name": "Database as a camera", "rtsp_url": f"rtsp://127.0.0.1:{postgres.port}/x", "is_active": True},
        timeout=5)
    assert r.status_code == 201, r.text
    sid = r.json()["id"]

    def refused():
        s = requests.get(f"{base}/streams/{sid}", timeout=5).json().get("status") or {}
        return s.get("state") == "failed" and "VF_SOURCE_DENY" in (s.get("last_error") or "")

    wait_until(refused, 30, what="the worker to refuse the database")
    assert requests.delete(f"{base}/streams/{sid}", timeout=5).status_code == 204
    assert p.stop() == 0, p.output()


class Listener:
    """A loopback port of the test's own that counts the connections it gets; `talk` serves one
    (here: closes it at once)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self.talk, args=(conn,), daemon=True).start()

    def talk(self, conn):
        conn.close()

    def close(self):
        self.sock.close()


class RedirectingRTSP(Listener):
    """An RTSP server that answers OPTIONS and redirects DESCRIBE (302) to `location`, as a
    hostile camera might; FFmpeg follows RTSP redirects by itself."""

    def __init__(self, location):
        self.location = location
        self.describes = 0
        super().__init__()

    def talk(self, conn):
        buf = b""
        with conn:
            while True:
                try:
                    chunk = conn.recv(4096)
                except OSError:
                    return
                if not chunk:
                    return
                buf += chunk
                while b"\r\n\r\n" in buf:
                    head, _, buf = buf.partition(b"\r\n\r\n")
                    lines = head.decode(errors="replace").split("\r\n")
                    cseq = next((ln.split(":", 1)[1].strip() for ln in lines if ln.lower().startswith("cseq:")), "1")
                    if lines[0].startswith("DESCRIBE"):
                        self.describes += 1
                        reply = f"RTSP/1.0 302 Moved Temporarily\r\nCSeq: {cseq}\r\nLocation: {self.location}\r\n\r\n"
                    else:
                        reply = f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nPublic: OPTIONS, DESCRIBE, SETUP, PLAY\r\n\r\n"
                    conn.sendall(reply.encode())


def test_an_rtsp_redirect_to_another_host_is_not_followed(spawn, worker_bin, redis_server):
    elsewhere = Listener()
    camera = RedirectingRTSP(f"rtsp://127.0.0.1:{elsewhere.port}/other")
    try:
        w = start_worker(spawn, worker_bin, redis_server, "rtsp-redirect", f"rtsp://127.0.0.1:{camera.port}/cam")
        wait_until(lambda: failed_with(redis_server, w.stream_id, "not followed"), 20, what="redirect refused")
        wait_until(lambda: camera.describes >= 2, 30, what="a second attempt")
        assert elsewhere.accepted == 0
        assert f"127.0.0.1:{elsewhere.port}" in status(redis_server, w.stream_id)["last_error"]
        assert w.alive()
        assert w.stop() == 0
    finally:
        camera.close()
        elsewhere.close()


def test_no_log_status_or_state_file_holds_the_cameras_password(request, bin_dir, postgres, redis_server, tmp_path):
    """A credentialed camera that cannot be reached, through the real API, process runtime and
    worker: its retries write errors that quote the URL, and none of the API's output, the
    worker's log, its status in Redis or any answer holds the password; the state folder's files
    are the API user's alone (0600)."""
    state = tmp_path / "state"
    url, _ = make_database(postgres)
    p, base = start_api(request, bin_dir, "api-no-secrets", {
        "DATABASE_URL": url, "REDIS_URL": redis_server.url, "VF_RUNTIME": "process", "VF_STATE_DIR": str(state),
        "VF_RECONCILE_INTERVAL": "0.5", "VF_FILE_SD_PATH": str(tmp_path / "workers.json")})
    closed = free_port()  # nothing listens: the worker's every attempt fails and says why
    r = requests.post(base + "/streams", json={
        "name": "Gate", "rtsp_url": f"rtsp://admin:hunter2@127.0.0.1:{closed}/live", "is_active": True}, timeout=5)
    assert r.status_code == 201, r.text
    sid = r.json()["id"]

    def retried():
        st = status(redis_server, sid)
        return st.get("state") in ("connecting", "reconnecting") and st.get("last_error")

    wait_until(retried, 30, what="the worker to report its failing source")
    raw = redis_server.cli("HGETALL", f"vectorflow:status:{sid}")
    assert "hunter2" not in raw and "admin:***@" in raw, raw
    for answer in (requests.get(base + "/streams", timeout=5).text, requests.get(f"{base}/streams/{sid}", timeout=5).text):
        assert "hunter2" not in answer
    files = [f for f in state.rglob("*") if f.is_file() and f.name != ".lock"]
    logs = [f for f in files if f.suffix == ".log"]
    assert logs and len(files) > len(logs), files  # a log (in logs/) and a record at least
    wait_until(lambda: all(f.stat().st_size > 0 for f in logs), 10, what="the worker's log")
    for f in files:
        assert (f.stat().st_mode & 0o777) == 0o600, (f, oct(f.stat().st_mode))
    for f in logs:
        assert "hunter2" not in f.read_text(errors="replace"), f.read_text(errors="replace")
    assert requests.delete(f"{base}/streams/{sid}", timeout=5).status_code == 204
    assert p.stop() == 0
    out = p.log_path.read_text(errors="replace")
    assert "hunter2" not in out, out
