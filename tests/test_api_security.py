"""The API's security promises, against the real API (real PostgreSQL and Redis), each finding of
the security review as an attack with its safe outcome asserted:
- what no unauthenticated request may exhaust: request metrics keep closed label sets, a body of
  many unknown keys gets a small 422 at linear cost, a viewer's WebSocket takes only small
  messages, the static folder serves web assets only;
- one access model: with a token configured, stream reads, metrics and live frames need it too
  (the bearer scheme matched case-insensitively, the WebSocket also by subprotocol); a foreign
  Origin cannot open the live frames; `Host` is checked where a list is configured;
- camera credentials are masked in every answer and status, and an update that sends the masked
  URL back keeps the stored secret."""
import os
import socket
import struct
import time
import tempfile

import pytest
import requests

from conftest import OUT, rss_kib
from test_api_crud import ApiPostgres, make_database, start_api


@pytest.fixture(scope="module")
def postgres():  # a private cluster for this module (overrides conftest's session fixture)
    pg = ApiPostgres()
    yield pg
    pg.close()


@pytest.fixture(scope="module")
def api(request, bin_dir, postgres, redis_server, tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    (site / "index.html").write_text("<h1>dash</h1>")
    (site / "nginx.conf").write_text("server { listen 80; }")
    (site / "notes.md").write_text("internal")
    url, db = make_database(postgres)
    p, base = start_api(request, bin_dir, "api-security", {
        "DATABASE_URL": url, "REDIS_URL": redis_server.url, "VF_STATIC_DIR": str(site), "VF_API_TOKEN": "t0ken"})
    yield p, base, db
    assert p.stop() == 0, p.output()


AUTH = {"Authorization": "Bearer t0ken"}


def raw_request(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


def test_unique_methods_do_not_grow_the_metrics(api):
    proc, base, _ = api
    port = int(base.rsplit(":", 1)[1])
    before = len(requests.get(base + "/metrics", headers=AUTH, timeout=10).content)
    # 3,000 requests, each with a method of its own (a token of 2 KB, as the finding had it).
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.settimeout(30)
        pending = b""
        for k in range(3000):
            method = f"X{k:05d}".encode() + b"M" * 2000
            s.sendall(method + b" /streams HTTP/1.1\r\nHost: x\r\n\r\n")
            # Read the answer before sending the next, so the server never has to queue many.
            while b"\r\n\r\n" not in pending:
                chunk = s.recv(65536)
                assert chunk, f"connection closed after {k} requests"
                pending += chunk
            head, _, rest = pending.partition(b"\r\n\r\n")
            length = int(next((line.split(b":")[1] for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), b"0"))
            while len(rest) < length:
                rest += s.recv(65536)
            pending = rest[length:]
    text = requests.get(base + "/metrics", headers=AUTH, timeout=10).text
    assert len(text.encode()) - before < 64 * 1024, f"/metrics grew from {before} to {len(text)} bytes"
    assert 'method="OTHER"' in text
    assert "MMMMMMMM" not in text


def test_a_body_of_many_unknown_keys_gets_a_small_quick_422(api):
    _, base, _ = api
    # Just under the 1 MiB body limit: about 60,000 distinct unknown keys.
    parts, size, k = [], 2, 0
    while True:
        item = f'"k{k:07d}":{k}'
        if size + len(item) + 1 > 1024 * 1024 - 64:
            break
        parts.append(item)
        size += len(item) + 1
        k += 1
    body = "{" + ",".join(parts) + "}"
    t0 = time.monotonic()
    r = requests.post(base + "/streams", data=body, headers={"Content-Type": "application/json", **AUTH},
                      timeout=30)
    took = time.monotonic() - t0
    assert r.status_code == 422, r.text[:300]
    detail = r.json()["detail"]
    assert 1 <= len(detail) <= 20, len(detail)
    assert len(r.content) < 16 * 1024
    assert {d["type"] for d in detail} <= {"missing", "extra_forbidden"}
    print(f"{k} unknown keys: 422 in {took:.3f}s, {len(r.content)} bytes")
    # The quadratic parser took ~15 s here; a linear one takes a small fraction of a second.
    assert took < 3, f"validation of {k} keys took {took:.1f}s"


def ws_open(port: int, path: str, headers: str = "") -> tuple[socket.socket, bytes]:
    """A raw WebSocket handshake; returns the socket and the answer's head."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{headers}\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            break
        head += chunk
    return s, head


def ws_handshake(port: int, path: str) -> socket.socket:
    s, head = ws_open(port, path, "Authorization: Bearer t0ken\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


def masked_frame(opcode: int, payload: bytes, fin: bool) -> bytes:
    mask = os.urandom(4)
    first = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", first, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", first, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def read_close_code(s: socket.socket) -> int:
    """Reads frames until the server's close frame; returns its code."""
    buf = b""
    while True:
        while len(buf) < 2:
            chunk = s.recv(65536)
            assert chunk, "connection ended without a close frame"
            buf += chunk
        n = buf[1] & 0x7F
        off = 2
        if n == 126:
            while len(buf) < 4:
                buf += s.recv(65536)
            n, off = struct.unpack("!H", buf[2:4])[0], 4
        elif n == 127:
            while len(buf) < 10:
                buf += s.recv(65536)
            n, off = struct.unpack("!Q", buf[2:10])[0], 10
        while len(buf) < off + n:
            chunk = s.recv(65536)
            assert chunk, "connection ended inside a frame"
            buf += chunk
        opcode, payload, buf = buf[0] & 0x0F, buf[off:off + n], buf[off + n:]
        if opcode == 8:
            return struct.unpack("!H", payload[:2])[0]


def test_a_never_ending_fragmented_message_is_refused(api):
    proc, base, _ = api
    port = int(base.rsplit(":", 1)[1])
    rss0 = rss_kib(proc.proc.pid)
    for _ in range(8):
        s = ws_handshake(port, "/ws/frames")
        try:
            s.sendall(masked_frame(0x1, b"a" * 1000, fin=False))  # a text message begins, never ends
            for _ in range(16):
                try:
                    s.sendall(masked_frame(0x0, b"b" * 1000, fin=False))
                except OSError:
                    break  # the server closed already
            assert read_close_code(s) == 1009
        finally:
            s.close()
    # One frame that announces 16 MiB is refused from its header, before any of it is buffered.
    s = ws_handshake(port, "/ws/frames")
    try:
        s.sendall(struct.pack("!BBQ", 0x82, 0x80 | 127, 16 * 1024 * 1024) + os.urandom(4) + b"x" * 1000)
        assert read_close_code(s) == 1009
    finally:
        s.close()
    assert rss_kib(proc.proc.pid) - rss0 < 20 * 1024, "memory grew with unfinished messages"


def test_static_folder_serves_web_assets_only(api):
    _, base, _ = api
    assert requests.get(base + "/", timeout=5).text == "<h1>dash</h1>"
    for path in ["/nginx.conf", "/notes.md"]:
        r = requests.get(base + path, timeout=5)
        assert r.status_code == 404, path
        assert "listen" not in r.text and "internal" not in r.text


def test_bearer_scheme_is_case_insensitive(api):
    _, base, _ = api
    body = {"name": "case", "rtsp_url": "rtsp://cam.local/x"}
    for scheme in ["Bearer", "bearer", "BEARER"]:
        r = requests.post(base + "/streams", json=body, headers={"Authorization": f"{scheme} t0ken"}, timeout=10)
        assert r.status_code == 201, (scheme, r.text)
    for bad in ["Bearer", "Bearer ", "Basic t0ken", "Bearert0ken", "Bearer t0ke", "Bearer t0ken2"]:
        r = requests.post(base + "/streams", json=body, headers={"Authorization": bad}, timeout=10)
        assert r.status_code == 401, bad


def test_reads_metrics_and_frames_need_the_token(api):
    _, base, _ = api
    port = int(base.rsplit(":", 1)[1])
    for path in ["/streams", "/metrics", f"/streams/{'0' * 8}-0000-4000-8000-{'0' * 12}"]:
        r = requests.get(base + path, timeout=10)
        assert r.status_code == 401 and r.json() == {"detail": "Not authenticated"}, path
        assert r.headers.get("WWW-Authenticate") == "Bearer"
        assert requests.get(base + path, headers={"Authorization": "bearer t0ken"}, timeout=10).status_code in (200, 404)
    for path in ["/health", "/openapi.json", "/docs", "/"]:
        assert requests.get(base + path, timeout=10).status_code == 200, path
    # The live frames: no token, a wrong one → 401 before any upgrade.
    for headers in ["", "Authorization: Bearer nope\r\n", "Sec-WebSocket-Protocol: bearer.nope\r\n"]:
        s, head = ws_open(port, "/ws/frames", headers)
        s.close()
        assert head.startswith(b"HTTP/1.1 401"), (headers, head)
    # A browser sends the token as a subprotocol; the answer picks the frames protocol.
    s, head = ws_open(port, "/ws/frames", "Sec-WebSocket-Protocol: vectorflow.frames, bearer.t0ken\r\n")
    s.close()
    assert head.startswith(b"HTTP/1.1 101") and b"Sec-WebSocket-Protocol: vectorflow.frames" in head, head
    s, head = ws_open(port, "/ws/frames?access_token=t0ken")
    s.close()
    assert head.startswith(b"HTTP/1.1 101"), head


def test_a_foreign_origin_cannot_watch(api):
    _, base, _ = api
    port = int(base.rsplit(":", 1)[1])
    s, head = ws_open(port, "/ws/frames", "Authorization: Bearer t0ken\r\nOrigin: http://evil.example\r\n")
    s.close()
    assert head.startswith(b"HTTP/1.1 403") and b"Origin not allowed" in head, head
    # The dashboard the API itself serves is the same origin.
    s, head = ws_open(port, "/ws/frames", f"Authorization: Bearer t0ken\r\nOrigin: http://127.0.0.1:{port}\r\n")
    s.close()
    assert head.startswith(b"HTTP/1.1 101"), head
    # CORS: no foreign origin by default either.
    r = requests.options(base + "/streams/x", headers={"Origin": "http://evil.example",
                                                        "Access-Control-Request-Method": "DELETE"}, timeout=10)
    assert "Access-Control-Allow-Origin" not in r.headers


def test_credentials_are_masked_everywhere(api, postgres, redis_server):
    _, base, db = api
    r = requests.post(base + "/streams", json={"name": "door", "rtsp_url": "rtsp://admin:hunter2@cam.local/live"},
                      headers=AUTH, timeout=10)
    assert r.status_code == 201, r.text
    created = r.json()
    sid = created["id"]
    assert created["rtsp_url"] == "rtsp://admin:***@cam.local/live"
    # A worker's status that quotes the URL (as FFmpeg's messages do).
    redis_server.cli("HSET", f"vectorflow:status:{sid}", "state", "reconnecting", "updated_at", str(time.time()),
                     "last_error", "cannot open rtsp://admin:hunter2@cam.local/live: 401 Unauthorized")
    redis_server.cli("EXPIRE", f"vectorflow:status:{sid}", "30")
    for answer in [requests.get(base + "/streams", headers=AUTH, timeout=10).text,
                   requests.get(f"{base}/streams/{sid}", headers=AUTH, timeout=10).text]:
        assert "hunter2" not in answer
        assert "rtsp://admin:***@cam.local/live" in answer
    one = requests.get(f"{base}/streams/{sid}", headers=AUTH, timeout=10).json()
    assert one["status"]["last_error"] == "cannot open rtsp://admin:***@cam.local/live: 401 Unauthorized"
    # The edit form sends back what it was shown: the stored secret stays.
    r = requests.put(f"{base}/streams/{sid}", json={"name": "front door", "rtsp_url": one["rtsp_url"]},
                     headers=AUTH, timeout=10)
    assert r.status_code == 200 and r.json()["name"] == "front door" and "hunter2" not in r.text
    stored = postgres.psql(f"SELECT rtsp_url FROM camera_streams WHERE id = '{sid}'", db=db).strip()
    assert stored == "rtsp://admin:hunter2@cam.local/live"
    # A new password is taken as sent.
    r = requests.put(f"{base}/streams/{sid}", json={"rtsp_url": "rtsp://admin:n3w@cam.local/live"}, headers=AUTH,
                     timeout=10)
    assert r.status_code == 200
    assert postgres.psql(f"SELECT rtsp_url FROM camera_streams WHERE id = '{sid}'", db=db).strip() == \
        "rtsp://admin:n3w@cam.local/live"
    assert requests.delete(f"{base}/streams/{sid}", headers=AUTH, timeout=10).status_code == 204


def test_host_is_checked_where_configured(request, bin_dir, postgres, redis_server):
    url, _ = make_database(postgres)
    _, base = start_api(request, bin_dir, "api-hosts", {"DATABASE_URL": url, "REDIS_URL": redis_server.url,
                                                        "VF_ALLOWED_HOSTS": "cams.example, 127.0.0.1"})
    port = int(base.rsplit(":", 1)[1])
    assert requests.get(base + "/health", timeout=10).status_code == 200  # Host: 127.0.0.1:<port>
    assert requests.get(base + "/health", headers={"Host": "cams.example"}, timeout=10).status_code == 200
    r = requests.get(base + "/health", headers={"Host": "rebound.attacker.example"}, timeout=10)
    assert r.status_code == 400 and r.json() == {"detail": "Invalid host header"}
    out = raw_request(port, b"GET /health HTTP/1.1\r\nHost: evil:80\r\nConnection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400")


def test_file_sources_stay_in_the_media_folder(request, bin_dir, postgres, redis_server, tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    url, _ = make_database(postgres)
    _, base = start_api(request, bin_dir, "api-media", {"DATABASE_URL": url, "REDIS_URL": redis_server.url,
                                                        "VF_ALLOW_FILE_SOURCES": "true", "VF_MEDIA_DIR": str(media)})
    ok = requests.post(base + "/streams", json={"name": "clip", "rtsp_url": f"file://{media}/lobby.mp4"}, timeout=10)
    assert ok.status_code == 201, ok.text
    for bad in [f"file://{tmp_path}/outside.mp4", f"file://{media}/../outside.mp4", f"file://{media}/notes.txt",
                "file://http://127.0.0.1:9/x.mp4", "file:///etc/passwd"]:
        r = requests.post(base + "/streams", json={"name": "bad", "rtsp_url": bad}, timeout=10)
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["detail"][0]["loc"] == ["body", "rtsp_url"]
        assert str(media) in r.json()["detail"][0]["msg"], r.text
    # The published contract says the same.
    pattern = requests.get(base + "/openapi.json", timeout=10).json()["components"]["schemas"]["StreamCreate"][
        "properties"]["rtsp_url"]["pattern"]
    import re
    assert re.fullmatch(pattern, f"file://{media}/lobby.mp4") and not re.fullmatch(pattern, "file:///etc/passwd")


def test_file_sources_need_a_media_folder(bin_dir):
    import subprocess
    r = subprocess.run([str(bin_dir / "vectorflow-api")], capture_output=True, text=True, timeout=10,
                       env={**os.environ, "VF_ALLOW_FILE_SOURCES": "true", "VF_PORT": "0", "VF_HOST": "127.0.0.1",
                            "VF_STATE_DIR": tempfile.mkdtemp(prefix="vf-media-")})
    assert r.returncode == 2 and "VF_MEDIA_DIR" in r.stderr, r.stderr
