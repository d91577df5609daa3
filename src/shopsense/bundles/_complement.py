"""The complement model: what goes with a cart, generalising beyond observed pairs.

Three signals, all sparse and vectorised over a batch of carts:

1. **co-purchase**: the shrunk conditional probability ``P(j | i)`` from pair
   counts, optionally damped by the popularity of ``j``;
2. **text neighbours** (cold start): an item with few baskets borrows the
   co-purchase rows of its nearest items in embedding space, and a candidate
   with few baskets borrows the score of its nearest items, both in proportion
   to how little evidence the item has (``shrink / (count + shrink)``);
3. **category affinity**: which categories are bought together, spread over the
   items of a category by their share of its purchases. Catalogues without
   categories get pseudo-categories by k-means over the item embeddings.

Substitutes are the items close in text and in the same category that are
*rarely* bought together (lift below ``substitute_max_lift``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
from scipy import sparse

from shopsense.bundles._mining import CoPurchase, decay_weights
from shopsense.bundles._neighbors import (
    MEMO,
    PAIRS,
    fingerprint,
    kmeans_codes,
    text_knn,
    top_k_dense,
)
from shopsense.errors import NotFittedError, check_param
from shopsense.results import Ranked

log = logging.getLogger(__name__)

__all__ = ["ComplementModel", "text_knn", "top_k_dense", "top_k_per_row"]

_FORMAT = "shopsense.complement/1"


def top_k_per_row(m: sparse.spmatrix, k: int) -> sparse.csr_matrix:
    """Keep the ``k`` largest entries of every row of a sparse matrix."""
    m = sparse.csr_matrix(m)
    counts = np.diff(m.indptr)
    if counts.max(initial=0) <= k:
        return m
    rows, cols, vals = [], [], []
    # rows are handled one by one only when they are longer than k (few of them)
    for r in np.flatnonzero(counts > k):
        s, e = m.indptr[r], m.indptr[r + 1]
        part = np.argpartition(-m.data[s:e], k - 1)[:k]
        rows.append(np.full(k, r))
        cols.append(m.indices[s:e][part])
        vals.append(m.data[s:e][part])
    short = counts <= k
    coo = m.tocoo()
    sel = short[coo.row]
    rows.append(coo.row[sel])
    cols.append(coo.col[sel])
    vals.append(coo.data[sel])
    return sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                             shape=m.shape)


class ComplementModel:
    """Scores candidate additions for carts (see the module docstring).

    Parameters
    ----------
    min_support:
        baskets a pair needs before its count is used.
    shrink:
        pseudo-count of the conditional probability and of the cold-start blend.
    pop_exponent:
        damping of popular candidates, ``P(j|i) / (n_j + 1) ** pop_exponent``.
    text_weight, category_weight:
        weights of the text-neighbour and category-affinity signals.
    text_neighbors:
        size of the embedding neighbourhood.
    exact_neighbors_max_items:
        catalogues up to this size get exact text neighbours (blocked matrix
        products); larger ones an HNSW graph (hnswlib, recall about 0.99).
        Either way the graph and the k-means pseudo-categories are computed once
        per embeddings matrix and reused by later fits with other
        hyperparameters (a content-keyed memo), as in a tuning loop.
    l2, ease_max_items:
        ridge penalty of the EASE pair model and its size bound. EASE inverts a
        dense Gram matrix of the ``ease_max_items`` most bought items: O(N^3)
        time and 8 N^2 bytes, 200 MB and 25 s at the default 5,000 on two
        busy shared cores (the former 15,000 costs 27 times that, 1.8 GB; the
        weights are memoised, see ``fit``). Pairs with an item outside
        that set use the shrunk conditional probability ``P(j | i)`` of
        ``item_model="conditional"``, scaled so that an item's best partner
        weighs about what it weighs under EASE (the median ratio over the items
        both models score), and the text and category signals as before. With
        at most ``ease_max_items`` bought items nothing falls back.
    max_partners:
        co-purchase partners kept per item (bounds memory and query time).
    prior_weight:
        weight of the item popularity prior (0 = only a tie-breaker).
    half_life_days:
        time decay of baskets (``None``: no decay).
    n_clusters:
        pseudo-categories from k-means when no categories are given
        (``0``: none; ``None``: about ``sqrt(n_items / 2)``).
    substitute_min_sim, substitute_max_lift:
        a substitute is at least this similar in text and bought together with
        at most this lift.

    Example
    -------
    >>> from shopsense.bundles import basket_matrix
    >>> X = basket_matrix([[0, 1], [0, 1], [0, 2], [3]], n_items=4)
    >>> m = ComplementModel(min_support=1, shrink=1.0).fit(X)
    >>> m.rank([[0]], k=2).indices.tolist()
    [[1, 2]]
    """

    def __init__(self, item_model: str = "ease", l2: float = 20.0, ease_max_items: int = 5_000,
                 min_support: int = 2, shrink: float = 5.0, pop_exponent: float = 0.0,
                 text_weight: float = 0.3, category_weight: float = 0.05, text_neighbors: int = 20,
                 max_partners: int = 300, half_life_days: float | None = None,
                 n_clusters: int | None = None, substitute_min_sim: float = 0.6,
                 substitute_max_lift: float = 1.0, prior_weight: float = 0.0, seed: int = 0,
                 exact_neighbors_max_items: int = 50_000) -> None:
        check_param("item_model", item_model, item_model in ("ease", "conditional"),
                    "'ease' or 'conditional'", "ComplementModel")
        check_param("l2", l2, l2 > 0, "a float > 0", "ComplementModel")
        check_param("shrink", shrink, shrink >= 0, "a float >= 0", "ComplementModel")
        check_param("text_neighbors", text_neighbors, isinstance(text_neighbors, int) and text_neighbors >= 1,
                    "an int >= 1", "ComplementModel")
        check_param("max_partners", max_partners, isinstance(max_partners, int) and max_partners >= 1,
                    "an int >= 1", "ComplementModel")
        check_param("ease_max_items", ease_max_items, isinstance(ease_max_items, int) and ease_max_items >= 2,
                    "an int >= 2", "ComplementModel")
        check_param("exact_neighbors_max_items", exact_neighbors_max_items,
                    isinstance(exact_neighbors_max_items, int) and exact_neighbors_max_items >= 0,
                    "an int >= 0", "ComplementModel")
        self.item_model = item_model
        self.l2 = l2
        self.ease_max_items = ease_max_items
        self.min_support = min_support
        self.shrink = shrink
        self.pop_exponent = pop_exponent
        self.text_weight = text_weight
        self.category_weight = category_weight
        self.text_neighbors = text_neighbors
        self.max_partners = max_partners
        self.half_life_days = half_life_days
        self.n_clusters = n_clusters
        self.substitute_min_sim = substitute_min_sim
        self.substitute_max_lift = substitute_max_lift
        self.prior_weight = prior_weight
        self.seed = seed
        self.exact_neighbors_max_items = exact_neighbors_max_items

    def get_params(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in (
            "item_model", "l2", "ease_max_items", "min_support", "shrink", "pop_exponent", "text_weight", "category_weight", "text_neighbors",
            "max_partners", "half_life_days", "n_clusters", "substitute_min_sim", "substitute_max_lift",
            "prior_weight", "seed", "exact_neighbors_max_items")}

    # -- fit -----------------------------------------------------------------------
    def fit(self, X: sparse.spmatrix, categories: np.ndarray | None = None,
            embeddings: np.ndarray | None = None, times: np.ndarray | None = None) -> ComplementModel:
        """Learn from a binary (baskets x items) matrix.

        ``categories``: (n_items,) int codes, -1 for none; ``embeddings``:
        (n_items, dim) unit vectors; ``times``: (n_baskets,) epoch seconds for
        the time decay. The pair counts, the text neighbour graph, the
        pseudo-categories and the EASE weights are memoised by content
        (``shopsense.bundles._neighbors.MEMO`` and ``PAIRS``), so refitting on the
        same baskets and embeddings recomputes only what the changed
        hyperparameters touch.
        """
        X = sparse.csr_matrix(X, dtype=np.float32)
        n = X.shape[1]
        if embeddings is not None and embeddings.shape[0] != n:
            raise ValueError(f"embeddings has {embeddings.shape[0]} rows for {n} items")
        if categories is not None and len(categories) != n:
            raise ValueError(f"categories has {len(categories)} entries for {n} items")
        w = decay_weights(times, self.half_life_days) if times is not None else None
        x_key = fingerprint(X)
        self.copurchase_ = cp = PAIRS.get(("copurchase", x_key, fingerprint(w), self.min_support),
                                          lambda: CoPurchase(self.min_support).fit(X, w))
        c = cp.item_weights_
        self.item_counts_ = c
        self.popularity_ = c / max(c.max(initial=0.0), 1e-12)
        # what the pair scores depend on: a tuning grid that moves only the signal
        # weights reuses them
        pkey = ("pair_scores", x_key, fingerprint(w), self.item_model, self.min_support, self.max_partners,
                self.shrink, self.pop_exponent) + ((self.l2, self.ease_max_items) if self.item_model == "ease" else ())
        self.pair_scores_ = PAIRS.get(pkey, lambda: self._pair_scores(X, cp, x_key)).copy()
        self.coldness_ = (self.shrink / (c + self.shrink)) if self.shrink > 0 else np.zeros(n)

        # text neighbourhood for cold start and substitutes
        self.neighbors_ = None
        self.neighbor_idx_ = self.neighbor_sim_ = None
        self.substitutes_ = sparse.csr_matrix((n, n), dtype=np.float32)
        emb_key = fingerprint(np.asarray(embeddings)) if embeddings is not None else None
        if embeddings is not None and n > 1:
            emb = np.asarray(embeddings, dtype=np.float32)
            exact_max = self.exact_neighbors_max_items
            knn = MEMO.get(("text_knn", emb_key, self.text_neighbors, exact_max),
                           lambda: text_knn(emb, self.text_neighbors, exact_max_items=exact_max))
            pos = knn.copy()
            pos.data = np.maximum(pos.data, 0.0)
            pos.eliminate_zeros()
            rs = np.asarray(pos.sum(axis=1)).ravel()
            self.neighbors_ = (sparse.diags(1.0 / np.maximum(rs, 1e-12)) @ pos).tocsr().astype(np.float32)
            kk = np.diff(knn.indptr)
            width = int(kk.max(initial=0))
            self.neighbor_idx_ = np.zeros((n, width), dtype=np.int64)
            self.neighbor_sim_ = np.zeros((n, width), dtype=np.float32)
            for s_ in range(width):  # text_knn gives every row the same number of neighbours
                has = kk > s_
                self.neighbor_idx_[has, s_] = knn.indices[knn.indptr[:-1][has] + s_]
                self.neighbor_sim_[has, s_] = np.maximum(knn.data[knn.indptr[:-1][has] + s_], 0.0)
        else:
            knn = None

        # categories (real, or pseudo from the embeddings)
        codes = None
        if categories is not None and (np.asarray(categories) >= 0).any():
            codes = np.asarray(categories, dtype=np.int64)
        elif embeddings is not None and self.n_clusters != 0 and n >= 4:
            kc = self.n_clusters or int(max(2, round(np.sqrt(n / 2))))
            kc = min(kc, n - 1)
            codes = MEMO.get(("kmeans", emb_key, kc, self.seed),
                             lambda: kmeans_codes(np.asarray(embeddings), kc, self.seed)).copy()
        self._set_category_stats(codes)

        if knn is not None:
            self.substitutes_ = self._substitute_matrix(knn, codes)
        return self

    def _pair_scores(self, X: sparse.csr_matrix, cp: CoPurchase, x_key: tuple) -> sparse.csr_matrix:
        if self.item_model == "ease":
            return self._ease(X, cp, x_key)
        return top_k_per_row(self._conditional(cp), self.max_partners).astype(np.float32)

    def _conditional(self, cp: CoPurchase) -> sparse.csr_matrix:
        """Shrunk ``P(j|i)``, damped by the candidate's popularity."""
        c = cp.item_weights_
        left = sparse.diags(1.0 / (c + self.shrink + 1e-12))
        right = sparse.diags(np.power(c + 1.0, -self.pop_exponent))
        return left @ cp.pair_counts_ @ right

    def _ease(self, X: sparse.csr_matrix, cp: CoPurchase, x_key: tuple) -> sparse.csr_matrix:
        """Pair weights learned by ridge regression of each item on the rest of its
        basket (EASE, Steck 2019), closed form. Unlike summed conditional
        probabilities it discounts partners that only repeat what other cart items
        already say, which matters for large baskets. Restricted to the
        ``ease_max_items`` most bought items (an O(n^3) inverse); the positive
        weights are the complements, kept ``max_partners`` per item. Pairs with an
        item beyond the bound fall back to the conditional model (see the class
        docstring).
        """
        n = X.shape[1]
        counts = cp.item_counts_
        active = np.flatnonzero(counts >= 1)
        n_bought = len(active)
        if len(active) > self.ease_max_items:
            active = active[np.argsort(-counts[active], kind="stable")[: self.ease_max_items]]
            active.sort()
        if len(active) < 2:
            return sparse.csr_matrix((n, n), dtype=np.float32)
        key = ("ease", x_key, self.l2, self.ease_max_items, self.max_partners)
        E = MEMO.get(key, lambda: _ease_weights(X, active, self.l2, self.max_partners)).copy()
        if n_bought > len(active):
            E = self._with_fallback(E, active, cp)
        return E

    def _with_fallback(self, E: sparse.csr_matrix, active: np.ndarray, cp: CoPurchase,
                       block: int = 8192) -> sparse.csr_matrix:
        """EASE pairs plus the conditional scores of every pair with an item outside ``active``.

        In blocks of ``block`` rows: at 200k items the co-purchase pairs number in the
        hundreds of millions, and the conditional matrix need never exist whole.
        """
        n = E.shape[0]
        outside = np.ones(n, dtype=bool)
        outside[active] = False
        c = cp.item_weights_
        left = 1.0 / (c + self.shrink + 1e-12)
        right = np.power(c + 1.0, -self.pop_exponent)
        pc = sparse.csr_matrix(cp.pair_counts_)

        def conditional(rows: sparse.csr_matrix, first: np.ndarray) -> np.ndarray:
            r = np.repeat(first, np.diff(rows.indptr))
            return left[r] * rows.data * right[rows.indices]

        # scale: the median ratio of an item's best EASE weight to its best conditional
        # score, over the items both models score
        inner = pc[active][:, active]
        inner.data = conditional(inner, active)
        e_best = np.asarray(E[active].max(axis=1).todense()).ravel()
        c_best = np.asarray(inner.max(axis=1).todense()).ravel()
        both = (e_best > 0) & (c_best > 0)
        scale = float(np.median(e_best[both] / c_best[both])) if both.any() else 1.0
        parts, n_fallback = [], 0
        for r0 in range(0, n, block):
            rows = pc[r0:r0 + block]
            first = np.arange(r0, r0 + rows.shape[0])
            vals = conditional(rows, first)
            local = np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr))
            sel = outside[local + r0] | outside[rows.indices]
            n_fallback += int(sel.sum())
            F = sparse.csr_matrix((scale * vals[sel], (local[sel], rows.indices[sel])), shape=rows.shape)
            parts.append(top_k_per_row(E[r0:r0 + block] + F, self.max_partners).astype(np.float32))
        log.info("complement: EASE over %d items, conditional fallback for %d pairs (scale %.3g)",
                 len(active), n_fallback, scale)
        return sparse.vstack(parts, format="csr") if parts else sparse.csr_matrix((n, n), dtype=np.float32)

    def _set_category_stats(self, codes: np.ndarray | None) -> None:
        """Category co-purchase affinity and each item's share of its category."""
        self.categories_ = codes
        self.category_affinity_ = self.category_share_ = self._G = None
        if codes is None:
            return
        cp = self.copurchase_
        c = cp.item_weights_
        n = len(codes)
        m = int(codes.max()) + 1
        valid = codes >= 0
        G = sparse.csr_matrix((np.ones(valid.sum()), (np.flatnonzero(valid), codes[valid])), shape=(n, m))
        cat_pairs = (G.T @ cp.pair_counts_ @ G).toarray()
        cat_n = G.T @ c
        self.category_affinity_ = (cat_pairs / (cat_n[:, None] + self.shrink + 1e-12)).astype(np.float32)
        tot = np.asarray(G @ (G.T @ (c + 1.0))).ravel()
        self.category_share_ = np.where(valid, (c + 1.0) / np.maximum(tot, 1e-12), 0.0).astype(np.float32)
        self._G = G.tocsr()

    def _substitute_matrix(self, knn: sparse.csr_matrix, codes: np.ndarray | None) -> sparse.csr_matrix:
        """Similar in text (and category when known), rarely bought together."""
        coo = knn.tocoo()
        i, j, sim = coo.row, coo.col, coo.data
        keep = sim >= self.substitute_min_sim
        if codes is not None:
            keep &= (codes[i] == codes[j]) | (codes[i] < 0) | (codes[j] < 0)
        i, j, sim = i[keep], j[keep], sim[keep]
        lift = np.asarray(self.copurchase_.lift_matrix()[i, j]).ravel() if len(i) else np.zeros(0)
        ok = lift < self.substitute_max_lift
        # the more often they are bought together, the less they replace each other
        score = sim[ok] * (1.0 - lift[ok] / max(self.substitute_max_lift, 1e-12))
        n = knn.shape[0]
        return sparse.csr_matrix((score.astype(np.float32), (i[ok], j[ok])), shape=(n, n))

    def _check(self) -> None:
        if not hasattr(self, "pair_scores_"):
            raise NotFittedError("ComplementModel is not fitted; call fit(baskets) first.")

    @property
    def n_items(self) -> int:
        self._check()
        return int(self.pair_scores_.shape[0])

    # -- scoring -------------------------------------------------------------------
    def _carts(self, carts: sparse.spmatrix | list) -> sparse.csr_matrix:
        if sparse.issparse(carts):
            return sparse.csr_matrix(carts, dtype=np.float32)
        n = self.n_items
        rows = np.repeat(np.arange(len(carts)), [len(c) for c in carts])
        cols = np.concatenate([np.asarray(c, dtype=np.int64) for c in carts]) if len(carts) else np.zeros(0, int)
        m = sparse.csr_matrix((np.ones(len(cols), dtype=np.float32), (rows, cols)), shape=(len(carts), n))
        m.sum_duplicates()
        m.data[:] = 1.0
        return m

    def score(self, carts: sparse.spmatrix | list) -> np.ndarray:
        """Dense (n_carts, n_items) complement scores; cart items are not masked."""
        self._check()
        Q = self._carts(carts)
        R = np.asarray((Q @ self.pair_scores_).todense(), dtype=np.float32)
        if self.neighbors_ is not None and self.text_weight > 0:
            # cold cart items borrow their text neighbours' co-purchase rows
            borrow = (Q @ sparse.diags(self.coldness_.astype(np.float32)) @ self.neighbors_).tocsr()
            R += np.asarray((borrow @ self.pair_scores_).todense(), dtype=np.float32)
            # cold candidates borrow the score of their best text neighbour, weighted by
            # similarity: a near-twin of a strong complement is a strong complement
            # (a mean over the neighbourhood would dilute the twin away)
            # Laid out items x carts, a neighbour's scores for the whole batch are one
            # contiguous row: each slot gathers rows, not single floats, into buffers
            # reused across slots (at 50k items the former column gathers and their
            # temporaries took 60 of the 68 s a batch of 512 carts cost). The same
            # products and maxima in the same order, so the same floats.
            RT = np.ascontiguousarray(R.T)
            best = np.zeros_like(RT)
            buf = np.empty_like(RT)
            for s_ in range(self.neighbor_idx_.shape[1]):
                # the indices are valid; mode="raise" would copy through a buffer
                np.take(RT, self.neighbor_idx_[:, s_], axis=0, out=buf, mode="clip")
                buf *= self.neighbor_sim_[:, s_, None]
                np.maximum(best, buf, out=best)
            del RT, buf
            best *= self.text_weight
            best *= self.coldness_.astype(np.float32)[:, None]
            R += best.T
            del best
        if self.category_affinity_ is not None and self.category_weight > 0:
            cat_q = np.asarray((Q @ self._G).todense(), dtype=np.float32) @ self.category_affinity_
            codes = np.maximum(self.categories_, 0)
            spread = cat_q[:, codes]
            spread *= self.category_weight
            spread *= self.category_share_[None, :]
            R += spread
        # a popularity prior (vanishing by default: it only orders items the other
        # signals cannot tell apart)
        R += (self.prior_weight + 1e-6) * self.popularity_[None, :].astype(np.float32)
        return R

    def substitute_mask(self, carts: sparse.spmatrix | list) -> np.ndarray:
        """(n_carts, n_items) bool: substitutes of any cart item."""
        self._check()
        Q = self._carts(carts)
        return np.asarray((Q @ self.substitutes_).todense()) > 0

    def rank(self, carts: sparse.spmatrix | list, k: int = 10, exclude_substitutes: bool = True,
             allowed: np.ndarray | None = None) -> Ranked:
        """Top-``k`` additions per cart, never the cart items (nor their substitutes)."""
        check_param("k", k, isinstance(k, int) and k >= 1, "an int >= 1", "ComplementModel.rank")
        Q = self._carts(carts)
        R = self.score(Q)
        R[Q.nonzero()] = -np.inf
        if exclude_substitutes:
            R[self.substitute_mask(Q)] = -np.inf
        if allowed is not None:
            R[:, ~np.asarray(allowed, dtype=bool)] = -np.inf
        return top_k_dense(R, k)

    def substitutes(self, item: int, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Up to ``k`` substitutes of one item, best first."""
        self._check()
        row = self.substitutes_.getrow(int(item))
        order = np.argsort(-row.data, kind="stable")[:k]
        return row.indices[order].astype(np.int64), row.data[order]

    # -- persistence -----------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """A folder with one ``<name>.npy`` per array and ``manifest.json`` (no pickle): the
        layout :meth:`load` memory-maps, so every server worker maps one copy."""
        self._check()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        cp = self.copurchase_
        arrays: dict[str, np.ndarray] = {"item_counts": cp.item_counts_, "item_weights": cp.item_weights_,
                                         "coldness": self.coldness_}
        mats = {"pair_counts": cp.pair_counts_, "pair_scores": self.pair_scores_,
                "substitutes": self.substitutes_}
        if self.neighbors_ is not None:
            mats["neighbors"] = self.neighbors_
        for name, m in mats.items():
            m = sparse.csr_matrix(m)
            arrays[f"{name}_data"], arrays[f"{name}_indices"], arrays[f"{name}_indptr"] = m.data, m.indices, m.indptr
        if self.categories_ is not None:
            arrays["categories"] = self.categories_
        if self.neighbor_idx_ is not None:
            arrays["neighbor_idx"], arrays["neighbor_sim"] = self.neighbor_idx_, self.neighbor_sim_
        for name, arr in arrays.items():
            np.save(path / f"{name}.npy", np.ascontiguousarray(arr))
        manifest = {"format": _FORMAT, "params": self.get_params(), "n_items": self.n_items,
                    "n_baskets": cp.n_baskets_, "total_weight": cp.total_weight_, "arrays": sorted(arrays)}
        (path / "manifest.json").write_text(json.dumps(manifest, indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path, *, mmap: bool = True) -> ComplementModel:
        """A model :meth:`save` wrote; ``mmap`` maps its arrays read-only instead of reading
        them (a folder of the first layout, one ``arrays.npz``, is read into memory)."""
        path = Path(path)
        manifest = json.loads((path / "manifest.json").read_text())
        if manifest.get("format") != _FORMAT:
            raise ValueError(f"{path} is not a {_FORMAT} folder (format {manifest.get('format')!r})")
        model = cls(**manifest["params"])
        n = int(manifest["n_items"])
        if "arrays" in manifest:
            a = {k: np.load(path / f"{k}.npy", allow_pickle=False, mmap_mode="r" if mmap else None)
                 for k in manifest["arrays"]}
            a = {k: v.view(np.ndarray) if isinstance(v, np.memmap) else v for k, v in a.items()}
        else:
            with np.load(path / "arrays.npz", allow_pickle=False) as z:
                a = {k: z[k] for k in z.files}

        def mat(name: str) -> sparse.csr_matrix | None:
            if f"{name}_data" not in a:
                return None
            return sparse.csr_matrix((a[f"{name}_data"], a[f"{name}_indices"], a[f"{name}_indptr"]), shape=(n, n))

        cp = CoPurchase(model.min_support)
        cp.item_counts_, cp.item_weights_ = a["item_counts"], a["item_weights"]
        cp.pair_counts_ = mat("pair_counts")
        cp.n_baskets_, cp.total_weight_, cp.n_items_ = manifest["n_baskets"], manifest["total_weight"], n
        model.copurchase_ = cp
        model.item_counts_ = cp.item_weights_
        model.popularity_ = cp.item_weights_ / max(cp.item_weights_.max(initial=0.0), 1e-12)
        model.pair_scores_ = mat("pair_scores")
        model.substitutes_ = mat("substitutes")
        model.neighbors_ = mat("neighbors")
        model.neighbor_idx_, model.neighbor_sim_ = a.get("neighbor_idx"), a.get("neighbor_sim")
        model.coldness_ = a["coldness"]
        codes = a.get("categories")
        model._set_category_stats(codes)
        return model


def _ease_weights(X: sparse.csr_matrix, active: np.ndarray, l2: float, max_partners: int) -> sparse.csr_matrix:
    """The positive EASE weights among ``active`` items, ``max_partners`` per row, as an (n, n) matrix."""
    n = X.shape[1]
    Xa = X[:, active]
    G = (Xa.T @ Xa).toarray().astype(np.float64)
    # no min-support mask here: zeroing entries of the Gram matrix breaks its
    # positive definiteness; the ridge penalty is what tames rare pairs
    G[np.diag_indices_from(G)] += l2
    B = np.linalg.inv(G)
    del G
    # in place (-P / diag(P), the diagonal and negatives zeroed): three N x N arrays fewer
    np.divide(B, -np.diag(B)[None, :], out=B)
    np.fill_diagonal(B, 0.0)
    np.maximum(B, 0.0, out=B)
    Bs = top_k_per_row(sparse.csr_matrix(B.astype(np.float32)), max_partners).tocoo()
    return sparse.csr_matrix((Bs.data, (active[Bs.row], active[Bs.col])), shape=(n, n), dtype=np.float32)


#: the former private name, still imported by ``shopsense.eval``; use :func:`top_k_dense`
_top_k = top_k_dense
