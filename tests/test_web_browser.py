"""The unsubscribe page in a real browser: headless Chromium driven by Selenium (Debian packages).

Skipped only when /usr/bin/chromium or /usr/bin/chromedriver is missing
(``apt-get install chromium chromium-driver``); everything else about the
page is also tested over plain HTTP in test_web_unsubscribe.py.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from dispatcher.core import tokens
from dispatcher.store import Store
from dispatcher.store.models import Membership, Subscriber
from dispatcher.web import RunningServer, create_app, start_server
from tests.test_feedback_policy import seed

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER),
                                reason="Debian chromium and chromium-driver are not installed")

webdriver = pytest.importorskip("selenium.webdriver")


@pytest.fixture
def browser() -> Iterator[Any]:
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-extensions", "--no-first-run",
                 "--disable-sync", "--disable-default-apps", "--window-size=500,900"):
        options.add_argument(flag)
    # A phone: 390 CSS pixels wide, device pixel ratio 3.
    options.add_experimental_option("mobileEmulation", {
        "deviceMetrics": {"width": 390, "height": 844, "pixelRatio": 3.0}})
    driver = webdriver.Chrome(service=Service(executable_path=str(DRIVER)), options=options)
    driver.set_page_load_timeout(20)
    yield driver
    driver.quit()


def wait_for(driver: Any, text: str) -> None:
    """Wait for the page a form submission loads (the old page goes stale meanwhile)."""
    from selenium.common.exceptions import (
        NoSuchElementException,
        StaleElementReferenceException,
        WebDriverException,
    )
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def shown(driver: Any) -> bool:
        try:
            return text in driver.find_element(By.TAG_NAME, "main").text
        except WebDriverException as exc:
            # Chromium also reports an element of the page being replaced this way (seen
            # once in CI), besides as a stale element.
            if "does not belong to the document" in str(exc):
                return False
            raise

    WebDriverWait(driver, 15, ignored_exceptions=(
        NoSuchElementException, StaleElementReferenceException)).until(shown)


@pytest.fixture
def web(store: Store) -> Iterator[RunningServer]:
    server = start_server(create_app(store, "https://news.example.com/unsubscribe/{token}"))
    yield server
    server.stop()


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_preferences_then_unsubscribe_in_chromium(store: Store, web: RunningServer,
                                                  browser: Any) -> None:
    from selenium.webdriver.common.by import By

    driver = browser
    cid, ids, lists = seed(store, ["reader@example.com"])
    sid = ids["reader@example.com"]
    url = f"{web.url}/unsubscribe/{tokens.sign(store.secret(), 'unsub', cid, sid)}"

    driver.get(url)
    assert "r***@example.com" in driver.find_element(By.TAG_NAME, "main").text
    # On a phone: no sideways scrolling, a full-width button. No JavaScript can run at
    # all (the page's CSP is default-src 'none'); the forms work without it.
    assert driver.execute_script("return window.innerWidth") == 390
    assert driver.execute_script("return document.documentElement.scrollWidth") <= 390
    assert driver.find_element(By.CSS_SELECTOR, "button[name=confirm]").size["width"] >= 300
    boxes = {b.get_attribute("value"): b for b in driver.find_elements(
        By.CSS_SELECTOR, "input[name=keep]")}
    assert set(boxes) == {str(lists["weekly"]), str(lists["offers"])}
    assert all(b.is_selected() for b in boxes.values())
    boxes[str(lists["offers"])].click()
    driver.find_element(By.CSS_SELECTOR, "button[name=save]").click()
    wait_for(driver, "Your choices are saved.")
    with store.engine.connect() as conn:
        by_list = dict(conn.execute(sa.select(Membership.list_id, Membership.status)).all())
    assert by_list == {lists["weekly"]: "subscribed", lists["offers"]: "unsubscribed"}

    driver.get(url)
    kept = {b.get_attribute("value"): b.is_selected() for b in driver.find_elements(
        By.CSS_SELECTOR, "input[name=keep]")}
    assert kept == {str(lists["weekly"]): True, str(lists["offers"]): False}
    driver.find_element(By.CSS_SELECTOR, "button[name=confirm]").click()
    wait_for(driver, "You are unsubscribed")
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(Subscriber.status)).scalar() == "unsubscribed"

    driver.get(url)  # the used link is refused, revealing nothing
    text = driver.find_element(By.TAG_NAME, "main").text
    assert "not valid" in text and "example.com" not in text
    driver.get(url[:-4])  # truncated
    assert driver.find_element(By.TAG_NAME, "main").text == text
