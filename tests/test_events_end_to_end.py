"""Motion events end to end, exactly once, with the real producer: the real API (process runtime)
runs a real worker on vtest.avi (looped, like a camera) with zones on the walkway; the worker
appends its entries to the real Redis, the API's consumer group writes them to the real PostgreSQL.
Meanwhile the API is `kill -9`ed and restarted, then PostgreSQL is stopped for a few seconds and
started again. At the end (the stream deactivated: the worker ends the events going on and flushes
its queue) the events in PostgreSQL are exactly those the worker emitted, by id, each at the last
seq it emitted, none lost, none doubled, and nothing is left pending in the consumer group.

What the worker emitted is read from its own log: one line per appended entry
(`motion event <phase> event_id=<id> seq=<n>`).
"""
import contextlib
import os
import re
import signal
import tempfile
import time
from pathlib import Path

import pytest
import requests

from _motion_events import EVENTS_GROUP, EVENTS_KEY, Resp
from _orchestration_helpers import Api, proc_workers
from conftest import Redis, free_port, wait_until
from test_api_crud import make_database, postgres  # noqa: F401 (postgres: this module's own cluster)

# The walkway of vtest.avi in six strips (tests/test_motion_detection.py's walkway, split), so
# events start and end often: people cross a strip every few seconds.
STRIPS = [[[k / 6, 0.28], [(k + 1) / 6, 0.28], [(k + 1) / 6, 0.75], [k / 6, 0.75]] for k in range(6)]
LOGGED = re.compile(r"motion event (start|update|end) event_id=(\S+) seq=(\d+)")


@pytest.fixture
def redis_own():
    """A Redis of this test's own: the events stream is one key for every API reading it."""
    r = Redis()
    yield r
    r.close()


def emitted(log_dir: Path) -> dict:
    """{event id: last seq} of every entry the worker appended, from the worker's log files."""
    out = {}
    for f in log_dir.glob("*.log"):
        for _, eid, seq in LOGGED.findall(f.read_text(errors="replace")):
            out[eid] = max(out.get(eid, 0), int(seq))
    return out


def stored(postgres, db) -> dict:
    out = {}
    for line in postgres.psql("SELECT id, seq FROM motion_events", db=db).split():
        eid, seq = line.split("|")
        assert eid not in out, f"event {eid} twice"
        out[eid] = int(seq)
    return out


def pending(redis) -> int:
    c = Resp(redis.port)
    try:
        return int(c.command("XPENDING", EVENTS_KEY, EVENTS_GROUP)[0])
    finally:
        c.close()


def waiting(redis) -> int:
    """Entries still in the stream (the API deletes each one once its commit is done)."""
    c = Resp(redis.port)
    try:
        return int(c.command("XLEN", EVENTS_KEY))
    finally:
        c.close()


def test_real_worker_events_exactly_once_across_api_kill_and_database_stop(spawn, bin_dir, postgres, redis_own,
                                                                           samples):
    db_url, db = make_database(postgres)
    tmp = Path(tempfile.mkdtemp(prefix="vf-events-e2e-"))
    worker = bin_dir / "vectorflow-worker"
    api = Api(spawn, bin_dir, "api-events-e2e", free_port(), {
        "DATABASE_URL": db_url, "REDIS_URL": redis_own.url, "VF_FILE_SD_PATH": str(tmp / "workers.json"),
        "VF_STATE_DIR": str(tmp / "state"), "VF_RECONCILE_INTERVAL": "1", "VF_ALLOW_FILE_SOURCES": "true",
        "VF_MEDIA_DIR": str(samples), "VF_WORKER_STOP_TIMEOUT": "5", "VF_RUNTIME": "process",
        "VF_WORKER_BIN": str(worker), "VF_EVENTS_CONSUMER": "e2e-api"}).start()
    logs = tmp / "state" / "logs"
    sid = None
    try:
        sid = api.create("Walkway", f"file://{samples}/vtest.avi", False)
        for k, strip in enumerate(STRIPS):
            r = requests.post(f"{api.base}/streams/{sid}/zones", json={
                "name": f"strip {k}", "polygon": strip, "min_vectors": 4, "min_duration_s": 0.2,
                "quiet_time_s": 0.3}, timeout=10)
            assert r.status_code == 201, r.text
        api.set_active(sid, True)

        def count():
            return int(postgres.psql("SELECT count(*) FROM motion_events", db=db).strip() or 0)
        wait_until(lambda: count() >= 3, 60, interval=0.2, what="the worker's first events in the database")

        # The API killed: the worker goes on appending; the restarted API takes up its pending entries.
        worker_pid = proc_workers(worker, [sid]).get(sid)
        os.kill(api.pid, signal.SIGKILL)
        api.proc.proc.wait(10)
        time.sleep(2)  # the outage: entries pile up in Redis with nobody reading
        api.start()
        before = len(emitted(logs))
        wait_until(lambda: count() >= before, 30, interval=0.2, what="ingest resumed after the kill")
        assert proc_workers(worker, [sid]).get(sid) == worker_pid, "the worker was adopted, not restarted"

        # PostgreSQL stopped: nothing can be committed, so nothing may be acknowledged.
        postgres.stop()
        # Entries the worker appends now stay in the stream, unacknowledged, until it is back.
        wait_until(lambda: waiting(redis_own) > 0, 30, interval=0.2, what="an entry waiting while the database is down")
        time.sleep(1)
        during = len(emitted(logs))
        postgres.start()
        wait_until(lambda: len(emitted(logs)) >= during + 4, 90, interval=0.2,
                   what="new events after the database came back")

        # The end: the worker ends the events going on, flushes its queue and exits.
        api.set_active(sid, False)
        wait_until(lambda: sid not in proc_workers(worker, [sid]), 30, what="the worker to stop")
        want = emitted(logs)
        assert len(want) >= 7, f"too few events to mean anything: {want}"
        print(f"{len(want)} events, {sum(want.values())} entries emitted by the worker")
        wait_until(lambda: stored(postgres, db) == want, 60, interval=0.5,
                   what="every emitted event in the database at its last seq, once")
        wait_until(lambda: pending(redis_own) == 0, 20, what="nothing pending in the consumer group")
        assert postgres.psql("SELECT count(*) FROM motion_events WHERE state <> 'ended'", db=db).strip() == "0"
        # Every event kept the frame at its peak.
        assert postgres.psql("SELECT count(*) FROM motion_events e LEFT JOIN motion_event_snapshots s "
                             "ON s.event_id = e.id WHERE s.event_id IS NULL", db=db).strip() == "0"
    finally:
        # Every step on its own: a failure above (the API gone, say) must not leave a worker behind.
        with contextlib.suppress(Exception):
            if sid and api.proc and api.proc.alive():
                requests.delete(f"{api.base}/streams/{sid}", timeout=30)
        with contextlib.suppress(Exception):
            if api.proc and api.proc.alive():
                api.stop()
        for found in proc_workers(worker, [sid] if sid else []).values():
            for pid in found if isinstance(found, list) else [found]:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
