"""The search service the engine delegates to: builds, saves and loads the
indexes under ``home/index`` and answers queries with hits, the parsed query and
facets."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from shopsense.catalog import EVENT_WEIGHTS
from shopsense.context import ShopContext, UserCache
from shopsense.errors import ValidationError
from shopsense.results import Hit, ResultList
from shopsense.search._analysis import Analyzer
from shopsense.search._cross import CrossEncoderReranker
from shopsense.search._dense import DenseIndex
from shopsense.search._facets import facet_codes, facet_counts, filter_mask
from shopsense.search._hybrid import HybridSearcher, Retrieved, SearchOptions
from shopsense.search._learned import LearnedReranker
from shopsense.search._lexical import LexicalIndex, product_fields
from shopsense.search._query import QueryParser

__all__ = ["SearchService", "catalog_fingerprint", "user_profile"]

log = logging.getLogger(__name__)

FORMAT = "shopsense.search/1"
PROFILE_HALF_LIFE_DAYS = 30.0


def catalog_fingerprint(catalog: Any) -> str:
    """Hash of ids and searchable texts in order: equal fingerprints mean the saved
    index still matches the catalogue row for row."""
    h = hashlib.blake2b(digest_size=16)
    for p in catalog.products:
        h.update(p.id.encode())
        h.update(b"\x00")
        h.update(p.model_dump_json(include={"title", "description", "brand", "category", "attributes",
                                            "price", "in_stock", "rating"}).encode())
        h.update(b"\x01")
    return h.hexdigest()


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def user_profile(events: Any, catalog: Any, vectors: np.ndarray, now: float | None = None) -> np.ndarray | None:
    """Unit vector of a user's taste: the event-weighted, recency-decayed mean of the
    embeddings of the items they interacted with (None without usable events)."""
    if events is None or len(events) == 0:
        return None
    now = now or time.time()
    acc = np.zeros(vectors.shape[1], dtype=np.float64)
    total = 0.0
    for item, typ, ts in zip(events.item_id, events.type, events.timestamp):
        row = catalog.index.get(item) if item else None
        w = EVENT_WEIGHTS.get(str(typ), 0.0)
        if row is None or w <= 0:
            continue
        age_days = max(0.0, (now - float(ts)) / 86400.0)
        w *= 0.5 ** (age_days / PROFILE_HALF_LIFE_DAYS)
        acc += w * vectors[row]
        total += w
    norm = np.linalg.norm(acc)
    if total <= 0 or norm <= 0:
        return None
    return (acc / norm).astype(np.float32)


class _SavedStage:
    """An optional search stage saved under ``models/<setting>`` in the home: the model
    given or assigned, else the saved one while ``setting`` is on, loaded again when its
    manifest changes on disk (``shopsense tune <flag>`` saved a new one). With the setting
    on and nothing saved, a warning is logged once. A load failure of a type in ``catch``
    is logged once and kept in :attr:`error`; any other propagates. Not thread-safe on its
    own: the service calls it under its lock."""

    def __init__(self, model: Any, setting: str, models_dir: str | Path, load: Callable[[Path], Any],
                 flag: str, catch: tuple[type[BaseException], ...] = ()) -> None:
        self.setting, self.dir, self.load, self.flag, self.catch = setting, Path(models_dir) / setting, load, flag, catch
        self.model = model
        self.given = model is not None
        self.stamp: int | None = -1  # mtime of the loaded model's manifest; -1: not looked yet
        self.error: str | None = None  # why the saved model is not used (only without a given one)

    def current(self, settings: Any) -> Any:
        if self.given:
            return self.model
        if not getattr(settings, self.setting, False):
            return None
        try:
            stamp: int | None = (self.dir / "manifest.json").stat().st_mtime_ns
        except FileNotFoundError:
            stamp = None
        if stamp != self.stamp:
            self.stamp, self.model, self.error = stamp, None, None
            if stamp is None:
                log.warning("%s is on but no model is saved in %s; train one with "
                            "`shopsense tune %s --judgments FILE`", self.setting, self.dir, self.flag)
            else:
                try:
                    self.model = self.load(self.dir)
                except self.catch as exc:
                    self.error = str(exc)
                    log.error("%s not used: %s", self.setting, exc)
        return self.model

    def assign(self, model: Any) -> None:
        self.model, self.given, self.stamp, self.error = model, model is not None, -1, None


class SearchService:
    """Hybrid product search over a shop's catalogue.

    ``ctx`` is the :class:`~shopsense.context.ShopContext` the engine implements
    (settings, paths, store, catalogue, encoder). Hits carry their evidence (matched
    terms, constraints, per-source scores); the engine's finishing stage writes reasons.

    Example
    -------
    >>> svc = SearchService(engine)                          # doctest: +SKIP
    >>> res = svc.search("cordless drll under 100", k=10)    # doctest: +SKIP
    >>> res.info["query"]["corrections"], res.hits[0].source  # doctest: +SKIP
    ({'drll': 'drill'}, 'hybrid')
    """

    def __init__(self, ctx: ShopContext, options: SearchOptions | None = None,
                 synonyms_path: str | Path | None = None, dense: bool = True, embed_text: str = "full",
                 reranker: LearnedReranker | None = None, cross_encoder: CrossEncoderReranker | None = None) -> None:
        self.ctx = ctx
        self.embed_text = embed_text  # "full" (Product.text()) or "title"
        self.options = (options or SearchOptions()).validated()
        # the shop's own synonyms.txt in the home, else the file shipped with the package
        self.synonyms_path = Path(synonyms_path) if synonyms_path else ctx.paths.synonyms
        self.use_dense = dense
        self.dir = ctx.paths.index
        self._lock = threading.RLock()
        self._searcher: HybridSearcher | None = None
        self._stale = False
        self._profiles: UserCache[str, np.ndarray | None] = UserCache(ctx.settings.user_cache_users)
        # the optional re-ranking stages: given here (or assigned), else the saved one when
        # its setting is on, reloaded when its manifest changes on disk
        self._stages = {
            "reranker": _SavedStage(reranker, "search_reranker", ctx.paths.models, LearnedReranker.load,
                                    "--reranker"),
            # a cross-encoder that fails to load is reported once (log and
            # ``info["cross_encoder"]["error"]``); searches go on without it
            "cross_encoder": _SavedStage(cross_encoder, "search_cross_encoder", ctx.paths.models,
                                         CrossEncoderReranker.load, "--cross-encoder",
                                         catch=(ValidationError, OSError)),
        }

    # -- the learned re-ranking stage ----------------------------------------------
    @property
    def reranker_dir(self) -> Path:
        """Where the shop's learned search re-ranker is saved (``home/models/search_reranker``)."""
        return self._stages["reranker"].dir

    @property
    def reranker(self) -> LearnedReranker | None:
        """The learned re-ranker searches in hybrid mode pass through, or None: the one
        given or assigned, else the one saved under :attr:`reranker_dir` when the
        ``search_reranker`` setting is on (off by default). A model saved again (``shopsense
        tune --reranker``) is picked up by the next search; with the setting on and no
        model saved, searches keep the first-stage order and a warning is logged once."""
        with self._lock:
            return self._stages["reranker"].current(self.ctx.settings)

    @reranker.setter
    def reranker(self, model: LearnedReranker | None) -> None:
        """Use ``model`` for every search of this service; None goes back to the setting."""
        with self._lock:
            self._stages["reranker"].assign(model)

    # -- the cross-encoder stage -----------------------------------------------------
    @property
    def cross_encoder_dir(self) -> Path:
        """Where the shop's search cross-encoder is saved (``home/models/search_cross_encoder``)."""
        return self._stages["cross_encoder"].dir

    @property
    def cross_encoder(self) -> CrossEncoderReranker | None:
        """The cross-encoder searches in hybrid mode pass through after the learned re-ranker,
        or None: the one given or assigned, else the one saved under
        :attr:`cross_encoder_dir` (ONNX int8) when the ``search_cross_encoder`` setting is on
        (off by default), reloaded when its manifest changes. With the setting on and no
        model saved a warning is logged once; a damaged one is logged as an error once and
        named in each search's ``info["cross_encoder"]["error"]``; either way searches keep
        the previous stages' order."""
        with self._lock:
            return self._stages["cross_encoder"].current(self.ctx.settings)

    @cross_encoder.setter
    def cross_encoder(self, model: CrossEncoderReranker | None) -> None:
        """Use ``model`` for every search of this service; None goes back to the setting."""
        with self._lock:
            self._stages["cross_encoder"].assign(model)

    # -- building --------------------------------------------------------------
    def build(self, progress: bool = False) -> dict[str, Any]:
        """Build the lexical and dense indexes and the query parser; saves them to
        ``home/index`` atomically (a temp folder renamed into place) and returns the manifest."""
        from shopsense.text import item_embeddings

        t0 = time.time()
        with self._lock:
            catalog = self.ctx.catalog()
            if len(catalog) == 0:
                raise ValidationError("Cannot build a search index over an empty catalogue; ingest products first.",
                                      field="products")
            analyzer = Analyzer()
            lexical = LexicalIndex(analyzer=analyzer, k1=1.2, b=0.5).fit(product_fields(catalog.products), progress)
            t_lex = time.time() - t0
            dense = None
            encoder = None
            if self.use_dense:
                encoder = self.ctx.encoder
                vectors = item_embeddings(self.ctx, progress=progress, text=self.embed_text)
                dense = DenseIndex().fit(vectors)
            t_dense = time.time() - t0 - t_lex
            parser = QueryParser(analyzer=analyzer, synonyms_path=self.synonyms_path,
                                 protected_words=_whole_words(self.ctx.encoder)).fit(catalog.products)
            manifest = {
                "format": FORMAT, "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "products": len(catalog), "fingerprint": catalog_fingerprint(catalog),
                "encoder_model": encoder.model_name if encoder else None, "dense": dense is not None,
                "embed_text": self.embed_text,
                "synonyms": str(self.synonyms_path) if self.synonyms_path else None,
                "versions": {p: _version(p) for p in ("shopsense", "bm25s", "hnswlib", "symspellpy",
                                                       "sentence-transformers")},
                "seconds": {"lexical": round(t_lex, 2), "dense": round(t_dense, 2)},
            }
            tmp = self.dir.parent / f".index.tmp-{os.getpid()}-{threading.get_ident()}"
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir(parents=True)
            lexical.save(tmp / "lexical")
            if dense is not None:
                dense.save(tmp / "dense")
            parser.save(tmp / "query.json")
            (tmp / "ids.json").write_text(json.dumps(catalog.ids))
            manifest["seconds"]["total"] = round(time.time() - t0, 2)
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
            old = self.dir.parent / f".index.old-{os.getpid()}"
            if self.dir.exists():
                os.replace(self.dir, old)
            os.replace(tmp, self.dir)
            shutil.rmtree(old, ignore_errors=True)
            self._searcher = HybridSearcher(catalog, lexical, dense, parser, encoder, self.options)
            self._stale = False
            self._profiles.clear()
            log.info("search index built: %d products in %.1fs", len(catalog), time.time() - t0)
            return manifest

    def load(self) -> bool:
        """Load the saved index when it matches the current catalogue; True on success."""
        mf = self.dir / "manifest.json"
        if not mf.exists():
            return False
        manifest = json.loads(mf.read_text())
        catalog = self.ctx.catalog()
        if manifest.get("format") != FORMAT or manifest.get("fingerprint") != catalog_fingerprint(catalog):
            log.info("saved search index does not match the catalogue; rebuilding")
            return False
        if manifest.get("dense") != self.use_dense or manifest.get("embed_text", "full") != self.embed_text:
            return False
        if manifest.get("dense") and manifest.get("encoder_model") != self.ctx.encoder.model_name:
            return False
        analyzer = Analyzer()
        lexical = LexicalIndex.load(self.dir / "lexical")
        lexical.analyzer = analyzer
        dense = DenseIndex.load(self.dir / "dense") if manifest.get("dense") and self.use_dense else None
        encoder = self.ctx.encoder if dense is not None else None
        # the encoder's vocabulary protects common words from spelling correction even when
        # the index has no dense part (read from vocab.txt: the model itself is not loaded)
        parser = QueryParser.load(self.dir / "query.json", analyzer=analyzer,
                                  protected_words=_whole_words(self.ctx.encoder))
        self._searcher = HybridSearcher(catalog, lexical, dense, parser, encoder, self.options)
        self._stale = False
        return True

    def warm(self) -> None:
        """Build now what the first query would otherwise build while a shopper waits: the
        spelling dictionary of the catalogue's words (SymSpell's delete index: 3.3 s for
        Home Depot's 17,832 words, paid by the first misspelt query in every worker and
        again after every index swap until this existed), the catalogue's facet codes and
        each product's analysed words."""
        _ = self.searcher.parser.symspell
        facet_codes(self.searcher.catalog)
        self.searcher.warm_rows()

    @property
    def searcher(self) -> HybridSearcher:
        """The loaded searcher: loaded from disk, or built when missing or stale."""
        with self._lock:
            # a stale index is rebuilt; a missing one is loaded from disk, else built
            if self._stale or (self._searcher is None and not self.load()):
                self.build()
            assert self._searcher is not None
            return self._searcher

    def manifest(self) -> dict[str, Any] | None:
        mf = self.dir / "manifest.json"
        return json.loads(mf.read_text()) if mf.exists() else None

    # -- engine hooks ------------------------------------------------------------
    def on_products_changed(self) -> None:
        """The catalogue changed: the next search rebuilds (re-encoding only changed texts)."""
        with self._lock:
            self._stale = True

    def on_events(self, events: Iterable[Any]) -> None:
        for e in events:
            self._profiles.pop(getattr(e, "user_id", None), None)  # type: ignore[arg-type]

    def forget_user(self, user_id: str) -> int:
        """Drop any cached profile of ``user_id``; returns how many were dropped."""
        return int(self._profiles.pop(user_id, None) is not None)

    def profile(self, user_id: str) -> np.ndarray | None:
        known = self._profiles.get(user_id, _UNKNOWN)
        if known is not _UNKNOWN:  # None is a known answer: no profile
            return known
        s = self.searcher
        vecs = s.dense.vectors_ if s.dense is not None else None
        events = self.ctx.store.events(user_id=user_id)
        prof = user_profile(events, s.catalog, vecs) if vecs is not None else None
        self._profiles[user_id] = prof
        return prof

    # -- querying ----------------------------------------------------------------
    def search(self, query: str, filters: Mapping[str, Any] | None = None, user_id: str | None = None, k: int = 20,
               **options: Any) -> ResultList:
        """Search the catalogue.

        ``options`` override :class:`SearchOptions` for this call (e.g. ``mode="bm25"``,
        ``fusion="rrf"``, ``understand=False``). With ``user_id`` the results are
        re-scored by affinity with that user's profile (off otherwise).
        ``info`` holds ``query`` (what was understood), ``facets`` and ``total``.
        """
        if not isinstance(query, str) or not query.strip():
            raise ValidationError(f"The 'query' parameter of search must be a non-empty string. Got {query!r} instead.",
                                  field="query")
        opts = SearchOptions.from_kwargs(self.options, options) if options else self.options
        t0 = time.perf_counter()
        s = self.searcher
        profile = self.profile(user_id) if user_id else None
        r = s.retrieve(query, k=k, filters=filters, profile=profile, options=opts)
        learned = self.reranker if opts.mode == "hybrid" else None
        rerank_info = None
        if learned is not None:
            t_rr = time.perf_counter()
            r = learned.rerank(s, r)
            rerank_info = {"model": "lambdamart", "reranked": int(r.extra.get("reranked", 0)),
                           "ms": round((time.perf_counter() - t_rr) * 1000.0, 2)}
        cross = self.cross_encoder if opts.mode == "hybrid" else None
        cross_info = None
        if cross is not None:
            t_ce = time.perf_counter()
            r = cross.rerank(s, r, depth=getattr(self.ctx.settings, "search_cross_encoder_depth", None))
            cross_info = {"model": "cross-encoder", "reranked": int(r.extra.get("cross_reranked", 0)),
                          "weight": cross.weight, "ms": round((time.perf_counter() - t_ce) * 1000.0, 2)}
        elif (error := self._stages["cross_encoder"].error) is not None and opts.mode == "hybrid":
            cross_info = {"model": "cross-encoder", "reranked": 0, "error": error}
        hits = self._hits(s, r, k)
        parsed = r.parsed
        pool = r.relevant_pool if r.relevant_pool is not None else r.pool
        if r.intent:  # the query names a product type: that is the category it understood
            best = next(iter(r.intent))
            parsed.category, parsed.category_confidence = best, r.intent[best]
        elif hits:
            keep = r.relevant if r.relevant is not None else np.ones(len(r.rows), dtype=bool)
            first = r.extra.get("first_stage", r.scores)  # score mass: the fused scores, not the learned ones
            parsed.category, parsed.category_confidence = _predict_category(
                s.catalog, r.rows[keep][:20], np.asarray(first)[keep][:20])
        info: dict[str, Any] = {
            "query": parsed.as_dict(),
            "facets": facet_counts(s.catalog, pool, max_attributes=10 if s.has_attributes else 0),
            "total": len(pool),
            "filters": dict(filters or {}), "personalized": profile is not None,
            # no query word matched: the results (if any) come from meaning alone
            "low_confidence": bool(hits) and not r.lexical_match,
        }
        if rerank_info is not None:
            info["reranker"] = rerank_info
        if cross_info is not None:
            info["cross_encoder"] = cross_info
        if not hits:
            info["zero_results"] = True
            # spelling suggestions only when no product has the query's words at all; when
            # the filters took every match away, the constraint note says so instead
            text = parsed.text or parsed.original
            info["suggestions"] = [] if _matches(s, text, None) else self.suggestions(s, text, filters)
            info["popular_categories"] = _largest_categories(s.catalog)
        if parsed.filters:
            note = self._constraint_note(s, r, k, filters, profile, opts)
            if note:
                info["constraint_note"] = note
        info["took_ms"] = round((time.perf_counter() - t0) * 1000.0, 2)
        return ResultList(hits, info)

    def suggestions(self, s: HybridSearcher, query: str, filters: Mapping[str, Any] | None = None,
                    n: int = 3) -> list[str]:
        """Queries one spelling change away that match products (with ``filters``):
        each unknown word replaced by its closest catalogue words (edit distance, then
        word frequency); ``[]`` when nothing close matches."""
        words = s.lexical.analyzer.words(query)
        known = s.parser.word_counts_
        out: list[str] = []
        for i, w in enumerate(words):
            if w in known or not w.isalpha() or len(w) < 3:
                continue
            for alt in s.parser.close_words(w, n):
                cand = " ".join(words[:i] + [alt] + words[i + 1:])
                if cand not in out and _matches(s, cand, filters):
                    out.append(cand)
        return out[:n]

    def _constraint_note(self, s: HybridSearcher, r: Retrieved, k: int, filters: Mapping[str, Any] | None,
                         profile: np.ndarray | None, opts: SearchOptions) -> dict[str, Any] | None:
        """What the filters read from the query text (a price) took away: the query
        without them is searched, and its best ``k`` results that the parsed filters
        rule out are counted, with how many have no price at all (a price filter never
        matches an unknown price). ``None`` when they took nothing away."""
        parsed = r.parsed
        plain = parsed.text or parsed.original
        wide = s.retrieve(plain, k=k, filters=filters, profile=profile, options=opts)
        keep = wide.relevant if wide.relevant is not None else np.ones(len(wide.rows), dtype=bool)
        top = wide.rows[keep][:k]
        if not len(top):
            return None
        out_ = ~filter_mask_rows(s.catalog, parsed.filters, top)
        removed = top[out_]
        if not len(removed):
            return None
        unknown = int(np.isnan(s.catalog.price[removed]).sum()) if "price" in parsed.filters else 0
        from collections import Counter

        cats = Counter(c for c in s.catalog.category_leaf[removed] if c).most_common(1)
        return {"filters": dict(parsed.filters), "removed": len(removed), "of": len(top),
                "no_price": unknown, "out_of_range": len(removed) - unknown, "query": plain,
                "category": cats[0][0] if cats else None}

    def _hits(self, s: HybridSearcher, r: Retrieved, k: int) -> list[Hit]:
        hits: list[Hit] = []
        query = s.query_terms(r.parsed)
        for j in range(len(r.rows)):
            if len(hits) >= k:
                break
            if r.relevant is not None and not r.relevant[j]:
                continue  # the long tail: no query word and too far in meaning, or far below the best
            row = int(r.rows[j])
            lex = float(r.lexical[j])
            dense = float(r.dense[j])
            if r.mode != "hybrid":
                source = r.mode
            elif lex > 0 and r.in_dense_top[j]:
                source = "hybrid"
            elif lex > 0:
                source = "bm25"
            else:
                source = "dense"
            sources = {"bm25": lex}
            if not np.isnan(dense):
                sources["dense"] = dense
            evidence: dict[str, Any] = {"matched_terms": s.matched_terms(row, r.parsed, query),
                                        "constraints": r.satisfied[j]}
            if r.personal is not None:
                sources["personal"] = float(r.personal[j])
                evidence["affinity"] = round(float(r.personal[j]), 4)
            if r.low_confidence is not None and r.low_confidence[j]:
                evidence["low_confidence"] = True
            hits.append(Hit(id=s.catalog.ids[row], score=float(r.scores[j]), source=source, sources=sources,
                            evidence=evidence, product=s.catalog.products[row]))
        return hits


def _predict_category(catalog: Any, rows: np.ndarray, scores: np.ndarray) -> tuple[str | None, float]:
    """The leaf category holding most of the top results' score mass, if any."""
    if len(rows) == 0:
        return None, 0.0
    cats = catalog.category_leaf[rows]
    w = np.clip(np.asarray(scores, dtype=np.float64), 0, None) + 1e-9
    mass: dict[str, float] = {}
    for c, x in zip(cats, w):
        if c:
            mass[c] = mass.get(c, 0.0) + float(x)
    if not mass:
        return None, 0.0
    best = max(mass, key=mass.__getitem__)
    return best, round(mass[best] / float(w.sum()), 3)


def filter_mask_rows(catalog: Any, filters: Mapping[str, Any], rows: np.ndarray) -> np.ndarray:
    """``filters`` tested on ``rows`` only (aligned with them)."""
    from shopsense.catalog import match_mask

    return match_mask(catalog, filters, rows=rows)


def _matches(s: HybridSearcher, query: str, filters: Mapping[str, Any] | None) -> bool:
    """Whether some product passing ``filters`` matches a word of ``query``."""
    lex = s.lexical.scores(s.lexical.analyzer.analyze(query))
    mask = filter_mask(s.catalog, filters) if filters else None
    if mask is not None:
        lex = np.where(mask, lex, 0.0)
    return bool(np.any(lex > 0))


def _largest_categories(catalog: Any, n: int = 8) -> list[dict[str, Any]]:
    """The ``n`` leaf categories with the most products (for a zero-results page)."""
    from collections import Counter

    counts = Counter(c for c in catalog.category_leaf if c)
    return [{"name": c, "count": m} for c, m in counts.most_common(n)]


def _whole_words(encoder: Any) -> set[str]:
    """Whole words of a WordPiece encoder's vocabulary (common English words), which
    spelling correction must leave alone even if the catalogue lacks them."""
    if encoder is None:
        return set()
    try:
        vocab = encoder.vocabulary() if hasattr(encoder, "vocabulary") else encoder.model.tokenizer.get_vocab()
    except Exception:  # noqa: BLE001 - no model installed, or a tokenizer without a plain vocabulary
        return set()
    return {w for w in vocab if w.isalpha() and len(w) >= 4}


_UNKNOWN: Any = object()
