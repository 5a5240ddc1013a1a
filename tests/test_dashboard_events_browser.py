"""The dashboard's motion event timeline in a real headless Chromium, against the real API and a
real worker.

- Against an API without /events (GET /events answers 404, as before issue 19's API part): the
  panel says events are not available, and the page logs no console error at all (it learns it
  from /openapi.json and never asks /events).
- Against an API with the motion-events routes (skipped, with the reason, while GET /events
  answers 404): a zone over the whole sample video makes the real worker emit events; they arrive
  in the panel live over WS /ws/events, newest first, as GET /events lists them; the zone is
  highlighted while one is active; an ended event's snapshot is fetched with the token into a
  blob: URL and opens larger on click; "Load more" follows next_cursor; the blob URLs are revoked
  when their events leave the page. Screenshots go to test-output/dashboard-events-*.png.
"""
import re
import shutil

import pytest
import requests

from conftest import OUT, ROOT, wait_until
from test_dashboard_browser import api_server, browser, text  # noqa: F401 - fixtures
from test_dashboard_operability import start_api

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

TOKEN = "events-dashboard-token"
PAGE = 2  # the timeline's page size in this test's config.js


def shot(driver, name):
    OUT.mkdir(exist_ok=True)
    driver.save_screenshot(str(OUT / f"dashboard-events-{name}.png"))


def severe(entries):
    # Chrome's own probe for /favicon.ico (the page declares `data:` as its icon, yet a snapshot
    # shown from a blob: URL can set it off) is not an error of the page.
    return [e for e in entries if e.get("level") == "SEVERE" and "/favicon.ico" not in e.get("message", "")]


# The timeline's list rules as the browser runs them (events.js's mergeEvents): newest first by
# started_at then id, a newer state replaces the older, an end is final, at most `max` held.
MERGE_JS = """
const done = arguments[arguments.length - 1];
import('/js/events.js').then((m) => {
  const ev = (id, started, state) => ({id, started_at: started, state});
  let r = m.mergeEvents([], [ev('a', '2026-12-03T10:00:00Z', 'ended'), ev('c', '2026-12-03T10:05:00Z', 'active'),
                             ev('b', '2026-12-03T10:05:00Z', 'active')], 3);
  const order = r.events.map((e) => e.id);
  r = m.mergeEvents(r.events, [ev('c', '2026-12-03T10:05:00Z', 'ended')], 3);
  const ended = r.events.find((e) => e.id === 'c').state;
  r = m.mergeEvents(r.events, [ev('c', '2026-12-03T10:05:00Z', 'active')], 3);
  const stillEnded = r.events.find((e) => e.id === 'c').state;
  r = m.mergeEvents(r.events, [ev('d', '2026-12-03T11:00:00Z', 'active'), {id: 7}, null], 3);
  done({order, ended, stillEnded, bounded: r.events.map((e) => e.id), dropped: r.dropped,
        max: m.MAX_EVENTS, page: m.PAGE_SIZE});
}).catch((e) => done({error: String(e)}));
"""


def test_events_panel_says_not_available_without_events_route(api_server, browser, samples):  # noqa: F811
    r = requests.get(api_server + "/events", timeout=5)
    if r.status_code != 404:
        pytest.skip("GET /events exists on this API: the 'not available' note is for an older API")
    assert "/events" not in requests.get(api_server + "/openapi.json", timeout=5).json()["paths"]
    sid = requests.post(api_server + "/streams", json={"name": "Hall", "rtsp_url": f"file://{samples / 'vtest.avi'}"},
                        timeout=10).json()["id"]
    browser.get(f"{api_server}/#stream={sid}")
    wait = WebDriverWait(browser, 15)
    wait.until(lambda d: "not available" in text(d, "events-state"))
    assert browser.find_element(By.ID, "events-list").find_elements(By.CSS_SELECTOR, "li") == []
    assert not browser.find_element(By.ID, "events-more").is_displayed()
    # The zones of the stream still load (the panel's note is about events only).
    wait.until(lambda d: d.find_element(By.ID, "zones-empty").is_displayed())
    # Another stream selected, then none: the note stays, nothing is asked.
    other = requests.post(api_server + "/streams", json={"name": "Yard", "rtsp_url": "rtsp://127.0.0.1:9/yard"},
                          timeout=10).json()["id"]
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, f'tr[data-stream-id="{other}"] .name-btn'))
    browser.find_element(By.CSS_SELECTOR, f'tr[data-stream-id="{other}"] .name-btn').click()
    wait.until(lambda d: f"#stream={other}" in d.current_url)
    assert "not available" in text(browser, "events-state")
    shot(browser, "1-not-available")
    merged = browser.execute_async_script(MERGE_JS)
    assert merged.get("error") is None, merged
    assert merged["order"] == ["c", "b", "a"]
    assert merged["ended"] == "ended" and merged["stillEnded"] == "ended"
    assert merged["bounded"] == ["d", "c", "b"] and merged["dropped"] == ["a"]
    assert merged["page"] == 20 and merged["max"] >= merged["page"]
    assert severe(browser.get_log("browser")) == []


def static_copy(tmp_path):
    """frontend-static/ with a small page size for the timeline and no Grafana to probe."""
    static = tmp_path / "static"
    shutil.copytree(ROOT / "frontend-static", static)
    config = (static / "config.js").read_text()
    patched = re.sub(r"window\.VF_CONFIG = \{", f"window.VF_CONFIG = {{\n  eventsPageSize: {PAGE},", config)
    assert patched != config
    (static / "config.js").write_text(patched)
    return static


def sign_in(driver, base):
    """The token in this tab's session, as the sign-in dialog keeps it."""
    driver.get(base + "/health")
    driver.execute_script("sessionStorage.setItem('vectorflow.api-token', arguments[0])", TOKEN)


def test_events_timeline_live_against_real_worker(spawn, postgres, redis_server, bin_dir, samples, tmp_path,
                                                  browser):  # noqa: F811
    auth = {"Authorization": f"Bearer {TOKEN}"}
    base = start_api(spawn, postgres, redis_server, bin_dir, samples, tmp_path, "dash-events-api",
                     static_dir=static_copy(tmp_path), VF_API_TOKEN=TOKEN)
    probe = requests.get(base + "/events", headers=auth, timeout=5)
    if probe.status_code == 404:
        pytest.skip("GET /events answers 404: this API has no motion-events routes yet")
    assert probe.status_code == 200, probe.text
    try:
        sid = requests.post(base + "/streams", headers=auth, timeout=10,
                            json={"name": "Hall", "rtsp_url": f"file://{samples / 'vtest.avi'}"}).json()["id"]
        other = requests.post(base + "/streams", headers=auth, timeout=10,
                              json={"name": "Yard", "rtsp_url": "rtsp://127.0.0.1:9/yard"}).json()["id"]
        # The whole frame and short times: the count of moving vectors in the sample video goes above
        # and below 12 every few seconds, so events start and end.
        zone = requests.post(f"{base}/streams/{sid}/zones", headers=auth, timeout=10, json={
            "name": "Floor", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]], "min_vectors": 12,
            "min_duration_s": 0.2, "quiet_time_s": 0.3}).json()
        sign_in(browser, base)
        browser.get(f"{base}/#stream={sid}")
        wait = WebDriverWait(browser, 20)
        wait.until(lambda d: "No motion events" in text(d, "events-state"))
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, f'#zone-list li[data-zone-id="{zone["id"]}"]'))
        assert requests.post(f"{base}/streams/{sid}/activate", headers=auth, timeout=30).ok

        # Live over the WebSocket: an active event appears, and its zone is highlighted.
        WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#events-list li.event.active"))
        WebDriverWait(browser, 10).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, f'#zone-list li.active[data-zone-id="{zone["id"]}"]'))
        first = browser.find_element(By.CSS_SELECTOR, "#events-list li.event.active")
        assert "Floor" in first.text and "active" in first.text and "px/frame" in first.text
        shot(browser, "2-active")

        # Enough events for two pages, some ended with their snapshot.
        def api_events():
            r = requests.get(f"{base}/events", params={"stream_id": sid, "limit": 50}, headers=auth, timeout=5)
            assert r.status_code == 200, r.text
            return r.json()["events"]
        wait_until(lambda: len([e for e in api_events() if e["state"] == "ended" and e["has_snapshot"]]) >= PAGE + 1,
                   120, interval=0.5, what="ended events with snapshots")
        ended = WebDriverWait(browser, 20).until(lambda d: [
            li for li in d.find_elements(By.CSS_SELECTOR, "#events-list li.event:not(.active)")
            if (li.find_element(By.CSS_SELECTOR, "img").get_attribute("src") or "").startswith("blob:")])
        assert requests.post(f"{base}/streams/{sid}/deactivate", headers=auth, timeout=30).ok
        # Shown live, newest first, as the API lists them (the page holds every one it was told of).
        listed = [e["id"] for e in api_events()]
        wait.until(lambda d: [li.get_attribute("data-event-id") for li in
                              d.find_elements(By.CSS_SELECTOR, "#events-list li.event")][:len(listed)] == listed)
        # The thumbnail is a real JPEG decoded by the browser; a click opens it larger.
        img = ended[0].find_element(By.CSS_SELECTOR, "img")
        wait.until(lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img) > 0)
        blob_url = img.get_attribute("src")
        ended[0].find_element(By.CSS_SELECTOR, "button.event-thumb").click()
        wait.until(lambda d: d.find_element(By.ID, "snapshot-dialog").is_displayed())
        large = browser.find_element(By.ID, "snapshot-large")
        wait.until(lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", large) > 0)
        shot(browser, "3-snapshot")
        browser.find_element(By.ID, "snapshot-close").click()
        wait.until(lambda d: not d.find_element(By.ID, "snapshot-dialog").is_displayed())

        # A fresh page (a reload: the same address with its fragment would not load again): the first
        # page of GET /events, then "Load more" with its cursor.
        assert severe(browser.get_log("browser")) == []
        browser.refresh()
        wait.until(lambda d: f"#stream={sid}" in d.current_url and d.find_elements(
            By.CSS_SELECTOR, f'tr[data-stream-id="{sid}"].selected'))
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#events-list li.event")) == PAGE)
        more = wait.until(lambda d: (lambda b: b if b.is_displayed() else None)(d.find_element(By.ID, "events-more")))
        more.click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#events-list li.event")) >= min(2 * PAGE, len(listed)))
        shown = [li.get_attribute("data-event-id") for li in browser.find_elements(By.CSS_SELECTOR, "#events-list li.event")]
        assert shown == listed[:len(shown)]
        # The zone is highlighted exactly while the API has an active event of it.
        active_zones = {e["zone_id"] for e in api_events() if e["state"] == "active"}
        wait.until(lambda d: {li.get_attribute("data-zone-id") for li in
                              d.find_elements(By.CSS_SELECTOR, "#zone-list li.active")} == active_zones)
        shot(browser, "4-load-more")

        # Another stream selected: the events leave the page and their blob: URLs are revoked.
        blob_url = wait.until(lambda d: next((i.get_attribute("src") for i in d.find_elements(
            By.CSS_SELECTOR, "#events-list img") if (i.get_attribute("src") or "").startswith("blob:")), None))
        browser.find_element(By.CSS_SELECTOR, f'tr[data-stream-id="{other}"] .name-btn').click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#events-list li.event") == [])
        assert severe(browser.get_log("browser")) == []
        # (The probe's own failed fetch of the revoked URL is the only console error from here on.)
        revoked = browser.execute_async_script(
            "const done = arguments[1]; fetch(arguments[0]).then(() => done(false), () => done(true));", blob_url)
        assert revoked is True
        # The token never reached the page's markup.
        assert TOKEN not in browser.page_source
    finally:
        for s in requests.get(base + "/streams", headers=auth, timeout=5).json():
            requests.delete(f"{base}/streams/{s['id']}", headers=auth, timeout=30)
