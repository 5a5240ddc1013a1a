"""Zones through the real API over sockets on a real PostgreSQL: round trip, the bad inputs of
issue 19 (each a clear 4xx with nothing stored, checked in the table), the per-stream limit, and
zones deleted with their stream."""
import os
import tempfile
import uuid

import pytest
import requests

from test_api_crud import make_database, postgres, start_api  # noqa: F401 (postgres: fixture)

SQUARE = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]
MAX_ZONES = 64  # ZoneRules.maxZonesPerStream


@pytest.fixture(scope="module")
def api(request, bin_dir, postgres, redis_server):
    url, db = make_database(postgres)
    env = {"DATABASE_URL": url, "REDIS_URL": redis_server.url,
           "VF_FILE_SD_PATH": os.path.join(tempfile.mkdtemp(prefix="vf-zones-"), "workers.json")}
    p, base = start_api(request, bin_dir, "api-zones", env)
    yield base, db
    assert p.stop() == 0, p.output()


def _stream(base):
    r = requests.post(base + "/streams", json={"name": "Walkway cam", "rtsp_url": "rtsp://cam/live"}, timeout=5)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _zones(postgres, db, sid):
    return int(postgres.psql(f"SELECT count(*) FROM stream_zones WHERE stream_id = '{sid}'", db=db).strip())


def test_zone_round_trip(api, postgres):
    base, db = api
    sid = _stream(base)
    body = {"name": "Walkway", "polygon": SQUARE, "min_vectors": 8, "min_mean_speed": 1.5, "direction_deg": 270,
            "direction_tolerance_deg": 30, "min_duration_s": 1, "quiet_time_s": 3}
    r = requests.post(f"{base}/streams/{sid}/zones", json=body, timeout=5)
    assert r.status_code == 201, r.text
    z = r.json()
    assert set(z) == {"id", "stream_id", "created_at", *body}
    assert uuid.UUID(z["id"]) and z["stream_id"] == sid
    assert {k: z[k] for k in body} == body
    assert postgres.psql(f"SELECT name, min_vectors, direction_deg FROM stream_zones WHERE id = '{z['id']}'",
                         db=db).strip() == "Walkway|8|270"
    assert requests.get(f"{base}/streams/{sid}/zones/{z['id']}", timeout=5).json() == z
    assert requests.get(f"{base}/streams/{sid}/zones", timeout=5).json() == [z]

    r = requests.put(f"{base}/streams/{sid}/zones/{z['id']}", json={"min_mean_speed": None, "name": "Path"}, timeout=5)
    assert r.status_code == 200, r.text
    assert r.json() == {**z, "min_mean_speed": None, "name": "Path"}

    r = requests.delete(f"{base}/streams/{sid}/zones/{z['id']}", timeout=5)
    assert r.status_code == 204 and r.content == b""
    r = requests.get(f"{base}/streams/{sid}/zones/{z['id']}", timeout=5)
    assert r.status_code == 404 and r.json() == {"detail": "Zone not found"}
    assert _zones(postgres, db, sid) == 0


BAD = [
    ("fewer than 3 points", {"name": "a", "polygon": [[0.1, 0.1], [0.9, 0.9]]}, "too_short"),
    ("x outside 0..1", {"name": "a", "polygon": [[0.1, 0.1], [1.2, 0.1], [0.5, 0.5]]}, "less_than_equal"),
    ("y below 0", {"name": "a", "polygon": [[0.1, -0.1], [0.9, 0.1], [0.5, 0.5]]}, "greater_than_equal"),
    ("bow-tie", {"name": "a", "polygon": [[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.9]]}, "value_error"),
    ("no area", {"name": "a", "polygon": [[0.1, 0.1], [0.5, 0.5], [0.9, 0.9]]}, "value_error"),
    ("tolerance alone", {"name": "a", "polygon": SQUARE, "direction_tolerance_deg": 10}, "value_error"),
    ("unknown key", {"name": "a", "polygon": SQUARE, "colour": "red"}, "extra_forbidden"),
    ("direction over 360", {"name": "a", "polygon": SQUARE, "direction_deg": 361}, "less_than_equal"),
]


@pytest.mark.parametrize("what,body,error", BAD, ids=[b[0] for b in BAD])
def test_bad_zones_are_refused_and_nothing_is_stored(api, postgres, what, body, error):
    base, db = api
    sid = _stream(base)
    r = requests.post(f"{base}/streams/{sid}/zones", json=body, timeout=5)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["type"] == error, r.text
    assert _zones(postgres, db, sid) == 0


def test_unknown_stream_and_bad_ids(api, postgres):
    base, db = api
    before = postgres.psql("SELECT count(*) FROM stream_zones", db=db).strip()
    r = requests.post(f"{base}/streams/{uuid.uuid4()}/zones", json={"name": "a", "polygon": SQUARE}, timeout=5)
    assert r.status_code == 404 and r.json() == {"detail": "Stream not found"}
    assert requests.get(f"{base}/streams/{uuid.uuid4()}/zones", timeout=5).status_code == 404
    r = requests.get(f"{base}/streams/not-a-uuid/zones", timeout=5)
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "uuid_parsing"
    sid = _stream(base)
    r = requests.delete(f"{base}/streams/{sid}/zones/{uuid.uuid4()}", timeout=5)
    assert r.status_code == 404 and r.json() == {"detail": "Zone not found"}
    assert postgres.psql("SELECT count(*) FROM stream_zones", db=db).strip() == before


def test_the_limit_per_stream_and_duplicate_names(api, postgres):
    base, db = api
    sid = _stream(base)
    for k in range(MAX_ZONES):
        r = requests.post(f"{base}/streams/{sid}/zones", json={"name": f"z{k}", "polygon": SQUARE}, timeout=5)
        assert r.status_code == 201, r.text
    r = requests.post(f"{base}/streams/{sid}/zones", json={"name": "one more", "polygon": SQUARE}, timeout=5)
    assert r.status_code == 409 and "at most 64 zones" in r.json()["detail"]
    assert _zones(postgres, db, sid) == MAX_ZONES
    r = requests.delete(f"{base}/streams/{sid}/zones/{requests.get(f'{base}/streams/{sid}/zones', timeout=5).json()[0]['id']}",
                        timeout=5)
    assert r.status_code == 204
    r = requests.post(f"{base}/streams/{sid}/zones", json={"name": "z1", "polygon": SQUARE}, timeout=5)
    assert r.status_code == 409 and "name" in r.json()["detail"]
    assert _zones(postgres, db, sid) == MAX_ZONES - 1


def test_deleting_the_stream_deletes_its_zones(api, postgres):
    base, db = api
    sid = _stream(base)
    for name in ("a", "b"):
        assert requests.post(f"{base}/streams/{sid}/zones", json={"name": name, "polygon": SQUARE},
                             timeout=5).status_code == 201
    assert _zones(postgres, db, sid) == 2
    assert requests.delete(f"{base}/streams/{sid}", timeout=5).status_code == 204
    assert _zones(postgres, db, sid) == 0


def test_a_thousand_concurrent_creates_store_at_most_the_limit(api, postgres):
    """1,000 zones sent to one stream, 32 at a time: every answer is 201 or a clear 409, and the
    table ends with exactly the 201s, never more than the limit (the INSERT's own count runs on its
    snapshot; the count after the commit keeps concurrent creates from overshooting)."""
    from concurrent.futures import ThreadPoolExecutor

    base, db = api
    sid = _stream(base)

    def create(k):
        with requests.Session() as s:
            r = s.post(f"{base}/streams/{sid}/zones", json={"name": f"c{k}", "polygon": SQUARE}, timeout=30)
            return r.status_code, r.json()

    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(create, range(1000)))
    codes = [c for c, _ in answers]
    assert set(codes) <= {201, 409}, sorted(set(codes))
    assert all("at most 64 zones" in body["detail"] for c, body in answers if c == 409)
    created = {body["id"] for c, body in answers if c == 201}
    stored = set(postgres.psql(f"SELECT id FROM stream_zones WHERE stream_id = '{sid}'", db=db).split())
    assert stored == created
    assert 0 < len(stored) <= MAX_ZONES
    listed = requests.get(f"{base}/streams/{sid}/zones", timeout=5).json()
    assert {z["id"] for z in listed} == stored
    # Refusals during the race are never lasting: one at a time, the stream fills to the limit.
    k = 0
    while _zones(postgres, db, sid) < MAX_ZONES:
        r = requests.post(f"{base}/streams/{sid}/zones", json={"name": f"fill{k}", "polygon": SQUARE}, timeout=5)
        assert r.status_code == 201, r.text
        k += 1
    r = requests.post(f"{base}/streams/{sid}/zones", json={"name": "over", "polygon": SQUARE}, timeout=5)
    assert r.status_code == 409
    assert _zones(postgres, db, sid) == MAX_ZONES
