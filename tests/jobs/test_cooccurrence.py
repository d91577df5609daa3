"""Spark co-occurrence equals the in-process co-purchase miner pair by pair, and FP-Growth's
frequent pairs equal those counts, on UCI Online Retail purchases (../shared/datasets)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shopsense.bundles import CoPurchase, baskets_from_events, decay_weights
from shopsense.jobs import cooccurrence_spark, events_frame, fpgrowth_spark, load_copurchase
from shopsense.store import SQLiteStore


@dataclass
class Retail:
    store: SQLiteStore
    ids: list[str]
    events: Any  # Spark DataFrame
    baskets: Any  # shopsense.bundles.Baskets, in process


@pytest.fixture(scope="module")
def retail(spark, datasets_root, tmp_path_factory):  # type: ignore[no-untyped-def]
    from shopsense.datasets import load_online_retail_events, load_online_retail_products

    root = tmp_path_factory.mktemp("retail")
    # every invoice ending in 0, 3 or 6 loses its session id: those baskets fall back to the
    # user's UTC day, the other path of the basket definition
    events = [e.model_copy(update={"session_id": None}) if e.session_id.endswith(("0", "3", "6")) else e
              for e in load_online_retail_events()]
    store = SQLiteStore(root / "store.sqlite3")
    store.add_events(events)
    ids = [p.id for p in load_online_retail_products()]
    index = {x: i for i, x in enumerate(ids)}
    ev = store.events()
    baskets = baskets_from_events(ev.user_id, ev.item_id, ev.type, ev.timestamp, ev.session_id, index)
    yield Retail(store, ids, events_frame(spark, store, workdir=root), baskets)
    store.close()


def _same_sparse(a: Any, b: Any, rtol: float = 1e-12) -> None:
    a, b = a.tocsr(), b.tocsr()
    a.sort_indices()
    b.sort_indices()
    assert a.shape == b.shape and a.nnz == b.nnz
    np.testing.assert_array_equal(a.indptr, b.indptr)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_allclose(a.data, b.data, rtol=rtol)


@pytest.fixture(scope="module")
def mined(retail, tmp_path_factory):  # type: ignore[no-untyped-def]
    """One Spark run: raw counts (``count``) and 30-day decayed weights (``weight``) at once."""
    import pyarrow.parquet as pq

    cooc = cooccurrence_spark(retail.events, retail.ids, min_support=2, half_life_days=30.0)
    folder = cooc.write(tmp_path_factory.mktemp("cooc"))
    return cooc, folder, pq.read_table(folder / "pairs").to_pandas()


def _upper(pairs, column, n):  # type: ignore[no-untyped-def]
    from scipy import sparse

    v = pairs[column].to_numpy(np.float64)
    i, j = pairs["i"].to_numpy(), pairs["j"].to_numpy()
    return sparse.csr_matrix((np.concatenate([v, v]), (np.concatenate([i, j]), np.concatenate([j, i]))), shape=(n, n))


@pytest.mark.integration
def test_pair_counts_and_lift_equal_the_in_process_miner(retail, mined) -> None:  # type: ignore[no-untyped-def]
    cooc, _, pairs = mined
    ref = CoPurchase(min_support=2).fit(retail.baskets.matrix)
    assert cooc.n_baskets == ref.n_baskets_ == len(retail.baskets) > 10_000
    assert ref.pair_counts_.nnz // 2 == len(pairs) > 5_000  # a real test: thousands of pairs
    _same_sparse(_upper(pairs, "count", len(retail.ids)), ref.pair_counts_)
    items = load_copurchase(mined[1]).item_counts_
    np.testing.assert_array_equal(items, ref.item_counts_)


@pytest.mark.integration
def test_decayed_weights_lift_and_confidence_equal_the_in_process_miner(retail, mined) -> None:  # type: ignore[no-untyped-def]
    _, folder, _ = mined
    b = retail.baskets
    # the in-process miner takes float32 basket weights: equal to ~1e-7
    ref = CoPurchase(min_support=2).fit(b.matrix, weights=decay_weights(b.time, 30.0))
    got = load_copurchase(folder)
    assert got.total_weight_ == pytest.approx(ref.total_weight_, rel=1e-6)
    np.testing.assert_array_equal(got.item_counts_, ref.item_counts_)
    np.testing.assert_allclose(got.item_weights_, ref.item_weights_, rtol=1e-6)
    _same_sparse(got.pair_counts_, ref.pair_counts_, rtol=1e-6)
    _same_sparse(got.lift_matrix(), ref.lift_matrix(), rtol=1e-5)
    _same_sparse(got.confidence_matrix(), ref.confidence_matrix(), rtol=1e-5)
    i = int(np.argmax(ref.item_counts_))
    for metric in ("count", "lift", "confidence"):
        np.testing.assert_array_equal(got.top(i, 10, metric)[0], ref.top(i, 10, metric)[0])


@pytest.mark.integration
def test_fpgrowth_frequent_pairs_equal_the_counts(retail, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import pyarrow.parquet as pq

    ref = CoPurchase(min_support=3).fit(retail.baskets.matrix)
    fp = fpgrowth_spark(retail.events, retail.ids, min_count=3, min_confidence=0.2)
    fp.write(tmp_path / "fp")
    sets = pq.read_table(tmp_path / "fp" / "itemsets").to_pylist()
    pairs = {tuple(sorted(s["items"])): s["freq"] for s in sets if len(s["items"]) == 2}
    singles = {s["items"][0]: s["freq"] for s in sets if len(s["items"]) == 1}
    upper = ref.pair_counts_.tocoo()
    expected = {(int(i), int(j)): int(c) for i, j, c in zip(upper.row, upper.col, upper.data, strict=True) if i < j}
    assert pairs == expected and len(pairs) > 1000
    counts = ref.item_counts_
    assert singles == {int(i): int(counts[i]) for i in np.flatnonzero(counts >= 3)}
    rules = pq.read_table(tmp_path / "fp" / "rules").to_pylist()
    two = [r for r in rules if len(r["antecedent"]) == 1]
    assert two and all(r["confidence"] >= 0.2 for r in rules)
    for r in two[:50]:
        i, j = r["antecedent"][0], r["consequent"][0]
        assert r["confidence"] == pytest.approx(ref.confidence(i, j), rel=1e-9)
        assert r["lift"] == pytest.approx(ref.lift(i, j), rel=1e-9)
