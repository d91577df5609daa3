from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import pytest

from shopsense.catalog import Catalog, Product
from shopsense.rerank import FALLBACK_REASONS, OpenAIRephraser, explain
from shopsense.results import Hit


@pytest.fixture()
def catalog() -> Catalog:
    return Catalog([
        Product(id="a", title="Leather Chesterfield Sofa", category=["Furniture", "Sofas"], price=900),
        Product(id="b", title="Walnut Coffee Table with a very long descriptive title indeed", price=200),
        Product(id="c", title="Throw Pillow", category=["Decor", "Pillows"], price=20),
    ])


def test_reasons_match_sources(catalog: Catalog) -> None:
    hits = [
        Hit("c", 1.0, "copurchase", evidence={"because_item": "a", "lift": 3.2}),
        Hit("c", 1.0, "cf", evidence={"because_item": "a"}),
        Hit("c", 1.0, "content", evidence={"because_item": "a"}),
        Hit("c", 1.0, "sequential", evidence={"because_item": "a"}),
        Hit("c", 1.0, "complement", evidence={"because_item": "a"}),
        Hit("c", 1.0, "new_item", evidence={"similar_to": "a"}),
        Hit("a", 1.0, "bm25", evidence={"matched_terms": ["leather"], "constraints": {"price_max": 1000}}),
        Hit("a", 1.0, "trending", evidence={"category": "Sofas"}),
        Hit("a", 1.0, "popular", evidence={"category": None}),
        Hit("a", 1.0, "personal", evidence={"affinity": 0.3}),
    ]
    r = [h.reason for h in explain(hits, catalog)]
    assert r[0] == "Often bought with Leather Chesterfield Sofa"
    # no event type in the evidence: no claim about what the shopper did with it
    assert r[1] == "Because of your interest in Leather Chesterfield Sofa"
    assert r[2].startswith("Similar to Leather")
    assert "after" in r[3]
    assert r[4].startswith("Goes well with")
    assert r[5] == "New arrival similar to Leather Chesterfield Sofa"
    assert r[6] == "Matches 'leather' and your price limit"
    assert r[7] == "Popular in Sofas"  # undated popularity is not "this week"
    assert r[8] == FALLBACK_REASONS["popular"]
    assert r[9]


def test_reasons_say_what_the_shopper_did_and_when(catalog: Catalog) -> None:
    """The storefront issue: "Because you viewed..." over a history of purchases, and
    "Trending this week" over 2014 timestamps."""
    import time

    def r(src: str, **ev: object) -> str:
        return explain([Hit("c", 1.0, src, evidence={"because_item": "a", **ev})], catalog)[0].reason

    assert r("cf", event_type="purchase") == "Because you bought Leather Chesterfield Sofa"
    assert r("ease", event_type="add_to_cart") == "Because you added Leather Chesterfield Sofa to your cart"
    assert r("als", event_type="view") == "Because you viewed Leather Chesterfield Sofa"
    assert "viewed" not in r("cf") and "viewed" not in r("sequential")
    assert r("sequential", event_type="purchase") == "Often bought after Leather Chesterfield Sofa"
    assert r("trending", category="Sofas", as_of=1_400_000_000) == "Popular in Sofas"
    assert r("trending", category="Sofas", as_of=time.time() - 3600) == "Trending in Sofas this week"
    assert r("trending") == "Popular with shoppers" and "week" not in FALLBACK_REASONS["trending"]
    assert r("bm25", matched_terms=[], low_confidence=True) == "Might be related to your search"


def test_short_titles_keep_the_product_name() -> None:
    cat = Catalog([
        Product(id="pen", title="Paper Mate Medium Point Retractable Gel Pens, 8 Colored Ink Pens (1746)"),
        Product(id="set", title="Walnut Coffee Table Set for the living room with extra storage and more"),
        Product(id="att", title="AT&T 210, Black"),
    ])

    def because(item: str) -> str:
        return explain([Hit("x", 1.0, "copurchase", evidence={"because_item": item})], cat)[0].reason

    assert because("pen") == "Often bought with Paper Mate Medium Point Retractable Gel Pens"
    cut = because("set")
    assert cut == "Often bought with Walnut Coffee Table Set for the living room…"
    assert cut[:-1].split()[-1] not in {"with", "for", "the", "and"}
    assert because("att") == "Often bought with AT&T 210, Black"  # too short a head: the title stays whole


def test_titles_shortened_and_unknown_falls_back(catalog: Catalog) -> None:
    h = explain([Hit("a", 1.0, "copurchase", evidence={"because_item": "b"})], catalog)[0]
    assert h.reason.startswith("Often bought with Walnut") and h.reason.endswith("…")
    assert len(h.reason) < 70
    # an unknown id is never shown: the generic but true fallback is used instead
    h = explain([Hit("a", 1.0, "copurchase", evidence={"because_item": "zzz"})], catalog)[0]
    assert h.reason == "Often bought together"
    assert "bought" in h.reason


def test_never_empty_and_inputs_unchanged(catalog: Catalog) -> None:
    hits = [Hit("a", 1.0, s) for s in [*FALLBACK_REASONS, "mystery", ""]]
    out = explain(hits, catalog)
    assert all(h.reason for h in out)
    assert all(h.reason == "" for h in hits)
    assert all(o is not h for o, h in zip(out, hits))


class _Fake(BaseHTTPRequestHandler):
    calls: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Fake.calls.append(body)
        reasons = json.loads(body["messages"][0]["content"].split("\n", 1)[1])
        answer = json.dumps([f"You'll like this: {r.lower()}" for r in reasons])
        data = json.dumps({"choices": [{"message": {"content": answer}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a: object) -> None:
        pass


def test_openai_rephraser_with_local_fake_server(catalog: Catalog) -> None:
    srv = HTTPServer(("127.0.0.1", 0), _Fake)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        reph = OpenAIRephraser(f"http://127.0.0.1:{srv.server_port}/v1")
        hits = [Hit("c", 1.0, "copurchase", evidence={"because_item": "a"})]
        out = explain(hits, catalog, rephraser=reph)
        assert out[0].reason == "You'll like this: often bought with leather chesterfield sofa"
        assert _Fake.calls and _Fake.calls[-1]["model"]
    finally:
        srv.shutdown()


def test_rephraser_failure_keeps_templates(catalog: Catalog) -> None:
    reph = OpenAIRephraser("http://127.0.0.1:9/v1", timeout=0.5)  # nothing listens there
    out = explain([Hit("c", 1.0, "copurchase", evidence={"because_item": "a"})], catalog, rephraser=reph)
    assert out[0].reason == "Often bought with Leather Chesterfield Sofa"


def test_rephraser_off_by_default() -> None:
    from shopsense.config import Settings

    assert OpenAIRephraser.from_settings(Settings()) is None
    assert OpenAIRephraser.from_settings(Settings(llm_url="http://x/v1")) is not None


def test_search_parser_constraints(catalog: Catalog) -> None:
    """The search service's evidence shape: price {"max": x} / {"min", "max"}, brand, color."""
    def r(cons: dict) -> str:
        return explain([Hit("a", 1.0, "hybrid", evidence={"matched_terms": ["sofa"], "constraints": cons})],
                       catalog)[0].reason
    assert r({"price": {"max": 500.0}}) == "Matches 'sofa' and your price limit"
    assert r({"price": {"min": 100.0, "max": 500.0}}) == "Matches 'sofa' and your price range"
    assert r({"brand": "Acme", "color": "red"}) == "Matches 'sofa' and brand Acme and color red" or \
        r({"brand": "Acme", "color": "red"}) == "Matches 'sofa' and brand Acme, color red"
    assert explain([Hit("a", 1.0, "dense", evidence={"matched_terms": [], "constraints": {}})],
                   catalog)[0].reason == "Related to your search"
