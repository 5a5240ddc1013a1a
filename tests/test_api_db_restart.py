"""The database goes away and comes back while vectorflow-api runs: 503s in FastAPI's shape while it is
down, the API itself stays up, and everything recovers with nothing lost. Uses a private PostgreSQL so
that stopping it disturbs no other test."""
import time

import pytest
import requests

from conftest import wait_until
from test_api_crud import ApiPostgres as Postgres, start_api


@pytest.fixture(scope="module")
def own_postgres():
    pg = Postgres()
    yield pg
    pg.close()


def test_database_restart(request, bin_dir, own_postgres, redis_server):
    pg = own_postgres
    p, base = start_api(request, bin_dir, "api-db-restart", {"DATABASE_URL": pg.url, "REDIS_URL": redis_server.url})
    created = []
    for i in range(5):
        r = requests.post(base + "/streams", json={"name": f"s{i}", "rtsp_url": f"rtsp://cam{i}/live"}, timeout=5)
        assert r.status_code == 201
        created.append(r.json())
    assert requests.get(base + "/health", timeout=5).status_code == 200

    pg.stop()
    t0 = time.monotonic()
    r = requests.get(base + "/health", timeout=10)
    assert r.status_code == 503, r.text
    assert r.json()["database"] == "down" and r.json()["status"] == "unavailable"
    for method, path, body in [("GET", "/streams", None), ("POST", "/streams", {"name": "x", "rtsp_url": "rtsp://h"}),
                               ("GET", f"/streams/{created[0]['id']}", None)]:
        r = requests.request(method, base + path, json=body, timeout=10)
        assert r.status_code == 503, (method, path, r.text)
        assert r.json() == {"detail": "Database unavailable"}
    # Bad input is still answered without the database.
    assert requests.post(base + "/streams", json={"name": ""}, timeout=5).status_code == 422
    assert time.monotonic() - t0 < 15, "requests must fail fast while the database is down"
    assert p.alive()
    assert requests.get(base + "/docs", timeout=5).status_code == 200

    pg.start()
    wait_until(lambda: requests.get(base + "/health", timeout=5).status_code == 200, 20, what="health to recover")
    # Every pool connection recovers at once: no request fails after the first success.
    statuses = [requests.get(base + "/streams", timeout=5).status_code for _ in range(20)]
    assert statuses == [200] * 20, statuses
    listed = requests.get(base + "/streams", timeout=5).json()
    assert listed == created
    r = requests.post(base + "/streams", json={"name": "after", "rtsp_url": "rtsp://h/after"}, timeout=5)
    assert r.status_code == 201
    assert len(requests.get(base + "/streams", timeout=5).json()) == 6
    assert p.stop() == 0


def test_starts_with_database_down_and_creates_schema(request, bin_dir, redis_server):
    """A fresh, empty database that appears after the API started: the API applies init.sql itself."""
    pg = Postgres()
    try:
        pg.stop()
        p, base = start_api(request, bin_dir, "api-db-late", {"DATABASE_URL": pg.url, "REDIS_URL": redis_server.url})
        assert requests.get(base + "/health", timeout=10).status_code == 503
        pg.start()
        wait_until(lambda: requests.get(base + "/health", timeout=5).status_code == 200, 20, what="health")
        assert requests.get(base + "/streams", timeout=5).json() == []
        cols = pg.psql("SELECT column_name || ':' || data_type FROM information_schema.columns "
                       "WHERE table_name = 'camera_streams' ORDER BY ordinal_position", db="vectorflow").split()
        assert cols == ["id:uuid", "name:character", "varying", "rtsp_url:text", "grid_size:integer",
                        "threshold:double", "precision", "is_active:boolean", "worker_container_name:character",
                        "varying", "worker_started_at:timestamp", "with", "time", "zone", "created_at:timestamp",
                        "with", "time", "zone"]
        assert p.stop() == 0
    finally:
        pg.close()
