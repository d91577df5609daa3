"""Every recommender runs the same contract (see contract.py)."""

from __future__ import annotations

import numpy as np

from shopsense.recommend import (
    ALS,
    EASE,
    ContentRecommender,
    Interactions,
    ItemKNN,
    ItemSide,
    Popularity,
    RankingStack,
    Recommender,
    SASRec,
    Trending,
)
from tests.recommend.contract import RecommenderContract, tiny_data, tiny_vectors


class TestPopularity(RecommenderContract):
    knows_clusters = False

    def make(self) -> Recommender:
        return Popularity()

    def test_most_popular_first(self) -> None:
        r = self.fit(self.make(), tiny_data()).recommend([np.zeros(0, np.int64)], 2)
        assert r.indices[0].tolist() == [0, 1]


class TestTrending(RecommenderContract):
    knows_clusters = False

    def make(self) -> Recommender:
        return Trending(half_life=1.0)

    def test_recent_beats_old(self) -> None:
        data = Interactions.from_arrays([0, 1, 2, 3], [0, 0, 0, 1], n_items=2, timestamp=np.array([0, 1, 2, 100.0]))
        assert Trending(half_life=5.0).fit(data).recommend([np.zeros(0, np.int64)], 1).indices[0, 0] == 1
        assert Popularity().fit(data).recommend([np.zeros(0, np.int64)], 1).indices[0, 0] == 0


class TestEASE(RecommenderContract):
    def make(self) -> Recommender:
        return EASE(l2=1.0)


class TestItemKNN(RecommenderContract):
    def make(self) -> Recommender:
        return ItemKNN(neighbors=3, shrink=0.0)


class TestALS(RecommenderContract):
    def make(self) -> Recommender:
        return ALS(factors=4, regularization=0.01, alpha=10.0, iterations=20)


class TestContent(RecommenderContract):
    def make(self) -> Recommender:
        return ContentRecommender()

    def fit(self, model, data):  # type: ignore[no-untyped-def]
        return model.fit(data, item_vectors=tiny_vectors())


class TestSASRec(RecommenderContract):
    knows_clusters = False  # two tiny epochs teach it little; the contract is what matters here
    maps_arrays = False  # torch copies the weights into the network

    def make(self) -> Recommender:
        return SASRec(hidden=8, layers=1, heads=1, max_len=5, epochs=2, batch_size=4, dropout=0.0, num_threads=1)


class TestRankingStack(RecommenderContract):
    def make(self) -> Recommender:
        return RankingStack(candidates=4, n_estimators=20, min_child_samples=1)

    def fit(self, model, data):  # type: ignore[no-untyped-def]
        gens = {"ease": EASE(l2=1.0).fit(data), "popularity": Popularity().fit(data)}
        # validation: the cluster's missing item is the target
        hist = [np.array([0, 1]), np.array([3, 4]), np.array([1, 2]), np.array([4, 5])] * 4
        tgt = np.array([2, 5, 0, 3] * 4)
        side = ItemSide(popularity=np.bincount(data.item, minlength=data.n_items).astype(np.float32))
        return model.fit(generators=gens, validation=(hist, tgt), item_side=side)
