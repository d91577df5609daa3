"""The storefront's chat panel in headless Chromium against a real server: a search,
a refinement, a comparison and a policy question; cited products show as cards.
Screenshots go to ``test-artifacts/assist/``."""

from __future__ import annotations

import shutil

import pytest

from tests.browser import REPO, chromium, need_browser, new_page, serving

pytestmark = pytest.mark.integration

ARTIFACTS = REPO / "test-artifacts" / "assist"
need_browser()


@pytest.fixture(scope="module")
def server(shop_home, tmp_path_factory):  # type: ignore[no-untyped-def]
    home = tmp_path_factory.mktemp("panel") / "home"
    shutil.copytree(shop_home, home)
    with serving(home, home.parent / "server.log", extra=["--workers", "1"]) as base:
        yield base


def test_chat_panel_shows_cited_products_as_cards(server, shop):  # type: ignore[no-untyped-def]
    from collections import Counter

    brand = Counter(p.brand for p in shop.catalog().products if p.category == ["toner cartridge"]).most_common(1)[0][0]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with chromium() as browser:
        page = new_page(browser)
        errors = page.errors
        page.goto(server + "/")
        fab = page.locator("#ss-assistant-open")
        fab.wait_for()
        assert page.locator("#ss-assistant").is_hidden()
        fab.click()
        panel = page.locator("#ss-assistant")
        assert panel.is_visible()

        def say(text: str, n: int) -> None:
            page.fill(".ssa-input", text)
            page.press(".ssa-input", "Enter")
            page.wait_for_function(
                f"document.querySelectorAll('#ss-assistant .ssa-msg.bot[data-intent]').length >= {n}")

        say("I need a toner cartridge", 1)
        first = panel.locator(".ssa-msg.bot[data-intent]").last
        assert first.get_attribute("data-intent") == "search"
        cards = first.locator(".ssa-card")
        assert cards.count() >= 3
        assert "toner" in cards.first.inner_text().lower()
        say(f"only {brand}", 2)
        refined = panel.locator(".ssa-msg.bot[data-intent]").last
        assert refined.get_attribute("data-intent") == "refine"
        assert refined.locator(".ssa-chip").first.inner_text() == f"brand {brand}"
        ids = [c.get_attribute("data-id") for c in refined.locator(".ssa-card").all()]
        assert ids and all(shop.product(i).brand == brand for i in ids)
        page.screenshot(path=str(ARTIFACTS / "chat_panel.png"))
        say("compare the first two", 3)
        cmp_ = panel.locator(".ssa-msg.bot[data-intent]").last
        assert cmp_.locator(".ssa-table tbody tr").count() >= 3
        say("what is your return policy?", 4)
        pol = panel.locator(".ssa-msg.bot[data-intent]").last
        link = pol.locator(".ssa-link")
        assert link.inner_text() == "Read: Returns and refunds"
        assert link.get_attribute("href").startswith("/assistant/policies/shop_policies.md#")
        page.screenshot(path=str(ARTIFACTS / "chat_panel_policy.png"))
        # a card opens the product on the storefront
        panel.locator(".ssa-msg.bot[data-intent]").nth(1).locator(".ssa-card").first.click()
        page.wait_for_function("location.hash.startsWith('#/item/')")
        assert errors == [], errors
        browser.close()
