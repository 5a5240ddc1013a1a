"""Motion events from the real worker (`vectorflow-worker run`) on vtest.avi with a real Redis: the
entries it appends to `vectorflow:events` (read back with XRANGE and decoded), its metrics and its
log; and zones created through the real API (process runtime) reaching the worker, a zone change
restarting it with the new zones.

vtest.avi (768x576, 795 frames at 10 fps, OpenCV's sample) films a paved walkway crossing a lawn in
front of a brick building; people walk along the walkway, nobody walks on the building's facade.
"""
import calendar
import json
import re
import signal
import socket
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

import requests

from _orchestration_helpers import Api, make_database, proc_workers
from conftest import free_port, wait_until
from test_worker_metrics import series_of
from test_worker_sources import start_worker, worker_bin  # noqa: F401 - worker_bin is a fixture

EVENTS = "vectorflow:events"  # RedisKeys.events
FPS = 10  # vtest.avi's own rate: the worker plays a file at it, so frame = 10 x seconds since the first

WALKWAY = [[0, 0.28], [1, 0.28], [1, 0.75], [0, 0.75]]
FACADE = [[0.42, 0], [0.72, 0], [0.72, 0.1], [0.42, 0.1]]  # brick and windows, above the parked van
# The left part of the walkway, x 0.20-0.45 of the width, y 0.22-0.60 of the height.
STRIP = [[0.20, 0.22], [0.45, 0.22], [0.45, 0.60], [0.20, 0.60]]


def zone(name, polygon, **rule):
    z = {"id": str(uuid.uuid4()), "name": name, "polygon": polygon}
    z.update(rule)
    return z


def xrange(port, key):
    """[(entry id, {field: bytes})] of a Redis Stream, over a raw RESP connection (binary-safe)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    f = s.makefile("rb")
    parts = [b"XRANGE", key.encode(), b"-", b"+"]
    s.sendall(b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts))

    def read():
        line = f.readline()
        kind, rest = line[:1], line[1:-2]
        if kind == b"*":
            return [read() for _ in range(int(rest))]
        if kind == b"$":
            return f.read(int(rest) + 2)[:-2]
        raise AssertionError(f"unexpected reply {line!r}")
    try:
        entries = read()
    finally:
        s.close()
    return [(i.decode(), {fields[k].decode(): fields[k + 1] for k in range(0, len(fields), 2)})
            for i, fields in entries]


NUMBERS = {"seq", "started_at", "last_motion_at", "ended_at", "peak_speed", "peak_at", "mean_speed",
           "mean_direction_deg", "vector_count", "peak_vectors", "frames"}


def decode(fields):
    """An entry as MotionEvent.decode reads it: numbers as numbers, the snapshot as bytes."""
    e = {}
    for k, v in fields.items():
        if k == "snapshot":
            e[k] = v
        elif k in NUMBERS:
            e[k] = float(v)
        else:
            e[k] = v.decode()
    return e


def events_of(redis, stream_id):
    return [decode(f) for _, f in xrange(redis.port, EVENTS) if f["stream_id"].decode() == stream_id]


def jpeg_size(data):
    """(width, height) from a baseline/progressive JPEG's SOF marker; asserts it is one."""
    assert data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9", "not a JPEG"
    i = 2
    while i < len(data):
        assert data[i] == 0xFF, f"bad marker at {i}"
        marker, length = data[i + 1], int.from_bytes(data[i + 2:i + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2):
            return int.from_bytes(data[i + 7:i + 9], "big"), int.from_bytes(data[i + 5:i + 7], "big")
        i += 2 + length
    raise AssertionError("no SOF marker")


def log_time(line_prefix):
    """Seconds since 1970 of a log line's ISO timestamp (2026-12-03T14:44:50.108Z)."""
    stamp = line_prefix.split(" ", 1)[0]
    t = datetime.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")
    return calendar.timegm(t.timetuple()) + int(stamp[20:23]) / 1000


def test_zones_on_the_sample_clip(spawn, worker_bin, redis_server, samples):  # noqa: F811
    """The whole clip once (LOOP=false): the walkway gets events, the facade none, and a direction
    rule on the strip tells people walking right from those walking left.

    The hand count (frames extracted with cv2 every 5 frames, the strip cropped and tiled with the
    frame numbers, each person followed from tile to tile; frames 0-610, the later ones are too
    crowded to follow one by one): people walking RIGHT through the strip in frames 0-15 (one man),
    85-100 (the man who came in from the right, turned round and walked back), 279-345 (a bald man
    turning round at the strip's left edge, then two more people, overlapping in time) and 395-455
    (a man who turned round, walking slowly back right): 4 walks. Walking LEFT: 65-80 (the man who
    then turns), 165-210 (a woman in light blue, then a man in dark clothes right behind her),
    225-276 (the bald man), 297-312 (a man in black, who turns at the middle of the strip),
    495-545 (a woman in red) and 575-610 (a man in black): 6 walks. Between frames 150 and 280
    nobody walks right through the strip, and in frames 0-60 and 380-480 nobody walks left.

    An event is not a person: people walking the same way within the quiet time make one event,
    and a walk with a pause can make two; so each direction's count of events started in frames
    0-610 must be within 2 of its walks, and the windows where only one direction walks must get
    no event of the other.
    """
    zones = [
        zone("walkway", WALKWAY, min_vectors=5, min_duration_s=0.5, quiet_time_s=2),
        zone("facade", FACADE, min_vectors=3, min_duration_s=0.3, quiet_time_s=1),
        zone("strip right", STRIP, min_vectors=4, direction_deg=0, direction_tolerance_deg=60, min_duration_s=0.5,
             quiet_time_s=1),
        zone("strip left", STRIP, min_vectors=4, direction_deg=180, direction_tolerance_deg=60, min_duration_s=0.5,
             quiet_time_s=1),
    ]
    ids = {z["name"]: z["id"] for z in zones}
    w = start_worker(spawn, worker_bin, redis_server, "motion-clip", samples / "vtest.avi", LOOP="false",
                     ZONES=json.dumps(zones, separators=(",", ":")))
    # Mid-clip: people are on the walkway; the metrics say so.
    def walkway_started():
        text = requests.get(f"http://127.0.0.1:{w.metrics_port}/metrics", timeout=2).text
        got = {labels["zone"]: (labels, v) for labels, v in series_of(text, "vector_flow_events_total")}
        return text if got.get("walkway", (None, 0))[1] >= 1 else None
    text = wait_until(walkway_started, 30, interval=0.2, what="a walkway event in the metrics")
    totals = {labels["zone"]: labels for labels, _ in series_of(text, "vector_flow_events_total")}
    assert set(totals) == set(ids), totals
    for name, labels in totals.items():
        assert labels == {"stream_id": "motion-clip", "stream_name": "Camera motion-clip", "zone_id": ids[name],
                          "zone": name}, labels
    active = {labels["zone"]: v for labels, v in series_of(text, "vector_flow_zone_active")}
    assert set(active) == set(ids) and set(active.values()) <= {0.0, 1.0}, active
    assert active["facade"] == 0

    # The clip ends (79.5 s); the worker ends the events going on and exits by itself.
    wait_until(lambda: not w.alive(), 120, interval=0.5, what="the worker to finish the clip")
    log = w.output()
    events = events_of(redis_server, "motion-clip")
    assert events, log[-3000:]
    by_zone = {}
    for e in events:
        by_zone.setdefault(e["zone_name"], []).append(e)
    assert "facade" not in by_zone, f"nobody walks on the facade: {by_zone.get('facade')}"
    assert by_zone.get("walkway"), "people walk on the walkway"

    # Every entry: the contract's fields; seq 1, 2, ... per event, start first and end last;
    # the end entry carries a preview-size JPEG; every entry appended is logged.
    logged = re.findall(r"motion event (start|update|end) event_id=(\S+) seq=(\d+)", log)
    assert sorted(logged) == sorted((e["phase"], e["event_id"], str(int(e["seq"]))) for e in events)
    per_event = {}
    for e in events:
        per_event.setdefault(e["event_id"], []).append(e)
        assert e["stream_id"] == "motion-clip" and e["zone_id"] == ids[e["zone_name"]]
        assert e["started_at"] <= e["peak_at"] <= e["last_motion_at"]
        assert e["peak_vectors"] <= e["vector_count"] and e["frames"] >= 1
        assert 0 < e["mean_speed"] <= e["peak_speed"] + 1e-9
        assert 0 <= e["mean_direction_deg"] < 360
    for eid, entries in per_event.items():
        assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1)), eid
        assert entries[0]["phase"] == "start" and entries[-1]["phase"] == "end", [e["phase"] for e in entries]
        assert all(e["phase"] == "update" for e in entries[1:-1])
        end = entries[-1]
        assert end["ended_at"] >= end["last_motion_at"]
        assert "snapshot" in end and jpeg_size(end["snapshot"]) == (640, 480)  # PREVIEW_MAX_WIDTH 640
        assert "snapshot" not in entries[0], "a start has no snapshot: the end's follows"
        # Updates at most once a second (the times the entries were appended, from the log).
        stamps = [log_time(line) for line in log.splitlines() if f"event_id={eid} " in line and "motion event" in line]
        assert len(stamps) == len(entries)
        assert all(b - a > 0.9 for a, b in zip(stamps[:-2], stamps[1:-1])), stamps

    # The direction split, against the hand count (frames since the worker's first frame).
    running = re.search(r"^(\S+) info vectorflow-worker: state connecting -> running", log, re.M)
    assert running, log[:2000]
    t0 = log_time(running.group(1))
    starts = {name: [round((e["started_at"] - t0) * FPS) for e in by_zone.get(name, []) if e["phase"] == "start"]
              for name in ("strip right", "strip left")}
    right = [f for f in starts["strip right"] if f <= 610]
    left = [f for f in starts["strip left"] if f <= 610]
    assert abs(len(right) - 4) <= 2 and abs(len(left) - 6) <= 2, starts
    assert not [f for f in right if 150 <= f <= 280], starts
    assert not [f for f in left if f <= 60 or 380 <= f <= 480], starts
    for e in by_zone["strip right"]:
        assert min(e["mean_direction_deg"], 360 - e["mean_direction_deg"]) <= 60, e
    for e in by_zone["strip left"]:
        assert abs(e["mean_direction_deg"] - 180) <= 60, e


def test_a_clean_stop_ends_the_events_going_on(spawn, worker_bin, redis_server, samples):  # noqa: F811
    """SIGTERM while an event goes on: its end entry (with the snapshot) is in Redis when the worker
    has exited, within the 2 s every worker stop keeps to."""
    z = zone("everywhere", [[0, 0], [1, 0], [1, 1], [0, 1]], min_vectors=3, min_duration_s=0.2, quiet_time_s=30)
    w = start_worker(spawn, worker_bin, redis_server, "motion-stop", samples / "vtest.avi",
                     ZONES=json.dumps([z]), EVENTS_STREAM_MAXLEN="1000")
    started = wait_until(lambda: [e for e in events_of(redis_server, "motion-stop") if e["phase"] == "start"], 30,
                         interval=0.2, what="an event to start")
    t = time.monotonic()
    assert w.stop(signal.SIGTERM, timeout=5) == 0, w.output()[-2000:]
    assert time.monotonic() - t < 2.5
    entries = [e for e in events_of(redis_server, "motion-stop") if e["event_id"] == started[0]["event_id"]]
    assert entries[-1]["phase"] == "end", [e["phase"] for e in entries]
    assert jpeg_size(entries[-1]["snapshot"]) == (640, 480)
    assert f"motion event end event_id={started[0]['event_id']} " in w.log_path.read_text()


def test_zones_from_the_api_reach_the_worker(spawn, bin_dir, postgres, redis_server, samples):
    """Through the real API (process runtime): a zone created on an active stream restarts its
    worker with ZONES holding it, a changed rule restarts it again with the change, and the worker
    then detects in that zone (its metrics carry the zone)."""
    db_url, _ = make_database(postgres)
    tmp = Path(tempfile.mkdtemp(prefix="vf-motion-api-"))
    api = Api(spawn, bin_dir, "api-motion", free_port(), {
        "DATABASE_URL": db_url, "REDIS_URL": redis_server.url, "VF_FILE_SD_PATH": str(tmp / "workers.json"),
        "VF_STATE_DIR": str(tmp / "state"), "VF_RECONCILE_INTERVAL": "1", "VF_ALLOW_FILE_SOURCES": "true",
        "VF_MEDIA_DIR": str(samples), "VF_WORKER_STOP_TIMEOUT": "3", "VF_RUNTIME": "process",
        "VF_WORKER_BIN": str(bin_dir / "vectorflow-worker")}).start()
    worker = bin_dir / "vectorflow-worker"
    sid = None
    try:
        sid = api.create("Walkway", f"file://{samples}/vtest.avi", True)

        def worker_env():
            pids = proc_workers(worker, [sid])
            pid = pids.get(sid)
            if not isinstance(pid, int):
                return None
            env = dict(x.split("=", 1) for x in Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0") if "=" in x)
            return pid, env
        first_pid, env = wait_until(worker_env, 30, interval=0.2, what="the stream's worker")
        assert "ZONES" not in env

        r = requests.post(f"{api.base}/streams/{sid}/zones", json={
            "name": "Walkway", "polygon": WALKWAY, "min_vectors": 5, "min_duration_s": 0.5}, timeout=10)
        assert r.status_code == 201, r.text
        zid = r.json()["id"]

        def restarted_with(check, old_pid):
            def ok():
                got = worker_env()
                if not got or got[0] == old_pid or "ZONES" not in got[1]:
                    return None
                zones = json.loads(got[1]["ZONES"])
                return got if check(zones) else None
            return ok
        second_pid, env = wait_until(restarted_with(lambda zs: [z["id"] for z in zs] == [zid], first_pid), 30,
                                     interval=0.2, what="the worker restarted with the zone")
        (z,) = json.loads(env["ZONES"])
        assert z["name"] == "Walkway" and z["min_vectors"] == 5 and z["polygon"] == WALKWAY, z

        r = requests.put(f"{api.base}/streams/{sid}/zones/{zid}", json={"min_vectors": 9, "direction_deg": 180},
                         timeout=10)
        assert r.status_code == 200, r.text
        third_pid, env = wait_until(
            restarted_with(lambda zs: zs[0]["min_vectors"] == 9 and zs[0]["direction_deg"] == 180, second_pid), 30,
            interval=0.2, what="the worker restarted with the changed zone")
        (z,) = json.loads(env["ZONES"])
        assert z["direction_tolerance_deg"] == 45, z  # ZoneRule.toleranceDefault, filled in by the API

        # The worker runs with it: its metrics carry the zone.
        records = {r.stem: json.loads(r.read_text()) for r in (tmp / "state").glob("*.json")}
        metrics_port = next(rec["metricsPort"] for rec in records.values() if rec["spec"]["streamID"] == sid)

        def zone_series():
            text = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2).text
            return [labels for labels, _ in series_of(text, "vector_flow_zone_active")]
        labels = wait_until(zone_series, 20, interval=0.2, what="the zone's series on the worker")
        assert labels == [{"stream_id": sid, "stream_name": "Walkway", "zone_id": zid, "zone": "Walkway"}], labels
    finally:
        if sid:
            requests.delete(f"{api.base}/streams/{sid}", timeout=30)
            wait_until(lambda: sid not in proc_workers(worker, [sid]), 20, what="the worker to stop")
        api.stop()


def test_entries_wait_for_redis_in_order(spawn, worker_bin, samples):  # noqa: F811
    """Redis down for a while: the analysis goes on (events keep starting, counted on /metrics) and
    their entries wait in the worker's queue; once Redis is back they are all appended, each event's
    entries complete and in order (seq 1, 2, ...). The Redis of this test is its own (it restarts
    it empty, so only what the worker kept can be there afterwards)."""
    from conftest import Redis
    redis = Redis()
    try:
        # The strip: people walk through it every few seconds (the whole frame would make one long event).
        z = zone("strip", STRIP, min_vectors=4, min_duration_s=0.3, quiet_time_s=0.5)
        w = start_worker(spawn, worker_bin, redis, "motion-outage", samples / "vtest.avi", ZONES=json.dumps([z]))

        def counter(name):
            text = requests.get(f"http://127.0.0.1:{w.metrics_port}/metrics", timeout=2).text
            return sum(v for _, v in series_of(text, name))
        wait_until(lambda: counter("vector_flow_event_entries_total") >= 1, 30, interval=0.2,
                   what="a first entry appended")
        redis.stop()
        started_before = counter("vector_flow_events_total")
        wait_until(lambda: counter("vector_flow_events_total") >= started_before + 2, 60, interval=0.2,
                   what="two events to start while Redis is down")
        appended_during = counter("vector_flow_event_entries_total")
        assert counter("vector_flow_event_entries_dropped_total") == 0
        redis.start()
        started = counter("vector_flow_events_total")

        def complete():
            entries = events_of(redis, "motion-outage")
            return entries if sum(e["phase"] == "start" for e in entries) >= started - started_before else None
        entries = wait_until(complete, 30, interval=0.2, what="the queued entries to reach Redis")
        assert counter("vector_flow_event_entries_total") > appended_during
        per_event = {}
        for e in entries:
            per_event.setdefault(e["event_id"], []).append(e)
        whole = [es for es in per_event.values() if es[0]["phase"] == "start"]
        assert len(whole) >= 2, per_event.keys()
        for es in whole:
            assert [e["seq"] for e in es] == list(range(1, len(es) + 1)), [(e["phase"], e["seq"]) for e in es]
    finally:
        redis.close()
