"""VFNet under load: 1,000 concurrent keep-alive connections and a slowloris attack at once,
while ordinary requests keep being answered. Bounded to ~20 s."""
import re
import resource
import selectors
import socket
import threading
import time

import pytest
import requests

from conftest import rss_kib, start_testserver, wait_until

CONNECTIONS = 1000
ROUNDS = 3
SLOWLORIS = 100


@pytest.fixture(autouse=True)
def enough_descriptors():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 8192) if hard != resource.RLIM_INFINITY else 8192
    if want < 2 * (CONNECTIONS + SLOWLORIS) + 200:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is too low")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def start(spawn, bin_dir, *flags):
    # The child inherits the raised descriptor limit.
    return start_testserver(spawn, bin_dir, *flags, name="vfnet-load")


def test_thousand_keep_alive_connections_and_slowloris(spawn, bin_dir):
    proc, port = start(spawn, bin_dir, "--header-timeout", "2", "--idle-timeout", "30")
    deadline = time.monotonic() + 20
    stop = threading.Event()
    slow_results = {"closed_with_408": 0, "closed": 0}

    def slowloris():
        socks = []
        for _ in range(SLOWLORIS):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            s.setblocking(False)
            socks.append(s)
        t_start = time.monotonic()
        open_socks = list(socks)
        while open_socks and not stop.is_set() and time.monotonic() - t_start < 8:
            still = []
            for s in open_socks:
                try:
                    data = s.recv(4096)
                    if data.startswith(b"HTTP/1.1 408"):
                        slow_results["closed_with_408"] += 1
                    slow_results["closed"] += 1
                    s.close()
                    continue
                except BlockingIOError:
                    pass
                except OSError:
                    slow_results["closed"] += 1
                    s.close()
                    continue
                try:
                    s.send(b"X-Slow: 1\r\n")
                except OSError:
                    pass
                still.append(s)
            open_socks = still
            time.sleep(0.3)
        for s in open_socks:
            s.close()

    slow = threading.Thread(target=slowloris)
    slow.start()

    rss_before = rss_kib(proc.proc.pid)
    # 1,000 keep-alive connections, each doing ROUNDS requests, all in flight at once.
    sel = selectors.DefaultSelector()
    conns = []
    for i in range(CONNECTIONS):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.setblocking(False)
        conns.append(s)
        sel.register(s, selectors.EVENT_READ, {"buf": b"", "done": 0, "i": i})
    request = b"GET /items/%d HTTP/1.1\r\nHost: x\r\n\r\n"
    for i, s in enumerate(conns):
        s.sendall(request % i)
    completed = 0
    latencies = []
    probe_stop = threading.Event()

    def probe():
        # Ordinary clients on fresh connections during the storm.
        while not probe_stop.is_set():
            t0 = time.monotonic()
            r = requests.get(f"http://127.0.0.1:{port}/health", timeout=5)
            assert r.status_code == 200
            latencies.append(time.monotonic() - t0)
            time.sleep(0.05)
    prober = threading.Thread(target=probe)
    prober.start()
    try:
        while completed < CONNECTIONS * ROUNDS and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=1):
                st = key.data
                data = key.fileobj.recv(65536)
                assert data, "server closed a keep-alive connection"
                st["buf"] += data
                while b"\r\n\r\n" in st["buf"]:
                    head, _, rest = st["buf"].partition(b"\r\n\r\n")
                    n = int(re.search(rb"Content-Length: (\d+)", head).group(1))
                    if len(rest) < n:
                        break
                    assert head.startswith(b"HTTP/1.1 200 ")
                    assert rest[:n] == b'{"id":"%d","query":{}}' % st["i"]
                    st["buf"] = rest[n:]
                    st["done"] += 1
                    completed += 1
                    if st["done"] < ROUNDS:
                        key.fileobj.sendall(request % st["i"])
        rss_loaded = rss_kib(proc.proc.pid)
    finally:
        # Keep the ordinary client going until the slowloris connections were cut.
        slow.join(12)
        stop.set()
        probe_stop.set()
        prober.join(10)
        for s in conns:
            s.close()
    assert completed == CONNECTIONS * ROUNDS, f"only {completed} responses before the deadline"
    per_conn = (rss_loaded - rss_before) / CONNECTIONS
    print(f"RSS {rss_before} -> {rss_loaded} KiB: {per_conn:.1f} KiB per connection")
    assert per_conn < 24, f"{per_conn:.1f} KiB of RSS per idle keep-alive connection"
    assert latencies and max(latencies) < 1.0, f"ordinary requests stalled: max {max(latencies or [0]):.3f}s"
    # Every slowloris connection was cut with a 408 after the 2 s header timeout.
    assert slow_results["closed_with_408"] >= SLOWLORIS * 0.95, slow_results
    assert proc.alive()
    assert requests.get(f"http://127.0.0.1:{port}/health", timeout=5).json() == {"status": "ok"}


def test_max_connections_pauses_accepting_then_resumes(spawn, bin_dir):
    proc, port = start(spawn, bin_dir, "--max-connections", "20")
    held = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(20)]
    for s in held:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
    # The 21st connection waits in the backlog: no answer while 20 are open.
    extra = socket.create_connection(("127.0.0.1", port), timeout=5)
    extra.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    extra.settimeout(0.5)
    with pytest.raises(socket.timeout):
        extra.recv(4096)
    held.pop().close()
    extra.settimeout(5)
    assert extra.recv(4096).startswith(b"HTTP/1.1 200")
    for s in held:
        s.close()
    extra.close()
    assert proc.alive()


def test_descriptor_exhaustion_pauses_accept_without_spinning(spawn, bin_dir):
    """With only 64 descriptors the server hits EMFILE: it must pause accepting (no busy loop,
    no crash) and serve again once clients leave."""
    proc = spawn("vfnet-emfile", ["prlimit", "--nofile=64:64", str(bin_dir / "vfnet-testserver"), "--port", "0",
                                  "--loops", "1"])

    def port():
        m = re.search(r"listening on (\d+)", proc.output())
        return int(m.group(1)) if m else None
    port = wait_until(port, timeout=15, what="vfnet-testserver to listen")
    clients = []
    for _ in range(120):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        clients.append(s)
    time.sleep(0.5)
    pid = proc.proc.pid
    with open(f"/proc/{pid}/stat") as f:
        cpu_before = sum(int(x) for x in f.read().split()[13:15])
    time.sleep(1.0)
    with open(f"/proc/{pid}/stat") as f:
        cpu_after = sum(int(x) for x in f.read().split()[13:15])
    # Clock ticks are 1/100 s: a spinning loop would burn ~100 in this second.
    assert cpu_after - cpu_before < 30, f"accept loop spins at EMFILE ({cpu_after - cpu_before} ticks/s)"
    for s in clients:
        s.close()
    assert wait_until(lambda: requests.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200,
                      timeout=10, what="service after EMFILE")
    assert proc.alive()
