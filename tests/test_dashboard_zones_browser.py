"""The dashboard's zone editor in a real headless Chromium, against the real API and a real worker.

A stream plays the sample video; on its live preview the browser draws a polygon by clicking on
the canvas (with an undo), closes it on its first point, fills the rule (limits and defaults from
the API's /openapi.json) and saves: the zone is in the real database, drawn over the preview (read
back from the overlay's pixels) with its direction arrow. A bow-tie gets the API's own 422 next to
the form and stores nothing; an outline drawn with the keyboard under a name already taken gets the
API's 409; an edit is a PUT; delete removes the zone and its outline.
Screenshots go to test-output/dashboard-zones-*.png.
"""
import time

import requests

from conftest import OUT, wait_until
from test_dashboard_browser import api_server, browser, text  # noqa: F401 - fixtures

from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

SQUARE = [(0.2, 0.2), (0.6, 0.2), (0.6, 0.7), (0.2, 0.7)]
BOW_TIE = [(0.65, 0.2), (0.9, 0.6), (0.9, 0.2), (0.65, 0.6)]
ZONE_BLUE = (0x3F, 0xA7, 0xFF)  # an idle zone's outline (zones.js)

# The overlay's pixel at a normalised point: [r, g, b, a] (the overlay is transparent off the zones).
OVERLAY_PIXEL_JS = """
const c = document.getElementById('zone-overlay');
const x = Math.min(c.width - 1, Math.round(arguments[0] * c.width));
const y = Math.min(c.height - 1, Math.round(arguments[1] * c.height));
return Array.from(c.getContext('2d').getImageData(x, y, 1, 1).data);
"""

# The largest difference to `colour` among the overlay's opaque pixels around a normalised point
# (a 5x5 device-pixel window, so that a 2 px line is found whatever the rounding); null: none opaque.
OVERLAY_NEAR_JS = """
const [fx, fy, r, g, b] = arguments;
const c = document.getElementById('zone-overlay');
const cx = Math.round(fx * c.width), cy = Math.round(fy * c.height);
const d = c.getContext('2d').getImageData(cx - 2, cy - 2, 5, 5).data;
let best = null;
for (let i = 0; i < d.length; i += 4) {
  if (d[i + 3] < 200) continue;
  const diff = Math.max(Math.abs(d[i] - r), Math.abs(d[i + 1] - g), Math.abs(d[i + 2] - b));
  best = best === null ? diff : Math.min(best, diff);
}
return best;
"""


def shot(driver, name):
    OUT.mkdir(exist_ok=True)
    driver.save_screenshot(str(OUT / f"dashboard-zones-{name}.png"))


def click_at(driver, canvas, fx, fy):
    """A real mouse click on the canvas at a normalised point (Selenium's offsets are from the centre)."""
    w, h = canvas.size["width"], canvas.size["height"]
    ActionChains(driver).move_to_element_with_offset(canvas, int((fx - 0.5) * w), int((fy - 0.5) * h)).click().perform()


def points_shown(driver):
    return [li.text for li in driver.find_elements(By.CSS_SELECTOR, "#zone-points li")]


def zones_of(base, sid):
    r = requests.get(f"{base}/streams/{sid}/zones", timeout=5)
    assert r.status_code == 200, r.text
    return r.json()


def has_colour(driver, fx, fy, colour, tolerance=40):
    diff = driver.execute_script(OVERLAY_NEAR_JS, fx, fy, *colour)
    return diff is not None and diff <= tolerance


def run_zone_scenario(driver, base, video_url):
    wait = WebDriverWait(driver, 15)
    sid = requests.post(base + "/streams", json={"name": "Walkway cam", "rtsp_url": video_url}, timeout=10).json()["id"]
    r = requests.post(f"{base}/streams/{sid}/activate", timeout=30)
    assert r.status_code == 200, r.text
    schema = requests.get(base + "/openapi.json", timeout=5).json()["components"]["schemas"]["ZoneCreate"]["properties"]

    driver.get(f"{base}/#stream={sid}")
    # Real frames first: the preview takes the worker's preview size, which the zones follow.
    WebDriverWait(driver, 40).until(lambda d: text(d, "preview-state").startswith("Live"))
    add = wait.until(EC.element_to_be_clickable((By.ID, "zone-add")))
    wait.until(lambda d: d.find_element(By.ID, "zones-empty").is_displayed())

    # The form's limits and defaults are the API's (ZoneRule's constants through /openapi.json).
    add.click()
    min_vectors = driver.find_element(By.ID, "z-min-vectors")
    wait.until(lambda d: min_vectors.get_attribute("value") == str(schema["min_vectors"]["default"]))
    assert min_vectors.get_attribute("max") == str(schema["min_vectors"]["maximum"])
    assert driver.find_element(By.ID, "z-direction").get_attribute("max") == str(schema["direction_deg"]["maximum"])
    assert driver.find_element(By.ID, "z-tolerance").get_attribute("max") == \
        str(schema["direction_tolerance_deg"]["maximum"])
    assert float(driver.find_element(By.ID, "z-quiet").get_attribute("value")) == schema["quiet_time_s"]["default"]
    assert driver.find_element(By.ID, "z-name").get_attribute("maxlength") == str(schema["name"]["maxLength"])
    assert driver.find_element(By.ID, "z-direction").get_attribute("value") == ""  # null default: any direction

    # Draw: four clicks, an undo, the fourth again, then a click on the first point closes it.
    canvas = driver.find_element(By.ID, "preview-canvas")
    close_btn = driver.find_element(By.ID, "zone-close")
    for i, (x, y) in enumerate(SQUARE):
        click_at(driver, canvas, x, y)
        wait.until(lambda d: len(points_shown(d)) == i + 1)
        if i < 2:
            assert not close_btn.is_enabled()  # not enough points for an outline yet
    driver.find_element(By.ID, "zone-undo").click()
    wait.until(lambda d: len(points_shown(d)) == 3)
    click_at(driver, canvas, *SQUARE[3])
    wait.until(lambda d: len(points_shown(d)) == 4)
    click_at(driver, canvas, *SQUARE[0])
    wait.until(lambda d: "closed" in text(d, "zone-draw-hint"))
    assert len(points_shown(driver)) == 4
    for shown, (x, y) in zip(points_shown(driver), SQUARE):
        sx, sy = (float(v) for v in shown.split(","))
        assert abs(sx - x) < 0.01 and abs(sy - y) < 0.01, (shown, x, y)

    driver.find_element(By.ID, "z-name").send_keys("Walkway")
    min_vectors.clear()
    min_vectors.send_keys("8")
    driver.find_element(By.ID, "z-direction").send_keys("90")
    driver.find_element(By.ID, "z-tolerance").send_keys("30")
    shot(driver, "1-drawn")
    driver.find_element(By.ID, "zone-save").click()

    # In the real database, as drawn.
    stored = wait_until(lambda: zones_of(base, sid) or None, 10, what="the zone to be stored")
    assert len(stored) == 1
    zone = stored[0]
    assert zone["name"] == "Walkway" and zone["min_vectors"] == 8
    assert zone["direction_deg"] == 90 and zone["direction_tolerance_deg"] == 30
    assert zone["min_mean_speed"] is None
    assert zone["min_duration_s"] == schema["min_duration_s"]["default"]
    assert len(zone["polygon"]) == 4
    for (px, py), (x, y) in zip(zone["polygon"], SQUARE):
        assert abs(px - x) < 0.01 and abs(py - y) < 0.01, zone["polygon"]

    # Drawn over the preview: its outline (the top edge's middle), its arrow (pointing down from the
    # centre), and nothing away from it; listed with its rule.
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, f'#zone-list li[data-zone-id="{zone["id"]}"]'))
    assert "Walkway" in text(driver, "zone-list") and "90° ± 30°" in text(driver, "zone-list")
    assert driver.find_element(By.ID, "zone-form").get_attribute("hidden") is not None
    wait.until(lambda d: has_colour(d, 0.4, 0.2, ZONE_BLUE))
    assert has_colour(driver, 0.6, 0.45, ZONE_BLUE)  # the right edge
    assert has_colour(driver, 0.4, 0.5, ZONE_BLUE)  # the arrow, below the centre (0.4, 0.45)
    assert driver.execute_script(OVERLAY_PIXEL_JS, 0.8, 0.9)[3] == 0
    shot(driver, "2-saved")

    # A bow-tie: the API's own reason next to the form, nothing stored, nothing drawn lost.
    expected = requests.post(f"{base}/streams/{sid}/zones", json={"name": "Bow", "polygon": BOW_TIE},
                             timeout=5)
    assert expected.status_code == 422, expected.text
    reason = expected.json()["detail"][0]["msg"]
    driver.find_element(By.ID, "zone-add").click()
    wait.until(lambda d: d.find_element(By.ID, "zone-form").is_displayed())
    for i, (x, y) in enumerate(BOW_TIE):
        click_at(driver, canvas, x, y)
        wait.until(lambda d: len(points_shown(d)) == i + 1)
    driver.find_element(By.ID, "zone-close").click()
    wait.until(lambda d: "closed" in text(d, "zone-draw-hint"))
    driver.find_element(By.ID, "z-name").send_keys("Bow")
    driver.find_element(By.ID, "zone-save").click()
    wait.until(lambda d: reason in text(d, "zone-error"))
    assert len(zones_of(base, sid)) == 1
    assert len(points_shown(driver)) == 4
    assert driver.find_element(By.ID, "z-name").get_attribute("value") == "Bow"
    shot(driver, "3-bow-tie")

    # A duplicate name is the API's 409, shown the same way.
    # This outline with the keyboard: the preview has the focus while an outline is drawn; the
    # arrow keys move a cross from the centre (2 % a press), Enter adds it, Escape closes.
    driver.find_element(By.ID, "zone-redraw").click()
    wait.until(lambda d: d.switch_to.active_element == canvas)
    assert canvas.get_attribute("tabindex") == "0"
    keys = ActionChains(driver).send_keys(Keys.ENTER).send_keys(*[Keys.ARROW_RIGHT] * 10).send_keys(Keys.ENTER)
    keys.send_keys(*[Keys.ARROW_UP] * 10).send_keys(Keys.ENTER).perform()
    wait.until(lambda d: len(points_shown(d)) == 3)
    assert points_shown(driver) == ["0.500, 0.500", "0.700, 0.500", "0.700, 0.300"]
    ActionChains(driver).send_keys(Keys.ESCAPE).perform()
    wait.until(lambda d: "closed" in text(d, "zone-draw-hint"))
    assert driver.switch_to.active_element == driver.find_element(By.ID, "z-name")
    name = driver.find_element(By.ID, "z-name")
    name.clear()
    name.send_keys("Walkway")
    driver.find_element(By.ID, "zone-save").click()
    taken = requests.post(f"{base}/streams/{sid}/zones", json={"name": "Walkway", "polygon": SQUARE}, timeout=5)
    assert taken.status_code == 409, taken.text
    wait.until(lambda d: text(d, "zone-error") == taken.json()["detail"])
    assert len(zones_of(base, sid)) == 1
    driver.find_element(By.ID, "zone-cancel").click()
    wait.until(lambda d: not d.find_element(By.ID, "zone-form").is_displayed())

    # Edit: the form fills in, PUT saves.
    row = driver.find_element(By.CSS_SELECTOR, f'#zone-list li[data-zone-id="{zone["id"]}"]')
    row.find_element(By.XPATH, ".//button[text()='Edit']").click()
    wait.until(lambda d: d.find_element(By.ID, "z-name").get_attribute("value") == "Walkway")
    assert driver.find_element(By.ID, "z-min-vectors").get_attribute("value") == "8"
    assert len(points_shown(driver)) == 4
    mv = driver.find_element(By.ID, "z-min-vectors")
    mv.clear()
    mv.send_keys("12")
    driver.find_element(By.ID, "z-direction").clear()
    driver.find_element(By.ID, "z-tolerance").clear()
    driver.find_element(By.ID, "zone-save").click()
    wait_until(lambda: zones_of(base, sid)[0]["min_vectors"] == 12, 10, what="the zone to be updated")
    updated = zones_of(base, sid)[0]
    assert updated["direction_deg"] is None and updated["direction_tolerance_deg"] is None
    assert updated["polygon"] == zone["polygon"] and updated["id"] == zone["id"]
    wait.until(lambda d: "≥ 12 vectors" in text(d, "zone-list"))
    # No direction any more: no arrow below the centre.
    wait.until(lambda d: driver.execute_script(OVERLAY_PIXEL_JS, 0.4, 0.52)[3] < 100)

    # Delete (with confirmation): gone from the database and from the preview.
    row = driver.find_element(By.CSS_SELECTOR, f'#zone-list li[data-zone-id="{zone["id"]}"]')
    row.find_element(By.XPATH, ".//button[text()='Delete']").click()
    WebDriverWait(driver, 5).until(EC.alert_is_present())
    driver.switch_to.alert.accept()
    wait_until(lambda: zones_of(base, sid) == [], 10, what="the zone to be deleted")
    wait.until(lambda d: d.find_element(By.ID, "zones-empty").is_displayed())
    wait.until(lambda d: d.execute_script(OVERLAY_PIXEL_JS, 0.4, 0.2)[3] == 0)
    shot(driver, "4-deleted")
    requests.post(f"{base}/streams/{sid}/deactivate", timeout=30)
    return driver.get_log("browser")


def unexpected_console_errors(entries):
    """Console errors, less the refusals the scenario causes on purpose: the bow-tie's 422 and
    the duplicate name's 409 on the zones route."""
    bad = []
    for e in entries:
        if e.get("level") != "SEVERE":
            continue
        message = e.get("message", "")
        if e.get("source") == "network" and "/zones" in message and ("422" in message or "409" in message):
            continue
        bad.append(e)
    return bad


def test_zone_editor_against_real_api_and_worker(api_server, browser, samples):  # noqa: F811
    started = time.monotonic()
    try:
        entries = run_zone_scenario(browser, api_server, f"file://{samples / 'vtest.avi'}")
    except Exception:
        shot(browser, "failure")
        raise
    assert unexpected_console_errors(entries) == [], entries
    assert time.monotonic() - started < 90
