"""The dashboard against an API that has a token (VF_API_TOKEN), in a real headless Chromium with a
real worker: the page asks for the token in its sign-in dialog (a wrong one is refused and asked
again), lists the fleet once signed in, and the live preview gets real frames over a WebSocket
that carries the token as its subprotocol. The token is in no file the server hands out.
"""
import shutil
import tempfile
from pathlib import Path

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from conftest import OUT, ROOT, free_port, wait_until
from test_dashboard_browser import CANVAS_STATS_JS, browser, fresh_database  # noqa: F401 (fixture)

TOKEN = "dash-t0ken-7f3a"


@pytest.fixture
def api_with_token(postgres, redis_server, bin_dir, spawn, samples):
    state = Path(tempfile.mkdtemp(prefix="vf-dash-login-"))
    port = free_port()
    env = {
        "DATABASE_URL": fresh_database(postgres, "dashlogin"), "REDIS_URL": redis_server.url,
        "VF_HOST": "127.0.0.1", "VF_PORT": str(port), "VF_STATIC_DIR": str(ROOT / "frontend-static"),
        "VF_ALLOW_FILE_SOURCES": "true", "VF_MEDIA_DIR": str(samples), "VF_RUNTIME": "process", "VF_WORKER_BIN": str(bin_dir / "vectorflow-worker"),
        "VF_FILE_SD_PATH": str(state / "workers.json"), "VF_STATE_DIR": str(state), "VF_API_TOKEN": TOKEN,
    }
    proc = spawn("dashboard-login-api", [str(bin_dir / "vectorflow-api")], env=env)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: proc.alive() and requests.get(url + "/health", timeout=1).ok, 30, what="vectorflow-api /health")
    yield url
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        for s in requests.get(url + "/streams", headers=auth, timeout=5).json():
            requests.delete(f"{url}/streams/{s['id']}", headers=auth, timeout=10)
    except requests.RequestException:
        pass
    shutil.rmtree(state, ignore_errors=True)


def test_sign_in_then_live_frames(api_with_token, browser, samples):  # noqa: F811
    base = api_with_token
    auth = {"Authorization": f"Bearer {TOKEN}"}
    r = requests.post(base + "/streams", json={"name": "Hall", "rtsp_url": f"file://{samples / 'vtest.avi'}",
                                               "is_active": True}, headers=auth, timeout=30)
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    # Nothing the server hands out holds the token.
    for path in ["/", "/config.js", "/js/api.js", "/js/auth.js"]:
        assert TOKEN not in requests.get(base + path, timeout=5).text, path

    driver = browser
    wait = WebDriverWait(driver, 20)
    driver.get(base + "/")
    dialog = wait.until(lambda d: d.find_element(By.ID, "login") if d.find_element(By.ID, "login").is_displayed()
                        else None)
    # A wrong token: refused, the dialog asks again and says why.
    dialog.find_element(By.ID, "login-token").send_keys("wrong")
    dialog.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(lambda d: "not accepted" in d.find_element(By.ID, "login-error").text)
    assert driver.find_element(By.ID, "login").is_displayed()
    field = driver.find_element(By.ID, "login-token")
    field.clear()
    field.send_keys(TOKEN)
    driver.save_screenshot(str(OUT / "dashboard-login.png"))
    driver.find_element(By.CSS_SELECTOR, "#login button[type=submit]").click()
    wait.until(lambda d: not d.find_element(By.ID, "login").is_displayed())
    row = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, f"tr[data-stream-id='{sid}']")
                     if d.find_elements(By.CSS_SELECTOR, f"tr[data-stream-id='{sid}']") else None)
    assert "Hall" in row.text
    # The token stays in this tab's session, not in a cookie.
    assert driver.execute_script("return sessionStorage.getItem('vectorflow.api-token')") == TOKEN
    assert driver.get_cookies() == []
    row.find_element(By.CSS_SELECTOR, "button.name-btn").click()  # the stream's name selects it for preview
    wait.until(lambda d: "selected" in d.find_element(By.CSS_SELECTOR, f"tr[data-stream-id='{sid}']")
               .get_attribute("class"))
    # Real frames on the canvas: the socket was accepted with the token as its subprotocol.
    WebDriverWait(driver, 40).until(
        lambda d: (lambda s: s if s["std"] > 12 else None)(d.execute_script(CANVAS_STATS_JS, "preview-canvas")))
    driver.save_screenshot(str(OUT / "dashboard-login-live.png"))


def test_the_printed_address_signs_the_tab_in(api_with_token, browser):  # noqa: F811
    """`make run` prints the dashboard's address with the token in its fragment: the tab keeps it in
    its session, drops it from the address bar, and never shows the sign-in dialog."""
    base = api_with_token
    auth = {"Authorization": f"Bearer {TOKEN}"}
    r = requests.post(base + "/streams", json={"name": "Yard", "rtsp_url": "rtsp://cam.local/yard"},
                      headers=auth, timeout=10)
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    driver = browser
    driver.get(f"{base}/#token={TOKEN}")
    wait = WebDriverWait(driver, 20)
    row = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, f"tr[data-stream-id='{sid}']")
                     if d.find_elements(By.CSS_SELECTOR, f"tr[data-stream-id='{sid}']") else None)
    assert "Yard" in row.text
    assert not driver.find_element(By.ID, "login").is_displayed()
    assert TOKEN not in driver.current_url
    assert driver.execute_script("return sessionStorage.getItem('vectorflow.api-token')") == TOKEN
