"""The Engine: one home directory, one store, every capability.

Each capability lives in its own subpackage as a *service* that the engine creates
lazily and hands the data it needs; the methods here only delegate, so the public
surface is in one place while the work stays in small libraries.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from shopsense.catalog import Catalog, Event, IngestReport, Product, ingest
from shopsense.config import Settings
from shopsense.errors import NotFoundError, ValidationError, check_param
from shopsense.store import SQLiteStore, Store

if TYPE_CHECKING:  # heavy modules load only when a capability is first used
    from shopsense.bundles import BundleService
    from shopsense.recommend import RecommendService
    from shopsense.rerank import Reranker
    from shopsense.results import ResultList
    from shopsense.search import SearchService
    from shopsense.text import TextEncoder

log = logging.getLogger(__name__)


class Engine:
    """Search and recommendation engine rooted at a home directory.

    Example
    -------
    >>> eng = Engine("shopsense_home")                       # doctest: +SKIP
    >>> eng.ingest_products("products.csv", mapping={"product_uid": "id"})  # doctest: +SKIP
    >>> eng.search("cordless drill under 100")               # doctest: +SKIP
    """

    def __init__(self, home: str | Path | None = None, settings: Settings | None = None, **overrides: Any) -> None:
        self.settings = settings or Settings.load(home, **overrides)
        self.home = Path(self.settings.home)
        self.home.mkdir(parents=True, exist_ok=True)
        self.store: Store = SQLiteStore(self.home / "store.sqlite3")
        self._lock = threading.RLock()
        self._catalog: Catalog | None = None
        self._encoder: TextEncoder | None = None
        self._search: SearchService | None = None
        self._recommend: RecommendService | None = None
        self._bundles: BundleService | None = None
        self._reranker: Reranker | None = None
        self._rules_stamp: tuple[Any, ...] | None = None
        self._rephraser: Any = None  # Settings.llm_url, off by default: nothing to load at start
        if self.settings.llm_url:
            from shopsense.rerank import OpenAIRephraser

            self._rephraser = OpenAIRephraser.from_settings(self.settings)

    # -- lifecycle -------------------------------------------------------------
    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- catalogue and events --------------------------------------------------
    def _rejects_path(self, kind: str, source: Path) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        return self.home / "rejects" / f"{stamp}-{kind}-{source.stem}.jsonl"

    def ingest_products(
        self, path: str | Path, *, mapping: dict[str, str] | None = None, format: str | None = None,
        rejects_path: str | Path | None = None, progress: bool = False,
    ) -> IngestReport:
        """Stream products from CSV/JSONL/Parquet into the store (upsert by id)."""
        path = Path(path)
        report = ingest(
            path, "products", self.store.upsert_products, mapping=mapping, fmt=format,
            batch_size=self.settings.ingest_batch_size,
            rejects_path=rejects_path or self._rejects_path("products", path), progress=progress,
        )
        self._products_changed()
        return report

    def ingest_events(
        self, path: str | Path, *, mapping: dict[str, str] | None = None, format: str | None = None,
        rejects_path: str | Path | None = None, progress: bool = False,
    ) -> IngestReport:
        """Stream events from CSV/JSONL/Parquet into the store (identical events skipped);
        loaded services hear of each stored batch, as with :meth:`add_events`."""
        path = Path(path)

        def write(batch: list[Event]) -> int:
            n = self.store.add_events(batch)
            self._events_added(batch)
            return n

        return ingest(
            path, "events", write, mapping=mapping, fmt=format,
            batch_size=self.settings.ingest_event_batch_size,
            rejects_path=rejects_path or self._rejects_path("events", path), progress=progress,
        )

    def add_products(self, products: Iterable[Product | dict[str, Any]]) -> int:
        """Upsert products given as objects or dicts; all or nothing."""
        items = [_validate(Product, p, i) for i, p in enumerate(products)]
        n = self.store.upsert_products(items)
        self._products_changed()
        return n

    def add_events(self, events: Iterable[Event | dict[str, Any]]) -> int:
        """Append events (all or nothing) and update online models; returns how many were new."""
        items = [_validate(Event, e, i) for i, e in enumerate(events)]
        n = self.store.add_events(items)
        self._events_added(items)
        return n

    def _events_added(self, items: Sequence[Event]) -> None:
        """Tell the loaded services (per-user caches, basket counts) that events arrived."""
        for service in (self._recommend, self._search, self._bundles):
            if service is not None and hasattr(service, "on_events"):
                service.on_events(items)

    def _products_changed(self) -> None:
        with self._lock:
            self._catalog = None
            for service in (self._search, self._recommend, self._bundles):
                if service is not None and hasattr(service, "on_products_changed"):
                    service.on_products_changed()

    def catalog(self) -> Catalog:
        """The current product snapshot with its id <-> index mapping (cached)."""
        with self._lock:
            if self._catalog is None:
                products = [p for batch in self.store.iter_products(5000) for p in batch]
                self._catalog = Catalog(products)
            return self._catalog

    def product(self, product_id: str) -> Product:
        p = self.store.get_product(product_id)
        if p is None:
            raise NotFoundError("product", product_id)
        return p

    def stats(self) -> dict[str, Any]:
        """Counts of products and events, and what has been built."""
        manifests = {}
        for mf in sorted(self.home.glob("*/manifest.json")):
            try:
                manifests[mf.parent.name] = json.loads(mf.read_text())
            except (OSError, json.JSONDecodeError):
                manifests[mf.parent.name] = {"error": "unreadable manifest"}
        return {
            "home": str(self.home),
            "products": self.store.count_products(),
            "events": self.store.count_events(),
            "events_by_type": self.store.event_type_counts(),
            "built": manifests,
        }

    # -- language model ----------------------------------------------------------
    @property
    def encoder(self) -> TextEncoder:
        """The sentence encoder named in the settings (loaded on first use)."""
        with self._lock:
            if self._encoder is None:
                from shopsense.text import TextEncoder

                self._encoder = TextEncoder.from_settings(self.settings)
            return self._encoder

    # -- search ------------------------------------------------------------------
    @property
    def searcher(self) -> SearchService:
        with self._lock:
            if self._search is None:
                from shopsense.search import SearchService

                self._search = SearchService(self)
            return self._search

    def build_index(self, progress: bool = False) -> dict[str, Any]:
        """Build (or refresh) the lexical and dense indexes under ``home/index``."""
        return self.searcher.build(progress=progress)

    def search(
        self, query: str, filters: dict[str, Any] | None = None, user_id: str | None = None, k: int = 20,
        **options: Any,
    ) -> Any:
        """Hybrid product search; see :class:`shopsense.search.SearchService`."""
        _check_k(k, "search")
        return self._reranked(lambda n: self.searcher.search(query, filters=filters, user_id=user_id, k=n, **options),
                              k, "search", {"query": query}, filters)

    # -- recommendations ---------------------------------------------------------
    @property
    def recommender(self) -> RecommendService:
        with self._lock:
            if self._recommend is None:
                from shopsense.recommend import RecommendService

                self._recommend = RecommendService(self)
            return self._recommend

    def train(self, progress: bool = False, **options: Any) -> dict[str, Any]:
        """Retrain the recommendation models from the stored events; saves a new version."""
        return self.recommender.train(progress=progress, **options)

    def recommend(self, user_id: str, k: int = 10, filters: dict[str, Any] | None = None, **options: Any) -> Any:
        _check_k(k, "recommend")
        return self._reranked(lambda n: self.recommender.recommend(user_id, k=n, filters=filters, **options),
                              k, "recommend", filters=filters)

    def similar(self, item_id: str, k: int = 10, filters: dict[str, Any] | None = None, **options: Any) -> Any:
        _check_k(k, "similar")
        return self._reranked(lambda n: self.recommender.similar(item_id, k=n, filters=filters, **options),
                              k, "similar", filters=filters)

    def next_items(
        self, session_events: Sequence[str | Event | dict[str, Any]], k: int = 10,
        filters: dict[str, Any] | None = None, **options: Any,
    ) -> Any:
        _check_k(k, "next_items")
        return self._reranked(lambda n: self.recommender.next_items(session_events, k=n, filters=filters, **options),
                              k, "next", filters=filters)

    # -- combinations --------------------------------------------------------------
    @property
    def bundler(self) -> BundleService:
        with self._lock:
            if self._bundles is None:
                from shopsense.bundles import BundleService

                self._bundles = BundleService(self)
            return self._bundles

    def complements(self, item_id: str, k: int = 10, **options: Any) -> Any:
        _check_k(k, "complements")
        return self._reranked(lambda n: self.bundler.complements(item_id, k=n, **options), k, "complements")

    def complete_cart(self, item_ids: Sequence[str], k: int = 10, **options: Any) -> Any:
        _check_k(k, "complete_cart")
        return self._reranked(lambda n: self.bundler.complete_cart(list(item_ids), k=n, **options), k, "cart")

    def bundle(self, items: str | Sequence[str], size: int = 3, budget: float | None = None, **options: Any) -> Any:
        ids = [items] if isinstance(items, str) else list(items)
        return self.bundler.bundle(ids, size=size, budget=budget, **options)

    # -- the one re-ranking stage every list passes through ----------------------------
    @property
    def reranker(self) -> Reranker:
        """Business rules from ``home/rules.json`` (re-read when the file changes, so
        ``shopsense rules add`` acts on a running server) and the per-surface diversity
        of the settings (``rerank_diversity``, ``rerank_method``)."""
        from shopsense.rerank import Reranker, rules_version

        stamp = (rules_version(self.home), self.settings.rerank_method,
                 tuple(sorted(self.settings.rerank_diversity.items())))
        with self._lock:
            if self._reranker is None or stamp != self._rules_stamp:
                self._reranker = Reranker.from_home(self.home, diversity=0.0, method=self.settings.rerank_method,
                                                    lambdas=dict(self.settings.rerank_diversity))
                self._rules_stamp = stamp
            return self._reranker

    def _reranked(self, fetch: Callable[[int], ResultList], k: int, surface: str,
                  context: dict[str, Any] | None = None, filters: dict[str, Any] | None = None) -> ResultList:
        """``fetch(n)`` a list from a service, then rules, diversity and reasons
        (:func:`shopsense.rerank.apply`); ``info["rerank"]`` says what moved and why.
        When nothing is configured for ``surface`` the list passes untouched. With
        something to do, the service is asked for ``3k`` candidates so diversity has
        choice and exclusions still leave ``k``. A pinned product that the call's own
        ``filters`` rule out (price range, brand, in stock...) is not inserted."""
        rr = self.reranker
        ctx = {"surface": surface, **(context or {})}
        lam = float(rr.lambdas.get(surface, 0.0))
        if lam <= 0 and not rr.rules.hide_out_of_stock and not any(r.active(ctx) for r in rr.rules.rules):
            res = fetch(k)
            hits, info = res.hits, res.info
        else:
            res = fetch(3 * k)
            vectors = self._search.loaded_vectors() if self._search is not None else None
            hits, report = rr.rerank(res.hits, self.catalog(), embeddings=vectors, k=k, context=ctx, diversity=lam,
                                     filters=filters)
            hits, info = hits[:k], {**res.info, "rerank": report.as_dict()}
        if self._rephraser is not None:  # Settings.llm_url: off by default; failures keep the reasons
            from shopsense.rerank import rephrase

            hits = rephrase(hits, self._rephraser, ctx)
        return res if hits is res.hits else type(res)(hits, info)

    # -- privacy -------------------------------------------------------------------
    def delete_user(self, user_id: str) -> dict[str, Any]:
        """Remove every event and profile of a user from the store, indexes and models."""
        removed: dict[str, Any] = {"events": self.store.delete_user(user_id)}
        for name, service in (("search", self._search), ("recommend", self._recommend),
                              ("bundles", self._bundles)):
            if service is not None and hasattr(service, "forget_user"):
                removed[name] = service.forget_user(user_id)
        return removed


def _check_k(k: object, owner: str) -> None:
    check_param("k", k, isinstance(k, int) and not isinstance(k, bool) and 1 <= k <= 1000,
                "an int in [1, 1000]", owner)


def _validate(model: Any, obj: Any, i: int) -> Any:
    import pydantic

    if isinstance(obj, model):
        return obj
    try:
        return model.model_validate(obj)
    except pydantic.ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err["loc"]) or "(row)"
        raise ValidationError(f"item {i}, field {loc!r}: {err['msg']}", field=loc) from exc
