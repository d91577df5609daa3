"""Issue 6: search results pass through the engine's re-ranking stage: rules saved in
the home act on the next query, limited by surface and exact query when they say so."""

from __future__ import annotations

from shopsense.rerank import RULES_FILE, Rule, RuleSet, save_rules


def test_search_obeys_rules_saved_in_the_home(built_engine) -> None:  # type: ignore[no-untyped-def]
    eng = built_engine
    base = eng.search("samsung tv", k=10)
    other = eng.search("leather sofa", k=10)
    assert "rerank" not in base.info and len(base) >= 3
    drop = base.ids[0]
    promo = next(p.id for p in eng.catalog().products if p.id not in set(base.ids) | set(other.ids))
    save_rules(eng.home, RuleSet(rules=[
        Rule(name="hide-first", action="exclude", match={"ids": [drop]}, surfaces=["search"]),
        Rule(name="tv-promo", action="pin", position=2, match={"ids": [promo]}, queries=["Samsung TV"])]))
    try:
        res = eng.search("samsung tv", k=10)
        assert drop not in res.ids and res.ids[1] == promo
        assert res.ids[0] == base.ids[1]  # the rest keep their order
        assert res.info["rerank"]["rules_applied"]["tv-promo"] == [promo]
        assert res.info["query"] == base.info["query"]  # what the service understood is kept
        assert all(h.reason for h in res.hits)
        res2 = eng.search("leather sofa", k=10)
        assert promo not in res2.ids  # the pin is limited to its query
    finally:
        (eng.home / RULES_FILE).unlink()
    assert eng.search("samsung tv", k=10).ids == base.ids


def test_llm_rephraser_from_settings_rewords_engine_reasons(built_engine) -> None:  # type: ignore[no-untyped-def]
    """Settings.llm_url (off by default) sends the final reasons to an OpenAI-compatible
    endpoint (a local fake here); an unreachable endpoint keeps the service's reasons."""
    import threading
    from http.server import HTTPServer

    from shopsense.engine import Engine
    from tests.rerank.test_explain import _Fake

    plain = built_engine.search("samsung tv", k=5)
    srv = HTTPServer(("127.0.0.1", 0), _Fake)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        with Engine(built_engine.home, llm_url=f"http://127.0.0.1:{srv.server_port}/v1", llm_model="m",
                    llm_api_key="sk-test") as eng:
            res = eng.search("samsung tv", k=5)
    finally:
        srv.shutdown()
    assert res.ids == plain.ids
    assert [h.reason for h in res.hits] == [f"You'll like this: {h.reason.lower()}" for h in plain.hits]
    assert _Fake.calls[-1]["model"] == "m"
    with Engine(built_engine.home, llm_url="http://127.0.0.1:9/v1") as eng:  # nothing listens there
        assert [h.reason for h in eng.search("samsung tv", k=5).hits] == [h.reason for h in plain.hits]
