"""VFNet's WebSocket server: the `websockets` library as a real client, raw sockets for the
protocol violations a well-behaved library will not produce."""
import asyncio
import base64
import os
import socket
import struct
import threading
import time

import pytest
import requests
import websockets

from conftest import rss_kib, start_testserver


def start(spawn, bin_dir, *flags, name="vfnet-ws"):
    return start_testserver(spawn, bin_dir, *flags, name=name)


@pytest.fixture
def server(spawn, bin_dir):
    proc, port = start(spawn, bin_dir, "--max-ws-message", "4096")
    yield port
    assert proc.alive()


# ---- a minimal raw client ----

def frame(opcode, payload=b"", fin=True, mask=True, rsv=0):
    b0 = (0x80 if fin else 0) | rsv | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", b0, (0x80 if mask else 0) | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, (0x80 if mask else 0) | 126, n)
    else:
        head = struct.pack("!BBQ", b0, (0x80 if mask else 0) | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class RawWS:
    def __init__(self, port, path="/ws/echo", timeout=5):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            data = self.sock.recv(4096)
            assert data
            self.buf += data
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 "), head

    def _need(self, n):
        while len(self.buf) < n:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError
            self.buf += data

    def recv_frame(self):
        self._need(2)
        b0, b1 = self.buf[0], self.buf[1]
        assert b1 & 0x80 == 0, "server frames are unmasked"
        n, off = b1 & 0x7F, 2
        if n == 126:
            self._need(4)
            n, off = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            self._need(10)
            n, off = struct.unpack("!Q", self.buf[2:10])[0], 10
        self._need(off + n)
        payload = self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        return b0 & 0x0F, payload

    def send(self, data):
        self.sock.sendall(data)

    def expect_close(self, code):
        while True:
            op, payload = self.recv_frame()
            if op == 8:
                got = struct.unpack("!H", payload[:2])[0]
                assert got == code, (got, payload)
                self.sock.settimeout(3)
                assert self.sock.recv(10) == b"", "the server closes TCP after its close frame"
                return

    def close(self):
        self.sock.close()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def test_echo_text_binary_and_ping(server):
    async def go():
        async with websockets.connect(f"ws://127.0.0.1:{server}/ws/echo") as ws:
            await ws.send("héllo ✓")
            assert await ws.recv() == "héllo ✓"
            await ws.send(bytes(range(256)) * 10)
            assert await ws.recv() == bytes(range(256)) * 10
            await (await ws.ping(b"p1"))
            await ws.send("x" * 4000)   # 126-length encoding both ways
            assert await ws.recv() == "x" * 4000
            await ws.close(code=4001, reason="bye")
            assert ws.close_code == 4001
    run(go())


def test_subprotocol_is_chosen(server):
    async def go():
        async with websockets.connect(f"ws://127.0.0.1:{server}/ws/echo", subprotocols=["other", "vf.echo"]) as ws:
            assert ws.subprotocol == "vf.echo"
            await ws.send("p")
            assert await ws.recv() == "p"
    run(go())


def test_fragmented_message_with_interleaved_ping(server):
    c = RawWS(server)
    c.send(frame(1, b"frag", fin=False) + frame(9, b"hi") + frame(0, b"ment", fin=False) + frame(0, b"ed", fin=True))
    assert c.recv_frame() == (10, b"hi")
    assert c.recv_frame() == (1, b"fragmented")
    c.send(frame(2, b"\x00\x01", fin=False) + frame(0, b"\x02", fin=True))
    assert c.recv_frame() == (2, b"\x00\x01\x02")
    c.send(frame(8, struct.pack("!H", 1000)))
    c.expect_close(1000)


def test_close_without_code_is_echoed(server):
    c = RawWS(server)
    c.send(frame(8, b""))
    op, payload = c.recv_frame()
    assert op == 8 and payload == b""


def test_invalid_utf8_closes_1007(server):
    c = RawWS(server)
    c.send(frame(1, b"ok \xff\xfe"))
    c.expect_close(1007)


def test_oversize_message_closes_1009(server):
    c = RawWS(server)
    c.send(frame(2, b"x" * 5000))
    c.expect_close(1009)
    c2 = RawWS(server)   # and when fragments add up past the limit
    c2.send(frame(2, b"x" * 3000, fin=False) + frame(0, b"x" * 3000, fin=True))
    c2.expect_close(1009)


@pytest.mark.parametrize("bad", [
    frame(1, b"unmasked", mask=False),
    frame(1, b"x", rsv=0x40),
    frame(3, b"reserved opcode"),
    frame(9, b"p" * 200),               # control frame > 125 bytes
    frame(0, b"no message to continue"),
    frame(8, b"\x03\xe8"[:1]),          # close payload of one byte
])
def test_protocol_errors_close_1002(server, bad):
    c = RawWS(server)
    c.send(bad)
    c.expect_close(1002)


def test_bad_handshakes(server):
    def ask(headers):
        with socket.create_connection(("127.0.0.1", server), timeout=5) as s:
            s.sendall(b"GET /ws/echo HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
            return s.recv(4096)
    up = b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
    assert ask(up + b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n").startswith(
        b"HTTP/1.1 426 ")
    assert ask(up + b"Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n").startswith(b"HTTP/1.1 400 ")
    assert ask(b"").startswith(b"HTTP/1.1 426 ")
    reply = ask(up + b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")
    assert reply.startswith(b"HTTP/1.1 101 ") and b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in reply


def test_server_pings_and_drops_silent_peers(spawn, bin_dir):
    _, port = start(spawn, bin_dir, "--ws-ping-interval", "0.3", name="vfnet-ws-ping")
    c = RawWS(port)
    start_t = time.monotonic()
    op, _ = c.recv_frame()
    assert op == 9, "the server pings"
    # Never answer: the server must give up after ~2 intervals.
    c.sock.settimeout(5)
    with pytest.raises((EOFError, ConnectionResetError)):
        while True:
            c.recv_frame()
    assert time.monotonic() - start_t < 2.5
    # A peer that answers pings stays connected.
    async def go():
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws/echo") as ws:
            await asyncio.sleep(1.5)
            await ws.send("still here")
            assert await ws.recv() == "still here"
    run(go())


def test_never_reading_client_costs_bounded_memory_and_no_delay(spawn, bin_dir):
    proc, port = start(spawn, bin_dir, name="vfnet-ws-flood")
    baseline = rss_kib(proc.proc.pid)
    # Four clients that never read a byte of the 64 KiB messages streamed at them ~1000/s.
    stuck = [RawWS(port, "/ws/flood?size=65536") for _ in range(4)]
    time.sleep(1.0)
    before = rss_kib(proc.proc.pid)
    latencies = []

    async def go():
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws/echo") as ws:
            for i in range(40):
                t0 = time.monotonic()
                await ws.send(f"m{i}")
                assert await ws.recv() == f"m{i}"
                latencies.append(time.monotonic() - t0)
                await asyncio.sleep(0.05)
    run(go())
    after = rss_kib(proc.proc.pid)
    # ~64 MiB/s per client is offered; the server keeps one pending message each.
    assert after - before < 8 * 1024, f"RSS grew {before} → {after} KiB"
    # Without "latest wins" each stuck client would hold up to the 8 MiB hard limit.
    assert after - baseline < 20 * 1024, f"RSS grew {baseline} → {after} KiB"
    assert max(latencies) < 0.5, latencies
    assert requests.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
    for s in stuck:
        s.close()
    # A client that does read gets whole messages in order (latest-wins may skip, never repeats).
    async def reader():
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws/flood?size=65536", max_size=None) as ws:
            seqs = []
            for _ in range(50):
                m = await ws.recv()
                assert len(m) == 65536
                seqs.append(struct.unpack("!Q", m[:8])[0])
            return seqs
    seqs = run(reader())
    assert all(a < b for a, b in zip(seqs, seqs[1:])), seqs


def test_many_threads_send_concurrently(server):
    """Echo from several client connections at once through both loops."""
    errors = []

    def worker(n):
        try:
            async def go():
                async with websockets.connect(f"ws://127.0.0.1:{server}/ws/echo") as ws:
                    for i in range(50):
                        await ws.send(f"{n}-{i}")
                    got = [await ws.recv() for _ in range(50)]
                    assert got == [f"{n}-{i}" for i in range(50)]
            asyncio.run(go())
        except Exception as e:  # noqa: BLE001
            errors.append(e)
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert not errors
