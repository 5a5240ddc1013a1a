"""/docs in a real headless Chromium: every operation of /openapi.json is listed with a form, and
the forms really call the API (create a stream, then fetch it by id)."""
import os
import tempfile

import pytest
import requests

from conftest import OUT
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
    p, base = start_api(request, bin_dir, "api-docs-browser", {"DATABASE_URL": url, "REDIS_URL": redis_server.url})
    spec = requests.get(base + "/openapi.json", timeout=5).json()
    op_ids = {op["operationId"] for item in spec["paths"].values() for op in item.values()}

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
