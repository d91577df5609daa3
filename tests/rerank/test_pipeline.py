from __future__ import annotations

import copy
import time

import numpy as np
import pytest

from shopsense.catalog import Catalog, Product
from shopsense.errors import ValidationError
from shopsense.rerank import ExposureBounds, Reranker, Rule, RuleSet, apply, save_rules
from shopsense.results import Hit

from .conftest import candidate_lists


@pytest.fixture()
def big() -> tuple[Catalog, np.ndarray, list[Hit]]:
    rng = np.random.default_rng(0)
    prods = [Product(id=f"p{i}", title=f"Item {i}", brand=f"b{i % 5}", category=["Root", f"c{i % 7}"],
                     price=float(i), in_stock=i % 17 != 3) for i in range(500)]
    emb = rng.normal(size=(500, 384)).astype(np.float32)
    hits = [Hit(f"p{i}", float(100 - i), "copurchase", evidence={"because_item": "p7", "lift": 2.0})
            for i in range(100)]
    return Catalog(prods), emb, hits


def test_returns_new_objects_and_never_mutates(big) -> None:
    cat, emb, hits = big
    before = copy.deepcopy(hits)
    emb0 = emb.copy()
    rules = RuleSet(hide_out_of_stock=True, rules=[Rule(name="b", action="boost", match={"brand": "b1"})])
    out, rep = apply(hits, cat, embeddings=emb, diversity=0.3, method="dpp", category_cap=3, rules=rules,
                     fairness=ExposureBounds(k=10, max_share=0.3))
    assert hits == before and np.array_equal(emb, emb0)
    assert all(o is not h for o in out for h in hits[:3])
    assert rep.changed and rep.moved and rep.removed["p3"] == "out of stock"
    assert rep.steps == ["hide_out_of_stock", "boost_bury", "diversity_dpp", "category_cap", "fairness"]
    assert {h.id for h in out} == {h.id for h in hits} - set(rep.removed)
    # the report's moves describe the returned list exactly
    pos_in = {h.id: i for i, h in enumerate(hits)}
    for j, h in enumerate(out):
        if pos_in[h.id] != j:
            assert rep.moved[h.id] == (pos_in[h.id], j)
    assert all(h.reason == "Often bought with Item 7" for h in out)


def test_noop_without_options_keeps_order(big) -> None:
    cat, _, hits = big
    out, rep = apply(hits, cat)
    assert [h.id for h in out] == [h.id for h in hits] and not rep.changed


def test_diversity_without_embeddings_uses_categories(big) -> None:
    cat, _, hits = big
    out, rep = apply(hits, cat, diversity=0.5, k=10, method="mmr")
    assert "diversity_mmr" in rep.steps
    assert len({cat.category_leaf[cat.index[h.id]] for h in out[:10]}) == 7
    out, rep = apply(hits, cat, diversity=0.5, k=10)  # the default, MaxSum
    assert "diversity_maxsum" in rep.steps
    assert len({cat.category_leaf[cat.index[h.id]] for h in out[:10]}) >= 5
    bare = Catalog([Product(id=h.id, title="x") for h in hits])
    out, rep = apply(hits, bare, diversity=0.5)
    assert "skipped" in rep.stats["diversity"] and [h.id for h in out] == [h.id for h in hits]


def test_parameters_validated(big) -> None:
    cat, _, hits = big
    with pytest.raises(ValidationError, match="'diversity'"):
        apply(hits, cat, diversity=2.0)
    with pytest.raises(ValidationError, match="'method'"):
        apply(hits, cat, method="xquad")  # type: ignore[arg-type]


def test_fast_enough_for_100_candidates(big) -> None:
    cat, emb, hits = big
    apply(hits, cat, embeddings=emb, diversity=0.3)
    ts = []
    for _ in range(30):
        t = time.perf_counter()
        apply(hits, cat, embeddings=emb, diversity=0.3, category_cap=3)
        ts.append(time.perf_counter() - t)
    # target < 2 ms; the minimum is robust to a busy shared CPU (the median is not)
    assert min(ts) < 0.004


def test_reranker_from_home_per_surface_lambda(tmp_path, big) -> None:
    cat, emb, hits = big
    save_rules(tmp_path, RuleSet(rules=[Rule(name="pin", action="pin", position=1, match={"ids": ["p99"]})]))
    rr = Reranker.from_home(tmp_path, lambdas={"search": 0.0, "recommend": 0.9}, method="mmr")
    s, _ = rr.rerank(hits, cat, embeddings=emb, context={"surface": "search"})
    r, rep = rr.rerank(hits, cat, embeddings=emb, context={"surface": "recommend"})
    assert s[0].id == r[0].id == "p99"
    assert [h.id for h in s[1:10]] == [f"p{i}" for i in range(9)]
    assert {h.id for h in r[:11]} != {"p99", *(f"p{i}" for i in range(10))}  # a different set
    assert "diversity_mmr" in rep.steps
    scores = [h.score for h in r[1:10]]
    assert scores == sorted(scores, reverse=True)  # the diverse set is shown best-first


def test_real_lists_every_hit_has_a_source_matching_reason(office) -> None:
    """Issue 6: co-purchase candidates say 'bought with'; every reason is non-empty."""
    cat = office["catalog"]
    for hits in candidate_lists(office, n_lists=30):
        out, _ = apply(hits, cat, diversity=0.3, category_cap=3)
        for h in out:
            assert h.reason.startswith("Often bought with ")
            anchor = cat.products[cat.index[h.evidence["because_item"]]].title
            assert h.reason[len("Often bought with "):].rstrip("…") in anchor


def test_similarity_matrix_and_pool(big) -> None:
    """Items without text or categories (e.g. Beauty) diversify with a given similarity."""
    _cat, _, hits = big
    n = len(hits)
    S = np.zeros((n, n))
    S[:10, :10] = 1.0  # the ten best are near duplicates
    np.fill_diagonal(S, 1.0)
    bare = Catalog([Product(id=h.id, title="x") for h in hits])
    out, _rep = apply(hits, bare, similarity=S, diversity=0.5, k=10, pool=20, method="mmr")
    top = [int(h.id[1:]) for h in out[:10]]
    assert top[0] == 0 and sum(i < 10 for i in top) == 1
    assert set(top) - {0} <= set(range(10, 20))  # nothing from beyond the pool
    assert [h.id for h in out[20:]] == [h.id for h in hits[20:]]
