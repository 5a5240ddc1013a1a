"""vectorflow-api against a real PostgreSQL: CRUD, validation of bad input, health, metrics, auth, CORS,
static files, configuration errors and clean stops. Every API instance runs on its own database."""
import json
import re
import signal
import subprocess
import tempfile
import time
import uuid

import pytest
import requests

from conftest import OUT, Postgres, Proc, wait_until


class ApiPostgres(Postgres):
    """conftest's Postgres, with CREATE DATABASE run outside a transaction: `psql -c` runs a
    multi-statement string as one transaction, which CREATE DATABASE refuses."""

    def psql(self, sql, db="postgres"):
        if "CREATE DATABASE" not in sql:
            return super().psql(sql, db)
        args = []
        for stmt in (x.strip() for x in sql.split(";")):
            if stmt:
                args += ["-c", stmt]
        return subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", db,
                               "-v", "ON_ERROR_STOP=1", "-At", *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def postgres():  # overrides conftest's session fixture for this module
    """A private PostgreSQL for this module's API instances (stopped at the end)."""
    pg = ApiPostgres()
    yield pg
    pg.close()

_counter = [0]


def make_database(postgres) -> str:
    """A fresh database owned by vectorflow; returns its URL."""
    _counter[0] += 1
    name = f"api_{int(time.time() * 1000) % 10**9}_{_counter[0]}"
    postgres.psql(f"CREATE DATABASE {name} OWNER vectorflow")
    return f"postgresql://vectorflow:vectorflow@127.0.0.1:{postgres.port}/{name}", name


def own_state_dir() -> str:
    """A worker state folder of its own: a live API locks its folder, and these tests run several."""
    return tempfile.mkdtemp(prefix="vf-api-state-")


def start_api(request, bin_dir, name, env):
    """Starts vectorflow-api on a free port; returns (proc, base_url)."""
    # VF_STOP_WORKERS_ON_EXIT: the workers of streams a test (or schemathesis) activated end with
    # its API, instead of outliving the run (the default keeps them for the next API to adopt).
    full = {"VF_HOST": "127.0.0.1", "VF_PORT": "0", "VF_STATIC_DIR": str(OUT / "no-static"),
            "VF_STATE_DIR": own_state_dir(), "VF_STOP_WORKERS_ON_EXIT": "true"}
    full.update(env)
    p = Proc(name, [str(bin_dir / "vectorflow-api")], env=full)
    request.addfinalizer(p.stop)
    m = wait_until(lambda: re.search(r"vectorflow-api listening on http://([\d.]+):(\d+)", p.output()) or
                   (not p.alive() and pytest.fail(f"api exited: {p.output()}")), 20, what="api to listen")
    return p, f"http://127.0.0.1:{m.group(2)}"


def rows(postgres, db):
    return postgres.psql("SELECT id, name, rtsp_url, grid_size, threshold, is_active, worker_container_name, "
                         "worker_started_at, created_at FROM camera_streams ORDER BY id", db=db)


@pytest.fixture(scope="module")
def api(request, bin_dir, postgres, redis_server):
    url, db = make_database(postgres)
    p, base = start_api(request, bin_dir, "api-crud", {"DATABASE_URL": url, "REDIS_URL": redis_server.url})
    yield base, db
    assert p.stop() == 0, p.output()


GOOD = {"name": "Dock camera", "rtsp_url": "rtsp://cam.local:8554/live", "grid_size": 24, "threshold": 2.5,
        "is_active": False}


def test_crud_roundtrip(api, postgres):
    base, db = api
    r = requests.post(base + "/streams", json=GOOD, timeout=5)
    assert r.status_code == 201, r.text
    s = r.json()
    assert set(s) == {"id", "name", "rtsp_url", "grid_size", "threshold", "is_active", "worker_container_name",
                      "worker_started_at", "created_at", "status"}
    assert uuid.UUID(s["id"])
    assert {k: s[k] for k in GOOD} == GOOD
    assert s["worker_container_name"] is None and s["worker_started_at"] is None and s["status"] is None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", s["created_at"])
    sid = s["id"]

    # Defaults, and the row really is in PostgreSQL.
    d = requests.post(base + "/streams", json={"name": "d", "rtsp_url": "http://h/v.mp4"}, timeout=5).json()
    assert (d["grid_size"], d["threshold"], d["is_active"]) == (16, 1.2, False)
    assert postgres.psql(f"SELECT name, grid_size, threshold FROM camera_streams WHERE id = '{sid}'", db=db).strip() \
        == "Dock camera|24|2.5"

    listed = requests.get(base + "/streams", timeout=5).json()
    assert [x["id"] for x in listed][-2:] == [sid, d["id"]]
    assert requests.get(f"{base}/streams/{sid}", timeout=5).json() == s
    assert requests.get(f"{base}/streams/{sid.upper()}", timeout=5).json() == s

    r = requests.put(f"{base}/streams/{sid}", json={"threshold": 0.5}, timeout=5)
    assert r.status_code == 200
    assert r.json() == {**s, "threshold": 0.5}
    r = requests.put(f"{base}/streams/{sid}", json={}, timeout=5)
    assert r.status_code == 200 and r.json()["threshold"] == 0.5

    r = requests.post(f"{base}/streams/{sid}/activate", timeout=5)
    assert r.status_code == 200 and r.json()["is_active"] is True
    assert postgres.psql(f"SELECT is_active FROM camera_streams WHERE id = '{sid}'", db=db).strip() == "t"
    r = requests.post(f"{base}/streams/{sid}/deactivate", timeout=5)
    assert r.status_code == 200 and r.json()["is_active"] is False

    r = requests.delete(f"{base}/streams/{sid}", timeout=5)
    assert r.status_code == 204 and r.content == b""
    for method, path in [("GET", ""), ("PUT", ""), ("DELETE", ""), ("POST", "/activate"), ("POST", "/deactivate")]:
        r = requests.request(method, f"{base}/streams/{sid}{path}", json={} if method == "PUT" else None, timeout=5)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json() == {"detail": "Stream not found"}
    assert postgres.psql(f"SELECT count(*) FROM camera_streams WHERE id = '{sid}'", db=db).strip() == "0"


def _create_body(**over):
    b = dict(GOOD)
    b.update(over)
    return json.dumps(b).encode()


_long = "x" * 201
BAD_BODIES = [
    # (description, body bytes, content type, expected status, expected first error type)
    ("missing name", json.dumps({"rtsp_url": "rtsp://h"}).encode(), "application/json", 422, "missing"),
    ("missing url", json.dumps({"name": "a"}).encode(), "application/json", 422, "missing"),
    ("null name", _create_body(name=None), "application/json", 422, "string_type"),
    ("null url", _create_body(rtsp_url=None), "application/json", 422, "string_type"),
    ("null grid", _create_body(grid_size=None), "application/json", 422, "int_type"),
    ("null threshold", _create_body(threshold=None), "application/json", 422, "float_type"),
    ("null active", _create_body(is_active=None), "application/json", 422, "bool_type"),
    ("name int", _create_body(name=5), "application/json", 422, "string_type"),
    ("name empty", _create_body(name=""), "application/json", 422, "string_too_short"),
    ("name too long", _create_body(name=_long), "application/json", 422, "string_too_long"),
    ("name NUL", _create_body(name="a\u0000b"), "application/json", 422, "string_pattern_mismatch"),
    ("url list", _create_body(rtsp_url=["rtsp://h"]), "application/json", 422, "string_type"),
    ("url ftp", _create_body(rtsp_url="ftp://h/x"), "application/json", 422, "value_error"),
    ("url file", _create_body(rtsp_url="file:///etc/passwd"), "application/json", 422, "value_error"),
    ("url no host", _create_body(rtsp_url="rtsp:///x"), "application/json", 422, "value_error"),
    ("url space", _create_body(rtsp_url="rtsp://h/a b"), "application/json", 422, "value_error"),
    ("url too long", _create_body(rtsp_url="rtsp://h/" + "a" * 2040), "application/json", 422, "string_too_long"),
    ("url huge", _create_body(rtsp_url="rtsp://h/" + "a" * 900_000), "application/json", 422, "string_too_long"),
    ("grid str", _create_body(grid_size="16"), "application/json", 422, "int_type"),
    ("grid bool", _create_body(grid_size=True), "application/json", 422, "int_type"),
    ("grid float", _create_body(grid_size=16.5), "application/json", 422, "int_from_float"),
    ("grid low", _create_body(grid_size=3), "application/json", 422, "greater_than_equal"),
    ("grid high", _create_body(grid_size=257), "application/json", 422, "less_than_equal"),
    ("grid huge", _create_body(grid_size=10**30), "application/json", 422, "less_than_equal"),
    ("threshold str", _create_body(threshold="1.2"), "application/json", 422, "float_type"),
    ("threshold neg", _create_body(threshold=-0.1), "application/json", 422, "greater_than_equal"),
    ("threshold high", _create_body(threshold=1000.5), "application/json", 422, "less_than_equal"),
    ("threshold inf", b'{"name":"a","rtsp_url":"rtsp://h","threshold":1e999}', "application/json", 422, "finite_number"),
    ("threshold NaN", b'{"name":"a","rtsp_url":"rtsp://h","threshold":NaN}', "application/json", 422, "json_invalid"),
    ("active str", _create_body(is_active="true"), "application/json", 422, "bool_type"),
    ("active int", _create_body(is_active=1), "application/json", 422, "bool_type"),
    ("unknown field", _create_body(owner="x"), "application/json", 422, "extra_forbidden"),
    ("id field", _create_body(id=str(uuid.uuid4())), "application/json", 422, "extra_forbidden"),
    ("array body", b"[1,2]", "application/json", 422, "model_attributes_type"),
    ("string body", b'"x"', "application/json", 422, "model_attributes_type"),
    ("empty body", b"", "application/json", 422, "missing"),
    ("malformed", b'{"name": "a",', "application/json", 422, "json_invalid"),
    ("trailing", b'{"name":"a","rtsp_url":"rtsp://h"} x', "application/json", 422, "json_invalid"),
    ("non-utf8", b'{"name":"\xff\xfe","rtsp_url":"rtsp://h"}', "application/json", 422, "json_invalid"),
    ("lone surrogate", b'{"name":"\\ud800","rtsp_url":"rtsp://h"}', "application/json", 422, "json_invalid"),
    ("deep nesting", b'{"name":' + b"[" * 5000 + b"]" * 5000 + b"}", "application/json", 422, "json_invalid"),
    ("text/plain", _create_body(), "text/plain", 415, None),
    ("form", b"name=a&rtsp_url=rtsp://h", "application/x-www-form-urlencoded", 415, None),
    ("over 1 MiB", b'{"name":"' + b"a" * (1024 * 1024 + 10) + b'"}', "application/json", 413, None),
]


@pytest.mark.parametrize("desc,body,ctype,status,etype", BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_bad_create_bodies(api, postgres, desc, body, ctype, status, etype):
    base, db = api
    before = rows(postgres, db)
    r = requests.post(base + "/streams", data=body, headers={"Content-Type": ctype}, timeout=10)
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    if status == 422:
        assert isinstance(detail, list) and detail, detail
        assert detail[0]["type"] == etype, detail
        assert all({"loc", "msg", "type"} <= set(e) for e in detail)
        assert detail[0]["loc"][0] == "body"
    else:
        assert isinstance(detail, str)
    assert rows(postgres, db) == before


SQL_TEXT = ["'; DROP TABLE camera_streams; --", "a' OR '1'='1", "\\x00\\' \"quoted\" $1 $$ ;", "Robert'); DELETE FROM x;--"]


@pytest.mark.parametrize("text", SQL_TEXT)
def test_sql_metacharacters_are_data(api, postgres, text):
    base, db = api
    r = requests.post(base + "/streams", json={"name": text, "rtsp_url": "rtsp://h/" + text.replace(" ", "%20")
                                                                                              .replace('"', "%22")}, timeout=5)
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    assert requests.get(f"{base}/streams/{sid}", timeout=5).json()["name"] == text
    assert postgres.psql("SELECT count(*) FROM pg_tables WHERE tablename = 'camera_streams'", db=db).strip() == "1"
    assert requests.delete(f"{base}/streams/{sid}", timeout=5).status_code == 204


def test_bad_updates_and_ids(api, postgres):
    base, db = api
    sid = requests.post(base + "/streams", json=GOOD, timeout=5).json()["id"]
    before = rows(postgres, db)
    cases = [
        ({"name": None}, 422), ({"grid_size": 2}, 422), ({"threshold": "x"}, 422), ({"is_active": "no"}, 422),
        ({"extra": 1}, 422), ({"rtsp_url": "mailto:x@y"}, 422), ([], 422),
    ]
    for body, status in cases:
        r = requests.put(f"{base}/streams/{sid}", json=body, timeout=5)
        assert r.status_code == status, (body, r.text)
        assert isinstance(r.json()["detail"], list)
    r = requests.put(f"{base}/streams/{sid}", data="{}", headers={"Content-Type": "text/csv"}, timeout=5)
    assert r.status_code == 415
    for bad in ["not-a-uuid", "1", "' OR 1=1 --", "6f9619ff-8b86-d011-b42d-00cf4fc964fz"]:
        for method, path in [("GET", ""), ("PUT", ""), ("DELETE", ""), ("POST", "/activate"), ("POST", "/deactivate")]:
            r = requests.request(method, f"{base}/streams/{requests.utils.quote(bad)}{path}",
                                 json={} if method == "PUT" else None, timeout=5)
            assert r.status_code == 422, (method, bad, r.text)
            assert r.json()["detail"][0]["type"] == "uuid_parsing"
            assert r.json()["detail"][0]["loc"] == ["path", "id"]
    assert rows(postgres, db) == before
    # Unknown routes and methods in FastAPI's shape.
    r = requests.get(base + "/nope", timeout=5)
    assert r.status_code == 404 and r.json() == {"detail": "Not Found"}
    r = requests.patch(base + "/streams", json={}, timeout=5)
    assert r.status_code == 405 and "detail" in r.json()


def test_health_and_metrics(api):
    base, _ = api
    r = requests.get(base + "/health", timeout=5)
    assert r.status_code == 200
    # One API on its own database holds the reconciler's advisory lock: it is the leader.
    assert r.json() == {"status": "ok", "database": "ok", "redis": "ok", "role": "leader"}
    requests.post(base + "/streams", json={**GOOD, "is_active": True}, timeout=5)
    streams = requests.get(base + "/streams", timeout=5).json()
    text = requests.get(base + "/metrics", timeout=5).text
    managed = float(re.search(r"^vector_flow_managed_streams_total (\S+)$", text, re.M).group(1))
    active = float(re.search(r"^vector_flow_active_streams_total (\S+)$", text, re.M).group(1))
    assert managed == len(streams)
    assert active == sum(1 for s in streams if s["is_active"])
    assert re.search(r'^vector_flow_http_requests_total\{method="GET",route="/streams",status="200"\} \d+', text, re.M)
    assert re.search(r'^vector_flow_http_request_duration_seconds_bucket\{method="POST",route="/streams",status="201",le="0.005"\}',
                     text, re.M), text
    assert "# TYPE vector_flow_managed_streams_total gauge" in text


def test_openapi_and_docs(api):
    from openapi_spec_validator import validate
    base, _ = api
    spec = requests.get(base + "/openapi.json", timeout=5).json()
    validate(spec)
    assert spec["openapi"].startswith("3.1")
    assert set(spec["paths"]) >= {"/health", "/streams", "/streams/{id}", "/streams/{id}/activate",
                                  "/streams/{id}/deactivate", "/metrics"}
    r = requests.get(base + "/docs", timeout=5)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    # Swagger UI (installed by the set-up) or the built-in page: either way nothing from elsewhere.
    assert "<script" in r.text and "//" not in "".join(
        re.findall(r'(?:src|href)="([^"]*)"', r.text))


def test_head_and_keepalive(api):
    base, _ = api
    with requests.Session() as s:
        for _ in range(20):
            assert s.get(base + "/streams", timeout=5).status_code == 200
        r = s.head(base + "/streams", timeout=5)
        assert r.status_code == 200 and r.content == b""


@pytest.fixture
def static_api(request, bin_dir, postgres, redis_server, tmp_path):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text("<h1>dash</h1>")
    (tmp_path / "site" / "app.js").write_text("console.log(1)")
    (tmp_path / "site" / "sub").mkdir()
    (tmp_path / "site" / "sub" / "style.css").write_text("body{}")
    (tmp_path / "secret.txt").write_text("secret")
    (tmp_path / "site" / "link").symlink_to(tmp_path / "secret.txt")
    url, db = make_database(postgres)
    p, base = start_api(request, bin_dir, "api-static", {"DATABASE_URL": url, "REDIS_URL": redis_server.url,
                                                "VF_STATIC_DIR": str(tmp_path / "site"), "VF_API_TOKEN": "s3cret",
                                                "VF_CORS_ORIGINS": "http://dash.example"})
    yield base
    assert p.stop() == 0


def test_static_files(static_api):
    base = static_api
    r = requests.get(base + "/", timeout=5)
    assert r.status_code == 200 and r.text == "<h1>dash</h1>" and r.headers["Content-Type"].startswith("text/html")
    assert requests.get(base + "/app.js", timeout=5).headers["Content-Type"].startswith("text/javascript")
    assert requests.get(base + "/sub/style.css", timeout=5).headers["Content-Type"].startswith("text/css")
    for bad in ["/../secret.txt", "/%2e%2e/secret.txt", "/sub/..%2f..%2fsecret.txt", "/link", "/.hidden", "/nope.js"]:
        r = requests.get(base + bad, timeout=5)
        assert r.status_code == 404, bad
        assert "secret" not in r.text
    # Raw request so no client normalises the dots away.
    import socket
    port = int(base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET /../secret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert b"secret" not in data.split(b"\r\n\r\n", 1)[1]


def test_auth_and_cors(static_api):
    base = static_api
    body = {"name": "a", "rtsp_url": "rtsp://h"}
    r = requests.post(base + "/streams", json=body, timeout=5)
    assert r.status_code == 401 and r.json() == {"detail": "Not authenticated"}
    r = requests.post(base + "/streams", json=body, headers={"Authorization": "Bearer wrong"}, timeout=5)
    assert r.status_code == 401
    r = requests.post(base + "/streams", json=body, headers={"Authorization": "Bearer s3cret"}, timeout=5)
    assert r.status_code == 201
    sid = r.json()["id"]
    assert requests.delete(f"{base}/streams/{sid}", timeout=5).status_code == 401
    # Reads are as private as changes: the camera list and the metrics need the token too.
    assert requests.get(f"{base}/streams/{sid}", timeout=5).status_code == 401
    assert requests.get(f"{base}/streams", timeout=5).status_code == 401
    assert requests.get(f"{base}/metrics", timeout=5).status_code == 401
    assert requests.get(f"{base}/streams/{sid}", headers={"Authorization": "Bearer s3cret"}, timeout=5).status_code == 200
    assert requests.get(f"{base}/health", timeout=5).status_code == 200
    spec = requests.get(base + "/openapi.json", timeout=5).json()
    assert "401" in spec["paths"]["/streams"]["post"]["responses"]
    assert "security" in spec["paths"]["/streams"]["post"] and "security" in spec["paths"]["/streams"]["get"]
    assert "security" not in spec["paths"]["/health"]["get"]
    # CORS: the configured origin only; preflight needs no token.
    auth = {"Authorization": "Bearer s3cret"}
    r = requests.get(base + "/streams", headers={"Origin": "http://dash.example", **auth}, timeout=5)
    assert r.headers["Access-Control-Allow-Origin"] == "http://dash.example"
    r = requests.get(base + "/streams", headers={"Origin": "http://evil.example", **auth}, timeout=5)
    assert "Access-Control-Allow-Origin" not in r.headers
    r = requests.options(base + "/streams", headers={"Origin": "http://dash.example", "Access-Control-Request-Method": "POST",
                                                     "Access-Control-Request-Headers": "authorization, content-type"}, timeout=5)
    assert r.status_code == 204
    assert "POST" in r.headers["Access-Control-Allow-Methods"]
    assert "authorization" in r.headers["Access-Control-Allow-Headers"].lower()
    r = requests.post(base + "/streams", json={}, headers={"Origin": "http://dash.example"}, timeout=5)
    assert r.status_code == 401 and r.headers["Access-Control-Allow-Origin"] == "http://dash.example"


@pytest.mark.parametrize("env,flag", [({"VF_PORT": "99999"}, None), ({"VF_PORT": "abc"}, None),
                                      ({"VF_ALLOW_FILE_SOURCES": "maybe"}, None), ({"DATABASE_URL": "mysql://x"}, None),
                                      ({"REDIS_URL": "http://x"}, None), ({}, ["--vf-port", "-5"])])
def test_bad_configuration_exits_2(bin_dir, env, flag):
    full = {"VF_HOST": "127.0.0.1", "VF_PORT": "0", "VF_STATE_DIR": own_state_dir(), **env}
    import os
    r = subprocess.run([str(bin_dir / "vectorflow-api")] + (flag or []), env={**os.environ, **full},
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 2, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vectorflow-api: "), r.stderr


def test_sigint_stops_cleanly(request, bin_dir, postgres, redis_server):
    url, _ = make_database(postgres)
    p, base = start_api(request, bin_dir, "api-sigint", {"DATABASE_URL": url, "REDIS_URL": redis_server.url})
    assert requests.get(base + "/health", timeout=5).status_code == 200
    assert p.stop(signal.SIGINT) == 0


def test_schema_applied_at_start(request, bin_dir, postgres, redis_server):
    """A fresh database gets init.sql when the API starts, before any request."""
    url, db = make_database(postgres)
    p, _ = start_api(request, bin_dir, "api-schema-at-start", {"DATABASE_URL": url, "REDIS_URL": redis_server.url})
    wait_until(lambda: postgres.psql("SELECT count(*) FROM pg_tables WHERE tablename = 'camera_streams'",
                                     db=db).strip() == "1", 10, what="camera_streams to exist")
    init_sql = (OUT.parent / "init.sql").read_text()
    postgres.psql(init_sql, db=db)  # idempotent: applying it again changes nothing and does not fail
    assert p.stop() == 0


def test_port_in_use_exits_2(bin_dir):
    import os
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        r = subprocess.run([str(bin_dir / "vectorflow-api")], capture_output=True, text=True, timeout=10,
                           env={**os.environ, "VF_HOST": "127.0.0.1", "VF_PORT": str(port),
                                "VF_STATE_DIR": own_state_dir()})
    assert r.returncode == 2, r
    assert len(r.stderr.strip().splitlines()) == 1 and "cannot listen" in r.stderr
