"""Motion events through the real API on a real PostgreSQL and Redis: entries in the worker's exact
format (tests/_motion_events.py) are XADDed to vectorflow:events; the API's consumer group applies
them; REST (filters, keyset pages, one event, its snapshot), WS /ws/events, webhooks (signed,
retried, persisted) and retention are checked from the outside, and exactly-once ingest survives a
kill -9 of the API and a PostgreSQL stop."""
import contextlib
import hashlib
import hmac
import json
import os
import random
import signal
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from _motion_events import EVENTS_GROUP, EVENTS_KEY, EventScript, Resp
from conftest import OUT, Redis, wait_until
from test_api_crud import make_database, postgres, start_api  # noqa: F401 (postgres: fixture)

SECRET = "whsec-" + uuid.uuid4().hex


@pytest.fixture
def redis_own():
    """A Redis of this test's own: the events stream is one key for every API that reads it."""
    r = Redis()
    yield r
    r.close()


def _api(request, bin_dir, postgres, redis, name, **extra):
    url, db = make_database(postgres)
    env = {"DATABASE_URL": url, "REDIS_URL": redis.url, "VF_EVENTS_CONSUMER": "api-test",
           "VF_FILE_SD_PATH": str(OUT / f"{name}-workers.json")}
    env.update(extra)
    p, base = start_api(request, bin_dir, name, env)
    return p, base, db, env


def _snap(event_id, seq):
    return b"\xff\xd8\xff\xe0" + f"{event_id}:{seq}".encode() + bytes(range(256)) + b"\xff\xd9"


def _count(postgres, db, sql):
    return int(postgres.psql(sql, db=db).strip() or 0)


def _final(postgres, db):
    """{event id: seq} as stored."""
    out = {}
    for line in postgres.psql("SELECT id, seq FROM motion_events", db=db).split():
        i, s = line.split("|")
        out[i] = int(s)
    return out


def _pending(redis):
    c = Resp(redis.port)
    try:
        return c.command("XPENDING", EVENTS_KEY, EVENTS_GROUP)[0]
    finally:
        c.close()


def _wait_group(redis, timeout=20):
    """The API creates its consumer group at start (entries before it would not be read)."""
    def has_group():
        c = Resp(redis.port)
        try:
            return any(EVENTS_GROUP.encode() in g for g in c.command("XINFO", "GROUPS", EVENTS_KEY))
        except RuntimeError:
            return False
        finally:
            c.close()
    wait_until(has_group, timeout, what="the API's consumer group")


def test_ingest_rest_and_websocket(request, bin_dir, postgres, redis_own):
    p, base, db, _ = _api(request, bin_dir, postgres, redis_own, "api-events")
    _wait_group(redis_own)
    sockets = contextlib.ExitStack()
    request.addfinalizer(sockets.close)
    ws_all = sockets.enter_context(ws_connect(base.replace("http", "ws") + "/ws/events", open_timeout=5))
    # Stream 0 exists in the API (and is deleted at the end: its events stay); stream 1 never did.
    r = requests.post(base + "/streams", json={"name": "Cam 0", "rtsp_url": "rtsp://cam/live"}, timeout=5)
    assert r.status_code == 201, r.text
    streams = [r.json()["id"], str(uuid.uuid4())]
    zones = {s: [str(uuid.uuid4()), str(uuid.uuid4())] for s in streams}
    ws_one = sockets.enter_context(
        ws_connect(base.replace("http", "ws") + f"/ws/events?stream_id={streams[0]}", open_timeout=5))
    t0 = float(int(time.time()) - 3600)
    scripts = []
    for k in range(24):
        s = streams[k % 2]
        z = zones[s][k % 3 % 2]
        eid = str(uuid.uuid4())
        scripts.append(EventScript(eid, s, f"Cam {k % 2}", z, f"Zone {k % 3 % 2}", t0 + k * 10.0 + 0.25,
                                   updates=k % 3, snapshot_of=lambda seq, eid=eid: _snap(eid, seq) if seq % 2 else None))
    # Several events at the very same started_at: the page order still has one answer (id).
    for sc in scripts[20:]:
        for _, _, fields in sc.entries:
            fields[7] = ("started_at", repr(t0 + 500.5))
    c = Resp(redis_own.port)
    for sc in scripts:
        for _, _, fields in sc.entries:
            c.xadd(fields)
    c.close()
    want = {sc.ev["id"]: sc.final_seq for sc in scripts}
    wait_until(lambda: _final(postgres, db) == want, 20, what="every event applied at its last seq")
    wait_until(lambda: _pending(redis_own) == 0, 10, what="no pending entries")
    assert Resp(redis_own.port).command("XLEN", EVENTS_KEY) == 0, "applied entries are deleted"

    # Every page of 5 (newest first) covers each event exactly once.
    seen, cursor, pages = [], None, 0
    while True:
        r = requests.get(base + "/events", params={"limit": 5, **({"cursor": cursor} if cursor else {})}, timeout=5)
        assert r.status_code == 200, r.text
        page = r.json()
        assert set(page) == {"events", "next_cursor"}
        seen += page["events"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 5 and len(seen) == 24 and {e["id"] for e in seen} == set(want)
    keys = [(e["started_at"], e["id"]) for e in seen]
    assert keys == sorted(keys, reverse=True)

    # Filters: stream, zone by id and by name, since/until as ISO 8601 and unix seconds.
    def ids(**params):
        r = requests.get(base + "/events", params={"limit": 500, **params}, timeout=5)
        assert r.status_code == 200, r.text
        return {e["id"] for e in r.json()["events"]}
    by_stream = {sc.ev["id"] for sc in scripts if sc.ev["stream_id"] == streams[0]}
    assert ids(stream_id=streams[0]) == by_stream
    z0 = zones[streams[0]][0]
    assert ids(zone=z0) == {sc.ev["id"] for sc in scripts if sc.ev["zone_id"] == z0}
    assert ids(zone="Zone 1") == {sc.ev["id"] for sc in scripts if sc.ev["zone_name"] == "Zone 1"}
    assert ids(stream_id=streams[1], zone="Zone 0") == {
        sc.ev["id"] for sc in scripts if sc.ev["stream_id"] == streams[1] and sc.ev["zone_name"] == "Zone 0"}
    cut = t0 + 100

    def started(sc):
        return float(dict(sc.entries[0][2])["started_at"])
    later = {sc.ev["id"] for sc in scripts if started(sc) >= cut}
    assert ids(since=str(cut)) == later
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(cut)) + "Z"
    assert ids(since=iso) == later
    assert ids(until=str(cut - 0.001)) == set(want) - later
    assert ids(since=str(cut), until=str(cut + 30)) == {
        sc.ev["id"] for sc in scripts if cut <= started(sc) <= cut + 30}

    # One event: the contract's fields, its snapshot bytes, no deliveries (no webhook configured).
    sc = scripts[4]
    e = requests.get(f"{base}/events/{sc.ev['id']}", timeout=5).json()
    assert e["deliveries"] == []
    assert set(e) == {"id", "stream_id", "stream_name", "zone_id", "zone_name", "state", "started_at",
                      "last_motion_at", "ended_at", "duration_s", "peak_speed", "peak_at", "mean_speed",
                      "mean_direction_deg", "vector_count", "peak_vectors", "frames", "has_snapshot", "snapshot_url",
                      "deliveries"}
    ev = sc.ev
    assert (e["state"], e["stream_id"], e["zone_id"], e["zone_name"], e["frames"], e["vector_count"],
            e["peak_vectors"]) == ("ended", ev["stream_id"], ev["zone_id"], ev["zone_name"], ev["frames"],
                                   ev["vector_count"], ev["peak_vectors"])
    assert e["peak_speed"] == ev["peak_speed"] and e["mean_speed"] == ev["mean_speed"]
    assert e["mean_direction_deg"] == 90
    assert e["duration_s"] == pytest.approx(ev["ended_at"] - ev["started_at"], abs=1e-5)
    assert e["started_at"] == time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ev["started_at"])) + ".250000Z"
    assert e["has_snapshot"] and e["snapshot_url"] == f"/events/{ev['id']}/snapshot.jpg"
    r = requests.get(base + e["snapshot_url"], timeout=5)
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/jpeg"
    assert r.content == _snap(ev["id"], sc.final_seq)  # the end entry's (the newest) snapshot
    page_item = next(x for x in seen if x["id"] == ev["id"])
    assert page_item == {k: v for k, v in e.items() if k != "deliveries"}

    # WebSocket: every entry of an event of stream 0, in order, after its commit; the filtered
    # client gets stream 0's only.
    def messages(ws, n):
        out = []
        while len(out) < n:
            out.append(json.loads(ws.recv(timeout=10)))
        return out
    total = sum(len(s.entries) for s in scripts)
    got = messages(ws_all, total)
    assert all(m["type"] == "event" for m in got)
    for sc in scripts:
        mine = [(m["phase"], m["event"]["frames"]) for m in got if m["event"]["id"] == sc.ev["id"]]
        assert [ph for ph, _ in mine] == ["start"] + ["update"] * sc.updates + ["end"]
        assert mine[-1][1] == sc.ev["frames"]
    one = messages(ws_one, sum(len(s.entries) for s in scripts if s.ev["stream_id"] == streams[0]))
    assert {m["event"]["stream_id"] for m in one} == {streams[0]}
    sockets.close()

    # Deleting a stream keeps its events (history; docs/events.md).
    assert requests.delete(f"{base}/streams/{streams[0]}", timeout=5).status_code == 204
    assert ids(stream_id=streams[0]) == by_stream

    # Bad input: FastAPI-shaped 422s, unknown ids 404.
    for params, field in [({"limit": 0}, "limit"), ({"limit": 10000}, "limit"), ({"limit": "x"}, "limit"),
                          ({"cursor": "garbage"}, "cursor"), ({"since": "yesterday"}, "since"),
                          ({"until": "2026-13-01T00:00:00Z"}, "until"), ({"stream_id": "nope"}, "stream_id"),
                          ({"since": "-5"}, "since"), ({"zone": "z" * 300}, "zone")]:
        r = requests.get(base + "/events", params=params, timeout=5)
        assert r.status_code == 422, (params, r.text)
        assert [d["loc"] for d in r.json()["detail"]] == [["query", field]], r.text
    r = requests.get(f"{base}/events/{uuid.uuid4()}", timeout=5)
    assert r.status_code == 404 and r.json() == {"detail": "Event not found"}
    r = requests.get(f"{base}/events/{uuid.uuid4()}/snapshot.jpg", timeout=5)
    assert r.status_code == 404
    r = requests.get(f"{base}/events/not-a-uuid", timeout=5)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["path", "id"]

    # An undecodable entry is dropped (acknowledged, deleted, counted), the next one still applies.
    c = Resp(redis_own.port)
    c.command("XADD", EVENTS_KEY, "*", "event_id", str(uuid.uuid4()), "seq", "zero")
    late = EventScript(str(uuid.uuid4()), streams[0], "Cam 0", z0, "Zone 0", time.time(), updates=0)
    for _, _, fields in late.entries:
        c.xadd(fields)
    wait_until(lambda: late.ev["id"] in _final(postgres, db), 10, what="the entry after a bad one")
    wait_until(lambda: _pending(redis_own) == 0 and c.command("XLEN", EVENTS_KEY) == 0, 10, what="bad entry dropped")
    c.close()
    m = requests.get(base + "/metrics", timeout=5).text
    assert 'vector_flow_event_ingest_errors_total{reason="decode"} 1' in m, m
    assert f"vector_flow_events_ingested_total {total + len(late.entries)}" in m
    assert p.alive()


def test_exactly_once_across_kill_and_database_stop(request, bin_dir, postgres, redis_own):
    p, base, db, env = _api(request, bin_dir, postgres, redis_own, "api-events-crash")
    _wait_group(redis_own)
    rng = random.Random(19)
    streams = [str(uuid.uuid4()) for _ in range(3)]
    scripts = [EventScript(str(uuid.uuid4()), s, "Cam", str(uuid.uuid4()), "Door", time.time() - 600 + k, updates=k % 4,
                           snapshot_of=lambda seq: b"\xff\xd8" + bytes([seq]) * 2000)
               for k, s in enumerate(streams * 40)]
    # Interleave the events' entries, each event's in its own order (as workers append them).
    queues = [list(sc.entries) for sc in scripts]
    order = []
    while any(queues):
        q = rng.choice([q for q in queues if q])
        order.append(q.pop(0)[2])
    produced = threading.Event()

    def produce():
        c = Resp(redis_own.port)
        for k, fields in enumerate(order):
            c.xadd(fields)
            if k % 2 == 0:
                time.sleep(0.04)  # spread over the API's restart and the database's stop
        c.close()
        produced.set()
    t = threading.Thread(target=produce)
    t.start()
    wait_until(lambda: _count(postgres, db, "SELECT count(*) FROM motion_events") >= 10, 20, what="ingest under way")
    os.kill(p.proc.pid, signal.SIGKILL)
    p.proc.wait(10)
    p2, _ = start_api(request, bin_dir, "api-events-crash-2", env)
    wait_until(lambda: _count(postgres, db, "SELECT count(*) FROM motion_events") >= 40, 30, what="ingest resumed")
    assert not produced.is_set(), "the outage must overlap the production"
    postgres.stop()
    time.sleep(3)  # the outage itself: entries keep coming while the database is away
    postgres.start()
    t.join(60)
    assert produced.is_set()
    want = {sc.ev["id"]: sc.final_seq for sc in scripts}
    wait_until(lambda: _final(postgres, db) == want, 60, what="every event at its last seq, once")
    assert _count(postgres, db, "SELECT count(*) FROM motion_events") == len(want)
    assert _count(postgres, db, "SELECT count(*) FROM motion_event_snapshots") == len(want)
    wait_until(lambda: _pending(redis_own) == 0, 20, what="an empty pending list")
    assert p2.alive(), p2.output()
    assert "motion events: database failed" in p2.output()


class Receiver:
    """A webhook receiver on loopback: answers 500 to the first `fail_first` attempts of each
    delivery (by X-VectorFlow-Delivery), then 200; records every attempt."""

    def __init__(self, fail_first):
        self.attempts = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                h = {k.lower(): v for k, v in self.headers.items()}
                with outer.lock:
                    n = sum(1 for a in outer.attempts if a["headers"].get("x-vectorflow-delivery") ==
                            h.get("x-vectorflow-delivery"))
                    outer.attempts.append({"headers": h, "body": body})
                code = 500 if fail_first is None or n < fail_first else 200
                self.send_response(code)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *a):
                pass
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def _valid_signature(headers, body):
    sig = dict(part.split("=", 1) for part in headers["x-vectorflow-signature"].split(","))
    mac = hmac.new(SECRET.encode(), f"{sig['t']}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(mac, sig["v1"]) and abs(int(sig["t"]) - time.time()) < 120


def test_webhooks_signed_retried_and_given_up(request, bin_dir, postgres, redis_own, tmp_path):
    good, bad = Receiver(fail_first=2), Receiver(fail_first=None)
    request.addfinalizer(good.close)
    request.addfinalizer(bad.close)
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    p, base, db, _ = _api(request, bin_dir, postgres, redis_own, "api-events-hooks",
                          VF_WEBHOOK_URLS=f"{good.url}, {bad.url}", VF_WEBHOOK_SECRET_FILE=str(secret_file),
                          VF_WEBHOOK_RETRY_INITIAL="0.1", VF_WEBHOOK_RETRY_MAX="0.4", VF_WEBHOOK_MAX_ATTEMPTS="4",
                          VF_WEBHOOK_TIMEOUT="2")
    _wait_group(redis_own)
    scripts = [EventScript(str(uuid.uuid4()), str(uuid.uuid4()), "Cam", str(uuid.uuid4()), "Gate", time.time() - 5 + k,
                           updates=1) for k in range(2)]
    c = Resp(redis_own.port)
    for sc in scripts:
        for _, _, fields in sc.entries:
            c.xadd(fields)
    c.close()

    def states(eid):
        r = requests.get(f"{base}/events/{eid}", timeout=5)
        return {(d["url"], d["phase"]): (d["state"], d["attempts"]) for d in r.json()["deliveries"]}
    for sc in scripts:
        want = {(good.url, "start"): ("delivered", 3), (good.url, "end"): ("delivered", 3),
                (bad.url, "start"): ("failed", 4), (bad.url, "end"): ("failed", 4)}
        wait_until(lambda sc=sc, want=want: states(sc.ev["id"]) == want, 30, what="deliveries settled")
    # The good receiver: each (event, phase) delivered once it recovered, after exactly 3 attempts,
    # every attempt signed; the body is the event as the API shows it.
    ok = [a for a in good.attempts]
    assert len(ok) == 3 * 2 * len(scripts)
    by_delivery = {}
    for a in ok:
        assert _valid_signature(a["headers"], a["body"]), a["headers"]
        by_delivery.setdefault(a["headers"]["x-vectorflow-delivery"], []).append(a)
    assert len(by_delivery) == 2 * len(scripts)
    phases = set()
    for attempts in by_delivery.values():
        assert len({x["body"] for x in attempts}) == 1
        body = json.loads(attempts[0]["body"])
        phase = attempts[0]["headers"]["x-vectorflow-event"]
        phases.add((body["id"], phase))
        assert body["state"] == ("ended" if phase == "end" else "active")
    assert phases == {(sc.ev["id"], ph) for sc in scripts for ph in ("start", "end")}
    assert len(bad.attempts) == 4 * 2 * len(scripts)
    d = requests.get(f"{base}/events/{scripts[0].ev['id']}", timeout=5).json()["deliveries"]
    failed = [x for x in d if x["state"] == "failed"]
    assert failed and all(x["last_error"] == "HTTP 500" and x["next_attempt_at"] is None for x in failed)
    assert all(x["delivered_at"] for x in d if x["state"] == "delivered")
    m = requests.get(base + "/metrics", timeout=5).text
    assert 'vector_flow_webhook_deliveries_total{result="delivered"} 4' in m, m
    assert 'vector_flow_webhook_deliveries_total{result="failed"} 4' in m
    # The secret: in no answer, not in the log.
    answers = [requests.get(base + path, timeout=5).text for path in
               ["/openapi.json", "/metrics", "/health", "/events", f"/events/{scripts[0].ev['id']}"]]
    assert all(SECRET not in a for a in answers)
    assert p.stop() == 0
    assert SECRET not in p.log_path.read_text(errors="replace")


def test_retention_removes_old_events(request, bin_dir, postgres, redis_own):
    p, base, db, _ = _api(request, bin_dir, postgres, redis_own, "api-events-retention",
                          VF_EVENT_RETENTION_HOURS="1", VF_EVENT_SWEEP_INTERVAL="0.3")
    _wait_group(redis_own)
    now = time.time()
    old = [EventScript(str(uuid.uuid4()), str(uuid.uuid4()), "Cam", str(uuid.uuid4()), "Yard", now - 7200 - k * 60,
                       updates=1, snapshot_of=lambda seq: b"\xff\xd8old") for k in range(5)]
    fresh = [EventScript(str(uuid.uuid4()), str(uuid.uuid4()), "Cam", str(uuid.uuid4()), "Yard", now - 60, updates=1)]
    c = Resp(redis_own.port)
    for sc in fresh + old:
        for _, _, fields in sc.entries:
            c.xadd(fields)
    c.close()
    fresh_id = fresh[0].ev["id"]
    wait_until(lambda: fresh_id in _final(postgres, db), 10, what="the fresh event stored")
    wait_until(lambda: set(_final(postgres, db)) == {fresh_id}, 15, what="old events removed")
    assert _count(postgres, db, "SELECT count(*) FROM motion_event_snapshots") == 1
    for sc in old:
        assert requests.get(f"{base}/events/{sc.ev['id']}", timeout=5).status_code == 404
    assert [e["id"] for e in requests.get(base + "/events", timeout=5).json()["events"]] == [fresh_id]
    assert p.alive()


def test_events_need_the_token(request, bin_dir, postgres, redis_own):
    token = "tok-" + uuid.uuid4().hex
    p, base, db, _ = _api(request, bin_dir, postgres, redis_own, "api-events-auth", VF_API_TOKEN=token)
    _wait_group(redis_own)
    eid = str(uuid.uuid4())
    for path in ["/events", f"/events/{eid}", f"/events/{eid}/snapshot.jpg"]:
        r = requests.get(base + path, timeout=5)
        assert r.status_code == 401 and r.json() == {"detail": "Not authenticated"}, path
    auth = {"Authorization": f"Bearer {token}"}
    assert requests.get(base + "/events", headers=auth, timeout=5).status_code == 200
    assert requests.get(f"{base}/events/{eid}", headers=auth, timeout=5).status_code == 404
    ws_url = base.replace("http", "ws") + "/ws/events"
    with pytest.raises(InvalidStatus) as refused:
        with ws_connect(ws_url, open_timeout=5):
            pass
    assert refused.value.response.status_code == 401
    with pytest.raises(InvalidStatus) as refused:  # a foreign page may not open it, token or not
        with ws_connect(ws_url, open_timeout=5, subprotocols=[f"bearer.{token}"], origin="http://evil.example"):
            pass
    assert refused.value.response.status_code == 403
    with ws_connect(ws_url, open_timeout=5, subprotocols=[f"bearer.{token}"]) as ws:
        sc = EventScript(eid, str(uuid.uuid4()), "Cam", str(uuid.uuid4()), "Gate", time.time(), updates=0)
        c = Resp(redis_own.port)
        for _, _, fields in sc.entries:
            c.xadd(fields)
        c.close()
        got = [json.loads(ws.recv(timeout=10)) for _ in sc.entries]
        assert [(m["phase"], m["event"]["id"]) for m in got] == [("start", eid), ("end", eid)]
    assert p.alive()
