"""Popularity and trending: the fallback every shop needs (new users, empty context)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shopsense.recommend._base import Interactions, Recommender, top_k


class Popularity(Recommender):
    """Items by summed interaction weight (ties broken by the lower index)."""

    name = "popularity"
    source = "popular"

    def __init__(self, use_weights: bool = True) -> None:
        self.use_weights = use_weights

    def _weights(self, data: Interactions) -> np.ndarray:
        return data.weight if self.use_weights else np.ones(len(data.item), np.float32)

    def fit(self, data: Interactions) -> Popularity:
        counts = np.bincount(data.item, weights=self._weights(data), minlength=data.n_items)
        self.item_scores_ = counts.astype(np.float32)
        self.n_items_ = data.n_items
        return self

    def score(self, histories: Sequence[np.ndarray], weights: Sequence[np.ndarray] | None = None) -> np.ndarray:
        self._check_fitted()
        # a vanishing tie-breaker keeps the order deterministic across batch and single calls
        base = self.item_scores_ - np.arange(self.n_items_, dtype=np.float32) * 1e-9
        return np.tile(base, (len(histories), 1))

    def score_items(self, histories: Sequence[np.ndarray], items: np.ndarray,
                    weights: Sequence[np.ndarray] | None = None) -> np.ndarray:
        self._check_fitted()
        items, ok, cols = self._known(items)
        base = np.where(ok, self.item_scores_[cols] - cols.astype(np.float32) * np.float32(1e-9), -np.inf)
        return np.tile(base.astype(np.float32), (len(histories), 1))

    def ranking(self, n: int) -> np.ndarray:
        """The ``n`` best item indices in :meth:`score` order (score, then lower index):
        computed once, so a fallback list costs nothing per call."""
        self._check_fitted()
        base = self.item_scores_ - np.arange(self.n_items_, dtype=np.float32) * 1e-9
        return top_k(base[None, :].astype(np.float32), n).indices[0]

    def _state(self) -> dict[str, np.ndarray]:
        return {"item_scores": self.item_scores_}

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.item_scores_ = arrays["item_scores"]

    def extend_items(self, n_items: int) -> None:
        """Make room for items added after fit (they start with no popularity)."""
        if n_items > self.n_items_:
            self.item_scores_ = np.concatenate([self.item_scores_, np.zeros(n_items - self.n_items_, np.float32)])
            self.n_items_ = n_items


class Trending(Popularity):
    """Popularity with exponential time decay: an event ``half_life`` seconds older
    than the newest one counts half."""

    name = "trending"
    source = "trending"

    def __init__(self, half_life: float = 7 * 86400.0, use_weights: bool = True) -> None:
        self.half_life = half_life
        self.use_weights = use_weights

    def fit(self, data: Interactions) -> Trending:
        t_max = float(data.timestamp.max()) if len(data.timestamp) else 0.0
        decay = np.exp2(-(t_max - data.timestamp) / self.half_life)
        counts = np.bincount(data.item, weights=self._weights(data) * decay, minlength=data.n_items)
        self.item_scores_ = counts.astype(np.float32)
        self.n_items_ = data.n_items
        self.t_max_ = t_max
        return self

    def _state(self) -> dict[str, np.ndarray]:
        return {"item_scores": self.item_scores_, "t_max": np.array([self.t_max_])}

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.item_scores_ = arrays["item_scores"]
        self.t_max_ = float(arrays["t_max"][0])
