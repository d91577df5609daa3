"""Item-transition graph: what shoppers chose next after the items a history ends with.

No training beyond counting. For every user's time-ordered history, each pair of events
``a`` then ``b`` at most ``window`` steps apart adds ``decay ** (steps - 1)`` to ``T[a, b]``
(and ``backward`` times that to ``T[b, a]`` where the reverse order is evidence too); rows
are normalised to "probability of ``b`` next after ``a``". A history is scored from its
``last`` most recent items, the most recent weighted 1, the one before ``recency``, and so
on; a small popularity term orders the items no transition reaches. The heuristic of "An
Embarrassingly Simple Graph Heuristic" (arXiv 2605.07125); the stack combines it with the
other generators and the item features.

The hyperparameters are chosen on a validation position (:func:`tune_transition`), never on
the position that is reported.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from shopsense.errors import ValidationError, check_param
from shopsense.recommend._base import Interactions, Recommender

__all__ = ["Transition", "tune_transition"]

log = logging.getLogger(__name__)

#: the popularity term's largest value: below any transition evidence a catalogue yields in
#: practice (a row would need a million pairs), so it only orders the items with none
POP_SCALE = 1e-6

#: the grid :func:`tune_transition` searches unless told otherwise
DEFAULT_GRID: dict[str, tuple[Any, ...]] = {
    "window": (1, 2, 3, 5), "decay": (0.5, 0.8), "backward": (0.0, 0.5),
    "last": (1, 2, 3), "recency": (0.3, 0.6),
}


class Transition(Recommender):
    """Sparse item-to-next-item transition counts over consecutive events.

    The defaults are what NDCG@10 on the validation position chose on Amazon Beauty and
    Sports in bench/recommend.py (Sports chose ``backward=0.5``); :func:`tune_transition`
    chooses them for other data.

    Example
    -------
    >>> from shopsense.recommend import Interactions, Transition
    >>> data = Interactions.from_sequences([[0, 1, 2], [0, 1], [1, 2]], n_items=3)
    >>> Transition().fit(data).recommend([np.array([1])], k=1).indices.tolist()
    [[2]]
    """

    name = "transition"
    source = "sequential"

    def __init__(self, window: int = 5, decay: float = 0.8, backward: float = 0.0, last: int = 3,
                 recency: float = 0.3) -> None:
        check_param("window", window, isinstance(window, (int, np.integer)) and window >= 1, "an int >= 1",
                    "Transition")
        check_param("decay", decay, 0.0 < decay <= 1.0, "a float in (0, 1]", "Transition")
        check_param("backward", backward, backward >= 0.0, "a float >= 0", "Transition")
        check_param("last", last, isinstance(last, (int, np.integer)) and last >= 1, "an int >= 1", "Transition")
        check_param("recency", recency, 0.0 <= recency <= 1.0, "a float in [0, 1]", "Transition")
        self.window = int(window)
        self.decay = float(decay)
        self.backward = float(backward)
        self.last = int(last)
        self.recency = float(recency)

    # -- fit ---------------------------------------------------------------------------------
    def fit(self, data: Interactions) -> Transition:
        """Count the pairs within each user's own history (never across two users) and
        normalise each row."""
        fwd, bwd = transition_counts(data, self.window, self.decay)
        self._set_counts(fwd, bwd, np.bincount(data.item, minlength=data.n_items).astype(np.float32))
        return self

    def _set_counts(self, fwd: Any, bwd: Any, pop: np.ndarray) -> None:
        counts = fwd + self.backward * bwd if self.backward > 0 else fwd
        self.P_ = _row_normalised(counts)
        self.pop_ = (POP_SCALE * pop / max(float(pop.max()) if len(pop) else 0.0, 1.0)).astype(np.float32)
        self.n_items_ = int(fwd.shape[0])

    # -- scoring -------------------------------------------------------------------------------
    def _recent(self, history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The ``last`` most recent known items, newest first, and their weights."""
        h = np.asarray(history, np.int64)
        h = h[(h >= 0) & (h < self.n_items_)][::-1][: self.last]
        return h, self.recency ** np.arange(len(h), dtype=np.float64)

    def _query(self, histories: Sequence[np.ndarray]) -> Any:
        import scipy.sparse as sp

        rows, cols, vals = [], [], []
        for r, h in enumerate(histories):
            items, w = self._recent(h)
            rows.append(np.full(len(items), r)); cols.append(items); vals.append(w)
        cat = (lambda p, dt: np.concatenate(p).astype(dt) if p else np.zeros(0, dt))
        q = sp.csr_matrix((cat(vals, np.float32), (cat(rows, np.int64), cat(cols, np.int64))),
                          shape=(len(histories), self.n_items_), dtype=np.float32)
        q.sum_duplicates()  # an item met twice among the last ones counts with both weights
        return q

    def score(self, histories: Sequence[np.ndarray], weights: Sequence[np.ndarray] | None = None) -> np.ndarray:
        """Transition probability from the history's last items, plus the popularity term.

        ``weights`` are ignored: the order of the events is what this model reads."""
        self._check_fitted()
        out = np.asarray((self._query(histories) @ self.P_).toarray(), dtype=np.float32)
        out += self.pop_[None, :]
        return out

    def score_items(self, histories: Sequence[np.ndarray], items: np.ndarray,
                    weights: Sequence[np.ndarray] | None = None) -> np.ndarray:
        """Reads only the rows of the history's last items and the columns of ``items``."""
        self._check_fitted()
        items, ok, cols = self._known(items)
        q = self._query(histories)
        used = np.unique(q.indices)
        out = np.zeros((len(histories), len(items)), np.float32)
        if len(used) and len(items):
            sub = self.P_[used][:, cols]  # (used rows, items): small
            qs = q[:, used]
            out += np.asarray((qs @ sub).toarray(), np.float32)
        out += self.pop_[cols][None, :]
        out[:, ~ok] = -np.inf
        return out

    def because(self, history: np.ndarray, items: np.ndarray) -> np.ndarray:
        """The recent history item each of ``items`` most often came next after (weighted
        as :meth:`score` weighs it); -1 where no recent item ever led to it."""
        self._check_fitted()
        h, w = self._recent(history)
        items, ok, _ = self._known(items)
        out = np.full(len(items), -1, np.int64)
        if len(h) == 0 or not ok.any():
            return out
        contrib = np.asarray(self.P_[h][:, items[ok]].toarray(), np.float64) * w[:, None]
        best = np.argmax(contrib, axis=0)
        found = contrib[best, np.arange(contrib.shape[1])] > 0
        out[np.flatnonzero(ok)[found]] = h[best[found]]
        return out

    def target_ranks(self, histories: Sequence[np.ndarray], targets: np.ndarray) -> np.ndarray:
        """The 0-based place of each of ``targets`` in :meth:`recommend`'s full list for its
        history (history excluded, ties to the lower index), ``n_items`` where the target is in
        its history; read from the sparse transition rows without scoring the catalogue, which
        is what choosing hyperparameters on a validation position needs.

        An item no recent item leads to scores its popularity term only, so its comparison with
        the target is one global order (count desc, index asc) counted by search, less the few
        items that do have transitions or sit in the history; only the stored entries of the
        history's transition rows are compared one by one."""
        self._check_fitted()
        n = self.n_items_
        tg = np.asarray(targets, np.int64)
        nq = len(histories)
        st = (self._query(histories) @ self.P_).tocsr()
        st.eliminate_zeros()
        st.sort_indices()
        pop = self.pop_
        rows = np.repeat(np.arange(nq), np.diff(st.indptr))
        cols = st.indices.astype(np.int64)
        vals = (st.data.astype(np.float32) + pop[cols]).astype(np.float32)  # score()'s float32 sum
        # each target's score: its stored entry, else its popularity term
        key_nz = rows * n + cols
        key_t = np.arange(nq) * n + tg
        at = np.minimum(np.searchsorted(key_nz, key_t), max(len(key_nz) - 1, 0))
        has = (len(key_nz) > 0) & (key_nz[at] == key_t) if len(key_nz) else np.zeros(nq, bool)
        t_score = np.where(has, vals[at] if len(vals) else 0.0, pop[tg]).astype(np.float32)
        # history (deduplicated) as keys
        lens = np.array([len(h) for h in histories], np.int64)
        hcols = np.concatenate([np.asarray(h, np.int64) for h in histories]) if nq else np.zeros(0, np.int64)
        hrows = np.repeat(np.arange(nq), lens)
        okh = (hcols >= 0) & (hcols < n)
        key_h = np.sort(hrows[okh] * n + hcols[okh])
        key_h = key_h[np.concatenate([[True], key_h[1:] != key_h[:-1]])] if len(key_h) else key_h
        in_hist = _member(key_h, key_nz)
        target_in_hist = _member(key_h, key_t)

        def beats(score: np.ndarray, col: np.ndarray, r: np.ndarray) -> np.ndarray:
            return (score > t_score[r]) | ((score == t_score[r]) & (col < tg[r]))

        # stored entries that beat the target (not history, not the target itself)
        b = beats(vals, cols, rows) & ~in_hist & (cols != tg[rows])
        count = np.bincount(rows[b], minlength=nq).astype(np.int64)
        # items with no stored entry score pop: all items beating on pop, less those stored or in history
        order = np.lexsort((np.arange(n), -pop.astype(np.float64)))  # count desc, index asc
        grank = np.empty(n, np.int64)
        grank[order] = np.arange(n)
        g = np.where(has, 0, grank[tg])
        above = has & (t_score <= pop.max())  # a stored target within the popularity range: rare, exact
        for r in np.flatnonzero(above):
            g[r] = int(np.count_nonzero((pop > t_score[r]) | ((pop == t_score[r]) & (np.arange(n) < tg[r]))))
        # stored items beating on their popularity term alone were counted in g: take them off
        b0 = beats(pop[cols], cols, rows) & (cols != tg[rows])
        g -= np.bincount(rows[b0], minlength=nq)
        # history items without a stored entry, beating on popularity: take them off as well
        hk = key_h[~_member(key_nz, key_h)]
        hr, hc = hk // n, hk % n
        b1 = beats(pop[hc], hc, hr) & (hc != tg[hr])
        g -= np.bincount(hr[b1], minlength=nq)
        rank = count + g
        return np.where(target_in_hist, n, rank)

    # -- persistence -----------------------------------------------------------------------------
    def _state(self) -> dict[str, np.ndarray]:
        p = self.P_
        return {"data": p.data, "indices": p.indices, "indptr": p.indptr, "pop": self.pop_}

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        import scipy.sparse as sp

        n = self.n_items_
        self.P_ = sp.csr_matrix((arrays["data"], arrays["indices"], arrays["indptr"]), shape=(n, n), copy=False)
        self.pop_ = arrays["pop"]


def transition_counts(data: Interactions, window: int, decay: float) -> tuple[Any, Any]:
    """(forward, backward) CSR counts: ``forward[a, b]`` sums ``decay ** (d - 1)`` over every
    user whose history has ``b`` exactly ``d <= window`` events after ``a``; ``backward`` is
    its transpose. Pairs of one item with itself are dropped (a repeat is no transition)."""
    import scipy.sparse as sp

    order = np.lexsort((data.timestamp, data.user))  # each user's events in time order
    u, it = data.user[order], data.item[order]
    n = data.n_items
    src, dst, val = [], [], []
    for d in range(1, window + 1):
        if d >= len(it):
            break
        same = (u[d:] == u[:-d]) & (it[d:] != it[:-d])
        src.append(it[:-d][same]); dst.append(it[d:][same])
        val.append(np.full(int(same.sum()), decay ** (d - 1), np.float32))
    cat = (lambda p, dt: np.concatenate(p).astype(dt) if p else np.zeros(0, dt))
    fwd = sp.csr_matrix((cat(val, np.float32), (cat(src, np.int64), cat(dst, np.int64))), shape=(n, n),
                        dtype=np.float32)
    fwd.sum_duplicates()
    return fwd, fwd.T.tocsr()


def _row_normalised(m: Any) -> Any:
    import scipy.sparse as sp

    m = sp.csr_matrix(m, dtype=np.float32)
    m.sum_duplicates()
    m.eliminate_zeros()
    sums = np.asarray(m.sum(axis=1)).ravel()
    inv = np.where(sums > 0, 1.0 / np.maximum(sums, 1e-30), 0.0).astype(np.float32)
    out = sp.diags(inv) @ m
    out = sp.csr_matrix(out, dtype=np.float32)
    out.sort_indices()
    return out


def tune_transition(train: Interactions, histories: Sequence[np.ndarray], targets: np.ndarray, *,
                    grid: Mapping[str, Sequence[Any]] | None = None, k: int = 10, max_users: int = 25000,
                    seed: int = 0, batch_size: int = 4000) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Choose :class:`Transition`'s hyperparameters by NDCG@``k`` of ``targets`` (a validation
    position: the item after each of ``histories``), models fitted on ``train``; at most
    ``max_users`` histories (a seeded sample) are read. Returns the best parameters and every
    tried setting with its score. Ties go to the earlier (simpler) setting of the grid.

    Example
    -------
    >>> best, table = tune_transition(train, val_hist, val_target)  # doctest: +SKIP
    >>> model = Transition(**best).fit(train_plus_validation)  # doctest: +SKIP
    """
    g = {**DEFAULT_GRID, **(grid or {})}
    unknown = set(g) - set(DEFAULT_GRID)
    if unknown:
        raise ValidationError(f"Unknown Transition grid keys {sorted(unknown)}; known: {sorted(DEFAULT_GRID)}",
                              field="grid")
    check_param("histories", len(histories), len(histories) == len(targets) and len(histories) > 0,
                "a non-empty sequence as long as targets", "tune_transition")
    rng = np.random.default_rng(seed)
    pick = rng.permutation(len(histories))[:max_users] if len(histories) > max_users else np.arange(len(histories))
    hs = [np.asarray(histories[i], np.int64) for i in pick]
    tg = np.asarray(targets, np.int64)[pick]
    pop = np.bincount(train.item, minlength=train.n_items).astype(np.float32)
    table: list[dict[str, Any]] = []
    for window in g["window"]:
        for decay in (g["decay"] if window > 1 else g["decay"][:1]):  # one window: decay is moot
            fwd, bwd = transition_counts(train, window, decay)
            for backward in g["backward"]:
                for last in g["last"]:
                    for recency in (g["recency"] if last > 1 else g["recency"][:1]):
                        m = Transition(window=window, decay=decay, backward=backward, last=last, recency=recency)
                        m._set_counts(fwd, bwd, pop)
                        nd = _ndcg_of_targets(m, hs, tg, k, batch_size)
                        table.append({**m.params(), f"ndcg@{k}": nd})
    best = max(range(len(table)), key=lambda i: (table[i][f"ndcg@{k}"], -i))
    params = {key: v for key, v in table[best].items() if key != f"ndcg@{k}"}
    log.info("transition: best %s NDCG@%d %.4f on %d validation users", params, k, table[best][f"ndcg@{k}"],
             len(hs))
    return params, table


def _ndcg_of_targets(model: Transition, histories: list[np.ndarray], targets: np.ndarray, k: int,
                     batch_size: int) -> float:
    """Mean NDCG@k of one target per history, the history excluded, ties to the lower index
    (as :func:`~shopsense.recommend.top_k` breaks them): :meth:`Transition.target_ranks` in batches."""
    total = 0.0
    for s in range(0, len(histories), batch_size):
        rank = model.target_ranks(histories[s:s + batch_size], targets[s:s + batch_size])
        hit = rank < k
        total += float((1.0 / np.log2(rank[hit] + 2.0)).sum())
    return total / max(len(histories), 1)


def _member(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """``np.isin(keys, sorted_keys)`` for a sorted ``sorted_keys``, by binary search (no hashing)."""
    if len(sorted_keys) == 0:
        return np.zeros(len(keys), bool)
    pos = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return sorted_keys[pos] == keys
