"""Content-based recommendations from item text vectors.

Item vectors come from the sentence encoder (``shopsense.text``) over title, brand,
category and description; this model only takes the matrix, so it is testable
without torch. A user vector is the weighted mean of the vectors of the items the
user touched: weights are the event weights (purchase > cart > view) times a
recency decay. Because nothing here is learned from co-occurrence, a brand-new
item is recommendable the moment it has a vector, and a thin user is served from
their first event.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shopsense.errors import ValidationError
from shopsense.recommend._base import Interactions, Recommender, mask_scores, top_k
from shopsense.results import Ranked


def _normalise(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float32)
    return v / (np.linalg.norm(v, axis=1, keepdims=True) + 1e-9)


class ContentRecommender(Recommender):
    """Cosine between a recency-weighted user profile and every item vector.

    ``recency_half_life`` is counted in interactions: the item touched that many
    steps before the newest one weighs half (histories are in time order).
    """

    name = "content"
    source = "content"

    def __init__(self, recency_half_life: float = 3.0) -> None:
        self.recency_half_life = recency_half_life

    def fit(self, data: Interactions | None = None, *, item_vectors: np.ndarray | None = None) -> ContentRecommender:
        if item_vectors is None:
            raise ValidationError("ContentRecommender.fit needs item_vectors (n_items, dim)", field="item_vectors")
        v = np.asarray(item_vectors, np.float32)
        if v.ndim != 2 or (data is not None and len(v) < data.n_items):
            raise ValidationError(f"item_vectors must be (n_items, dim); got {v.shape}", field="item_vectors")
        self.item_vectors_ = _normalise(v)
        self.n_items_ = len(v)
        return self

    def set_item_vectors(self, item_vectors: np.ndarray) -> None:
        """Replace or extend the item vectors (new products) without refitting anything else."""
        self.item_vectors_ = _normalise(item_vectors)
        self.n_items_ = len(item_vectors)

    def user_vectors(self, histories: Sequence[np.ndarray], weights: Sequence[np.ndarray] | None = None) -> np.ndarray:
        out = np.zeros((len(histories), self.item_vectors_.shape[1]), np.float32)
        for q, h in enumerate(histories):
            h = np.asarray(h, np.int64)
            ok = (h >= 0) & (h < self.n_items_)
            if not ok.any():
                continue
            n = len(h)
            w = np.exp2(-(n - 1 - np.arange(n)) / self.recency_half_life)
            if weights is not None:
                w = w * np.asarray(weights[q], np.float64)
            out[q] = (w[ok, None] * self.item_vectors_[h[ok]]).sum(0)
        return _normalise(out)

    def score(self, histories: Sequence[np.ndarray], weights: Sequence[np.ndarray] | None = None) -> np.ndarray:
        self._check_fitted()
        return self.user_vectors(histories, weights) @ self.item_vectors_.T

    def score_items(self, histories: Sequence[np.ndarray], items: np.ndarray,
                    weights: Sequence[np.ndarray] | None = None) -> np.ndarray:
        """The profile against the candidates' vectors only."""
        self._check_fitted()
        items, ok, cols = self._known(items)
        out = self.user_vectors(histories, weights) @ self.item_vectors_[cols].T
        out[:, ~ok] = -np.inf
        return out.astype(np.float32, copy=False)

    def because(self, history: np.ndarray, items: np.ndarray) -> np.ndarray:
        """For each item, the history item whose text is closest (for explanations)."""
        h = np.asarray([i for i in history if 0 <= i < self.n_items_], np.int64)
        if len(h) == 0 or len(items) == 0:
            return np.full(len(items), -1, np.int64)
        sims = self.item_vectors_[np.asarray(items)] @ self.item_vectors_[h].T
        return h[sims.argmax(axis=1)]

    def similar_items(self, items: Sequence[int] | np.ndarray, k: int = 10, *,
                      allowed: np.ndarray | None = None) -> Ranked:
        self._check_fitted()
        items = np.asarray(items, np.int64)
        s = self.item_vectors_[items] @ self.item_vectors_.T
        mask_scores(s, [np.array([i]) for i in items], allowed)
        return top_k(s, k)

    def _state(self) -> dict[str, np.ndarray]:
        return {"item_vectors": self.item_vectors_}

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.item_vectors_ = arrays["item_vectors"]
