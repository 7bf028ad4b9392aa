"""The operator's view in a real browser (headless Debian chromium), with the network cut off: the service
and the browser share a private network namespace whose only interface is loopback.

Each test asserts that every request the page makes stays on the service and succeeds, that the console
shows no error, and that what the operator came for is on screen; each saves a screenshot."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import REQUIRE_ENV, Traffic, drain, save_screenshot, start_chromium, unavailable
from tests.support.pages import WAITING, waiting_request
from tests.support.service import Server, example_request

WHY_NOT = unavailable()
if WHY_NOT and os.environ.get(REQUIRE_ENV):
    raise RuntimeError(f"{REQUIRE_ENV} is set but the browser tests cannot run: {WHY_NOT}")
pytestmark = [pytest.mark.browser, pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or "")]

TOKEN = "browser-test-token-0123456789abcdef"


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A real `meridian serve` with a token, holding one plan that leaves jobs waiting and one that does not."""
    tmp = tmp_path_factory.mktemp("service")
    srv = Server(tmp, "--db-path", str(tmp / "plans.sqlite"), "--workers", "1",
                 env={"MERIDIAN_API_TOKEN": TOKEN})
    with srv:
        plans = []
        for request in (example_request(), waiting_request()):
            status, _, body = srv.request("POST", "/plan", json.dumps(request).encode(),
                                          headers={"Authorization": f"Bearer {TOKEN}"})
            assert status == 200, body
            plans.append(json.loads(body))
        yield {"base": f"http://127.0.0.1:{srv.port}", "plans": plans}


@pytest.fixture(scope="module")
def browser(service: dict[str, Any]) -> Iterator[Any]:
    """One chromium for the module, signed in once through the login form (as an operator would be)."""
    from selenium.webdriver.common.by import By

    driver = start_chromium()
    try:
        base = service["base"]
        driver.get(base + "/")
        driver.find_element(By.ID, "token").send_keys(TOKEN)
        driver.find_element(By.ID, "sign-in").click()
        _wait(driver, lambda d: d.current_url == base + "/" and d.find_elements(By.ID, "plans"))
        first = drain(driver)
        # The only refusal is the first visit's 401, which is the sign-in form itself (it fetches nothing more);
        # the console reports that one and nothing else.
        assert first.status(base + "/") == [401, 200]
        assert [(u, s) for u, s in first.responses if s >= 400] == [(base + "/", 401)]
        assert first.off_site(base) == [] and first.failures == []
        assert [e for e in first.errors() if not e["message"].startswith(f"{base}/ - ")] == [], first.errors()
        yield driver
    finally:
        driver.quit()


def _wait(driver: Any, cond: Any, timeout_s: float = 20) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout_s, poll_frequency=0.05).until(cond)


def _clean(traffic: Traffic, base: str) -> None:
    """Every request on the service (or in the page), answered below 400, nothing failed, no console error."""
    assert traffic.requests, "the page made no request"
    assert traffic.off_site(base) == []
    assert [(u, s) for u, s in traffic.responses if s >= 400] == []
    assert traffic.failures == []
    assert traffic.errors() == []


def test_the_front_page_lists_the_plans_and_filters_in_place(browser: Any, service: dict[str, Any],
                                                              shots: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    base, (plain, waiting) = service["base"], service["plans"]
    browser.get(base + "/")
    rows = _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#plans tbody tr[data-plan]"))
    assert [r.get_attribute("data-plan") for r in rows] == [waiting["plan_id"], plain["plan_id"]]
    assert all(r.is_displayed() for r in rows)
    save_screenshot(browser, str(shots / "front-page.png"))
    _clean(drain(browser), base)
    # The filter asks the JSON listing and redraws the table without leaving the page.
    Select(browser.find_element(By.ID, "status")).select_by_value("infeasible")
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#plans tbody tr.empty"))
    Select(browser.find_element(By.ID, "status")).select_by_value(waiting["status"])
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, f"#plans tbody tr[data-plan='{waiting['plan_id']}']"))
    traffic = drain(browser)
    assert traffic.status(f"{base}/plans?limit=50&status=infeasible") == [200]
    _clean(traffic, base)


def test_the_plan_page_shows_waiting_jobs_and_the_pool_picture(browser: Any, service: dict[str, Any],
                                                               shots: Path) -> None:
    from selenium.webdriver.common.by import By

    base, plan = service["base"], service["plans"][1]
    browser.get(f"{base}/plans/{plan['plan_id']}/view")
    _wait(browser, lambda d: d.find_elements(By.ID, "pool-picture"))
    assert plan["plan_id"] in browser.find_element(By.TAG_NAME, "h1").text
    rows = browser.find_elements(By.CSS_SELECTOR, "#unplaced tbody tr")
    shown = {r.find_elements(By.TAG_NAME, "td")[0].text: (r.find_elements(By.TAG_NAME, "td")[2].text,
                                                         r.find_elements(By.TAG_NAME, "td")[3].text) for r in rows}
    assert shown == {u["job"]: (u["code"], u["reason"]) for u in plan["unplaced"]}
    assert {job: code for job, (code, _) in shown.items()} == WAITING
    picture = browser.find_element(By.CSS_SELECTOR, "#pool-picture svg")
    assert picture.is_displayed() and picture.size["width"] > 300 and picture.size["height"] > 100
    assert len(picture.find_elements(By.CSS_SELECTOR, "g.pool")) == 4
    actions = browser.find_elements(By.CSS_SELECTOR, "#actions tbody tr")
    assert len(actions) == len(plan["actions"])
    browser.execute_script("document.getElementById('unplaced').scrollIntoView()")
    assert all(r.is_displayed() for r in rows)
    browser.execute_script("window.scrollTo(0, 0)")
    save_screenshot(browser, str(shots / "plan-page.png"))
    _clean(drain(browser), base)


def test_the_api_docs_render_from_the_service_alone(browser: Any, service: dict[str, Any], shots: Path) -> None:
    from selenium.webdriver.common.by import By

    base = service["base"]
    browser.get(base + "/docs")
    title = _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".swagger-ui .info .title"))
    assert "Meridian" in title[0].text
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock-summary-path[data-path='/plan']"))
    save_screenshot(browser, str(shots / "docs.png"))
    traffic = drain(browser)
    assert traffic.status(base + "/openapi.json") == [200]
    _clean(traffic, base)
    browser.get(base + "/redoc")
    _wait(browser, lambda d: "Plan one scheduling epoch" in d.find_element(By.TAG_NAME, "body").text)
    save_screenshot(browser, str(shots / "redoc.png"))
    _clean(drain(browser), base)


def test_a_replay_report_reads_offline(browser: Any, fixtures: Path, tmp_path: Path, shots: Path) -> None:
    from selenium.webdriver.common.by import By

    from service.cli import main

    out = tmp_path / "replay"
    assert main(["replay", "--trace", str(fixtures / "philly_small.csv"), "--fleet", "single:2x8", "--policy", "las",
                 "--out", str(out), "--no-progress"]) == 0
    url = (out / "report.html").as_uri()
    browser.get(url)
    tiers = _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#tiers tbody tr"))
    assert [r.find_elements(By.TAG_NAME, "td")[0].text for r in tiers] == ["premium", "standard", "basic"]
    summary = json.loads((out / "summary.json").read_text())
    facts = {r.find_element(By.TAG_NAME, "th").text: r.find_element(By.TAG_NAME, "td").text
             for r in browser.find_elements(By.CSS_SELECTOR, "#summary tr")}
    assert facts["jobs measured"] == str(summary["jobs_submitted"])
    images = browser.find_elements(By.TAG_NAME, "img")
    assert len(images) == 3
    assert all(browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", i)
               for i in images)
    save_screenshot(browser, str(shots / "replay-report.png"))
    traffic = drain(browser)
    assert traffic.off_site(url) == [] and traffic.failures == [] and traffic.errors() == []
