"""/docs and /redoc in a real headless Chromium.

- With the Swagger UI and ReDoc files the set-up installs (scripts/install-deps.sh: PyPI's
  drf-spectacular-sidecar in .vf/docs-assets, the API's default VF_DOCS_ASSETS_DIR), /docs is Swagger
  UI listing every operation of /openapi.json and really calling the API, /redoc is ReDoc listing
  them too, and every script and style sheet comes from the API itself.
- Without them (VF_DOCS_ASSETS_DIR naming an empty folder), both are the built-in page: every
  operation is listed with a form, and the forms really call the API (create a stream, then fetch
  it by id).
"""
import os
import tempfile
from pathlib import Path

import pytest
import requests

from conftest import OUT, ROOT
from test_api_crud import make_database, postgres, start_api  # noqa: F401 (postgres: fixture)

from selenium import webdriver  # noqa: E402 - installed by scripts/install-deps.sh --test
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture
def browser():
    os.environ.setdefault("SE_AVOID_STATS", "true")
    opts = Options()
    opts.binary_location = "/usr/bin/chromium"
    for a in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-dev-shm-usage", f"--user-data-dir={tempfile.mkdtemp(prefix='vf-chrome-')}",
              "--window-size=1200,1600"]:
        opts.add_argument(a)
    d = webdriver.Chrome(options=opts, service=Service("/usr/bin/chromedriver"))
    yield d
    d.quit()


def test_docs_page_lists_and_tries_every_operation(request, bin_dir, postgres, redis_server, browser):
    url, _ = make_database(postgres)
    p, base = start_api(request, bin_dir, "api-docs-browser", {
        "DATABASE_URL": url, "REDIS_URL": redis_server.url,
        "VF_DOCS_ASSETS_DIR": tempfile.mkdtemp(prefix="vf-no-docs-assets-")})
    spec = requests.get(base + "/openapi.json", timeout=5).json()
    op_ids = {op["operationId"] for item in spec["paths"].values() for op in item.values()}
    assert "no Swagger UI/ReDoc files" in p.output() and "serves /docs and /redoc" in p.output()
    # ReDoc's fallback is the same built-in page; its assets are not served.
    assert requests.get(base + "/redoc", timeout=5).text == requests.get(base + "/docs", timeout=5).text
    assert requests.get(base + "/docs/assets/swagger-ui-bundle.js", timeout=5).status_code == 404

    browser.get(base + "/docs")
    WebDriverWait(browser, 10).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "details.op")) == len(op_ids))
    assert {e.get_attribute("id") for e in browser.find_elements(By.CSS_SELECTOR, "details.op")} == op_ids
    assert len(browser.find_elements(By.CSS_SELECTOR, "form[data-op]")) == len(op_ids)

    # Create a stream through the POST /streams form (its body is prefilled with a valid example).
    create = browser.find_element(By.ID, "create_stream")
    create.find_element(By.TAG_NAME, "summary").click()
    create.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(browser, 10).until(lambda d: create.find_element(By.CSS_SELECTOR, "pre.out").text.startswith("201"))
    streams = requests.get(base + "/streams", timeout=5).json()
    assert len(streams) == 1 and streams[0]["name"] == "Demo Feed"

    # Fetch it back through the GET /streams/{id} form.
    get = browser.find_element(By.ID, "get_stream")
    get.find_element(By.TAG_NAME, "summary").click()
    get.find_element(By.CSS_SELECTOR, "input[data-param=id]").send_keys(streams[0]["id"])
    get.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(browser, 10).until(lambda d: get.find_element(By.CSS_SELECTOR, "pre.out").text.startswith("200"))
    assert streams[0]["id"] in get.find_element(By.CSS_SELECTOR, "pre.out").text
    OUT.mkdir(exist_ok=True)
    browser.save_screenshot(str(OUT / "api-docs.png"))
    assert p.stop() == 0


DOCS_ASSETS = ROOT / ".vf" / "docs-assets"


def operation_ids(base):
    spec = requests.get(base + "/openapi.json", timeout=5).json()
    return {op["operationId"]: op.get("tags", ["default"])[0] for item in spec["paths"].values()
            for op in item.values()}


def loaded_urls(browser):
    return [e["name"] for e in browser.execute_script("return performance.getEntriesByType('resource')")]


def test_swagger_ui_and_redoc_from_the_installed_package(request, bin_dir, postgres, redis_server, browser):
    assert (DOCS_ASSETS / "drf_spectacular_sidecar").is_dir(), \
        f"{DOCS_ASSETS} is missing: scripts/install-deps.sh installs Swagger UI and ReDoc there"
    url, _ = make_database(postgres)
    # No VF_DOCS_ASSETS_DIR: the API finds the package where the set-up put it.
    p, base = start_api(request, bin_dir, "api-docs-swagger", {"DATABASE_URL": url, "REDIS_URL": redis_server.url})
    assert "docs page serves" not in p.output(), p.output()
    ops = operation_ids(base)
    requests.post(base + "/streams", json={"name": "Swagger Feed", "rtsp_url": "rtsp://cam.local:8554/a"},
                  timeout=5).raise_for_status()

    # Swagger UI: one operation block per operation, by the tag and operationId Swagger UI puts in its ids.
    browser.get(base + "/docs")
    WebDriverWait(browser, 30).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock")) == len(ops))
    shown = {e.get_attribute("id") for e in browser.find_elements(By.CSS_SELECTOR, ".opblock")}
    assert shown == {f"operations-{tag}-{op}" for op, tag in ops.items()}, shown
    assert browser.find_element(By.CSS_SELECTOR, ".info .title").text.startswith("Vector Flow")
    # Try it out on GET /streams: Swagger UI calls the real API and shows its answer.
    block = browser.find_element(By.ID, f"operations-{ops['list_streams']}-list_streams")
    block.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
    WebDriverWait(browser, 10).until(lambda d: block.find_elements(By.CSS_SELECTOR, ".try-out__btn"))
    block.find_element(By.CSS_SELECTOR, ".try-out__btn").click()
    WebDriverWait(browser, 10).until(lambda d: block.find_elements(By.CSS_SELECTOR, ".execute"))
    block.find_element(By.CSS_SELECTOR, ".execute").click()
    WebDriverWait(browser, 15).until(lambda d: "Swagger Feed" in block.text)
    assert block.find_element(By.CSS_SELECTOR, ".live-responses-table tr.response .response-col_status").text.strip() == "200"
    # Everything the page loaded came from the API itself (no CDN), and nothing went wrong.
    assert all(u.startswith(base + "/") for u in loaded_urls(browser)), loaded_urls(browser)
    assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    OUT.mkdir(exist_ok=True)
    browser.save_screenshot(str(OUT / "api-docs-swagger.png"))

    # ReDoc: a section per operation (ReDoc's `operation/<operationId>` section ids).
    browser.get(base + "/redoc")
    WebDriverWait(browser, 30).until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, "[data-section-id^='operation/']")) >= len(ops))
    sections = {e.get_attribute("data-section-id") for e in
                browser.find_elements(By.CSS_SELECTOR, "[data-section-id^='operation/']")}
    assert {f"operation/{op}" for op in ops} <= sections, sections
    # From the API itself, but for ReDoc's vendor logo, which the page's policy refuses (no byte fetched).
    outside = [e for e in browser.execute_script("return performance.getEntriesByType('resource')")
               if not e["name"].startswith(base + "/")]
    assert [e["name"] for e in outside] in ([], ["https://cdn.redoc.ly/redoc/logo-mini.svg"]), outside
    assert all(e["transferSize"] == 0 and e.get("responseStatus", 0) == 0 for e in outside), outside
    browser.save_screenshot(str(OUT / "api-docs-redoc.png"))
    # The one outside fetch ReDoc tries (its vendor's logo) is refused by the page's policy.
    assert "default-src 'self'" in requests.get(base + "/redoc", timeout=5).headers["Content-Security-Policy"]
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"
              and not ("cdn.redoc.ly/redoc/logo-mini.svg" in e["message"] and "Content Security Policy" in e["message"])]
    assert not severe, severe
    # The assets are answered with their types.
    js = requests.get(base + "/docs/assets/swagger-ui-bundle.js", timeout=5)
    assert js.status_code == 200 and js.headers["Content-Type"].startswith("text/javascript")
    assert requests.get(base + "/docs/assets/swagger-ui.css", timeout=5).headers["Content-Type"].startswith("text/css")
    assert p.stop() == 0
