"""The worker's state and build as Prometheus series, read from real processes: a real worker on the
sample video (running), on a file that is not there (failed) and on a source that refuses
connections (reconnecting); and the real API's /metrics.

`vector_flow_worker_state{state=...}` has one series per state the worker knows, 1 for the state its
/health and its Redis status report and 0 for every other; `vector_flow_build_info{version,commit}`
is 1 with the version of Sources/VFCore/BuildInfo.swift.
"""
import re

import pytest
import requests

from conftest import ROOT, free_port, wait_until
from test_worker_sources import start_worker, status, worker_bin  # noqa: F401 - worker_bin is a fixture

STATES = {"connecting", "running", "reconnecting", "ended", "failed"}
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def series_of(text, name):
    """[(labels dict, value)] of the samples of `name` in a Prometheus text exposition."""
    out = []
    for line in text.splitlines():
        m = SAMPLE.match(line)
        if m and m.group(1) == name:
            out.append((dict(LABEL.findall(m.group(2) or "")), float(m.group(3))))
    return out


def build_version():
    m = re.search(r'static let version = "([^"]+)"', (ROOT / "Sources/VFCore/BuildInfo.swift").read_text())
    assert m, "BuildInfo.version not found"
    return m.group(1)


def metrics_of(worker):
    """The worker's /metrics, once it serves them."""
    def read():
        r = requests.get(f"http://127.0.0.1:{worker.metrics_port}/metrics", timeout=2)
        return r.text if r.ok else None
    return wait_until(read, 15, interval=0.1, what="the worker's /metrics")


def state_series(text):
    """{state: value} of vector_flow_worker_state; asserts the label set is the closed one."""
    series = series_of(text, "vector_flow_worker_state")
    states = {labels["state"]: value for labels, value in series}
    assert set(states) == STATES and len(series) == len(STATES), series
    assert {tuple(sorted(labels)) for labels, _ in series} == {("state", "stream_id", "stream_name")}, series
    return states


def wait_for_state(worker, redis, expected, timeout=20):
    """Waits until /health says `expected`; returns the state series read right after."""
    def reached():
        health = requests.get(f"http://127.0.0.1:{worker.metrics_port}/health", timeout=2).json()
        return health if health["state"] == expected else None
    wait_until(reached, timeout, interval=0.1, what=f"the worker to report {expected}")
    states = state_series(metrics_of(worker))
    assert [s for s, v in states.items() if v == 1] == [expected], states
    assert all(v == 0 for s, v in states.items() if s != expected), states
    assert status(redis, worker.stream_id).get("state") == expected
    return states


def test_running_worker_exports_its_state_and_build(spawn, worker_bin, redis_server, samples):  # noqa: F811
    w = start_worker(spawn, worker_bin, redis_server, "metrics-running", f"file://{samples / 'vtest.avi'}")
    wait_for_state(w, redis_server, "running")
    text = metrics_of(w)
    for labels, _ in series_of(text, "vector_flow_worker_state"):
        assert labels["stream_id"] == "metrics-running" and labels["stream_name"] == "Camera metrics-running"
    assert "# TYPE vector_flow_worker_state gauge" in text
    build = series_of(text, "vector_flow_build_info")
    assert len(build) == 1, build
    labels, value = build[0]
    assert value == 1 and set(labels) == {"version", "commit"}, build
    assert labels["version"] == build_version() and labels["commit"], build
    # The series sits beside the worker's others, which still count frames.
    assert series_of(text, "vector_flow_frames_processed_total")[0][1] > 0


def test_missing_file_is_failed(spawn, worker_bin, redis_server, tmp_path):  # noqa: F811
    w = start_worker(spawn, worker_bin, redis_server, "metrics-failed", f"file://{tmp_path / 'gone.avi'}")
    wait_for_state(w, redis_server, "failed")


def test_refusing_source_is_reconnecting(spawn, worker_bin, redis_server):  # noqa: F811
    # Nothing listens on the port: the first attempt is `connecting`, every later one `reconnecting`.
    w = start_worker(spawn, worker_bin, redis_server, "metrics-reconnecting",
                     f"http://127.0.0.1:{free_port()}/camera.mp4")
    states = state_series(metrics_of(w))
    assert sum(states.values()) == 1 and states["running"] == 0, states
    wait_for_state(w, redis_server, "reconnecting", timeout=30)


@pytest.fixture
def api_metrics(postgres, redis_server, bin_dir, spawn, tmp_path):
    port = free_port()
    from test_dashboard_browser import fresh_database
    proc = spawn("metrics-api", [str(bin_dir / "vectorflow-api")], env={
        "DATABASE_URL": fresh_database(postgres, "metrics"), "REDIS_URL": redis_server.url, "VF_HOST": "127.0.0.1",
        "VF_PORT": str(port), "VF_RUNTIME": "process", "VF_WORKER_BIN": str(bin_dir / "vectorflow-worker"),
        "VF_STATE_DIR": str(tmp_path / "state"), "VF_FILE_SD_PATH": str(tmp_path / "workers.json")})
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: proc.alive() and requests.get(url + "/health", timeout=1).ok, 30, what="vectorflow-api")
    return url


def test_api_exports_its_build(api_metrics):
    text = requests.get(api_metrics + "/metrics", timeout=5).text
    build = series_of(text, "vector_flow_build_info")
    assert len(build) == 1, text
    labels, value = build[0]
    assert value == 1 and set(labels) == {"version", "commit"} and labels["version"] == build_version(), build
    # The API has no worker state of its own.
    assert series_of(text, "vector_flow_worker_state") == []
