"""The owner's console in Chromium: every page renders from a real server over the demo
catalogue with simulated traffic; a rule created in the console (previewed, then saved)
changes the storefront's results. Screenshots go to ``test-artifacts/console/``."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta

import pytest

from tests.browser import REPO, chromium, need_browser, new_page, serving
from tests.insights.conftest import demo_products, simulate

pytestmark = pytest.mark.integration

ARTIFACTS = REPO / "test-artifacts" / "console"
need_browser()
httpx = pytest.importorskip("httpx")


@pytest.fixture(scope="module")
def server(tmp_path_factory):  # type: ignore[no-untyped-def]
    from shopsense.engine import Engine

    home = tmp_path_factory.mktemp("console") / "home"
    every = demo_products()
    products = every[:250] + every[2420:2670]  # office supplies, and electronics with prices and images
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=4)
    exposures, events = simulate(products, days=4, sessions_per_day=30, t0=start)
    with Engine(home) as eng:
        eng.add_products(products)
        eng.add_events(events)
        eng.store.add_exposures(exposures)
        eng.build_index()
    with serving(home, tmp_path_factory.mktemp("console-log") / "server.log") as base:
        yield base, home


@pytest.fixture(scope="module")
def page(server):  # type: ignore[no-untyped-def]
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    with chromium() as browser:
        yield new_page(browser)


def _shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _open(page, base: str, tab: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{base}/console#{tab}")
    page.wait_for_selector(f"#page[data-ready={tab}]")


def _key(base: str) -> dict:
    return {"X-API-Key": httpx.get(base + "/storefront/config").json()["demo_key"]}


def test_console_pages(server, page) -> None:  # type: ignore[no-untyped-def]
    base, _ = server
    _open(page, base, "overview")
    summary = httpx.get(base + "/analytics/summary", params={"since": (datetime.now(UTC) - timedelta(days=29))
                                                             .strftime("%Y-%m-%d")}, headers=_key(base)).json()
    shown = int(page.locator("[data-stat=searches] .v").inner_text().replace(",", ""))
    assert shown == summary["searches"] > 0
    assert page.locator("svg[data-chart]").count() == 2
    assert page.locator("#daily-table tbody tr").count() >= 4
    _shot(page, "01-overview")

    _open(page, base, "search")
    rows = page.locator("#top-queries tbody tr")
    assert rows.count() >= 5
    page.click("#top-queries th[data-key=query]")  # sort by query, descending
    queries = page.locator("#top-queries tbody tr td:first-child").all_inner_texts()
    assert queries == sorted(queries, reverse=True)
    page.click("#top-queries th[data-key=query]")
    queries = page.locator("#top-queries tbody tr td:first-child").all_inner_texts()
    assert queries == sorted(queries)
    zero = page.locator("#zero-results tbody tr td:first-child").all_inner_texts()
    assert {"qzxv widget", "unicorn saddle"} <= set(zero)
    assert "taken as typed" in page.locator("#zero-results").inner_text() or "searched as" in \
        page.locator("#zero-results").inner_text()
    _shot(page, "02-search")

    _open(page, base, "recs")
    assert page.locator("#surfaces tbody tr").count() == 2 and page.locator("#positions tbody tr").count() >= 5
    _shot(page, "03-recommendations")
    _open(page, base, "revenue")
    assert "unattributed" in page.locator("#revenue").inner_text()
    _shot(page, "04-revenue")
    _open(page, base, "catalogue")
    assert "never shown" in page.locator("#catalogue").inner_text()
    _shot(page, "05-catalogue")
    _open(page, base, "privacy")
    page.fill("#export-user", "shopper-3")
    page.click("text=Export as JSON")
    page.wait_for_selector("#export-out:not([hidden])")
    assert '"exposures"' in page.locator("#export-out").inner_text()
    _shot(page, "08-privacy")
    assert "shopper-" not in page.locator("#page").inner_text().replace("shopper-3", "")
    assert page.errors == []  # type: ignore[attr-defined]


def test_benchmarks_have_their_own_page(server, page) -> None:  # type: ignore[no-untyped-def]
    base, _ = server
    page.goto(base + "/dashboard")
    page.wait_for_selector("[data-stat=products]")
    assert page.locator("[data-bench]").count() == 0  # the system page no longer holds them
    _shot(page, "10-system")
    if not httpx.get(base + "/bench/results").json():
        pytest.skip("no bench/results/*.json in this checkout")
    page.goto(base + "/benchmarks")
    page.wait_for_selector("details[data-bench][open] svg")
    assert page.locator("details[data-bench]").count() >= 1
    _shot(page, "11-benchmarks")


def test_experiment_in_the_console(server, page) -> None:  # type: ignore[no-untyped-def]
    base, _ = server
    _open(page, base, "experiments")
    page.fill("#exp-form input[name=name]", "lexical-vs-hybrid")
    page.fill("#exp-form input[name=b]", 'bm25 {"mode": "bm25"}')
    page.click("#exp-form button[type=submit]")
    page.wait_for_selector("#experiments tbody tr")
    for i in range(40):  # shoppers searching through the experiment
        r = httpx.get(base + "/experiments/lexical-vs-hybrid/search", params={"q": "pen", "user_id": f"v{i}"}).json()
        if r["hits"] and i % 2:
            httpx.post(base + "/exposures", headers=_key(base), json=[{
                "kind": "click", "list_id": r["list_id"], "user_id": f"v{i}", "surface": "search",
                "item_id": r["hits"][0]["id"], "position": 1, "experiment": "lexical-vs-hybrid"}])
    page.click("button[data-report=lexical-vs-hybrid]")
    page.wait_for_selector("#srm")
    assert page.locator("#exp-arms tbody tr").count() == 2
    _shot(page, "06-experiments")
    assert page.errors == []  # type: ignore[attr-defined]


def test_a_rule_made_in_the_console_reaches_the_storefront(server, page) -> None:  # type: ignore[no-untyped-def]
    base, home = server
    ids = [h["id"] for h in httpx.get(base + "/search", params={"q": "stapler", "k": 8}).json()["hits"]]
    target = ids[-1]
    _open(page, base, "merch")
    page.fill("#rule-form input[name=name]", "pin-a-stapler")
    page.select_option("#rule-form select[name=action]", "pin")
    page.fill("#rule-form input[name=position]", "1")
    page.fill("#rule-form input[name=ids]", target)
    page.fill("#rule-form input[name=queries]", "stapler")
    page.fill("#rule-form input[name=preview_q]", "stapler")
    page.click("#preview-btn")
    page.wait_for_selector("#preview-after li")
    assert page.locator("#preview-after li").first.get_attribute("data-id") == target
    assert page.locator("#preview-before li").first.get_attribute("data-id") == ids[0]
    _shot(page, "07-merchandising-preview")
    page.click("#save-rule")
    page.wait_for_selector("#rules tbody tr")
    assert "pin-a-stapler" in page.locator("#rules").inner_text()
    from shopsense.rerank import load_rules

    assert [r.name for r in load_rules(home).rules] == ["pin-a-stapler"]  # the CLI's file
    _shot(page, "07-merchandising")

    page.goto(base + "/")
    page.fill("#q", "stapler")
    page.press("#q", "Enter")
    page.wait_for_selector("#results .card")
    assert page.locator("#results .card").first.get_attribute("data-id") == target
    _shot(page, "09-storefront-with-rule")

    _open(page, base, "merch")
    page.click("button[data-delete=pin-a-stapler]")
    page.wait_for_selector("div#rules.empty")
    assert load_rules(home).rules == []
