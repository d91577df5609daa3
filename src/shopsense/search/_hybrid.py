"""The hybrid retriever: query understanding, field-weighted BM25, dense ANN,
fusion, constraint boosts and an optional personal re-score, over one catalogue.

Kept apart from :class:`SearchService` (which owns building, saving and the
engine) so the benchmark can score its variants without an engine.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from shopsense.errors import ValidationError, check_param
from shopsense.search._dense import DenseIndex
from shopsense.search._facets import filter_mask
from shopsense.search._fusion import normalise, rrf
from shopsense.search._lexical import LexicalIndex
from shopsense.search._query import ParsedQuery, QueryParser

__all__ = ["HybridSearcher", "Retrieved", "SearchOptions"]

log = logging.getLogger(__name__)

MODES = ("hybrid", "bm25", "dense")
FUSIONS = ("weighted", "rrf")


@dataclass(frozen=True)
class SearchOptions:
    """Knobs of one search. BM25 and query-understanding settings were chosen on the
    *dev* half of the Home Depot queries; the fusion defaults (dense weight 0.3 over
    max-scaled cosines, boost 0.1) are what ``bench/search.py`` picked on that dev half
    (never on the test half), see ``bench/results/search.json`` ``_meta.homedepot.tuned``.
    A shop can re-tune them on its own judgments."""

    mode: str = "hybrid"
    fusion: str = "weighted"
    understand: bool = True  # spelling, synonyms, constraint extraction
    lexical_weight: float = 1.0
    dense_weight: float = 0.3
    dense_norm: str = "max"  # how dense cosines are scaled over the candidates
    synonym_weight: float = 0.3  # weight of expansion terms relative to the query's own
    rrf_k: float = 60.0
    boost: float = 0.1  # added per satisfied soft constraint (brand, colour, size, attribute)
    lexical_candidates: int = 200
    dense_candidates: int = 100
    personal_weight: float = 0.15
    # the query's product type: leaf categories whose mean item vector is closest to the
    # query ("laptop" -> notebooks, not laptop cases whose titles say "laptop") get this
    # added (hybrid mode; 0 turns it off)
    category_boost: float = 0.25
    # relevance: a result scoring below this share of the best is the long tail, left out of
    # the results, the facet counts and the total
    relevance_floor: float = 0.3
    # a result no query word matched is a match only with a cosine of at least min_dense,
    # and a confident one from confident_dense (MiniLM: nonsense scores ~0.3, real ~0.5+)
    min_dense: float = 0.35
    confident_dense: float = 0.5

    def validated(self) -> SearchOptions:
        check_param("mode", self.mode, self.mode in MODES, f"one of {MODES}", "search")
        check_param("fusion", self.fusion, self.fusion in FUSIONS, f"one of {FUSIONS}", "search")
        for name in ("lexical_weight", "dense_weight", "synonym_weight", "boost", "personal_weight", "category_boost",
                     "relevance_floor", "min_dense", "confident_dense"):
            v = getattr(self, name)
            check_param(name, v, isinstance(v, (int, float)) and v >= 0, "a number >= 0", "search")
        return self

    @classmethod
    def from_kwargs(cls, base: SearchOptions, options: Mapping[str, Any]) -> SearchOptions:
        known = set(cls.__dataclass_fields__)
        bad = sorted(set(options) - known)
        if bad:
            raise ValidationError(f"Unknown search option {bad[0]!r}; allowed: {', '.join(sorted(known))}.", field=bad[0])
        return replace(base, **options).validated()


@dataclass
class Retrieved:
    """Ranked candidate rows with each source's score, before ids and products."""

    rows: np.ndarray  # int64, best first
    scores: np.ndarray  # fused (final) scores
    lexical: np.ndarray  # raw BM25 score per row (0 when no term matched)
    dense: np.ndarray  # cosine per row (NaN when dense was not used)
    in_dense_top: np.ndarray  # bool: row was among the dense candidates
    personal: np.ndarray | None
    satisfied: list[dict[str, Any]]  # per row: the soft constraints it meets
    parsed: ParsedQuery
    pool: np.ndarray  # every matching row
    mode: str = "hybrid"
    extra: dict[str, Any] = field(default_factory=dict)
    # per ranked row: relevant (not the long tail), and a match no query word backs
    # whose cosine is below ``confident_dense``
    relevant: np.ndarray | None = None
    low_confidence: np.ndarray | None = None
    relevant_pool: np.ndarray | None = None  # every relevant row (facets and the total)
    intent: dict[str, float] = field(default_factory=dict)  # product-type categories -> cosine

    @property
    def lexical_match(self) -> bool:
        """Whether any query word matched any product (after filters)."""
        return bool(len(self.lexical) and float(np.max(self.lexical)) > 0)

    def head_ordered(self, head_scores: np.ndarray) -> tuple[Retrieved, np.ndarray]:
        """A re-ranking stage's result: the first ``len(head_scores)`` rows ordered by
        ``head_scores`` (best first, ties keep the current order) and scored by them, the rest
        after them in their order, scored strictly below the head; every per-row field travels
        with its row. Returns it and the permutation applied (for the stage's ``extra``)."""
        n = len(head_scores)
        head = np.argsort(-head_scores, kind="stable")
        order = np.concatenate([head, np.arange(n, len(self.rows))])
        scores = np.empty(len(self.rows), dtype=np.float64)
        scores[:n] = head_scores[head]
        if len(self.rows) > n:  # the tail keeps its order strictly below the head
            tail = np.asarray(self.scores[n:], dtype=np.float64)
            scores[n:] = float(head_scores.min()) - 1.0 - (tail.max() - tail)

        def take(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else np.asarray(a)[order]

        out = replace(self, rows=self.rows[order], scores=scores, lexical=self.lexical[order],
                      dense=self.dense[order], in_dense_top=self.in_dense_top[order], personal=take(self.personal),
                      satisfied=[self.satisfied[i] for i in order], relevant=take(self.relevant),
                      low_confidence=take(self.low_confidence))
        return out, order


class HybridSearcher:
    """Lexical + dense retrieval with fusion over one catalogue snapshot."""

    #: how many products' words (and their stems) each per-row cache keeps at most
    ROW_CACHE_ROWS = 200_000

    def __init__(self, catalog: Any, lexical: LexicalIndex, dense: DenseIndex | None, parser: QueryParser,
                 encoder: Any = None, options: SearchOptions | None = None) -> None:
        self.catalog = catalog
        self.lexical = lexical
        self.dense = dense
        self.parser = parser
        self.encoder = encoder
        self.options = (options or SearchOptions()).validated()
        self._words_cache: dict[int, str] = {}
        self._terms_cache: dict[int, frozenset[str]] = {}
        self.has_attributes = any(p.attributes for p in catalog.products)
        self._centroids: tuple[np.ndarray, np.ndarray, list[str]] | None = None

    # -- product type --------------------------------------------------------------
    def _category_centroids(self) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(unit mean item vector per leaf category with >= 2 items, each row's category
        code or -1, the names); empty without item vectors."""
        if self._centroids is None:
            from scipy import sparse

            vecs = self.dense.vectors_ if self.dense is not None else None
            leaf = np.asarray(self.catalog.category_leaf, dtype=object)
            names, codes = np.unique(leaf.astype(str), return_inverse=True)
            counts = np.bincount(codes, minlength=len(names))
            keep = (counts >= 2) & (names != "")
            if vecs is None or not keep.any() or len(vecs) != len(leaf):
                self._centroids = (np.zeros((0, 1), np.float32), np.full(len(leaf), -1), [])
            else:
                new = np.cumsum(keep) - 1
                row_code = np.where(keep[codes], new[codes], -1)
                ok = row_code >= 0
                G = sparse.csr_matrix((np.ones(int(ok.sum()), np.float32), (row_code[ok], np.flatnonzero(ok))),
                                      shape=(int(keep.sum()), len(leaf)))
                C = np.asarray(G @ vecs, dtype=np.float32)
                C /= np.maximum(np.linalg.norm(C, axis=1, keepdims=True), 1e-12)
                self._centroids = (C, row_code, [str(n) for n in names[keep]])
        return self._centroids

    def category_intent(self, qvec: np.ndarray | None, min_similarity: float = 0.5,
                        margin: float = 0.02) -> dict[str, float]:
        """The leaf categories the query names as a product type: those whose mean item
        vector is within ``margin`` of the closest, if that one is at least
        ``min_similarity`` from the query (``{}`` otherwise)."""
        if qvec is None:
            return {}
        C, _, names = self._category_centroids()
        if not names:
            return {}
        sims = C @ np.asarray(qvec, dtype=np.float32)
        best = float(sims.max())
        if best < min_similarity:
            return {}
        return {names[i]: round(float(sims[i]), 4) for i in np.argsort(-sims) if sims[i] >= best - margin}

    def _intent_rows(self, rows: np.ndarray, intent: Mapping[str, float]) -> np.ndarray:
        """Bool per row: in one of the ``intent`` categories."""
        if not intent or not len(rows):
            return np.zeros(len(rows), dtype=bool)
        _, row_code, names = self._category_centroids()
        codes = [i for i, n in enumerate(names) if n in intent]
        return np.isin(row_code[rows], codes)

    # -- parts -----------------------------------------------------------------
    def parse(self, query: str, understand: bool = True) -> ParsedQuery:
        if understand:
            return self.parser.parse(query)
        return ParsedQuery(original=query, text=" ".join(query.split()))

    def lexical_scores(self, parsed: ParsedQuery, opts: SearchOptions) -> np.ndarray:
        an = self.lexical.analyzer
        s = self.lexical.scores(an.analyze(parsed.text))
        if parsed.synonyms and opts.synonym_weight > 0:
            extra = an.analyze(" ".join(t for ts in parsed.synonyms.values() for t in ts))
            if extra:
                s = s + opts.synonym_weight * self.lexical.scores(extra)
        return s

    def query_vector(self, parsed: ParsedQuery) -> np.ndarray:
        return self.encoder.encode_queries([parsed.text or parsed.original])[0]

    def _product_words(self, row: int) -> str:
        w = self._words_cache.get(row)
        if w is None:
            p = self.catalog.products[row]
            w = " " + " ".join(self.lexical.analyzer.words(
                " ".join([p.title, p.brand, " ".join(p.category), " ".join(p.attributes.values())]))) + " "
            if len(self._words_cache) < self.ROW_CACHE_ROWS:
                self._words_cache[row] = w
        return w

    def warm_rows(self) -> None:
        """Fill the per-row word cache for the whole catalogue now (up to ROW_CACHE_ROWS rows:
        0.9 s and 7 MB for Home Depot's 54,667 products), so that queries with constraints do
        not analyse product texts on the request path: on a fresh server they did (3% of a
        served search's samples, py-spy, 2 workers, 1 Dec) until the rows had all been seen."""
        for row in range(min(len(self.catalog), self.ROW_CACHE_ROWS)):
            self._product_words(row)

    def satisfied(self, row: int, parsed: ParsedQuery) -> dict[str, Any]:
        """The extracted constraints product ``row`` meets (its evidence)."""
        c = parsed.constraints
        if not c:
            return {}
        p = self.catalog.products[row]
        out: dict[str, Any] = {}
        if "price" in parsed.filters:
            out["price"] = parsed.filters["price"]
        words = None
        if "brand" in c:
            b = c["brand"].lower()
            if p.brand.lower() == b:
                out["brand"] = c["brand"]
            elif not p.brand:
                words = words or self._product_words(row)
                if f" {b} " in words:
                    out["brand"] = c["brand"]
        if "color" in c:
            col = c["color"]
            attr = self.parser.colour_attr_
            if attr and col in p.attributes.get(attr, "").lower():
                out["color"] = col
            else:
                words = words or self._product_words(row)
                if f" {col} " in words:
                    out["color"] = col
        if "size" in c:
            words = words or self._product_words(row)
            if f" {c['size']} " in words:
                out["size"] = c["size"]
        for k, v in c.get("attributes", {}).items():
            if p.attributes.get(k, "").lower() == v.lower():
                out.setdefault("attributes", {})[k] = v
        return out

    def score_rows(self, parsed: ParsedQuery, rows: np.ndarray, lex_all: np.ndarray, qvec: np.ndarray | None,
                   opts: SearchOptions, dense_ranked: np.ndarray | None = None,
                   lex_ranked: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """Fused scores of candidate ``rows``; returns (scores, dense cosines, satisfied constraints)."""
        lex = lex_all[rows].astype(np.float64)
        dense = (self.dense.scores_for(qvec, rows).astype(np.float64) if (qvec is not None and self.dense is not None)
                 else np.full(len(rows), np.nan))
        if opts.mode == "bm25" or qvec is None:
            fused = lex.copy()
        elif opts.mode == "dense":
            fused = dense.copy()
        elif opts.fusion == "rrf":
            lr = lex_ranked if lex_ranked is not None else rows[np.argsort(-lex, kind="stable")][lex[np.argsort(-lex, kind="stable")] > 0]
            dr = dense_ranked if dense_ranked is not None else rows[np.argsort(-dense, kind="stable")]
            fz = rrf([lr, dr], k=opts.rrf_k, weights=[opts.lexical_weight, opts.dense_weight])
            fused = np.array([fz.get(int(r), 0.0) for r in rows]) * opts.rrf_k  # ~[0, 2]: boosts stay comparable
        else:
            fused = opts.lexical_weight * normalise(lex, "max") + opts.dense_weight * normalise(dense, opts.dense_norm)
        sat: list[dict[str, Any]] = [{} for _ in rows]
        if parsed.boosts and opts.boost > 0 and len(rows):
            # fused hybrid scores are ~[0, 1+w]; single-source scores are raw, so scale the boost
            scale = 1.0 if opts.mode == "hybrid" else float(max(np.nanmax(fused), 1e-9))
            for j, r in enumerate(rows):
                sat[j] = self.satisfied(int(r), parsed)
                n = sum(1 for key in ("brand", "color", "size") if key in sat[j]) + len(sat[j].get("attributes", {}))
                fused[j] += opts.boost * n * scale
        elif parsed.constraints:
            sat = [self.satisfied(int(r), parsed) for r in rows]
        if opts.mode == "hybrid" and opts.category_boost > 0 and qvec is not None and len(rows):
            fused = fused + opts.category_boost * self._intent_rows(rows, self.category_intent(qvec))
        return fused, dense, sat

    # -- the whole query ---------------------------------------------------------
    def retrieve(self, query: str, k: int = 20, filters: Mapping[str, Any] | None = None,
                 profile: np.ndarray | None = None, options: SearchOptions | None = None) -> Retrieved:
        opts = options or self.options
        parsed = self.parse(query, opts.understand)
        merged = {**parsed.filters, **(filters or {})}
        mask = filter_mask(self.catalog, merged)
        n = len(self.catalog)
        use_dense = opts.mode != "bm25" and self.dense is not None and self.encoder is not None
        lex_all = (self.lexical_scores(parsed, opts) if opts.mode != "dense" or use_dense
                   else np.zeros(n, dtype=np.float32))
        if mask is not None:
            lex_all = np.where(mask, lex_all, 0.0).astype(np.float32)
        matched = np.flatnonzero(lex_all > 0)
        nl = min(max(opts.lexical_candidates, k), len(matched))
        if nl:
            part = matched[np.argpartition(-lex_all[matched], nl - 1)[:nl]] if nl < len(matched) else matched
            lex_top = part[np.argsort(-lex_all[part], kind="stable")]
        else:
            lex_top = np.zeros(0, dtype=np.int64)
        qvec = None
        dense_top = np.zeros(0, dtype=np.int64)
        if use_dense:
            qvec = self.query_vector(parsed)
            dense_top, _ = self.dense.search(qvec, max(opts.dense_candidates, k if opts.mode == "dense" else 0),  # type: ignore[union-attr]
                                             allowed=mask)
        if opts.mode == "bm25":
            cand = lex_top
        elif opts.mode == "dense":
            cand = dense_top
        else:  # lex_top | dense_top, sorted: a mask (np.unique sorted them, ~3% of a search)
            in_cand = np.zeros(n, dtype=bool)
            in_cand[lex_top] = True
            in_cand[dense_top] = True
            cand = np.flatnonzero(in_cand).astype(np.int64)
        fused, dense, sat = self.score_rows(parsed, cand, lex_all, qvec, opts, dense_ranked=dense_top,
                                            lex_ranked=lex_top)
        personal = None
        if profile is not None and self.dense is not None and len(cand):
            personal = np.clip(self.dense.scores_for(profile, cand).astype(np.float64), 0.0, None)
            fused = fused + opts.personal_weight * personal * (max(fused.max(), 1e-9) if opts.mode != "hybrid" else 1.0)
        order = np.argsort(-fused, kind="stable")
        in_dense_mask = np.zeros(n, dtype=bool)  # np.isin sorted both arrays (~4% of a search)
        in_dense_mask[dense_top] = True
        in_dense = in_dense_mask[cand]
        if opts.mode == "hybrid":  # matched | dense_top, sorted: a mask over the catalogue, not a sort of
            in_pool = lex_all > 0  # every lexical match (np.union1d sorted tens of thousands per query)
            in_pool[dense_top] = True
            pool = np.flatnonzero(in_pool)
        else:
            pool = matched if opts.mode == "bm25" else dense_top
        r = Retrieved(rows=cand[order], scores=fused[order], lexical=lex_all[cand][order], dense=dense[order],
                      in_dense_top=in_dense[order], personal=None if personal is None else personal[order],
                      satisfied=[sat[i] for i in order], parsed=parsed, pool=pool, mode=opts.mode,
                      intent=self.category_intent(qvec) if opts.mode == "hybrid" else {})
        self._relevance(r, lex_all, matched, opts)
        return r

    def _relevance(self, r: Retrieved, lex_all: np.ndarray, matched: np.ndarray, opts: SearchOptions) -> None:
        """Mark the ranked rows that are results rather than the long tail: a score of at
        least ``relevance_floor`` of the best, and for rows no query word matched, a
        cosine of at least ``min_dense`` (``low_confidence`` below ``confident_dense``).
        ``relevant_pool`` adds the lexical matches beyond the candidates whose lexical
        part alone reaches the floor, so facet counts and the total cover them too."""
        lex, dense = r.lexical.astype(np.float64), np.nan_to_num(r.dense.astype(np.float64), nan=-1.0)
        words = lex > 0
        semantic = ~words & (dense >= opts.min_dense)
        ok = words | semantic
        best = float(r.scores[ok].max()) if ok.any() else 0.0
        floor = opts.relevance_floor * best if best > 0 else 0.0
        rel = ok & (r.scores >= floor)
        r.relevant = rel
        r.low_confidence = rel & ~words & (dense < opts.confident_dense)
        extra = np.zeros(0, dtype=np.int64)
        weighted = r.mode == "hybrid" and opts.fusion == "weighted"
        if len(matched) and (weighted or r.mode == "bm25") and best > 0 and words.any():
            outside_mask = lex_all > 0  # matched minus the ranked rows, sorted (as np.setdiff1d, without its sort)
            outside_mask[r.rows] = False
            outside = np.flatnonzero(outside_mask)
            top_lex = float(lex.max())
            # their fused score is at least their lexical part (BM25 scaled as the fusion does)
            part = lex_all[outside].astype(np.float64)
            part = opts.lexical_weight * part / top_lex if weighted else part
            extra = outside[part >= floor]
        # rows[rel] | extra, sorted: a mask over the catalogue (np.union1d sorted them)
        in_pool = np.zeros(len(lex_all), dtype=bool)
        in_pool[r.rows[rel]] = True
        in_pool[extra] = True
        r.relevant_pool = np.flatnonzero(in_pool).astype(np.int64)

    def rank(self, query: str, k: int = 100, options: SearchOptions | None = None) -> np.ndarray:
        """Just the top-``k`` rows (what the benchmark scores)."""
        return self.retrieve(query, k=k, options=options).rows[:k]

    def score_candidates(self, query: str, rows: np.ndarray, options: SearchOptions | None = None) -> np.ndarray:
        """Fused scores of the given rows only (for re-ranking judged products)."""
        opts = options or self.options
        parsed = self.parse(query, opts.understand)
        rows = np.asarray(rows, dtype=np.int64)
        lex_all = self.lexical_scores(parsed, opts) if opts.mode != "dense" else np.zeros(len(self.catalog), np.float32)
        qvec = self.query_vector(parsed) if opts.mode != "bm25" and self.dense is not None and self.encoder is not None else None
        fused, _, _ = self.score_rows(parsed, rows, lex_all, qvec, opts)
        return fused

    def query_terms(self, parsed: ParsedQuery) -> tuple[list[str], list[str]]:
        """The query's words (after correction) and their stems, for :meth:`matched_terms`."""
        an = self.lexical.analyzer
        words = an.words(parsed.text)
        return words, an.terms(words)

    def matched_terms(self, row: int, parsed: ParsedQuery,
                      query: tuple[list[str], list[str]] | None = None) -> list[str]:
        """Query words (after correction) whose stems occur in the product's text.
        ``query``: :meth:`query_terms` of ``parsed``, computed once for all of a page's hits."""
        words, terms = query if query is not None else self.query_terms(parsed)
        prod_terms = self._product_terms(row)
        return [w for w, t in zip(words, terms) if t in prod_terms]

    def _product_terms(self, row: int) -> frozenset[str]:
        """The stems of :meth:`_product_words`, kept beside them: stemming every hit's words
        again took a tenth of a Home Depot search (cProfile, 30 Nov: 0.46 of 4.5 ms)."""
        t = self._terms_cache.get(row)
        if t is None:
            t = frozenset(self.lexical.analyzer.terms(self._product_words(row).split()))
            if len(self._terms_cache) < self.ROW_CACHE_ROWS:
                self._terms_cache[row] = t
        return t
