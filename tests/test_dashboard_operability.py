"""What the dashboard tells an operator, in a real headless Chromium against the real API:

- a stream whose worker cannot start (the process runtime's worker binary is not there) shows
  "failed: <reason>" and a Retry button; once the binary exists, Retry starts the worker through the
  API (the reconcile interval is long, so nothing else could have started it);
- the live preview says "No frames for N s", counting, when a running stream's frames stop, and
  "Live" again when they come back;
- with no Grafana the Grafana card shows a short note and the page logs no console error at all;
  with a stub HTTP server standing in for Grafana on a loopback port, the dashboard is embedded
  (kiosk mode, the selected stream) once the probe has seen it.
"""
import http.server
import os
import re
import shutil
import threading
import time
from pathlib import Path

import pytest
import requests

from conftest import OUT, ROOT, free_port, wait_until
from test_dashboard_browser import browser, fresh_database, row_of, text  # noqa: F401 - browser is a fixture

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


def severe(entries):
    return [e for e in entries if e.get("level") == "SEVERE"]


def static_copy(tmp_path, grafana_url):
    """frontend-static/ with config.js pointing the Grafana card at `grafana_url`."""
    static = tmp_path / "static"
    shutil.copytree(ROOT / "frontend-static", static)
    config = (static / "config.js").read_text()
    patched = re.sub(r'grafanaDashboardUrl: "[^"]*"', f'grafanaDashboardUrl: "{grafana_url}"', config)
    assert patched != config, "config.js has no grafanaDashboardUrl"
    (static / "config.js").write_text(patched)
    return static


def start_api(spawn, postgres, redis_server, bin_dir, samples, tmp_path, name, static_dir=None, **extra):
    port = free_port()
    env = {
        "DATABASE_URL": fresh_database(postgres, name.replace("-", "_")), "REDIS_URL": redis_server.url,
        "VF_HOST": "127.0.0.1", "VF_PORT": str(port), "VF_STATIC_DIR": str(static_dir or ROOT / "frontend-static"),
        "VF_ALLOW_FILE_SOURCES": "true", "VF_MEDIA_DIR": str(samples), "VF_RUNTIME": "process",
        "VF_WORKER_BIN": str(bin_dir / "vectorflow-worker"), "VF_FILE_SD_PATH": str(tmp_path / "workers.json"),
        "VF_STATE_DIR": str(tmp_path / "state"),
    }
    env.update(extra)
    proc = spawn(name, [str(bin_dir / "vectorflow-api")], env=env)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: proc.alive() and requests.get(url + "/health", timeout=1).ok, 30, what="vectorflow-api /health")
    return url


def delete_all(url):
    for s in requests.get(url + "/streams", timeout=5).json():
        requests.delete(f"{url}/streams/{s['id']}", timeout=30)


def shot(driver, name):
    OUT.mkdir(exist_ok=True)
    driver.save_screenshot(str(OUT / f"dashboard-ops-{name}.png"))


def test_failed_start_shows_reason_and_retry_starts_the_worker(
        spawn, postgres, redis_server, bin_dir, samples, tmp_path, browser):  # noqa: F811
    missing = tmp_path / "not-built" / "vectorflow-worker"
    base = start_api(spawn, postgres, redis_server, bin_dir, samples, tmp_path, "dash-retry-api",
                     VF_WORKER_BIN=str(missing), VF_RECONCILE_INTERVAL="600")
    try:
        sid = requests.post(base + "/streams", json={"name": "Yard", "rtsp_url": f"file://{samples / 'vtest.avi'}"},
                            timeout=10).json()["id"]
        r = requests.post(f"{base}/streams/{sid}/activate", timeout=30)
        assert r.status_code == 502 and str(missing) in r.json()["detail"], r.text

        wait = WebDriverWait(browser, 20)
        browser.get(base + "/")
        row = wait.until(lambda d: row_of(d, sid))
        error = wait.until(lambda d: (lambda t: t if t.startswith("failed: ") else None)(
            row_of(d, sid).find_element(By.CSS_SELECTOR, ".last-error").get_attribute("textContent")))
        assert str(missing) in error, error
        retry = row.find_element(By.XPATH, ".//button[text()='Retry']")
        assert retry.is_displayed()
        assert "failed" in row.find_element(By.CSS_SELECTOR, ".badge").text
        shot(browser, "1-failed")

        # The binary appears; nothing but the Retry button asks for a new start (600 s interval).
        missing.parent.mkdir(parents=True)
        os.symlink(bin_dir / "vectorflow-worker", missing)
        time.sleep(1)
        assert requests.get(f"{base}/streams/{sid}", timeout=5).json()["status"]["state"] == "failed"
        retry.click()
        wait_until(lambda: (requests.get(f"{base}/streams/{sid}", timeout=5).json()["status"] or {}).get("state")
                   == "running", 30, what="the worker started by Retry to run")
        WebDriverWait(browser, 20).until(lambda d: "running" in row_of(d, sid).find_element(By.CSS_SELECTOR, ".badge").text)
        row = row_of(browser, sid)
        assert not row.find_element(By.XPATH, ".//button[text()='Retry']").is_displayed()
        assert row.find_element(By.CSS_SELECTOR, ".last-error").get_attribute("textContent") == ""
        assert browser.find_element(By.ID, "banner").get_attribute("hidden") is not None
        shot(browser, "2-retried")
        assert severe(browser.get_log("browser")) == []
    finally:
        delete_all(base)


def stalled_seconds(driver):
    m = re.fullmatch(r"No frames for (\d+) s.*", text(driver, "preview-state"))
    return int(m.group(1)) if m else None


def test_preview_counts_seconds_without_frames(spawn, postgres, redis_server, bin_dir, samples, tmp_path,
                                               browser):  # noqa: F811
    base = start_api(spawn, postgres, redis_server, bin_dir, samples, tmp_path, "dash-stall-api")
    try:
        sid = requests.post(base + "/streams", json={"name": "Hall", "rtsp_url": f"file://{samples / 'vtest.avi'}",
                                                     "is_active": True}, timeout=30).json()["id"]
        browser.get(f"{base}/#stream={sid}")
        WebDriverWait(browser, 40).until(lambda d: text(d, "preview-state") == "Live: Hall")
        # Frames stop: the worker is stopped (deactivated through the API, not the page).
        assert requests.post(f"{base}/streams/{sid}/deactivate", timeout=10).ok
        first = WebDriverWait(browser, 20).until(lambda d: stalled_seconds(d))
        assert first >= 3
        shot(browser, "3-no-frames")
        later = WebDriverWait(browser, 10).until(lambda d: (lambda n: n if n and n >= first + 2 else None)(
            stalled_seconds(d)))
        assert later >= first + 2 and not text(browser, "preview-state").startswith("Live")
        # Frames again: "Live" again.
        assert requests.post(f"{base}/streams/{sid}/activate", timeout=30).ok
        WebDriverWait(browser, 40).until(lambda d: text(d, "preview-state") == "Live: Hall")
        assert severe(browser.get_log("browser")) == []
    finally:
        delete_all(base)


def test_no_grafana_no_console_error(spawn, postgres, redis_server, bin_dir, samples, tmp_path, browser):  # noqa: F811
    closed = free_port()  # nothing listens here
    static = static_copy(tmp_path, f"http://127.0.0.1:{closed}/d/vector-flow/vector-flow-overview")
    base = start_api(spawn, postgres, redis_server, bin_dir, samples, tmp_path, "dash-nografana-api", static)
    browser.get(base + "/")
    WebDriverWait(browser, 20).until(lambda d: "not reachable" in text(d, "grafana-message"))
    assert f"127.0.0.1:{closed}" in text(browser, "grafana-message")
    frame = browser.find_element(By.ID, "grafana-frame")
    assert not frame.is_displayed() and not frame.get_attribute("src")
    assert browser.find_elements(By.CSS_SELECTOR, "object[data-grafana-probe]") == []
    # "Try again" probes again, as quietly.
    browser.find_element(By.XPATH, "//div[@id='grafana-message']//button[text()='Try again']").click()
    WebDriverWait(browser, 20).until(lambda d: "not reachable" in text(d, "grafana-message"))
    time.sleep(0.5)
    shot(browser, "4-no-grafana")
    assert severe(browser.get_log("browser")) == []


class GrafanaStub(http.server.ThreadingHTTPServer):
    """Stands in for Grafana on a loopback port: /api/health as Grafana answers it, and a page for
    the dashboard URL. Records the paths asked for."""

    def __init__(self):
        self.paths = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                outer.paths.append(self.path)
                if self.path.split("?")[0] == "/api/health":
                    body, ctype = b'{"commit":"stub","database":"ok","version":"10.4.8"}', "application/json"
                elif self.path.startswith("/d/vector-flow/"):
                    body, ctype = b"<!doctype html><title>Grafana stub</title><p>Vector Flow Overview</p>", "text/html"
                else:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
        super().__init__(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.shutdown()
        self.server_close()


@pytest.fixture
def grafana_stub():
    stub = GrafanaStub()
    yield stub
    stub.close()


def test_grafana_stub_is_embedded(spawn, postgres, redis_server, bin_dir, samples, tmp_path, browser,  # noqa: F811
                                  grafana_stub):
    port = grafana_stub.server_address[1]
    static = static_copy(tmp_path, f"http://127.0.0.1:{port}/d/vector-flow/vector-flow-overview")
    base = start_api(spawn, postgres, redis_server, bin_dir, samples, tmp_path, "dash-grafana-api", static)
    try:
        sid = requests.post(base + "/streams", json={"name": "Dock", "rtsp_url": "rtsp://127.0.0.1:1/dock"},
                            timeout=10).json()["id"]
        browser.get(f"{base}/#stream={sid}")
        frame = WebDriverWait(browser, 20).until(
            lambda d: (lambda f: f if f.is_displayed() and sid in (f.get_attribute("src") or "") else None)(
                d.find_element(By.ID, "grafana-frame")))
        src = frame.get_attribute("src")
        assert src.startswith(f"http://127.0.0.1:{port}/d/vector-flow/vector-flow-overview?"), src
        assert "kiosk=1" in src and f"var-stream_id={sid}" in src, src
        assert not browser.find_element(By.ID, "grafana-message").is_displayed()
        # The probe asked for /api/health first; then the iframe loaded the dashboard page.
        wait_until(lambda: any(p.startswith("/d/vector-flow/") for p in grafana_stub.paths), 10,
                   what="the iframe to load the stub's dashboard page")
        assert grafana_stub.paths[0] == "/api/health", grafana_stub.paths
        # The link opens the full Grafana (not kiosk).
        link = browser.find_element(By.ID, "grafana-link").get_attribute("href")
        assert f"var-stream_id={sid}" in link and "kiosk" not in link, link
        browser.switch_to.frame(frame)
        assert "Vector Flow Overview" in browser.find_element(By.TAG_NAME, "body").text
        browser.switch_to.default_content()
        shot(browser, "5-grafana-stub")
        assert severe(browser.get_log("browser")) == []
    finally:
        delete_all(base)
