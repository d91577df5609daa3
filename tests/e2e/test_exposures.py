"""The storefront records exposures (``POST /exposures``) for the owner's analytics and
experiments: one impression per engine list it shows (list id, surface, the ids in the
order shown) and a click with the list id and 1-based position of the card clicked.
Read back through ``GET /privacy/users/{id}/export``, in headless Chromium over
``shopsense serve --demo``.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from .conftest import open_page, shot

pytestmark = pytest.mark.integration

httpx = pytest.importorskip("httpx")

QUERY = "stapler"


def _exposures(base: str, key: str, user: str, session: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{base}/privacy/users/{user}/export", headers={"X-API-Key": key}, timeout=120)
    r.raise_for_status()
    return [x for x in r.json()["exposures"] if x.get("session_id") == session]


def _wait_for(base: str, key: str, user: str, session: str, done: Any, seconds: float = 30.0) -> list[dict[str, Any]]:
    """The page's exposures once ``done(rows)`` holds (they are sent in batches, ~300 ms
    after they happen), or what was stored when ``seconds`` ran out."""
    deadline = time.monotonic() + seconds
    while True:
        rows = _exposures(base, key, user, session)
        if done(rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.5)


def test_impressions_and_clicks_are_recorded_with_list_id_and_position(demo_server, browser) -> None:  # type: ignore[no-untyped-def]
    key = httpx.get(demo_server + "/storefront/config", timeout=60).json()["demo_key"]
    assert key, "the demo server gives the storefront a write key"
    page = open_page(browser)
    warnings: list[str] = []
    page.on("console", lambda m: warnings.append(m.text) if m.type in ("warning", "error") else None)

    # home: the recommendations are an engine list, shown -> one impression
    page.goto(demo_server + "/")
    page.wait_for_selector("#recs .card[data-surface=recommend]")
    page.wait_for_selector("#popular .card")
    user = page.eval_on_selector("#user", "s => s.value")
    session = page.evaluate("() => state.session")
    recs = page.eval_on_selector_all("#recs .card", "els => els.map(e => e.dataset.id)")
    shot(page, "exposures-01-home")

    # a search, then the second result
    page.fill("#q", QUERY)
    with page.expect_response(lambda r: "/search?" in r.url):
        page.press("#q", "Enter")
    page.wait_for_function("q => document.querySelector('#view-search').dataset.q === q", arg=QUERY)
    shown = page.eval_on_selector_all("#results .card", "els => els.map(e => e.dataset.id)")
    assert len(shown) >= 2, shown
    shot(page, "exposures-02-search")
    page.locator("#results .card").nth(1).locator(".title").click()
    page.wait_for_function("id => document.querySelector('#view-item').dataset.id === id", arg=shown[1])
    # the product page's lists, then the item into the cart from its page (credited to the search)
    for sel in ("#similar", "#complements", "#bundle"):
        page.wait_for_selector(f"{sel}[data-for='{shown[1]}']")
    product_lists = {sel: page.eval_on_selector_all(f"{sel} .card", "els => els.map(e => e.dataset.id)")
                     for sel in ("#similar", "#complements")}
    page.click("#add-main")
    page.wait_for_selector(f"#cart-items li[data-id='{shown[1]}']")
    # the cart's "goes with it" list once the engine answered (the empty cart's placeholder is
    # there before: waiting on any ".empty" returned before the answer and raced its impression)
    page.wait_for_function("() => { const el = document.querySelector('#cart-complete');"
                           " return el.querySelector('.card') || (el.querySelector('.empty')"
                           " && !el.textContent.startsWith('Add something')); }")
    cart_list = page.eval_on_selector_all("#cart-complete .card", "els => els.map(e => e.dataset.id)")
    assert cart_list, page.inner_text("#cart-complete")

    def search_impressions(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [x for x in rows if x["kind"] == "impression" and x["surface"] == "search"]

    def clicks(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [x for x in rows if x["kind"] == "click"]

    def home_impressions(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [x for x in rows if x["kind"] == "impression" and x["surface"] == "recommend" and x["items"] == recs]

    def carts(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [x for x in rows if x["kind"] == "add_to_cart"]

    def cart_impressions(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [x for x in rows if x["kind"] == "impression" and x["surface"] == "cart"]

    rows = _wait_for(demo_server, key, user, session, lambda rows: search_impressions(rows) and clicks(rows)
                     and home_impressions(rows) and carts(rows) and cart_impressions(rows))
    summary = [(x["kind"], x["surface"], x.get("position"), len(x.get("items") or [])) for x in rows]

    # the search: one impression of what was shown, in the order shown
    imps = search_impressions(rows)
    assert len(imps) == 1, summary
    imp = imps[0]
    assert imp["items"] == shown, (imp["items"], shown)
    assert imp["query"] == QUERY
    assert imp["list_id"] and imp["n_results"] >= len(shown)
    # the click on the second card: same list, position 2 (1-based)
    cl = clicks(rows)
    assert len(cl) == 1, summary
    assert cl[0]["item_id"] == shown[1] and cl[0]["position"] == 2, cl[0]
    assert cl[0]["list_id"] == imp["list_id"] and cl[0]["surface"] == "search", cl[0]
    # the home recommendations produced an impression of the ids shown
    home = home_impressions(rows)
    assert len(home) == 1, summary
    assert home[0]["list_id"] and home[0]["list_id"] != imp["list_id"]

    # added to the cart from the product page: credited to the list it was clicked from
    ca = carts(rows)
    assert len(ca) == 1, summary
    assert (ca[0]["item_id"], ca[0]["position"], ca[0]["list_id"], ca[0]["quantity"]) == (shown[1], 2, imp["list_id"], 1)
    # every other list shown got its impression, with the ids it showed
    for ids in product_lists.values():
        assert [x for x in rows if x["kind"] == "impression" and x["items"] == ids], (ids, summary)
    assert {x["surface"] for x in rows if x["kind"] == "impression"} >= {"search", "recommend", "cart"}, summary
    assert [x for x in cart_impressions(rows) if x["items"] == cart_list], (cart_list, summary)

    # the owner's analytics see the click at position 2 of the search surface
    pos = httpx.get(demo_server + "/analytics/positions", params={"surface": "search"},
                    headers={"X-API-Key": key}, timeout=120).json()["rows"]
    at2 = [r for r in pos if r["position"] == 2]
    assert at2 and at2[0]["clicks"] >= 1 and at2[0]["shown"] >= 1, pos

    shot(page, "exposures-03-product")
    assert not page.errors  # type: ignore[attr-defined]
    assert not [w for w in warnings if "exposure" in w.lower()], warnings


def test_what_is_queued_when_the_shopper_leaves_is_still_sent(demo_server, browser) -> None:  # type: ignore[no-untyped-def]
    key = httpx.get(demo_server + "/storefront/config", timeout=60).json()["demo_key"]
    page = open_page(browser)
    page.goto(demo_server + "/")
    page.wait_for_selector("#recs .card")
    user = page.eval_on_selector("#user", "s => s.value")
    session = page.evaluate("() => state.session")
    item = page.locator("#recs .card").first.get_attribute("data-id")
    # add to cart and leave at once, before the ~300 ms batch: sent on pagehide (keepalive)
    page.evaluate("() => { document.querySelector('#recs .card button.add').click(); location.href = 'about:blank'; }")
    page.wait_for_url("about:blank")

    def added(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [x for x in rows if x["kind"] == "add_to_cart" and x["item_id"] == item]

    rows = _wait_for(demo_server, key, user, session, added)
    assert [(x["surface"], x["position"]) for x in added(rows)] == [("recommend", 1)], rows
    imp = [x for x in rows if x["kind"] == "impression" and x["surface"] == "recommend"]
    assert imp and added(rows)[0]["list_id"] == imp[-1]["list_id"]
