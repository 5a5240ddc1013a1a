"""The deployment files, checked with the real tools that read them.

- docker-compose.yml: Debian's docker-compose validates it, and its wiring is what the platform needs.
- Dockerfile.api / Dockerfile.worker: every runtime package exists in Debian 12, and it provides each
  shared library the built binaries link.
- prometheus/prometheus.yml: promtool accepts it (with its file_sd target file), and a real Prometheus
  running it scrapes the real API and, through file_sd, a real worker.
- grafana/dashboards/vector-flow.json: its structure, and every panel query returns data for the
  running worker's stream from that Prometheus.
- frontend-static/nginx.conf: nginx accepts it, and a real nginx running it serves the dashboard and
  proxies REST and the WebSocket to the real API.
"""
import base64
import json
import math
import os
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest
import requests
import yaml

from conftest import OUT, ROOT, free_port, wait_until

WORKER_METRICS = ["vector_flow_magnitude_avg", "vector_flow_magnitude_max", "vector_flow_vector_count",
                  "vector_flow_fps", "vector_flow_frames_processed_total", "vector_flow_direction_vectors",
                  "vector_flow_vectors_rejected_total", "vector_flow_frames_dropped_total",
                  "vector_flow_source_reconnects_total", "vector_flow_previews_published_total",
                  "vector_flow_worker_state", "vector_flow_build_info"]
API_METRICS = ["vector_flow_managed_streams_total", "vector_flow_active_streams_total", "vector_flow_http_requests_total",
               "vector_flow_http_request_duration_seconds", "vector_flow_build_info"]
# The zones' motion-event series (issue 19): labelled per zone, so a worker without zones has none.
ZONE_METRICS = ["vector_flow_events_total", "vector_flow_zone_active"]
# The frame-rate unit of every panel that shows frames per second.
FPS_UNIT = "suffix: frames/s"
# The stream picker: each running stream by name, its value the stream id (links carry var-stream_id=<id>).
STREAM_VAR_QUERY = "query_result(max by (stream_id, stream_name) (vector_flow_fps))"


def grafana_regex(regex):
    """A Grafana variable regex (/.../ with JavaScript's named groups) as a Python pattern."""
    assert regex.startswith("/") and regex.endswith("/"), regex
    return re.compile(regex[1:-1].replace("(?<", "(?P<"))


def query_result_text(sample):
    """One result of query_result() as Grafana's variable editor writes it before applying the regex:
    name{label="value",...} value timestamp (labels in Prometheus' order)."""
    metric = dict(sample["metric"])
    name = metric.pop("__name__", "")
    labels = ",".join(f'{k}="{v}"' for k, v in metric.items())
    return f"{name}{{{labels}}} {sample['value'][1]} {int(float(sample['value'][0]) * 1000)}"


def panel_queries(dashboard, stream_id, rate_interval="1m"):
    """Every panel target's expression with the dashboard's variables substituted."""
    return [t["expr"].replace("$stream_id", stream_id).replace("$__rate_interval", rate_interval)
            for p in query_panels(dashboard) for t in p["targets"]]


def exported_names(text):
    """The series names of a Prometheus text exposition, histograms under their family name."""
    names = set()
    for line in text.splitlines():
        m = re.match(r"# TYPE (\S+) (\S+)", line)
        if m:
            names.add(m.group(1))
    return names
API_ENV = ["DATABASE_URL", "REDIS_URL", "VF_RUNTIME", "DOCKER_HOST", "VF_WORKER_IMAGE", "VF_WORKER_NETWORK",
           "VF_FILE_SD_PATH", "VF_STATIC_DIR"]


def fresh_database(postgres, prefix):
    """A new database owned by vectorflow in the session's PostgreSQL: this module's API starts on
    an empty fleet whatever other modules left behind."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    postgres.psql(f"CREATE DATABASE {name} OWNER vectorflow")
    return f"postgresql://vectorflow:vectorflow@127.0.0.1:{postgres.port}/{name}"


def run(argv, cwd_override=None, **kw):
    return subprocess.run(argv, cwd=cwd_override or ROOT, capture_output=True, text=True, timeout=60, **kw)


# ---- docker-compose.yml ---------------------------------------------------------------------------

def test_compose_file_is_valid_and_wired():
    result = run(["docker-compose", "-f", "docker-compose.yml", "config"])
    assert result.returncode == 0, result.stderr
    cfg = yaml.safe_load(result.stdout)
    services = cfg["services"]
    ports = {"frontend": 5173, "api": 8000, "prometheus": 9090, "grafana": 3000, "postgres": 5432, "redis": 6379}
    for name, port in ports.items():
        published = {(int(p["published"]), int(p["target"])) for p in services[name].get("ports", [])}
        assert (port, port) in published, (name, services[name].get("ports"))
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    for name in ports:
        for dep, cond in services[name].get("depends_on", {}).items():
            assert cond["condition"] in ("service_healthy", "service_completed_successfully"), (name, dep)
    assert services["api"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["api"]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["frontend"]["depends_on"]["api"]["condition"] == "service_healthy"
    assert services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"

    # The worker image is built by compose, under the name the API runs.
    worker = services["worker-image"]
    assert worker["image"] == "vectorflow-worker:latest" and worker["build"]["dockerfile"] == "Dockerfile.worker"
    assert services["api"]["build"]["dockerfile"] == "Dockerfile.api"
    assert services["api"]["depends_on"]["worker-image"]["condition"] == "service_completed_successfully"

    def mounts(service):
        """target → {source, type}; docker-compose 1.29 prints the short `source:target:mode` form."""
        out = {}
        for v in services[service].get("volumes", []):
            if isinstance(v, dict):
                out[v["target"]] = v
                continue
            source, target = v.split(":")[:2]
            out[target] = {"source": source, "type": "bind" if source.startswith(("/", ".")) else "volume"}
        return out

    pg = mounts("postgres")
    assert Path(pg["/docker-entrypoint-initdb.d/init.sql"]["source"]) == ROOT / "init.sql"
    assert pg["/var/lib/postgresql/data"]["type"] == "volume"
    api = mounts("api")
    assert api["/var/run/docker.sock"]["source"] == "/var/run/docker.sock"
    # The socket's group is found by the image's entrypoint, which needs root for that step only
    # (tests/test_compose_entrypoint.py runs it): no group id to pass, no group_add defaulting to 0.
    assert services["api"].get("user") == "root" and "group_add" not in services["api"]
    # `down` stops the API, which then stops its workers; compose must give it the time for that.
    grace = services["api"]["stop_grace_period"]
    assert grace.endswith("s") and int(grace[:-1]) >= 20, grace

    env = services["api"]["environment"]
    for key in API_ENV:
        assert env.get(key), f"api lacks {key}"
    assert env["VF_RUNTIME"] == "docker" and env["VF_WORKER_IMAGE"] == "vectorflow-worker:latest"
    assert env["VF_STOP_WORKERS_ON_EXIT"] == "true"
    assert "@postgres:5432/" in env["DATABASE_URL"] and env["REDIS_URL"].startswith("redis://redis:6379")
    # Workers join the compose network by its real name.
    assert cfg["networks"]["vectorflow"]["name"] == env["VF_WORKER_NETWORK"]
    # The API writes the file_sd targets into the volume Prometheus reads them from.
    sd_dir = os.path.dirname(env["VF_FILE_SD_PATH"])
    assert api[sd_dir]["type"] == "volume"
    prom = mounts("prometheus")
    assert prom[sd_dir]["source"] == api[sd_dir]["source"]
    assert Path(prom["/etc/prometheus/prometheus.yml"]["source"]) == ROOT / "prometheus/prometheus.yml"
    # prometheus.yml names alerts.yml relative to itself: both sit side by side in the container.
    assert Path(prom["/etc/prometheus/alerts.yml"]["source"]) == ROOT / "prometheus/alerts.yml"

    graf = services["grafana"]
    assert graf["environment"]["GF_SECURITY_ADMIN_USER"] == "admin"
    assert graf["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == "admin"
    assert graf["environment"]["GF_SECURITY_ALLOW_EMBEDDING"] == "true"
    gm = mounts("grafana")
    assert Path(gm["/etc/grafana/provisioning"]["source"]) == ROOT / "grafana/provisioning"
    front = mounts("frontend")
    assert Path(front["/etc/nginx/conf.d/default.conf"]["source"]) == ROOT / "frontend-static/nginx.conf"


# ---- Dockerfiles ----------------------------------------------------------------------------------

def runtime_packages(dockerfile):
    """The packages the runtime stage (the last FROM) installs with apt-get."""
    text = (ROOT / dockerfile).read_text()
    stages = re.split(r"^FROM ", text, flags=re.M)
    runtime = stages[-1]
    assert runtime.startswith("debian:bookworm-slim"), dockerfile
    assert re.search(r"^FROM \$\{SWIFT_IMAGE\} AS build", text, re.M)
    assert re.search(r"^ARG SWIFT_IMAGE=swift:6\.\d+-bookworm", text, re.M)
    assert re.search(r"^USER (?!root)\S+", runtime, re.M), "runtime stage must not run as root"
    assert "HEALTHCHECK" in runtime
    joined = runtime.replace("\\\n", " ")
    tokens = joined.split("apt-get install", 1)[1].split("&&", 1)[0].split()
    return {t for t in tokens if not t.startswith("-")}


def needed_libraries(binary):
    """The shared libraries a binary links directly, each with the Debian packages that ship it (the
    Swift runtime aside: the images link it statically)."""
    out = run(["readelf", "-d", str(binary)]).stdout
    found = {}
    for lib in re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out):
        if lib.startswith(("libswift", "libFoundation", "lib_FoundationICU", "libdispatch", "libBlocksRuntime")):
            continue
        owner = run(["dpkg", "-S", f"*/{lib}"])
        assert owner.returncode == 0, f"{binary.name} links {lib}, which no Debian package provides"
        found[lib] = {line.split(":")[0] for line in owner.stdout.splitlines() if ":" in line}
    assert found, f"readelf found no libraries in {binary}"
    return found


BASE_IMAGE_PACKAGES = {"libc6", "libgcc-s1", "libstdc++6"}


@pytest.mark.parametrize("dockerfile,product", [("Dockerfile.api", "vectorflow-api"),
                                                ("Dockerfile.worker", "vectorflow-worker")])
def test_dockerfile_runtime_libraries(dockerfile, product, bin_dir):
    text = (ROOT / dockerfile).read_text()
    assert f"--product {product}" in text and "-c release" in text and "--static-swift-stdlib" in text
    for dev in ("libopencv-dev", "libhiredis-dev", "libpq-dev", "libcurl4-openssl-dev", "pkg-config"):
        assert dev in text
    packages = runtime_packages(dockerfile)
    shown = run(["apt-cache", "show", "--no-all-versions", *sorted(packages)])
    assert shown.returncode == 0, shown.stderr
    assert set(re.findall(r"^Package: (\S+)", shown.stdout, re.M)) == packages
    missing = {lib: owners for lib, owners in needed_libraries(bin_dir / product).items()
               if not owners & (packages | BASE_IMAGE_PACKAGES)}
    assert not missing, f"{dockerfile}'s runtime stage lacks the packages of {missing}"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".git" in ignored and any(p.startswith(".build") for p in ignored)


def dockerfile_instructions(dockerfile, stage=-1):
    """(instruction, arguments) of one stage (default: the last), continuation lines joined."""
    text = (ROOT / dockerfile).read_text().replace("\\\n", " ")
    stages = re.split(r"^FROM ", text, flags=re.M)
    out = []
    for line in stages[stage].splitlines()[1:]:
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_api_image_carries_only_the_worker_build_context(tmp_path):
    """The API image holds the worker's build context (it builds vectorflow-worker:latest from it
    when the image is missing), not the repository: the COPY lines into /opt/worker, replayed
    here, give a folder where every target the manifest names has its sources and where
    Dockerfile.worker's own COPY sources exist, and nothing else (no tests/, docs/, bench/, .git)."""
    ctx = tmp_path / "worker-context"
    ctx.mkdir()
    copies = [args.split() for word, args in dockerfile_instructions("Dockerfile.api") if word == "COPY"]
    assert not [c for c in copies if c[0] == "."], "the API image must not COPY the whole repository"
    for c in copies:
        if c[0].startswith("--") or not c[-1].startswith("/opt/worker"):
            continue
        for pattern in c[:-1]:
            for src in ROOT.glob(pattern):
                dest = ctx / Path(c[-1]).relative_to("/opt/worker") / (src.name if c[-1].endswith("/") else "")
                if src.is_dir():
                    shutil.copytree(src, dest)
                else:
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, dest)
    top = {p.name for p in ctx.iterdir()}
    assert {"Dockerfile.worker", "Package.swift", "Sources", "Tests"} <= top, top
    assert not top & {"tests", "docs", "bench", ".git", "Fuzz", "scripts", "grafana", ".build"}, top
    manifest = json.loads(run(["swift", "package", "dump-package"], cwd_override=ctx).stdout)
    for t in manifest["targets"]:
        path = t.get("path") or f"{'Tests' if t['type'] == 'test' else 'Sources'}/{t['name']}"
        assert (ctx / path).is_dir(), f"target {t['name']}: {path} is not in the API image's worker context"
    worker_build = [w for w in dockerfile_instructions("Dockerfile.worker", stage=1) if w[0] == "COPY"]
    for _, args in worker_build:
        sources = [a for a in args.split()[:-1] if not a.startswith("--")]
        for src in sources:
            assert src == "." or "*" in src or (ctx / src).exists(), f"Dockerfile.worker copies {src}"
    # The entrypoint that finds the Docker socket's group is in the image and executable in git.
    entry = [a for w, a in dockerfile_instructions("Dockerfile.api") if w == "ENTRYPOINT"]
    assert entry == ['["/usr/local/bin/api-entrypoint"]'], entry
    assert any(c[:2] == ["docker/api-entrypoint.sh", "/usr/local/bin/api-entrypoint"] for c in copies), copies
    mode = run(["git", "ls-files", "-s", "docker/api-entrypoint.sh"]).stdout.split()
    assert mode and mode[0] == "100755", mode
    # Swagger UI and ReDoc: the image installs the very package and version the set-up installs,
    # and points the API at it.
    install = (ROOT / "scripts/install-deps.sh").read_text()
    pkg, ver = re.search(r"DOCS_PKG=(\S+?); DOCS_VER=(\S+?);", install).groups()
    api_text = (ROOT / "Dockerfile.api").read_text()
    assert f"{pkg}=={ver}" in api_text, (pkg, ver)
    assert "VF_DOCS_ASSETS_DIR=/opt/vectorflow/docs-assets" in api_text
    assert any(w == "COPY" and a.startswith("--from=build") and a.endswith(" /opt/vectorflow/docs-assets")
               for w, a in dockerfile_instructions("Dockerfile.api")), "the docs assets are not copied"


def test_worker_healthcheck_probes_the_workers_own_port(redis_server, bin_dir, samples, spawn):
    """The HEALTHCHECK command of Dockerfile.worker, run by sh with the environment the API gives
    a worker (METRICS_PORT of its own, not 9100), against a real worker: healthy; and it does
    probe that port (the same command with the port of nothing listening fails)."""
    [(_, args)] = [w for w in dockerfile_instructions("Dockerfile.worker") if w[0] == "HEALTHCHECK"]
    command = args.split(" CMD ", 1)[1].strip()
    assert not command.startswith("["), "exec form: METRICS_PORT would not be expanded"
    assert "${METRICS_PORT:-9100}" in command and ":9100/" not in command
    metrics_port = free_port()
    worker = spawn("deploy-healthcheck-worker", [str(bin_dir / "vectorflow-worker")], env={
        "STREAM_ID": str(uuid.uuid4()), "STREAM_NAME": "healthcheck", "SOURCE_URL": f"file://{samples / 'vtest.avi'}",
        "METRICS_HOST": "127.0.0.1", "METRICS_PORT": str(metrics_port), "REDIS_URL": redis_server.url,
        "GRID_SIZE": "16", "THRESHOLD": "1.2"})
    wait_until(lambda: worker.alive() and requests.get(f"http://127.0.0.1:{metrics_port}/health", timeout=1).ok,
               30, what="worker /health")

    def probe(port):
        return subprocess.run(["sh", "-c", command], env={"PATH": os.environ["PATH"], "METRICS_PORT": str(port)},
                              capture_output=True, text=True, timeout=10)
    ok = probe(metrics_port)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert probe(free_port()).returncode != 0


# ---- Prometheus, the worker, the API and the Grafana dashboard -------------------------------------

def test_promtool_accepts_config():
    result = run(["promtool", "check", "config", "prometheus/prometheus.yml"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr
    assert json.loads((ROOT / "prometheus/file_sd/workers.json").read_text()) == []
    cfg = yaml.safe_load((ROOT / "prometheus/prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
    assert jobs["vectorflow-api"]["static_configs"][0]["targets"] == ["api:8000"]
    sd = jobs["vectorflow-workers"]["file_sd_configs"][0]
    assert sd["files"] == ["file_sd/workers.json"] and sd["refresh_interval"] == "5s"
    # The alert rules: loaded by the config (promtool checked them above), valid on their own, and
    # their unit tests pass: each alert fires on its synthetic series and stays silent without.
    assert cfg["rule_files"] == ["alerts.yml"]
    assert "alerts.yml" in result.stdout + result.stderr
    rules = run(["promtool", "check", "rules", "prometheus/alerts.yml"])
    assert rules.returncode == 0 and "SUCCESS" in rules.stdout + rules.stderr, rules.stdout + rules.stderr
    alerts = {r["alert"] for g in yaml.safe_load((ROOT / "prometheus/alerts.yml").read_text())["groups"]
              for r in g["rules"]}
    assert {"VectorFlowWorkerDown", "VectorFlowWorkerFailed", "VectorFlowWorkerReconnecting",
            "VectorFlowSourceReconnects", "VectorFlowNoFrames", "VectorFlowAPIErrors"} <= alerts, alerts
    tested = run(["promtool", "test", "rules", "prometheus/alerts_test.yml"])
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout + tested.stderr, tested.stdout + tested.stderr
    unit = yaml.safe_load((ROOT / "prometheus/alerts_test.yml").read_text())
    fired = {t["alertname"] for test in unit["tests"] for t in test["alert_rule_test"] if t["exp_alerts"]}
    silent = {t["alertname"] for test in unit["tests"] for t in test["alert_rule_test"] if not t["exp_alerts"]}
    assert fired == silent == alerts, (alerts - fired, alerts - silent)


def load_dashboard():
    return json.loads((ROOT / "grafana/dashboards/vector-flow.json").read_text())


def all_panels(dashboard):
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def query_panels(dashboard):
    """The panels that query Prometheus: all but the rows."""
    return [p for p in all_panels(dashboard) if p["type"] != "row"]


def test_grafana_dashboard_and_provisioning():
    d = load_dashboard()
    assert d["uid"] == "vector-flow" and d["title"] == "Vector Flow Overview"
    var = {v["name"]: v for v in d["templating"]["list"]}["stream_id"]
    query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
    assert query == STREAM_VAR_QUERY and var["definition"] == STREAM_VAR_QUERY
    regex = grafana_regex(var["regex"])
    m = regex.search('{stream_id="0b6c",stream_name="Gate camera"} 10 1700000000000')
    assert m and m.group("value") == "0b6c" and m.group("text") == "Gate camera", var["regex"]
    assert var["includeAll"] and var["multi"] and var["datasource"]["uid"] == "prometheus"

    def datasources(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "datasource":
                    yield v
                else:
                    yield from datasources(v)
        elif isinstance(node, list):
            for v in node:
                yield from datasources(v)
    assert all(isinstance(ds, dict) and ds.get("uid") == "prometheus" for ds in datasources(d))
    exprs = []
    for panel in query_panels(d):
        assert panel["datasource"]["uid"] == "prometheus", panel["title"]
        assert panel["targets"], panel["title"]
        exprs += [t["expr"] for t in panel["targets"]]
    for metric in WORKER_METRICS:
        assert any(metric in e and 'stream_id=~"$stream_id"' in e for e in exprs), metric
    assert any('up{job="vectorflow-workers",stream_id=~"$stream_id"}' in e for e in exprs), "worker up"
    # Range windows follow Grafana's $__rate_interval (at least four scrape intervals), never a fixed [1m].
    assert not [e for e in exprs if re.search(r"\[\d+[smh]\]", e)], exprs
    assert any(e.startswith("rate(vector_flow_frames_processed_total{") and e.endswith("[$__rate_interval])")
               for e in exprs)
    for metric in API_METRICS:
        assert any(metric in e for e in exprs), metric
    # Frames per second in one unit wherever a panel shows them.
    for panel in query_panels(d):
        texts = " ".join(t["expr"] for t in panel["targets"])
        if "vector_flow_fps" in texts or "frames_processed_total" in texts or "frames_dropped_total" in texts:
            assert panel["fieldConfig"]["defaults"]["unit"] == FPS_UNIT, panel["title"]
    active = {p["id"]: p for p in all_panels(d)}[2]
    assert "vector_flow_active_streams_total" in active["targets"][0]["expr"]
    assert "is_active" in active["description"] and "running worker" not in active["description"], active
    # The ids of the panels that existed before stay where links and embeds point.
    assert {p["id"]: p["title"].split(" ")[0] for p in all_panels(d) if p["id"] <= 10} == {
        1: "Managed", 2: "Active", 3: "Processing", 4: "Flow", 5: "Flow", 6: "Motion", 7: "Worker", 8: "Frames",
        9: "Motion", 10: "Vectors"}
    ids = [p["id"] for p in all_panels(d)]
    assert len(ids) == len(set(ids))
    # The "Events" row (issue 19), after every panel that was there before it (ids up to 18), with
    # events per minute by zone and each zone's active state below it.
    row = next(p for p in all_panels(d) if p["type"] == "row" and p["title"] == "Events")
    assert row["id"] > 18 and row["gridPos"]["y"] >= max(p["gridPos"]["y"] + p["gridPos"]["h"]
                                                         for p in all_panels(d) if p["id"] <= 18)
    by_metric = {m: [p for p in query_panels(d) if any(m in t["expr"] for t in p["targets"])] for m in ZONE_METRICS}
    for metric, panels in by_metric.items():
        assert len(panels) == 1, (metric, [p["title"] for p in panels])
        panel = panels[0]
        assert panel["id"] > row["id"] and panel["gridPos"]["y"] > row["gridPos"]["y"], panel["title"]
        expr = panel["targets"][0]["expr"]
        assert f'{metric}{{stream_id=~"$stream_id"}}' in expr and re.search(r"by \([^)]*\bzone\b", expr), expr
        assert "{{zone}}" in panel["targets"][0]["legendFormat"], panel["title"]
    events = by_metric["vector_flow_events_total"][0]
    assert "[$__rate_interval]" in events["targets"][0]["expr"] and "per minute" in events["title"]
    assert events["fieldConfig"]["defaults"]["unit"] == "suffix: events/min"
    active_zone = by_metric["vector_flow_zone_active"][0]
    assert active_zone["type"] == "state-timeline"
    mapped = active_zone["fieldConfig"]["defaults"]["mappings"][0]["options"]
    assert mapped["0"]["text"] == "quiet" and mapped["1"]["text"] == "active"

    ds = yaml.safe_load((ROOT / "grafana/provisioning/datasources/prometheus.yml").read_text())["datasources"][0]
    assert ds["uid"] == "prometheus" and ds["url"] == "http://prometheus:9090" and ds["isDefault"] is True
    provider = yaml.safe_load((ROOT / "grafana/provisioning/dashboards/dashboards.yml").read_text())["providers"][0]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


@pytest.fixture
def running_api(postgres, redis_server, bin_dir, spawn):
    state = Path(tempfile.mkdtemp(prefix="vf-deploy-api-"))
    port = free_port()
    proc = spawn("deploy-api", [str(bin_dir / "vectorflow-api")], env={
        "DATABASE_URL": fresh_database(postgres, "deploy"), "REDIS_URL": redis_server.url, "VF_HOST": "127.0.0.1", "VF_PORT": str(port),
        "VF_RUNTIME": "process", "VF_WORKER_BIN": str(bin_dir / "vectorflow-worker"),
        "VF_STATIC_DIR": str(ROOT / "frontend-static"), "VF_FILE_SD_PATH": str(state / "workers.json"),
        "VF_STATE_DIR": str(state)})
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: proc.alive() and requests.get(url + "/health", timeout=1).ok, 30, what="vectorflow-api")
    yield port
    shutil.rmtree(state, ignore_errors=True)


def test_dashboard_queries_return_data(prometheus_factory, running_api, redis_server, bin_dir, samples, spawn):
    stream_id = str(uuid.uuid4())
    metrics_port = free_port()
    worker = spawn("deploy-worker", [str(bin_dir / "vectorflow-worker")], env={
        "STREAM_ID": stream_id, "STREAM_NAME": "deploy check", "SOURCE_URL": f"file://{samples / 'vtest.avi'}",
        "METRICS_HOST": "127.0.0.1", "METRICS_PORT": str(metrics_port), "REDIS_URL": redis_server.url,
        "GRID_SIZE": "16", "THRESHOLD": "1.2"})
    wait_until(lambda: worker.alive() and "vector_flow_fps" in
               requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=1).text, 30, what="worker /metrics")

    # The repository's own prometheus.yml, pointed at this machine's API and target file.
    work = Path(tempfile.mkdtemp(prefix="vf-deploy-sd-"))
    targets = work / "workers.json"
    targets.write_text(json.dumps([{"targets": [f"127.0.0.1:{metrics_port}"],
                                    "labels": {"stream_id": stream_id, "stream_name": "deploy check"}}]))
    cfg = yaml.safe_load((ROOT / "prometheus/prometheus.yml").read_text())
    cfg["global"]["scrape_interval"] = "1s"
    for job in cfg["scrape_configs"]:
        for static in job.get("static_configs", []):
            static["targets"] = [t.replace("api:8000", f"127.0.0.1:{running_api}") for t in static["targets"]]
        for sd in job.get("file_sd_configs", []):
            sd["files"] = [str(targets)]
    cfg["rule_files"] = [str(ROOT / "prometheus" / f) for f in cfg["rule_files"]]
    prom = prometheus_factory(yaml.safe_dump(cfg))

    def all_up():
        jobs = {t["labels"]["job"]: t["health"] for t in prom.targets()}
        return jobs.get("vectorflow-api") == "up" and jobs.get("vectorflow-workers") == "up"
    wait_until(all_up, 20, interval=0.5, what="both targets up")

    dashboard = load_dashboard()
    queries = panel_queries(dashboard, stream_id)
    var_query = dashboard["templating"]["list"][0]
    values = {}

    # The zones' series exist only for a stream with zones (this worker has none): their queries must
    # be valid PromQL (Prometheus answers 400 otherwise), not return data.
    zone_queries = [q for q in queries if any(m in q for m in ZONE_METRICS)]
    assert len(zone_queries) == len(ZONE_METRICS), zone_queries
    for q in zone_queries:
        prom.query(q)
    queries = [q for q in queries if q not in zone_queries]

    def answered():
        for q in queries:
            if q not in values:
                result = prom.query(q)
                # Data, not just series: every value a number (a quantile over an empty window is NaN).
                if result and all(math.isfinite(float(r["value"][1])) for r in result):
                    values[q] = result
        return len(values) == len(queries)
    try:
        wait_until(answered, 30, interval=0.5, what="every panel query to return data")
    finally:
        (OUT / "deploy-dashboard-queries.json").write_text(json.dumps(values, indent=1))
        shutil.rmtree(work, ignore_errors=True)
    for q, result in values.items():
        if "stream_id" in q:
            assert {r["metric"].get("stream_id") for r in result if "stream_id" in r["metric"]} <= {stream_id}, q
    # The stream picker's query and regex give the running stream by name, with its id as the value.
    inner = re.fullmatch(r"query_result\((.*)\)", var_query["query"]["query"]).group(1)
    regex = grafana_regex(var_query["regex"])
    options = [regex.search(query_result_text(r)) for r in prom.query(inner)]
    assert [(m.group("text"), m.group("value")) for m in options if m] == [("deploy check", stream_id)], options
    assert worker.alive()

    # Every series the worker and the API export is on some panel (and up, per worker).
    exported = exported_names(requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text)
    exported |= exported_names(requests.get(f"http://127.0.0.1:{running_api}/metrics", timeout=5).text)
    assert set(WORKER_METRICS) | set(API_METRICS) <= exported, set(WORKER_METRICS) | set(API_METRICS) - exported
    everything = " ".join(queries + zone_queries)
    assert not [n for n in exported if n not in everything], sorted(n for n in exported if n not in everything)
    # The worker-state panel shows the real worker running.
    def running():
        states = prom.query(f'vector_flow_worker_state{{stream_id="{stream_id}"}} == 1')
        return [r["metric"]["state"] for r in states] == ["running"]
    wait_until(running, 20, interval=0.5, what="vector_flow_worker_state to say running")

    # The alert rules run against these real series without error, and a healthy running worker
    # sets off none of the worker alerts.
    def rules_evaluated():
        groups = requests.get(prom.url + "/api/v1/rules", timeout=5).json()["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        return rules if rules and all(r["health"] == "ok" and r.get("lastEvaluation", "").startswith("2")
                                      and not r["lastEvaluation"].startswith("0001") for r in rules) else None
    rules = wait_until(rules_evaluated, 20, interval=0.5, what="every alert rule to be evaluated")
    assert len(rules) == 8, [r["name"] for r in rules]
    active = {r["name"]: r["state"] for r in rules if r["state"] != "inactive"}
    for name in ("VectorFlowWorkerDown", "VectorFlowNoFrames", "VectorFlowWorkerFailed", "VectorFlowWorkerReconnecting",
                 "VectorFlowAPIDown"):
        assert name not in active, active


def test_failed_worker_sets_off_its_alert(prometheus_factory, redis_server, bin_dir, spawn, tmp_path):
    """A real worker whose file source is not there reports `failed`; the repository's alert rules,
    evaluated by a real Prometheus scraping it, fire VectorFlowWorkerFailed for that stream and not
    VectorFlowWorkerReconnecting."""
    stream_id = str(uuid.uuid4())
    metrics_port = free_port()
    worker = spawn("deploy-failed-worker", [str(bin_dir / "vectorflow-worker")], env={
        "STREAM_ID": stream_id, "STREAM_NAME": "gone", "SOURCE_URL": f"file://{tmp_path / 'gone.avi'}",
        "METRICS_HOST": "127.0.0.1", "METRICS_PORT": str(metrics_port), "REDIS_URL": redis_server.url})
    wait_until(lambda: worker.alive() and 'vector_flow_worker_state{' in
               requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=1).text, 30, what="worker /metrics")
    targets = tmp_path / "workers.json"
    targets.write_text(json.dumps([{"targets": [f"127.0.0.1:{metrics_port}"],
                                    "labels": {"stream_id": stream_id, "stream_name": "gone"}}]))
    cfg = yaml.safe_load((ROOT / "prometheus/prometheus.yml").read_text())
    cfg["global"].update(scrape_interval="1s", evaluation_interval="1s")
    cfg["scrape_configs"] = [j for j in cfg["scrape_configs"] if j["job_name"] == "vectorflow-workers"]
    cfg["scrape_configs"][0]["file_sd_configs"][0]["files"] = [str(targets)]
    cfg["rule_files"] = [str(ROOT / "prometheus" / f) for f in cfg["rule_files"]]
    prom = prometheus_factory(yaml.safe_dump(cfg))

    def firing():
        alerts = requests.get(prom.url + "/api/v1/alerts", timeout=5).json()["data"]["alerts"]
        return [a for a in alerts if a["state"] == "firing"]
    def failed_alert():
        return next((a for a in firing() or [] if a["labels"]["alertname"] == "VectorFlowWorkerFailed"), None)
    alert = wait_until(failed_alert, 30, interval=0.5, what="VectorFlowWorkerFailed to fire")
    assert alert["labels"]["stream_id"] == stream_id and alert["labels"]["state"] == "failed", alert
    assert alert["annotations"]["summary"] == "Worker of stream gone failed", alert
    # The worker is up and gets no frame: VectorFlowNoFrames may fire beside it; nothing else does.
    assert {a["labels"]["alertname"] for a in firing()} <= {"VectorFlowWorkerFailed", "VectorFlowNoFrames"}
    assert worker.alive()


# ---- nginx ----------------------------------------------------------------------------------------

def nginx_config(work, listen_port, api_port):
    """The real server block, inside the http block the nginx image supplies, with three changes for
    this machine: a free port, the repository's files, the API on loopback."""
    site = (ROOT / "frontend-static/nginx.conf").read_text()
    site = site.replace("listen 5173;", f"listen 127.0.0.1:{listen_port};")
    site = site.replace("root /usr/share/nginx/html;", f"root {ROOT / 'frontend-static'};")
    site = site.replace("http://api:8000", f"http://127.0.0.1:{api_port}")
    (work / "site.conf").write_text(site)
    (work / "tmp").mkdir()
    (work / "nginx.conf").write_text(f"""
pid {work}/nginx.pid;
error_log {work}/error.log;
daemon off;
events {{ worker_connections 64; }}
http {{
    include /etc/nginx/mime.types;
    access_log {work}/access.log;
    client_body_temp_path {work}/tmp/body;
    proxy_temp_path {work}/tmp/proxy;
    fastcgi_temp_path {work}/tmp/fastcgi;
    uwsgi_temp_path {work}/tmp/uwsgi;
    scgi_temp_path {work}/tmp/scgi;
    include {work}/site.conf;
}}
""")
    return work / "nginx.conf"


def test_nginx_serves_dashboard_and_proxies_api(running_api, spawn):
    work = Path(tempfile.mkdtemp(prefix="vf-nginx-"))
    try:
        port = free_port()
        conf = nginx_config(work, port, running_api)
        check = run(["nginx", "-t", "-p", str(work), "-c", str(conf)])
        assert check.returncode == 0, check.stderr
        # The unmodified file passes too: the api host is resolved per request, not at start-up.
        raw = nginx_config(Path(tempfile.mkdtemp(dir=work)), port, running_api)
        (raw.parent / "site.conf").write_text((ROOT / "frontend-static/nginx.conf").read_text())
        check = run(["nginx", "-t", "-p", str(raw.parent), "-c", str(raw)])
        assert check.returncode == 0, check.stderr

        spawn("deploy-nginx", ["nginx", "-p", str(work), "-c", str(conf), "-e", str(work / "error.log")])
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: requests.get(base + "/", timeout=1).ok, 10, what="nginx")
        index = requests.get(base + "/", timeout=5)
        assert "<title>Vector Flow</title>" in index.text
        assert requests.get(base + "/config.js", timeout=5).text.count("window.VF_CONFIG") == 1
        assert requests.get(base + "/js/app.js", timeout=5).headers["Content-Type"] in (
            "application/javascript", "text/javascript")
        assert requests.get(base + "/nginx.conf", timeout=5).status_code == 404
        health = requests.get(base + "/health", timeout=5)
        assert health.ok and health.headers["Content-Type"].startswith("application/json")
        assert requests.get(base + "/streams", timeout=5).json() == requests.get(
            f"http://127.0.0.1:{running_api}/streams", timeout=5).json()
        assert "vector_flow_managed_streams_total" in requests.get(base + "/metrics", timeout=5).text
        assert requests.get(base + "/openapi.json", timeout=5).json()["paths"]

        # Writes pass too: a stream created through nginx is the API's.
        created = requests.post(base + "/streams", json={"name": "via nginx", "rtsp_url": "rtsp://127.0.0.1:8554/x"},
                                timeout=5)
        assert created.status_code == 201, created.text
        stream_id = created.json()["id"]
        assert requests.get(f"http://127.0.0.1:{running_api}/streams/{stream_id}", timeout=5).json()["name"] == "via nginx"

        # The WebSocket handshake passes through nginx (Upgrade/Connection forwarded).
        key = base64.b64encode(os.urandom(16)).decode()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall((f"GET /ws/frames?stream_id={stream_id} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                       f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                       "Sec-WebSocket-Version: 13\r\n\r\n").encode())
            reply = b""
            while b"\r\n\r\n" not in reply:
                chunk = s.recv(4096)
                if not chunk:
                    break
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 101"), reply[:200]
        assert requests.delete(f"{base}/streams/{stream_id}", timeout=10).status_code == 204
    finally:
        shutil.rmtree(work, ignore_errors=True)
