"""A learned re-ranking stage for search: LightGBM LambdaMART over (query, candidate)
features of the first stage's top candidates (hybrid + query understanding).

The first stage is left as it is; the learned ranker only re-orders its best ``depth``
candidates, the rest keep their fused order below them. It looks at the query and the
product together, which the weighted fusion does not: how much of the query the title
covers (IDF-weighted, first and last word, bigrams, numbers), each field's BM25, the
dense cosine, the fused score and rank, which extracted constraints the product meets,
and product facts (title length, price, rating, popularity when the shop has them).

Trained on graded judgments (relevance per (query, product)); unjudged candidates count
as gain 0, as the offline protocol scores them. Saved as LightGBM's own text format
plus a JSON manifest (never pickle); loaded by :class:`~shopsense.search.SearchService`
when the ``search_reranker`` setting is on.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import replace
from importlib import metadata
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from shopsense.errors import NotFittedError, ValidationError, check_param, require
from shopsense.search._analysis import UNITS
from shopsense.search._hybrid import HybridSearcher, Retrieved, SearchOptions

__all__ = ["RERANK_FEATURES", "LearnedReranker", "judged_features", "rerank_features"]

log = logging.getLogger(__name__)

FORMAT = "shopsense.search-reranker/1"
MODEL_FILE = "model.txt"

#: the feature columns, in order (the saved manifest repeats them; a model whose list
#: differs from this one is refused at load)
RERANK_FEATURES: tuple[str, ...] = (
    # the first stage
    "fused", "fused_rel", "rank", "inv_rank", "lexical", "lexical_rel", "lexical_rank",
    "dense", "dense_gap", "dense_rank", "in_dense_top",
    # BM25 of the query's own words (no synonyms) per field
    "bm25_title", "bm25_brand", "bm25_category", "bm25_attributes", "bm25_description", "bm25_title_rel",
    # title against query words
    "coverage", "coverage_idf", "coverage_all", "missing", "missing_idf", "first_word", "last_word",
    "title_head_in_query", "bigrams", "phrase", "precision", "first_match_pos", "numbers",
    "units_matched", "unit_conflict", "char3", "title_terms", "title_chars",
    # query understanding: constraints met (NaN when the query has none of that kind)
    "brand_ok", "colour_ok", "size_ok", "attributes_ok", "price_ok", "constraints", "satisfied", "intent",
    # the query
    "q_terms", "q_chars", "q_numbers", "q_idf", "corrections", "synonyms", "max_lexical", "max_dense",
    # the product
    "rating", "popularity", "price", "has_description", "n_attributes",
)
_FIELDS = ("title", "brand", "category", "attributes", "description")
_NAN = float("nan")
_UNIT_TERMS: frozenset[str] | None = None


def _is_number(t: str) -> bool:
    return bool(t) and t[0].isdigit()


def _unit_terms(an: Any) -> frozenset[str]:
    """The analysed forms of the canonical unit words ("inch", "degre", "gallon"...)."""
    global _UNIT_TERMS
    if _UNIT_TERMS is None:
        _UNIT_TERMS = frozenset(an.terms(" ".join(set(UNITS.values())).split())) - {"x"}
    return _UNIT_TERMS


def _unit_pairs(terms: Sequence[str], units: frozenset[str]) -> frozenset[tuple[str, str]]:
    """(number, unit) pairs of a term sequence: ("1/2", "inch"), ("90", "degre")."""
    return frozenset((a, b) for a, b in pairwise(terms) if _is_number(a) and b in units)


_NO_UNITS: frozenset[tuple[str, str]] = frozenset()


def _trigrams(words: Sequence[str]) -> frozenset[str]:
    text = f" {' '.join(words)} "
    return frozenset(text[i:i + 3] for i in range(len(text) - 2))


class _TermCache:
    """What the features need of each product's title (analysing 100 titles per query is
    the feature builder's main cost), kept small: the stemmed terms in order, the
    (number, unit) pairs and the normalised text (character trigrams are looked up in it
    per query, not stored: a set of them per product would cost hundreds of bytes each).
    Holds no reference to the searcher, so the weak-keyed map below lets old ones go."""

    def __init__(self, limit: int = 300_000) -> None:
        self.limit = limit
        self.title: dict[int, tuple[list[str], frozenset[tuple[str, str]], str]] = {}
        self.all: dict[int, frozenset[str] | None] = {}

    def title_terms(self, s: HybridSearcher, row: int) -> tuple[list[str], frozenset[tuple[str, str]], str]:
        """(terms in order, (number, unit) pairs, " words joined by spaces ")."""
        t = self.title.get(row)
        if t is None:
            an = s.lexical.analyzer
            words = an.words(s.catalog.products[row].title)
            terms = an.terms(words)
            units = _unit_pairs(terms, _unit_terms(an))
            t = (terms, units or _NO_UNITS, f" {' '.join(words)} ")
            if len(self.title) < self.limit:
                self.title[row] = t
        return t

    def all_terms(self, s: HybridSearcher, row: int) -> frozenset[str] | None:
        """Terms of the title, brand, category and attribute values; None when the product
        has only a title (then they are the title's)."""
        if row in self.all:
            return self.all[row]
        p = s.catalog.products[row]
        t = None
        if p.brand or p.category or p.attributes:
            an = s.lexical.analyzer
            t = frozenset(an.terms(s._product_words(row).split()))
        if len(self.all) < self.limit:
            self.all[row] = t
        return t


_CACHES: weakref.WeakKeyDictionary[HybridSearcher, _TermCache] = weakref.WeakKeyDictionary()


def _cache(searcher: HybridSearcher) -> _TermCache:
    c = _CACHES.get(searcher)
    if c is None:
        c = _CACHES[searcher] = _TermCache()
    return c


def _ranks(x: np.ndarray) -> np.ndarray:
    """0-based rank of each value, best (largest) first; NaN last."""
    order = np.argsort(-np.nan_to_num(x, nan=-np.inf), kind="stable")
    out = np.empty(len(x), dtype=np.float32)
    out[order] = np.arange(len(x), dtype=np.float32)
    return out


def rerank_features(searcher: HybridSearcher, r: Retrieved, depth: int = 100) -> np.ndarray:
    """(min(depth, len(r.rows)), len(RERANK_FEATURES)) float32 features of the first
    ``depth`` ranked candidates of ``r`` (missing values are NaN, which LightGBM routes
    on its own)."""
    n = min(depth, len(r.rows))
    X = np.full((n, len(RERANK_FEATURES)), np.nan, dtype=np.float32)
    if n == 0:
        return X
    col = {f: i for i, f in enumerate(RERANK_FEATURES)}
    rows = np.asarray(r.rows[:n], dtype=np.int64)
    parsed = r.parsed
    s = searcher
    an = s.lexical.analyzer
    cache = _cache(s)
    cat = s.catalog

    fused = np.asarray(r.scores[:n], dtype=np.float64)
    lex = np.asarray(r.lexical[:n], dtype=np.float64)
    dense = np.asarray(r.dense[:n], dtype=np.float64)
    top_f = float(np.max(r.scores)) if len(r.scores) else 0.0
    top_l = float(np.max(r.lexical)) if len(r.lexical) else 0.0
    dn = np.asarray(r.dense, dtype=np.float64)
    top_d = float(np.nanmax(dn)) if len(dn) and not np.all(np.isnan(dn)) else _NAN
    X[:, col["fused"]] = fused
    X[:, col["fused_rel"]] = fused / top_f if top_f > 0 else 0.0
    X[:, col["rank"]] = np.arange(n)
    X[:, col["inv_rank"]] = 1.0 / (1.0 + np.arange(n))
    X[:, col["lexical"]] = lex
    X[:, col["lexical_rel"]] = lex / top_l if top_l > 0 else 0.0
    X[:, col["lexical_rank"]] = _ranks(lex)
    X[:, col["dense"]] = dense
    X[:, col["dense_gap"]] = dense - top_d
    X[:, col["dense_rank"]] = _ranks(dense)
    X[:, col["in_dense_top"]] = np.asarray(r.in_dense_top[:n], dtype=np.float32)
    X[:, col["max_lexical"]] = top_l
    X[:, col["max_dense"]] = top_d

    # the query's own words
    q_words = an.words(parsed.text)
    q_terms = an.terms(q_words)
    uniq = list(dict.fromkeys(q_terms))
    n_docs = max(int(s.lexical.n_docs_), 1)
    df = s.lexical.doc_freq_
    idf = np.array([math.log(1.0 + (n_docs - df.get(t, 0) + 0.5) / (df.get(t, 0) + 0.5)) for t in uniq])
    idf_total = float(idf.sum())
    numbers = [t for t in uniq if _is_number(t)]
    q_units = _unit_pairs(q_terms, _unit_terms(an))
    q_unit_names = {u for _, u in q_units}
    q3 = _trigrams(q_words)
    X[:, col["q_terms"]] = len(uniq)
    X[:, col["q_chars"]] = len(parsed.text)
    X[:, col["q_numbers"]] = len(numbers)
    X[:, col["q_idf"]] = idf_total / max(len(uniq), 1)
    X[:, col["corrections"]] = len(parsed.corrections)
    X[:, col["synonyms"]] = len(parsed.synonyms)

    for name in _FIELDS:
        bm = s.lexical.fields_.get(name)
        if bm is not None and q_terms:
            X[:, col[f"bm25_{name}"]] = np.asarray(bm.get_scores(list(q_terms)), dtype=np.float32)[rows]
        else:
            X[:, col[f"bm25_{name}"]] = 0.0
    bt = X[:, col["bm25_title"]]
    X[:, col["bm25_title_rel"]] = bt / bt.max() if bt.max() > 0 else 0.0

    q_bigrams = set(pairwise(q_terms))
    first, last = (q_terms[0], q_terms[-1]) if q_terms else (None, None)
    q_set = set(uniq)
    idf_of = dict(zip(uniq, idf.tolist()))
    k = len(q_terms)
    # one Python row of values per candidate, written into X at once (numpy scalar writes
    # and small-array reductions per row cost more than the set arithmetic itself)
    names = ("title_terms", "title_chars", "title_head_in_query", "precision", "coverage", "coverage_idf",
             "missing", "missing_idf", "coverage_all", "first_word", "last_word", "bigrams", "phrase",
             "first_match_pos", "numbers", "units_matched", "unit_conflict", "char3")
    vals = []
    for row in rows.tolist():
        terms, t_units, t_text = cache.title_terms(s, row)
        tset = set(terms)
        nt = len(terms)
        v = [float(nt), float(len(cat.products[row].title)), _NAN, _NAN] + [_NAN] * (len(names) - 4)
        if nt:
            v[2] = float(terms[-1] in q_set)
            v[3] = sum(t in q_set for t in terms) / nt
        if uniq:
            hits = [t for t in uniq if t in tset]
            got = sum(idf_of[t] for t in hits)
            v[4] = len(hits) / len(uniq)
            v[5] = got / idf_total if idf_total > 0 else 0.0
            v[6] = float(len(uniq) - len(hits))
            v[7] = idf_total - got
            aset = cache.all_terms(s, row)
            v[8] = v[4] if aset is None else sum(t in aset or t in tset for t in uniq) / len(uniq)
            v[9] = float(first in tset)
            v[10] = float(last in tset)
            if q_bigrams:
                v[11] = len(q_bigrams & set(pairwise(terms))) / len(q_bigrams)
                v[12] = float(any(terms[i:i + k] == q_terms for i in range(nt - k + 1)))
            pos = next((i for i, t in enumerate(terms) if t in q_set), None)
            v[13] = pos / nt if pos is not None else 1.0
            if numbers:
                v[14] = sum(t in tset for t in numbers) / len(numbers)
            if q_units:
                shared = q_units & t_units
                v[15] = len(shared) / len(q_units)
                # the title gives the query's unit only with other numbers ("3/4 inch" for "1/2 inch")
                v[16] = float(not shared and any(u in q_unit_names for _, u in t_units))
            if q3:
                v[17] = sum(g in t_text for g in q3) / len(q3)
        vals.append(v)
    X[:, [col[f] for f in names]] = np.asarray(vals, dtype=np.float32)

    # query understanding: what the query asked for and what each product meets
    c = parsed.constraints
    sat = r.satisfied[:n]
    n_constraints = sum(1 for key in ("brand", "color", "size", "price") if key in c) + len(c.get("attributes", {}))
    X[:, col["constraints"]] = n_constraints
    price_c = c.get("price") or {}
    prices = cat.price[rows]
    for j, d in enumerate(sat):
        d = d or {}
        if "brand" in c:
            X[j, col["brand_ok"]] = float("brand" in d)
        if "color" in c:
            X[j, col["colour_ok"]] = float("color" in d)
        if "size" in c:
            X[j, col["size_ok"]] = float("size" in d)
        if c.get("attributes"):
            X[j, col["attributes_ok"]] = len(d.get("attributes", {})) / len(c["attributes"])
        ok_price = _NAN
        if price_c and not np.isnan(prices[j]):
            ok_price = float(price_c.get("min", -np.inf) <= prices[j] <= price_c.get("max", np.inf))
        X[j, col["price_ok"]] = ok_price
        X[j, col["satisfied"]] = (sum(1 for key in ("brand", "color", "size") if key in d)
                                  + len(d.get("attributes", {})) + (ok_price == 1.0))
    X[:, col["intent"]] = s._intent_rows(rows, r.intent).astype(np.float32) if r.intent else 0.0

    # the product
    X[:, col["rating"]] = cat.rating[rows]
    X[:, col["price"]] = np.log1p(prices)
    pop = np.array([cat.products[i].rating_count for i in rows.tolist()], dtype=np.float32)
    X[:, col["popularity"]] = np.where(pop > 0, np.log1p(pop), np.nan)
    X[:, col["has_description"]] = [float(bool(cat.products[i].description)) for i in rows.tolist()]
    X[:, col["n_attributes"]] = [len(cat.products[i].attributes) for i in rows.tolist()]
    return X


def judged_features(searcher: HybridSearcher, queries: Sequence[str], gains: Sequence[dict[int, float]],
                    options: SearchOptions | None = None, depth: int = 100,
                    progress: Callable[[int], None] | None = None,
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training rows for :meth:`LearnedReranker.fit`: the features of each query's first
    ``depth`` candidates of the first stage (``options``), their gains (unjudged: 0) and
    the group size of each query (queries without candidates are skipped)."""
    opts = options or searcher.options
    xs, ys, groups = [], [], []
    for i, (q, g) in enumerate(zip(queries, gains)):
        r = searcher.retrieve(q, k=depth, options=opts)
        x = rerank_features(searcher, r, depth)
        if len(x):
            xs.append(x)
            ys.append(np.array([g.get(int(row), 0.0) for row in r.rows[:len(x)]], dtype=np.float32))
            groups.append(len(x))
        if progress is not None:
            progress(i + 1)
    if not xs:
        return (np.zeros((0, len(RERANK_FEATURES)), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))
    return np.concatenate(xs), np.concatenate(ys), np.array(groups, dtype=np.int64)


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


class LearnedReranker:
    """LambdaMART (LightGBM ``lambdarank``) over :data:`RERANK_FEATURES`.

    Parameters
    ----------
    depth: how many first-stage candidates are re-ordered (the rest keep their order below).
    levels: graded gains are turned into integer labels ``round(gain * levels)``, and each
        label's gain is ``label / levels``, so the objective's DCG is the linear DCG the
        evaluation uses (Home Depot's rater means are thirds).
    n_estimators, learning_rate, num_leaves, min_child_samples: LightGBM's.
    early_stopping: rounds without a better validation NDCG@10 before stopping.
    num_threads: LightGBM threads for training and scoring (1 when serving: a query's
        100 rows are too few to share).

    Example
    -------
    >>> X, y, g = judged_features(searcher, queries, gains)          # doctest: +SKIP
    >>> model = LearnedReranker().fit(X, y, g, validation=(Xv, yv, gv))  # doctest: +SKIP
    >>> model.rerank(searcher, searcher.retrieve("cordless drill"))   # doctest: +SKIP
    """

    def __init__(self, depth: int = 100, levels: int = 3, n_estimators: int = 1000, learning_rate: float = 0.05,
                 num_leaves: int = 31, min_child_samples: int = 50, early_stopping: int = 50, num_threads: int = 1,
                 seed: int = 0) -> None:
        self.depth = depth
        self.levels = levels
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.early_stopping = early_stopping
        self.num_threads = num_threads
        self.seed = seed

    def _check_params(self) -> None:
        for name in ("depth", "levels", "n_estimators", "num_leaves", "min_child_samples", "early_stopping",
                     "num_threads"):
            v = getattr(self, name)
            check_param(name, v, isinstance(v, int) and v >= 1, "an int >= 1", "LearnedReranker")
        check_param("learning_rate", self.learning_rate, self.learning_rate > 0, "a number > 0", "LearnedReranker")

    def _labels(self, gains: np.ndarray) -> np.ndarray:
        g = np.asarray(gains, dtype=np.float64)
        if len(g) and (np.isnan(g).any() or g.min() < 0):
            raise ValidationError("Reranker gains must be numbers >= 0.", field="gains")
        return np.rint(g * self.levels).astype(np.int32)

    # -- fit ---------------------------------------------------------------------------------
    def fit(self, X: np.ndarray, gains: np.ndarray, groups: np.ndarray,
            validation: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> LearnedReranker:
        """Fit on feature rows ``X`` (see :func:`judged_features`), graded ``gains`` and the
        group size of each query; ``validation`` (same shape) drives early stopping."""
        self._check_params()
        lgb = require("lightgbm", "recommend")
        X = np.asarray(X, dtype=np.float32)
        groups = np.asarray(groups, dtype=np.int64)
        if X.ndim != 2 or X.shape[1] != len(RERANK_FEATURES):
            raise ValidationError(f"The 'X' parameter of LearnedReranker.fit must have {len(RERANK_FEATURES)} "
                                  f"columns. Got shape {X.shape} instead.", field="X")
        if int(groups.sum()) != len(X):
            raise ValidationError(f"The 'groups' parameter of LearnedReranker.fit must sum to len(X) = {len(X)}. "
                                  f"Got {int(groups.sum())} instead.", field="groups")
        t0 = time.perf_counter()
        y = self._labels(gains)
        top = int(y.max()) if len(y) else 0
        vy = None
        if validation is not None:
            vy = self._labels(validation[1])
            top = max(top, int(vy.max()) if len(vy) else 0)
        params = {
            "objective": "lambdarank", "metric": "ndcg", "eval_at": [10], "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves, "min_data_in_leaf": self.min_child_samples,
            "feature_fraction": 0.9, "bagging_fraction": 0.8, "bagging_freq": 1,
            "label_gain": [i / self.levels for i in range(top + 1)], "lambdarank_truncation_level": 20,
            "num_threads": self.num_threads, "seed": self.seed, "deterministic": True, "verbose": -1,
        }
        train = lgb.Dataset(X, y, group=groups, feature_name=list(RERANK_FEATURES), free_raw_data=True)
        sets, callbacks = [], []
        if validation is not None:
            vx = np.asarray(validation[0], dtype=np.float32)
            sets = [lgb.Dataset(vx, vy, group=np.asarray(validation[2], dtype=np.int64), reference=train)]
            callbacks = [lgb.early_stopping(self.early_stopping, verbose=False)]
        booster = lgb.train(params, train, num_boost_round=self.n_estimators, valid_sets=sets, callbacks=callbacks)
        self.booster_ = booster
        self.best_iteration_ = int(booster.best_iteration or booster.current_iteration())
        self.best_score_ = (float(booster.best_score["valid_0"]["ndcg@10"])
                            if validation is not None and booster.best_score else None)
        self.n_train_queries_ = len(groups)
        self.n_train_rows_ = len(X)
        self.fit_seconds_ = time.perf_counter() - t0
        log.info("search reranker: %d queries, %d rows, %d trees, validation NDCG@10 %s, %.1fs", len(groups),
                 len(X), self.best_iteration_, self.best_score_, self.fit_seconds_)
        return self

    def _check_fitted(self) -> None:
        if getattr(self, "booster_", None) is None:
            raise NotFittedError("LearnedReranker is not fitted; call fit() or load().")

    # -- scoring -----------------------------------------------------------------------------
    def score(self, X: np.ndarray) -> np.ndarray:
        """Learned scores of feature rows (higher is better)."""
        self._check_fitted()
        X = np.asarray(X, dtype=np.float32)
        if not len(X):
            return np.zeros(0, dtype=np.float64)
        return np.asarray(self.booster_.predict(X, num_iteration=self.best_iteration_,
                                                num_threads=self.num_threads), dtype=np.float64)

    def rerank(self, searcher: HybridSearcher, r: Retrieved) -> Retrieved:
        """A new :class:`Retrieved` whose first ``depth`` rows are ordered by the learned
        score (ties keep the first-stage order); the rest follow in their order. The
        scores become the learned ones for the head and stay below them for the tail;
        each row's BM25, cosine, constraints and relevance flags travel with it, and the
        first stage's fused scores are kept in ``extra["first_stage"]``."""
        self._check_fitted()
        X = rerank_features(searcher, r, self.depth)
        n = len(X)
        if n < 2:
            return replace(r, extra={**r.extra, "first_stage": np.asarray(r.scores).copy(), "reranked": n})
        out, order = r.head_ordered(self.score(X))
        return replace(out, extra={**r.extra, "first_stage": np.asarray(r.scores)[order], "reranked": n})

    def rank(self, searcher: HybridSearcher, query: str, k: int = 100,
             options: SearchOptions | None = None) -> np.ndarray:
        """Top-``k`` rows of the first stage re-ranked (what the benchmark scores)."""
        r = searcher.retrieve(query, k=max(k, self.depth), options=options)
        return self.rerank(searcher, r).rows[:k]

    def feature_importance(self) -> dict[str, float]:
        """Total gain of each feature's splits."""
        self._check_fitted()
        return {f: float(v) for f, v in zip(RERANK_FEATURES, self.booster_.feature_importance("gain"))}

    # -- persistence -------------------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("depth", "levels", "n_estimators", "learning_rate", "num_leaves",
                                              "min_child_samples", "early_stopping", "num_threads", "seed")}

    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Write ``model.txt`` (LightGBM's text format) and ``manifest.json`` into
        ``path`` through a temporary folder renamed into place."""
        self._check_fitted()
        path = Path(path)
        tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        self.booster_.save_model(str(tmp / MODEL_FILE), num_iteration=self.best_iteration_)
        manifest = {
            "format": FORMAT, "features": list(RERANK_FEATURES), "params": self.params(),
            "best_iteration": self.best_iteration_, "validation_ndcg@10": self.best_score_,
            "train_queries": self.n_train_queries_, "train_rows": self.n_train_rows_,
            "fit_seconds": round(self.fit_seconds_, 2), "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "versions": {p: _version(p) for p in ("shopsense", "lightgbm")}, **(extra or {}),
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
        old = path.parent / f".{path.name}.old-{os.getpid()}"
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
        return path

    @classmethod
    def load(cls, path: str | Path) -> LearnedReranker:
        lgb = require("lightgbm", "recommend")
        path = Path(path)
        mf = path / "manifest.json"
        if not mf.exists():
            raise NotFittedError(f"No search reranker saved in {str(path)!r} (train one with "
                                 "`shopsense tune --reranker --judgments FILE`).")
        meta = json.loads(mf.read_text())
        if meta.get("format") != FORMAT or meta.get("features") != list(RERANK_FEATURES):
            raise ValidationError(f"The search reranker in {str(path)!r} was saved with another format or feature "
                                  "list; train it again.", field="search_reranker")
        self = cls(**meta["params"])
        self.booster_ = lgb.Booster(model_file=str(path / MODEL_FILE))
        self.best_iteration_ = int(meta["best_iteration"])
        self.best_score_ = meta.get("validation_ndcg@10")
        self.n_train_queries_ = int(meta.get("train_queries", 0))
        self.n_train_rows_ = int(meta.get("train_rows", 0))
        self.fit_seconds_ = float(meta.get("fit_seconds", 0.0))
        self.manifest_ = meta
        return self
