"""The one interface every recommendation model implements.

Models see dense integer item indices only. Training data is an
:class:`Interactions` (COO arrays: user, item, weight, time, in time order);
queries are *histories*: one ordered array of item indices per query (oldest
first), optionally with one weight per item. Known and brand-new users are
scored the same way (fold-in), so a new event changes the next answer without
retraining.
"""

from __future__ import annotations

import json
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from shopsense.errors import NotFittedError, ValidationError, check_param
from shopsense.results import Ranked

log = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 1: arrays.npz; 2: one .npy per array (memory-mapped)


@dataclass(frozen=True)
class Interactions:
    """User-item interactions as aligned arrays, sorted by time (stable)."""

    user: np.ndarray  # int64
    item: np.ndarray  # int64
    weight: np.ndarray  # float32
    timestamp: np.ndarray  # float64 (seconds or just an order)
    n_users: int
    n_items: int

    @classmethod
    def from_arrays(
        cls, user: Sequence[int] | np.ndarray, item: Sequence[int] | np.ndarray, *, n_users: int | None = None,
        n_items: int | None = None, weight: np.ndarray | None = None, timestamp: np.ndarray | None = None,
    ) -> Interactions:
        u = np.asarray(user, dtype=np.int64)
        i = np.asarray(item, dtype=np.int64)
        if u.shape != i.shape or u.ndim != 1:
            raise ValidationError("user and item must be 1-D arrays of one length", field="item")
        w = np.ones(len(u), np.float32) if weight is None else np.asarray(weight, np.float32)
        t = np.arange(len(u), dtype=np.float64) if timestamp is None else np.asarray(timestamp, np.float64)
        order = np.argsort(t, kind="stable")
        nu = int(u.max() + 1 if len(u) else 0) if n_users is None else n_users
        ni = int(i.max() + 1 if len(i) else 0) if n_items is None else n_items
        if len(u) and (u.min() < 0 or u.max() >= nu or i.min() < 0 or i.max() >= ni):
            raise ValidationError("user/item indices out of range", field="item")
        return cls(u[order], i[order], w[order], t[order], nu, ni)

    @classmethod
    def from_sequences(cls, sequences: Sequence[Sequence[int]], n_items: int) -> Interactions:
        """One ordered item sequence per user; time is the position in the global order."""
        lens = np.array([len(s) for s in sequences], dtype=np.int64)
        user = np.repeat(np.arange(len(sequences), dtype=np.int64), lens)
        item = np.concatenate([np.asarray(s, np.int64) for s in sequences]) if len(sequences) else np.zeros(0, np.int64)
        # position within the user's own sequence keeps each user's order; the global order
        # only matters for time decay, where a position proxy is the best the data offers
        pos = np.concatenate([np.arange(n) for n in lens]).astype(np.float64) if len(lens) else np.zeros(0)
        return cls.from_arrays(user, item, n_users=len(sequences), n_items=n_items, timestamp=pos)

    def csr(self, binary: bool = False) -> Any:
        """(n_users, n_items) CSR of summed weights (or 1/0)."""
        import scipy.sparse as sp

        data = np.ones(len(self.user), np.float32) if binary else self.weight
        m = sp.csr_matrix((data, (self.user, self.item)), shape=(self.n_users, self.n_items), dtype=np.float32)
        m.sum_duplicates()
        if binary:
            m.data[:] = 1.0
        return m

    def sequences(self) -> list[np.ndarray]:
        """Each user's items in time order."""
        order = np.lexsort((self.timestamp, self.user))
        u, it = self.user[order], self.item[order]
        bounds = np.searchsorted(u, np.arange(self.n_users + 1))
        return [it[bounds[k]:bounds[k + 1]] for k in range(self.n_users)]


def histories_to_csr(histories: Sequence[np.ndarray], n_items: int,
                     weights: Sequence[np.ndarray] | None = None) -> Any:
    """Query histories as a (n_queries, n_items) CSR of summed weights."""
    import scipy.sparse as sp

    lens = np.array([len(h) for h in histories], dtype=np.int64)
    indptr = np.concatenate([[0], np.cumsum(lens)])
    idx = np.concatenate([np.asarray(h, np.int64) for h in histories]) if len(histories) else np.zeros(0, np.int64)
    if weights is None:
        data = np.ones(len(idx), np.float32)
    else:
        data = np.concatenate([np.asarray(w, np.float32) for w in weights]) if len(weights) else np.zeros(0, np.float32)
    keep = (idx >= 0) & (idx < n_items)
    if not keep.all():  # items unknown to the model (added after fit) carry no CF signal
        rows = np.repeat(np.arange(len(histories)), lens)[keep]
        m = sp.csr_matrix((data[keep], (rows, idx[keep])), shape=(len(histories), n_items), dtype=np.float32)
    else:
        m = sp.csr_matrix((data, idx, indptr), shape=(len(histories), n_items), dtype=np.float32)
    m.sum_duplicates()
    return m


def top_k(scores: np.ndarray, k: int) -> Ranked:
    """Top-k of each row of a dense score matrix; -inf entries become -1 pads.

    Ties are broken by the lower item index, including at the k-th place, so the answer
    does not depend on how a selection algorithm happened to order equal scores: a list
    cut from a longer one (the precomputed candidates) equals a list computed directly.
    """
    n, m = scores.shape
    k_eff = min(k, m)
    if k_eff == 0:
        return Ranked(np.full((n, 0), -1, np.int64), np.zeros((n, 0), np.float32))
    if k_eff < m:
        part = np.argpartition(-scores, k_eff - 1, axis=1)[:, :k_eff]
        ps = np.take_along_axis(scores, part, axis=1)
        kth = ps.min(axis=1)
        # rows where items tied with the k-th score were left out: take the lowest indices
        straddle = np.flatnonzero(np.isfinite(kth) & ((scores >= kth[:, None]).sum(axis=1) > k_eff))
        for r in straddle:
            above = np.flatnonzero(scores[r] > kth[r])
            tied = np.flatnonzero(scores[r] == kth[r])[: k_eff - len(above)]
            part[r] = np.concatenate([above, tied])
        if len(straddle):
            ps = np.take_along_axis(scores, part, axis=1)
    else:
        part = np.tile(np.arange(m), (n, 1))
        ps = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -ps), axis=-1)
    idx = np.take_along_axis(part, order, axis=1).astype(np.int64)
    sc = np.take_along_axis(ps, order, axis=1).astype(np.float32)
    bad = ~np.isfinite(sc)
    idx[bad] = -1
    sc[bad] = 0.0
    return Ranked(idx, sc)


class Recommender(ABC):
    """Base class: ``fit(Interactions) -> self``, ``score``, ``recommend``, ``similar_items``, save/load.

    Subclasses implement :meth:`fit`, :meth:`score` (dense scores of every item for
    each history) and :meth:`_state` / :meth:`_set_state` (arrays + JSON params).

    Example
    -------
    >>> from shopsense.recommend import EASE, Interactions
    >>> data = Interactions.from_sequences([[0, 1], [0, 1], [1, 2]], n_items=3)
    >>> EASE(l2=1.0).fit(data).recommend([np.array([0])], k=1).indices.tolist()
    [[1]]
    """

    name: ClassVar[str] = "base"
    #: the explanation source this model's hits carry
    source: ClassVar[str] = "cf"

    n_items_: int

    # -- to implement -------------------------------------------------------------
    @abstractmethod
    def fit(self, data: Interactions) -> Recommender:
        """Learn from interactions; returns self."""

    @abstractmethod
    def score(self, histories: Sequence[np.ndarray], weights: Sequence[np.ndarray] | None = None) -> np.ndarray:
        """(n_queries, n_items) float32 scores, higher is better."""

    def score_items(self, histories: Sequence[np.ndarray], items: np.ndarray,
                    weights: Sequence[np.ndarray] | None = None) -> np.ndarray:
        """(n_queries, len(items)) float32 scores of the given ``items`` only, -inf for indices
        the model does not know; equal to ``score(histories, weights)[:, items]``.

        Serving scores a short candidate list (precomputed lists, item neighbours) this way,
        so a call costs what the candidates cost, not what the catalogue costs. The default
        slices :meth:`score` (catalogue-sized work); models whose score decomposes per item
        override it."""
        self._check_fitted()
        items, ok, cols = self._known(items)
        s = np.asarray(self.score(histories, weights), np.float32)
        return np.where(ok[None, :], s[:, cols], -np.inf).astype(np.float32)

    def params(self) -> dict[str, Any]:
        """Constructor keyword arguments (JSON)."""
        return {k: v for k, v in vars(self).items() if not k.endswith("_") and not k.startswith("_")}

    @abstractmethod
    def _state(self) -> dict[str, np.ndarray]:
        """Learned arrays to save."""

    @abstractmethod
    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore learned arrays."""

    # -- shared behaviour -----------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "n_items_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit() or load() first.")

    def _known(self, items: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(items, ok, cols)``: the ids as int64, which of them this model was trained on
        (``0 <= i < n_items_``; later catalogue items and -1 are not), and column indexes that
        are safe to read (an unknown id reads column 0, which ``ok`` masks)."""
        items = np.asarray(items, np.int64)
        ok = (items >= 0) & (items < self.n_items_)
        return items, ok, np.where(ok, items, 0)

    def recommend(
        self, histories: Sequence[np.ndarray], k: int = 10, *, weights: Sequence[np.ndarray] | None = None,
        exclude: bool = True, allowed: np.ndarray | None = None,
    ) -> Ranked:
        """Top-k items for each history; ``exclude`` drops the history's own items and
        ``allowed`` (bool mask over items) keeps only those items. Rows hold at most as many
        items as can be returned; the rest is -1 padding."""
        self._check_fitted()
        check_param("k", k, isinstance(k, (int, np.integer)) and k >= 1, "an int >= 1", f"{type(self).__name__}.recommend")
        hs = [np.asarray(h, np.int64) for h in histories]
        s = np.asarray(self.score(hs, weights), dtype=np.float32).copy()
        mask_scores(s, hs if exclude else None, allowed)
        return top_k(s, k)

    def similar_items(self, items: Sequence[int] | np.ndarray, k: int = 10, *,
                      allowed: np.ndarray | None = None) -> Ranked:
        """Items most similar to each of ``items`` (the item itself excluded).

        The default scores a one-item history, which is what a shopper on a product
        page has; models with an explicit item space override it."""
        self._check_fitted()
        hs = [np.array([int(i)]) for i in items]
        return self.recommend(hs, k, exclude=True, allowed=allowed)

    def because(self, history: np.ndarray, items: np.ndarray) -> np.ndarray:
        """For each of ``items``, the history item (an index) that best explains it; -1 when
        the model cannot say. Explanations ask this instead of reading a model's arrays.

        The default names the most recent history item; models that know better override it.
        """
        h = np.asarray(history, np.int64)
        return np.full(len(items), int(h[-1]) if len(h) else -1, np.int64)

    def _because_by_single_scores(self, history: np.ndarray, items: np.ndarray, last: int = 20) -> np.ndarray:
        """Shared by models whose score is additive over the history: the one of the last
        ``last`` known history items whose one-item history scores each item highest.
        Scores only ``items`` (:meth:`score_items`), never the catalogue."""
        h = np.asarray(history, np.int64)
        h = h[(h >= 0) & (h < self.n_items_)][-last:]
        items, ok, _ = self._known(items)
        out = np.full(len(items), -1, np.int64)
        if len(h) == 0 or not ok.any():
            return out
        s = np.asarray(self.score_items([np.array([x]) for x in h], items[ok]), np.float64)
        out[ok] = h[np.argmax(s, axis=0)]
        return out

    # -- persistence ------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """A folder of one ``<name>.npy`` per learned array plus ``manifest.json``; serving
        loads the arrays memory-mapped (:meth:`load`), so workers share one copy."""
        self._check_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        arrays = self._state()
        for name, a in arrays.items():
            np.save(path / f"{name}.npy", np.asarray(a), allow_pickle=False)
        manifest = {"format": "shopsense.recommender", "format_version": FORMAT_VERSION,
                    "class": type(self).__name__, "params": self.params(), "n_items": int(self.n_items_),
                    "arrays": sorted(arrays), "saved_at": time.time()}
        (path / "manifest.json").write_text(json.dumps(manifest, indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path, *, mmap: bool = True) -> Recommender:
        """Load any saved model; ``Recommender.load`` picks the class from the manifest.

        ``mmap`` maps the ``.npy`` arrays read-only instead of reading them (the pages are
        shared by every process that maps the same file); folders of the first layout
        (one ``arrays.npz``) are read into memory."""
        path = Path(path)
        manifest = json.loads((path / "manifest.json").read_text())
        klass = _REGISTRY.get(manifest["class"])
        if klass is None:
            raise ValidationError(f"Unknown model class {manifest['class']!r} in {path}; "
                                  f"known: {sorted(_REGISTRY)}", field="class")
        if cls is not Recommender and not issubclass(klass, cls):
            raise ValidationError(f"{path} holds a {klass.__name__}, not a {cls.__name__}", field="class")
        if klass.load.__func__ is not Recommender.load.__func__ and cls is not klass:  # type: ignore[attr-defined]
            return klass.load(path, mmap=mmap)  # models with extra files (the ranker) load themselves
        return klass._load_base(path, manifest, mmap=mmap)

    @classmethod
    def _load_base(cls, path: Path, manifest: dict[str, Any], mmap: bool = True) -> Recommender:
        model = cls(**manifest["params"])
        model.n_items_ = int(manifest["n_items"])
        model._set_state(load_arrays(path, manifest.get("arrays"), mmap=mmap))
        return model

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        _REGISTRY[cls.__name__] = cls


_REGISTRY: dict[str, type[Recommender]] = {}


def load_arrays(path: Path, names: Sequence[str] | None, mmap: bool = True) -> dict[str, np.ndarray]:
    """The arrays of a model folder: ``<name>.npy`` files (memory-mapped read-only with
    ``mmap``), else the first layout's ``arrays.npz`` (read into memory)."""
    if names is not None and all((path / f"{n}.npy").exists() for n in names):
        # a plain ndarray view of the map: the same shared pages, without np.memmap's per-index
        # Python overhead (``.base`` is the map)
        return {n: _plain(np.load(path / f"{n}.npy", mmap_mode="r" if mmap else None, allow_pickle=False))
                for n in names}
    with np.load(path / "arrays.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _plain(a: np.ndarray) -> np.ndarray:
    return a.view(np.ndarray) if isinstance(a, np.memmap) else a


def mask_scores(scores: np.ndarray, histories: Sequence[np.ndarray] | None, allowed: np.ndarray | None) -> None:
    """In place: -inf for history items and for items outside ``allowed``."""
    n_items = scores.shape[1]
    if histories is not None:
        lens = np.array([len(h) for h in histories])
        if lens.sum():
            rows = np.repeat(np.arange(len(histories)), lens)
            cols = np.concatenate(histories)
            ok = (cols >= 0) & (cols < n_items)
            scores[rows[ok], cols[ok]] = -np.inf
    if allowed is not None:
        allowed = np.asarray(allowed, bool)
        if len(allowed) < n_items:
            allowed = np.concatenate([allowed, np.zeros(n_items - len(allowed), bool)])
        scores[:, ~allowed[:n_items]] = -np.inf
