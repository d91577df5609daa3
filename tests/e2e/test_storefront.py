"""End-to-end: a real uvicorn server over a real Office slice, driven by headless Chromium.

Search (with a typo), facets, a product page (similar, complements, bundle), add to
cart (cart completion), and recommendations that change after a few clicks; every
step is screenshotted into ``test-artifacts/e2e/``. Skips only when Chromium is absent
(``scripts/install-browser.sh`` installs it).
"""

from __future__ import annotations

import json
import shutil

import pytest

from tests.browser import REPO, chromium, need_browser, new_page, serving

pytestmark = pytest.mark.integration

ARTIFACTS = REPO / "test-artifacts" / "e2e"
OFFICE = REPO.parent / "shared" / "datasets" / "rec" / "amazon-office"
need_browser()
httpx = pytest.importorskip("httpx")


def _has(module: str, cls: str) -> bool:
    import importlib

    try:
        return hasattr(importlib.import_module(module), cls)
    except ImportError:
        return False


@pytest.fixture(scope="module")
def server(tmp_path_factory):  # type: ignore[no-untyped-def]
    if not OFFICE.exists():
        pytest.skip(f"Amazon Office dataset not found at {OFFICE}")
    from shopsense.datasets import load_office_events, load_office_products
    from shopsense.engine import Engine

    home = tmp_path_factory.mktemp("e2e") / "home"
    events = load_office_events("purchase", limit_users=40)
    used = {e.item_id for e in events}
    with Engine(home) as eng:
        eng.add_products([p for p in load_office_products() if p.id in used])
        eng.add_events(events)
        eng.build_index()
        if _has("shopsense.recommend", "RecommendService"):
            eng.train()
    with serving(home, tmp_path_factory.mktemp("e2e-log") / "server.log") as base:
        yield base


@pytest.fixture(scope="module")
def page(server):  # type: ignore[no-untyped-def]
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    with chromium() as browser:
        yield new_page(browser)


def _shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _recs(page) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    el = page.locator("#recs")
    return int(el.get_attribute("data-version") or 0), el.get_attribute("data-ids") or ""


def test_storefront_journey(server, page):  # type: ignore[no-untyped-def]
    has_recommend = _has("shopsense.recommend", "RecommendService")
    events0 = httpx.get(server + "/health").json()["events"]
    page.goto(server + "/")
    page.wait_for_selector("#user option", state="attached")
    user = page.locator("#user").input_value()
    assert user, "the demo user list is empty"
    if has_recommend:
        page.wait_for_selector("#recs .card[data-surface=recommend]")
    _, ids0 = _recs(page)

    # search with a typo: results, a correction, facets and reasons
    page.fill("#q", "printr ink cartrige")
    page.press("#q", "Enter")
    page.wait_for_selector("#results .card")
    titles = " ".join(page.locator("#results .card .title").all_inner_texts()).lower()
    assert "ink" in titles or "cartridge" in titles or "printer" in titles
    assert page.locator("#corrected").count() == 1, "the typo correction is not shown"
    assert page.locator("#facets .facet").count() >= 2
    reasons = [r for r in page.locator("#results .card .reason").all_inner_texts() if r.strip()]
    assert len(reasons) == page.locator("#results .card").count()
    _shot(page, "01-search")

    # a facet narrows the results
    facet = page.locator("#facets .facet[data-facet=brand]").first
    brand = facet.get_attribute("data-value")
    facet.click()
    page.wait_for_selector("#active-filters .chip")
    page.wait_for_function(
        "b => [...document.querySelectorAll('#results .card .meta')].every(m => m.textContent.includes(b))",
        arg=brand)
    _shot(page, "02-facet")

    # product page: similar items, complements, a bundle
    page.locator("#results .card").first.click()
    page.wait_for_selector("#item-detail h1")
    page.wait_for_selector("#complements .card, #complements .empty")
    page.wait_for_selector("#bundle .card, #bundle .empty")
    if has_recommend:
        page.wait_for_selector("#similar .card")
    _shot(page, "03-product")

    # add to cart: the cart asks for completion
    page.click("#add-main")
    page.wait_for_selector("#cart-items li")
    page.wait_for_selector("#cart-complete .card, #cart-complete .empty")
    assert page.locator("#cart-complete .card").count() >= 1, "cart completion returned nothing"
    _shot(page, "04-cart")
    page.click("#cart-close")

    # a few more clicks on complements/similar items: recommendations must follow
    for _ in range(3):
        nxt = page.locator("#complements .card, #similar .card").first
        if not nxt.count():
            break
        nxt.click()
        page.wait_for_selector("#item-detail h1")
        page.click("#add-main")
        page.wait_for_selector("#cart-items li")
        page.click("#cart-close")
    page.goto(server + "/#/")
    page.reload()
    page.wait_for_selector("#recs .card, #recs .empty")
    sent = httpx.get(server + "/health").json()["events"] - events0
    assert sent >= 6, f"only {sent} events reached the store"
    if not has_recommend:
        _shot(page, "05-recommendations")
        pytest.skip("shopsense.recommend.RecommendService is not in the tree yet: "
                    "cannot check that recommendations change")
    page.wait_for_selector("#recs .card[data-surface=recommend]")
    _, ids1 = _recs(page)
    assert ids1 and ids1 != ids0, "recommendations did not change after the clicks"
    rec_reasons = page.locator("#recs .card .reason").all_inner_texts()
    assert all(r.strip() for r in rec_reasons)
    _shot(page, "05-recommendations")
    assert not page.errors, page.errors  # type: ignore[attr-defined]


def test_dashboard(server, page):  # type: ignore[no-untyped-def]
    page.goto(server + "/dashboard")
    page.wait_for_selector("[data-stat=products]")
    n = int(page.locator("[data-stat=products] .v").inner_text().replace(",", ""))
    assert n == httpx.get(server + "/health").json()["products"]
    page.wait_for_selector("#latency svg")
    _shot(page, "06-dashboard")
    bench = json.loads(httpx.get(server + "/bench/results").text)
    if bench:  # the benchmark charts have their own page (the console's issue moved them)
        page.goto(server + "/benchmarks")
        page.wait_for_selector("details[data-bench][open] svg")
        _shot(page, "06-benchmarks")
