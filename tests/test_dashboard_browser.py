"""The dashboard (frontend-static/) in a real headless Chromium, against the real API and a real worker.

The API (`vectorflow-api`, process runtime) serves the page at / and starts a real `vectorflow-worker`
on the sample video when the stream is activated. The browser creates a stream through the form, sees
a 422 next to the URL field, activates the stream, reads back real frames from the preview canvas,
deactivates and deletes it. Screenshots go to test-output/dashboard-*.png.
"""
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import requests

from conftest import OUT, ROOT, free_port, wait_until

os.environ.setdefault("SE_AVOID_STATS", "true")
from selenium import webdriver  # noqa: E402 - installed by scripts/install-deps.sh --test
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def fresh_database(postgres, prefix):
    """A new database owned by vectorflow in the session's PostgreSQL: this module's API starts on
    an empty fleet whatever other modules left behind."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    postgres.psql(f"CREATE DATABASE {name} OWNER vectorflow")
    return f"postgresql://vectorflow:vectorflow@127.0.0.1:{postgres.port}/{name}"


@pytest.fixture
def api_server(postgres, redis_server, bin_dir, spawn, samples):
    state = Path(tempfile.mkdtemp(prefix="vf-dash-"))
    port = free_port()
    env = {
        "DATABASE_URL": fresh_database(postgres, "dashboard"),
        "REDIS_URL": redis_server.url,
        "VF_HOST": "127.0.0.1",
        "VF_PORT": str(port),
        "VF_STATIC_DIR": str(ROOT / "frontend-static"),
        "VF_ALLOW_FILE_SOURCES": "true",
        "VF_MEDIA_DIR": str(samples),
        "VF_RUNTIME": "process",
        "VF_WORKER_BIN": str(bin_dir / "vectorflow-worker"),
        "VF_FILE_SD_PATH": str(state / "workers.json"),
        "VF_STATE_DIR": str(state),
    }
    proc = spawn("dashboard-api", [str(bin_dir / "vectorflow-api")], env=env)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: proc.alive() and requests.get(url + "/health", timeout=1).ok, 30, what="vectorflow-api /health")
    yield url
    # A failed run may leave an active stream: delete it so that its worker stops with the API.
    try:
        for s in requests.get(url + "/streams", timeout=5).json():
            requests.delete(f"{url}/streams/{s['id']}", timeout=10)
    except requests.RequestException:
        pass
    shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
def browser():
    profile = tempfile.mkdtemp(prefix="vf-chromium-")
    options = Options()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1280,1100"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(20)
    driver.set_script_timeout(10)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


# Reads the preview canvas back: the mean and standard deviation of the grey level on a sample of
# pixels. A painted video frame has texture (a large deviation); the empty canvas is one colour.
CANVAS_STATS_JS = """
const c = document.getElementById(arguments[0]);
const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
let n = 0, sum = 0, sum2 = 0;
for (let i = 0; i < d.length; i += 4 * 97) {
  const g = 0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2];
  n++; sum += g; sum2 += g * g;
}
const mean = sum / n;
return {width: c.width, height: c.height, mean: mean, std: Math.sqrt(Math.max(0, sum2 / n - mean * mean))};
"""


SET_HIDDEN_JS = """
Object.defineProperty(document, 'hidden', {configurable: true, get: () => arguments[0]});
document.dispatchEvent(new Event('visibilitychange'));
"""

HELPERS_JS = """
const done = arguments[arguments.length - 1];
Promise.all([import('/js/format.js'), import('/js/preview.js')]).then(([format, preview]) => {
  const masked = ['rtsp://user:pw@cam.local:554/live', 'rtsp://token@cam.local/live', 'http://cam.local/a@b',
                  'file:///srv/video.avi'].map(format.maskUrl);
  const header = new TextEncoder().encode(JSON.stringify({seq: 7, jpeg: true}));
  const buffer = new ArrayBuffer(4 + header.length + 3);
  new DataView(buffer).setUint32(0, header.length, false);
  new Uint8Array(buffer, 4).set(header);
  const frame = preview.parseEnvelope(buffer);
  let badLength = '';
  try {
    const bad = new ArrayBuffer(8);
    new DataView(bad).setUint32(0, 100, false);
    preview.parseEnvelope(bad);
  } catch (e) { badLength = e.message; }
  done({masked, seq: frame.header.seq, jpegBytes: frame.jpeg.byteLength, badLength});
}).catch((e) => done({error: String(e)}));
"""


def text(driver, element_id):
    return driver.find_element(By.ID, element_id).text.strip()


def row_of(driver, stream_id):
    rows = driver.find_elements(By.CSS_SELECTOR, f'tr[data-stream-id="{stream_id}"]')
    return rows[0] if rows else None


def fill(driver, element_id, value):
    el = driver.find_element(By.ID, element_id)
    el.clear()
    el.send_keys(value)


def shot(driver, name):
    OUT.mkdir(exist_ok=True)
    driver.save_screenshot(str(OUT / f"dashboard-{name}.png"))


def run_dashboard_scenario(driver, base_url, video_url):
    """The user's path through the dashboard; returns the browser console entries."""
    wait = WebDriverWait(driver, 15)
    driver.get(base_url + "/")
    # The form's defaults and limits come from the API's schema (StreamSettings), not from the page.
    schema = requests.get(base_url + "/openapi.json", timeout=5).json()["components"]["schemas"]["StreamCreate"]
    grid_rule = schema["properties"]["grid_size"]
    wait.until(lambda d: d.find_element(By.ID, "f-grid").get_attribute("value") == str(grid_rule["default"]))
    assert driver.find_element(By.ID, "f-grid").get_attribute("max") == str(grid_rule["maximum"])
    assert driver.find_element(By.ID, "f-threshold").get_attribute("value") == \
        str(schema["properties"]["threshold"]["default"])
    wait.until(lambda d: "API connected" in text(d, "api-state"))
    shot(driver, "1-empty")

    # The page's own helpers, as the browser runs them: URL masking and the frame envelope parser.
    helpers = driver.execute_async_script(HELPERS_JS)
    assert helpers.get("error") is None, helpers
    assert helpers["masked"] == ["rtsp://user:***@cam.local:554/live", "rtsp://***@cam.local/live",
                                 "http://cam.local/a@b", "file:///srv/video.avi"]
    assert helpers["seq"] == 7 and helpers["jpegBytes"] == 3
    assert "out of range" in helpers["badLength"]

    # A URL with a scheme the API refuses: the browser's own check stops it first…
    fill(driver, "f-name", "Lobby camera")
    fill(driver, "f-url", "ftp://127.0.0.1/lobby")
    driver.find_element(By.ID, "form-submit").click()
    assert driver.execute_script("return document.getElementById('f-url').validity.patternMismatch")
    # …and with the browser's checks off (as any client without them), the API's 422 lands under the field.
    driver.execute_script("document.getElementById('stream-form').noValidate = true")
    driver.find_element(By.ID, "form-submit").click()
    wait.until(lambda d: text(d, "f-url-error") != "")
    assert driver.find_element(By.ID, "f-url").get_attribute("aria-invalid") == "true"
    assert text(driver, "f-name-error") == "" and text(driver, "f-grid-error") == ""
    assert text(driver, "f-threshold-error") == "" and text(driver, "form-error") == ""
    assert driver.find_element(By.ID, "banner").get_attribute("hidden") is not None
    # Nothing typed was lost.
    assert driver.find_element(By.ID, "f-name").get_attribute("value") == "Lobby camera"
    assert driver.find_element(By.ID, "f-url").get_attribute("value") == "ftp://127.0.0.1/lobby"
    assert not [s for s in requests.get(base_url + "/streams", timeout=5).json() if s["name"] == "Lobby camera"]
    shot(driver, "2-validation-error")
    driver.execute_script("document.getElementById('stream-form').noValidate = false")

    # A stream with credentials in its URL is listed masked.
    fill(driver, "f-name", "Gate camera")
    fill(driver, "f-url", "rtsp://viewer:s3cret-pw@127.0.0.1:8554/gate")
    driver.find_element(By.ID, "form-submit").click()
    gate = wait.until(lambda d: next((s for s in requests.get(base_url + "/streams", timeout=5).json()
                                      if s["name"] == "Gate camera"), None))
    gate_row = wait.until(lambda d: row_of(d, gate["id"]))
    assert "rtsp://viewer:***@127.0.0.1:8554/gate" in gate_row.text
    assert "s3cret-pw" not in driver.find_element(By.ID, "fleet-table").get_attribute("outerHTML")
    assert "inactive" in gate_row.text

    # Edit it: the form fills in, PUT saves, the row follows.
    gate_row.find_element(By.XPATH, ".//button[text()='Edit']").click()
    wait.until(lambda d: d.find_element(By.ID, "f-name").get_attribute("value") == "Gate camera")
    assert "Edit" in text(driver, "form-title")
    fill(driver, "f-grid", "32")
    fill(driver, "f-threshold", "2.5")
    driver.find_element(By.ID, "form-submit").click()
    wait.until(lambda d: "32 px / 2.50" in row_of(d, gate["id"]).text)
    saved = requests.get(f"{base_url}/streams/{gate['id']}", timeout=5).json()
    assert saved["grid_size"] == 32 and saved["threshold"] == 2.5 and saved["rtsp_url"] == gate["rtsp_url"]
    assert text(driver, "form-title") == "New stream"

    # The real stream, created inactive and then activated from its row.
    fill(driver, "f-name", "Lobby camera")
    fill(driver, "f-url", video_url)
    fill(driver, "f-grid", "16")
    fill(driver, "f-threshold", "1.2")
    driver.find_element(By.ID, "form-submit").click()
    lobby = wait.until(lambda d: next((s for s in requests.get(base_url + "/streams", timeout=5).json()
                                       if s["name"] == "Lobby camera"), None))
    assert lobby["grid_size"] == 16 and abs(lobby["threshold"] - 1.2) < 1e-9 and not lobby["is_active"]
    # The form is emptied for the next stream, and the new stream is selected for preview.
    wait.until(lambda d: d.find_element(By.ID, "f-name").get_attribute("value") == "")
    row = wait.until(lambda d: row_of(d, lobby["id"]))
    wait.until(lambda d: "selected" in row_of(d, lobby["id"]).get_attribute("class"))
    row.find_element(By.XPATH, ".//button[text()='Activate']").click()

    # Real frames reach the canvas through the WebSocket.
    WebDriverWait(driver, 40).until(lambda d: text(d, "s-count") not in ("", "–"))
    stats = WebDriverWait(driver, 10).until(
        lambda d: (lambda s: s if s["std"] > 12 else None)(d.execute_script(CANVAS_STATS_JS, "preview-canvas")))
    assert stats["width"] > 16 and stats["height"] > 16
    assert driver.find_element(By.ID, "s-latency").text.endswith("ms")
    wait.until(lambda d: "running" in row_of(d, lobby["id"]).text)
    wait.until(lambda d: row_of(d, lobby["id"]).find_elements(By.XPATH, ".//button[text()='Deactivate']"))
    time.sleep(1.5)  # a few seconds of samples for the chart
    chart = driver.execute_script(CANVAS_STATS_JS, "flow-chart")
    assert chart["std"] > 1, chart
    # The Grafana panel follows the selection (and says so plainly when Grafana is not running).
    assert f"var-stream_id={lobby['id']}" in driver.find_element(By.ID, "grafana-link").get_attribute("href")
    frame = driver.find_element(By.ID, "grafana-frame")
    wait.until(lambda d: frame.is_displayed() or "not reachable" in text(d, "grafana-message"))
    if frame.is_displayed():
        assert f"var-stream_id={lobby['id']}" in frame.get_attribute("src")
    shot(driver, "3-live")
    driver.execute_script("document.getElementById('grafana-title').scrollIntoView()")
    shot(driver, "3-grafana-panel")
    driver.execute_script("window.scrollTo(0, 0)")

    # Hidden page (a visibilitychange with document.hidden true, as a background tab gets): the live
    # socket closes, so no frame arrives; shown again, it reconnects and frames flow.
    driver.execute_script(SET_HIDDEN_JS, True)
    wait.until(lambda d: "paused" in text(d, "preview-state"))
    time.sleep(1.5)  # at 10 fps, frames would have turned the state back to "Live"
    assert "paused" in text(driver, "preview-state")
    driver.execute_script(SET_HIDDEN_JS, False)
    wait.until(lambda d: text(d, "preview-state").startswith("Live"))

    # A phone-sized window: one column, nothing wider than the screen.
    driver.set_window_size(390, 844)
    time.sleep(0.5)
    assert driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
    shot(driver, "4-phone")
    driver.set_window_size(1280, 1100)

    # Keyboard: the row's buttons are real buttons, reachable with Tab.
    tags = set()
    driver.execute_script("document.getElementById('new-stream').focus()")
    for _ in range(12):
        driver.switch_to.active_element.send_keys("\t")
        tags.add(driver.switch_to.active_element.tag_name.lower())
        # Keyboard focus is visible.
        assert driver.execute_script("return getComputedStyle(document.activeElement).outlineStyle") != "none"
    assert "button" in tags and "input" in tags

    # Deactivate, then delete both streams (with confirmation).
    row_of(driver, lobby["id"]).find_element(By.XPATH, ".//button[text()='Deactivate']").click()
    wait.until(lambda d: "inactive" in row_of(d, lobby["id"]).text)
    assert requests.get(f"{base_url}/streams/{lobby['id']}", timeout=5).json()["is_active"] is False
    for stream in (lobby, gate):
        row_of(driver, stream["id"]).find_element(By.XPATH, ".//button[text()='Delete']").click()
        WebDriverWait(driver, 5).until(EC.alert_is_present())
        driver.switch_to.alert.accept()
        wait.until(lambda d: row_of(d, stream["id"]) is None)
        assert requests.get(f"{base_url}/streams/{stream['id']}", timeout=5).status_code == 404
    wait.until(lambda d: "Select a stream" in text(d, "preview-state"))
    shot(driver, "5-deleted")
    return driver.get_log("browser")


def unexpected_console_errors(entries):
    """Console errors, less the one network failure the scenario causes on purpose: the 422 of the
    refused URL. The probe of the Grafana that is not running (config.js's localhost:3000, as with
    `make run`) must log nothing."""
    bad = []
    for e in entries:
        if e.get("level") != "SEVERE":
            continue
        message = e.get("message", "")
        if e.get("source") == "network" and "/streams" in message and "422" in message:
            continue
        bad.append(e)
    return bad


def test_dashboard_against_real_api_and_worker(api_server, browser, samples):
    started = time.monotonic()
    try:
        entries = run_dashboard_scenario(browser, api_server, f"file://{samples / 'vtest.avi'}")
    except Exception:
        shot(browser, "failure")
        raise
    assert unexpected_console_errors(entries) == [], entries
    assert time.monotonic() - started < 90
