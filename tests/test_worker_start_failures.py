"""A worker that cannot be started is visible to the operator, not stuck at "starting": the real API
(process runtime) with a worker binary that is not there answers the activation with the reason
(502), and `GET /streams` shows the stream's status as failed with that reason within the reconcile
interval, for as long as the failure lasts. A worker that does start is in the activation's answer.
"""
import time

import pytest
import requests

from conftest import wait_until
from test_api_crud import ApiPostgres, make_database, start_api


@pytest.fixture(scope="module")
def postgres():  # a private cluster for this module (overrides conftest's session fixture)
    pg = ApiPostgres()
    yield pg
    pg.close()


def test_a_worker_that_cannot_start_shows_why(request, bin_dir, postgres, redis_server, tmp_path):
    url, _ = make_database(postgres)
    missing = tmp_path / "not-built" / "vectorflow-worker"
    _, base = start_api(request, bin_dir, "api-start-failure", {
        "DATABASE_URL": url, "REDIS_URL": redis_server.url, "VF_RUNTIME": "process", "VF_WORKER_BIN": str(missing),
        "VF_STATE_DIR": str(tmp_path / "state"), "VF_RECONCILE_INTERVAL": "1", "VF_ALLOW_FILE_SOURCES": "true",
        "VF_MEDIA_DIR": str(tmp_path)})
    r = requests.post(base + "/streams", json={"name": "yard", "rtsp_url": "rtsp://cam.local/yard"}, timeout=10)
    sid = r.json()["id"]
    t0 = time.monotonic()
    r = requests.post(f"{base}/streams/{sid}/activate", timeout=30)
    assert r.status_code == 502, r.text
    assert str(missing) in r.json()["detail"]

    def failed():
        s = requests.get(f"{base}/streams/{sid}", timeout=5).json()
        status = s["status"] or {}
        return status if status.get("state") == "failed" else None
    status = wait_until(failed, 5, what="the failure in the stream's status")
    assert str(missing) in status["last_error"], status
    print(f"failure visible in the status after {time.monotonic() - t0:.2f}s")
    # Still failed at later passes: the failure is refreshed while it lasts.
    wait_until(lambda: (failed() or {}).get("updated_at") not in (None, status["updated_at"]), 10,
               what="the failure refreshed by a later pass")


def test_activation_answer_carries_the_worker(request, bin_dir, postgres, redis_server, samples, tmp_path):
    url, _ = make_database(postgres)
    _, base = start_api(request, bin_dir, "api-start-ok", {
        "DATABASE_URL": url, "REDIS_URL": redis_server.url, "VF_RUNTIME": "process",
        "VF_WORKER_BIN": str(bin_dir / "vectorflow-worker"), "VF_STATE_DIR": str(tmp_path / "state"),
        "VF_RECONCILE_INTERVAL": "1", "VF_ALLOW_FILE_SOURCES": "true", "VF_MEDIA_DIR": str(samples)})
    r = requests.post(base + "/streams", json={"name": "hall", "rtsp_url": f"file://{samples}/vtest.avi"}, timeout=10)
    sid = r.json()["id"]
    try:
        r = requests.post(f"{base}/streams/{sid}/activate", timeout=30)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["is_active"] is True
        assert body["worker_container_name"] == f"vector-worker-{sid}", body
        assert body["worker_started_at"], body
    finally:
        requests.delete(f"{base}/streams/{sid}", timeout=30)
