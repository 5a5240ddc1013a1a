"""VFNet's HTTP/1.1 server, driven by independent clients: curl, http.client, requests and raw sockets.

Each test starts the real `vfnet-testserver` binary on a free port (its log goes to test-output/).
"""
import http.client
import socket
import subprocess
import threading
import time

import pytest
import requests

from conftest import start_testserver


def start(spawn, bin_dir, *flags, name="vfnet-http"):
    return start_testserver(spawn, bin_dir, *flags, name=name)


@pytest.fixture
def server(spawn, bin_dir):
    proc, port = start(spawn, bin_dir, "--max-body", "65536", "--header-timeout", "1", "--idle-timeout", "1")
    yield port
    assert proc.alive(), "the server must survive every test"


def recv_until_closed(sock, timeout=5.0):
    sock.settimeout(timeout)
    chunks = []
    while True:
        try:
            data = sock.recv(65536)
        except (ConnectionResetError, socket.timeout):
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def read_response(sock, buf=b""):
    """Reads one Content-Length response from sock; returns (status, headers, body, rest)."""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        assert data, f"connection closed mid-head: {buf!r}"
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0"))
    while len(rest) < n:
        data = sock.recv(65536)
        assert data, "connection closed mid-body"
        rest += data
    return status, headers, rest[:n], rest[n:]


def raw(port, payload, timeout=5.0):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(payload)
        return recv_until_closed(s, timeout)


def test_health_and_json_with_requests_and_curl(server):
    r = requests.get(f"http://127.0.0.1:{server}/health", timeout=5)
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    assert r.headers["Content-Type"] == "application/json" and "Date" in r.headers
    r = requests.get(f"http://127.0.0.1:{server}/items/a%20b", params={"q": "x y", "n": "é"}, timeout=5)
    assert r.json() == {"id": "a b", "query": {"q": "x y", "n": "é"}}
    out = subprocess.run(["curl", "-s", "-i", f"http://127.0.0.1:{server}/items/42"], capture_output=True, text=True,
                         timeout=10).stdout
    assert out.startswith("HTTP/1.1 200 OK") and out.endswith('{"id":"42","query":{}}')


def test_keep_alive_reuses_one_connection(server):
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=5)
    conn.request("GET", "/health")
    first = conn.getresponse()
    assert first.status == 200 and first.read() == b'{"status":"ok"}'
    sock = conn.sock
    for i in range(20):
        conn.request("POST", "/echo", body=f"n={i}".encode(), headers={"Content-Type": "text/plain"})
        r = conn.getresponse()
        assert r.status == 200 and r.read() == f"n={i}".encode()
        assert r.getheader("Connection") == "keep-alive"
    assert conn.sock is sock, "the client had to reconnect: keep-alive broken"
    conn.close()


def test_pipelined_requests_answered_in_order(server):
    reqs = (b"GET /items/1 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
            b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /items/2 HTTP/1.1\r\nHost: x\r\n\r\n")
    with socket.create_connection(("127.0.0.1", server), timeout=5) as s:
        # Byte by byte for the first request, then the rest in one segment.
        for b in reqs[:10]:
            s.send(bytes([b]))
            time.sleep(0.001)
        s.sendall(reqs[10:])
        rest = b""
        bodies = []
        for _ in range(4):
            status, _, body, rest = read_response(s, rest)
            assert status == 200
            bodies.append(body)
    assert bodies == [b'{"id":"1","query":{}}', b"hello", b"slow\n", b'{"id":"2","query":{}}']


def test_deep_pipeline_with_a_slow_reader_keeps_order(spawn, bin_dir):
    """400 pipelined echo requests sent before reading a byte: output backpressure pauses
    parsing, nothing is lost or reordered. The reader starts only after twice the header timeout:
    while the server itself does not read (its answers wait for the client), no read deadline
    runs, only the idle one (30 s here); the next head's 1 s deadline used to fire there (408)."""
    proc, port = start(spawn, bin_dir, "--max-body", "65536", "--header-timeout", "1", "--idle-timeout", "30",
                       name="vfnet-http-pipeline")
    n = 400
    reqs = b"".join(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 32000\r\n\r\n" + (b"%05d" % i) * 6400
                    for i in range(n))
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        sender = threading.Thread(target=s.sendall, args=(reqs,))
        sender.start()
        time.sleep(2)  # the slow reader (the stimulus, not a wait for an outcome)
        rest = b""
        for i in range(n):
            status, _, body, rest = read_response(s, rest)
            assert status == 200 and body == (b"%05d" % i) * 6400, (i, status)
        sender.join(30)
        assert not sender.is_alive()
    assert proc.alive()


def test_chunked_request_body(server):
    body = (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n1;ext=1\r\n \r\n6\r\nworld!\r\n0\r\nTrailer: x\r\n\r\n")
    with socket.create_connection(("127.0.0.1", server), timeout=5) as s:
        s.sendall(body)
        status, _, got, _ = read_response(s)
    assert status == 200 and got == b"hello world!"
    # requests sends a generator body chunked.
    r = requests.post(f"http://127.0.0.1:{server}/echo", data=(c for c in [b"a" * 1000, b"b" * 3000]), timeout=5)
    assert r.status_code == 200 and r.content == b"a" * 1000 + b"b" * 3000


def test_post_without_length_has_empty_body(server):
    with socket.create_connection(("127.0.0.1", server), timeout=5) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body, _ = read_response(s)
    assert status == 200 and body == b"" and headers["content-length"] == "0"


def test_head_sends_get_headers_without_body(server):
    with socket.create_connection(("127.0.0.1", server), timeout=5) as s:
        s.sendall(b"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        buf = b""
        while buf.count(b"\r\n\r\n") < 2 or not buf.endswith(b'{"status":"ok"}'):
            data = s.recv(65536)
            assert data
            buf += data
    head_part, _, get_part = buf.partition(b"\r\n\r\n")
    assert b"Content-Length: 15" in head_part
    assert get_part.startswith(b"HTTP/1.1 200 OK"), "HEAD must not send a body"
    out = subprocess.run(["curl", "-s", "-I", f"http://127.0.0.1:{server}/health"], capture_output=True, text=True,
                         timeout=10).stdout
    assert "Content-Length: 15" in out


def test_expect_100_continue(server):
    with socket.create_connection(("127.0.0.1", server), timeout=5) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        interim = s.recv(100)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(b"data")
        status, _, body, _ = read_response(s)
        assert status == 200 and body == b"data"
    # Declared body over --max-body: 413 straight away, never "100 Continue".
    with socket.create_connection(("127.0.0.1", server), timeout=5) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\nExpect: 100-continue\r\n\r\n")
        status, headers, body, _ = read_response(s)
        assert status == 413 and headers["connection"] == "close"


def test_404_and_405_with_allow(server):
    r = requests.get(f"http://127.0.0.1:{server}/nope", timeout=5)
    assert r.status_code == 404 and r.json() == {"detail": "Not Found"}
    r = requests.put(f"http://127.0.0.1:{server}/items/3", timeout=5)
    assert r.status_code == 405 and r.json() == {"detail": "Method Not Allowed"}
    assert set(r.headers["Allow"].split(", ")) == {"GET", "DELETE", "HEAD"}
    r = requests.delete(f"http://127.0.0.1:{server}/items/3", timeout=5)
    assert r.status_code == 204 and r.content == b"" and "Content-Length" not in r.headers


@pytest.mark.parametrize("payload,status", [
    (b"GET / HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n", 400),
    (b"GET / HTTP/1.1\nHost: x\n\n", 400),
    (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 70000\r\n\r\n", 413),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 70000 + b"\r\n\r\n", 431),
    (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
])
def test_bad_requests_get_status_and_close(server, payload, status):
    out = raw(server, payload)
    assert out.startswith(f"HTTP/1.1 {status} ".encode()), out[:200]
    assert b"Connection: close" in out and b'{"detail":' in out


def test_chunked_body_over_limit_is_413(server):
    chunk = b"8000\r\n" + b"x" * 0x8000 + b"\r\n"
    out = raw(server, b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 3 + b"0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 413 ")


def test_header_timeout_408_slowloris(server):
    with socket.create_connection(("127.0.0.1", server), timeout=5) as s:
        start = time.monotonic()
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        for _ in range(3):   # drips keep the socket busy but must not extend the deadline
            time.sleep(0.2)
            s.sendall(b"X-A: b\r\n")
        out = recv_until_closed(s, timeout=5)
        elapsed = time.monotonic() - start
    assert out.startswith(b"HTTP/1.1 408 "), out
    assert 0.8 < elapsed < 3.0


def test_body_timeout_408(spawn, bin_dir):
    _, port = start(spawn, bin_dir, "--body-timeout", "0.5", name="vfnet-http-body-timeout")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        out = recv_until_closed(s, timeout=5)
    assert out.startswith(b"HTTP/1.1 408 ")


def test_idle_keep_alive_connection_is_closed(server):
    with socket.create_connection(("127.0.0.1", server), timeout=5) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, _, rest = read_response(s)
        assert status == 200 and rest == b""
        start = time.monotonic()
        assert recv_until_closed(s, timeout=5) == b"", "idle close is silent"
        assert 0.7 < time.monotonic() - start < 3.0


def test_http10_closes_and_connection_close_honoured(server):
    out = raw(server, b"GET /health HTTP/1.0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200 OK") and b"Connection: close" in out and out.endswith(b'{"status":"ok"}')
    out = raw(server, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b"Connection: close" in out


def test_half_closed_client_still_gets_answer(server):
    with socket.create_connection(("127.0.0.1", server), timeout=5) as s:
        s.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        s.shutdown(socket.SHUT_WR)
        out = recv_until_closed(s)
    assert out.startswith(b"HTTP/1.1 200 OK") and out.endswith(b"slow\n")


def test_off_loop_responses_do_not_block_the_loop(server):
    results = []

    def slow():
        results.append(requests.get(f"http://127.0.0.1:{server}/slow", timeout=5).text)
    threads = [threading.Thread(target=slow) for _ in range(20)]
    start = time.monotonic()
    for t in threads:
        t.start()
    # While 20 answers are pending on another thread, the loops answer at once.
    t0 = time.monotonic()
    assert requests.get(f"http://127.0.0.1:{server}/health", timeout=5).status_code == 200
    assert time.monotonic() - t0 < 0.5
    for t in threads:
        t.join()
    # Served one after another on the two loops they would take 10 × 0.2 s = 2 s.
    assert results == ["slow\n"] * 20 and time.monotonic() - start < 1.5


def test_garbage_never_kills_the_server(server):
    import random
    rng = random.Random(7)
    seeds = [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n",
             b"\x16\x03\x01\x00\xa5\x01\x00", b"GET /ws/echo HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"]
    for i in range(60):
        base = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(0, 8)):
            base[rng.randrange(len(base))] = rng.randrange(256)
        if i % 5 == 0:
            base += bytes(rng.randrange(256) for _ in range(rng.randint(1, 3000)))
        try:
            with socket.create_connection(("127.0.0.1", server), timeout=2) as s:
                s.sendall(bytes(base))
                s.shutdown(socket.SHUT_WR)
                recv_until_closed(s, timeout=2)
        except OSError:
            pass
    assert requests.get(f"http://127.0.0.1:{server}/health", timeout=5).status_code == 200
