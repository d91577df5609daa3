"""The Engine: one home directory, one store, every capability.

The engine is the composition root. It owns the settings, the :class:`~shopsense.home.Home`,
the store and the services, and implements the narrow port the services receive
(:class:`~shopsense.context.ShopContext`: settings, paths, store, catalogue, encoder,
item vectors); the services never import it. Each public method checks its
parameters, asks a service for ranked candidates with evidence, and passes every
list through the one finishing stage (:func:`shopsense.rerank.finish`: products,
rules, diversity, reasons, rephrasing), so the CLI, Python and HTTP agree.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np

from shopsense.catalog import Catalog, Event, IngestReport, Product, ingest
from shopsense.config import Settings
from shopsense.context import Service
from shopsense.errors import MissingDependencyError, NotFoundError, ValidationError, check_param
from shopsense.home import Home
from shopsense.store import Store, open_store

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
        self.paths = Home(self.settings.home).ensure()
        self.home = self.paths.root
        self.store: Store = open_store(self.settings, self.paths.sqlite)
        self._lock = threading.RLock()
        self._catalog: Catalog | None = None
        self._vectors: np.ndarray | None = None
        self._vectors_missing = False  # no encoder installed: item_vectors() is None
        self._encoder: TextEncoder | None = None
        self._search: SearchService | None = None
        self._recommend: RecommendService | None = None
        self._bundles: BundleService | None = None
        self._reranker: Reranker | None = None
        self._rules_stamp: tuple[Any, ...] | None = None
        self._stamps: dict[str, Any] = {}  # what was on disk when each service was loaded
        self._swapping: set[str] = set()
        self._rephraser: Any = None  # Settings.llm_url, off by default: nothing to load at start
        if self.settings.llm_url:
            from shopsense.rerank import OpenAIRephraser

            self._rephraser = OpenAIRephraser.from_settings(self.settings)

    # -- lifecycle -------------------------------------------------------------
    def close(self) -> None:
        """Close the store (the engine is also a context manager)."""
        self.store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- catalogue and events --------------------------------------------------
    def ingest_products(
        self, path: str | Path, *, mapping: dict[str, str] | None = None, format: str | None = None,
        rejects_path: str | Path | None = None, progress: bool = False,
    ) -> IngestReport:
        """Stream products from CSV/JSONL/Parquet into the store (upsert by id)."""
        path = Path(path)
        report = ingest(
            path, "products", self.store.upsert_products, mapping=mapping, fmt=format,
            batch_size=self.settings.ingest_batch_size,
            rejects_path=rejects_path or self.paths.rejects_file("products", path), progress=progress,
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

        with self.store.bulk_events():
            return ingest(
                path, "events", write, mapping=mapping, fmt=format,
                batch_size=self.settings.ingest_event_batch_size,
                rejects_path=rejects_path or self.paths.rejects_file("events", path), progress=progress,
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

    # -- in-memory notifications (writes another process already stored) ----------------
    def notify_events(self, events: Sequence[Event]) -> None:
        """Events were stored by another process (a server's other worker): drop what this
        engine cached from the old state (histories, profiles, basket counts). Reads nothing."""
        self._events_added(events)

    def notify_products_changed(self) -> None:
        """Products were changed by another process: re-read the catalogue on next use."""
        self._products_changed()

    def forget_in_memory(self, user_id: str) -> dict[str, Any]:
        """Drop what the loaded services hold about ``user_id`` (the store's rows were erased
        by whoever called :meth:`delete_user`)."""
        return {name: service.forget_user(user_id) for name, service in self._services()}

    def _services(self) -> list[tuple[str, Service]]:
        """The services created so far (each is created on first use)."""
        return [(name, svc) for name, svc in (("search", self._search), ("recommend", self._recommend),
                                              ("bundles", self._bundles)) if svc is not None]

    def _events_added(self, items: Sequence[Event]) -> None:
        """Tell the loaded services (per-user caches, basket counts) that events arrived."""
        for _, service in self._services():
            service.on_events(items)

    def _products_changed(self) -> None:
        with self._lock:
            self._catalog = None
            self._vectors = None
            for _, service in self._services():
                service.on_products_changed()

    def catalog(self) -> Catalog:
        """The current product snapshot with its id <-> index mapping (cached)."""
        with self._lock:
            if self._catalog is None:
                products = [p for batch in self.store.iter_products(5000) for p in batch]
                self._catalog = Catalog(products)
            return self._catalog

    def product(self, product_id: str) -> Product:
        """One stored product by its id; :class:`~shopsense.errors.NotFoundError` when absent."""
        p = self.store.get_product(product_id)
        if p is None:
            raise NotFoundError("product", product_id)
        return p

    def stats(self) -> dict[str, Any]:
        """Counts of products and events, and what has been built."""
        manifests = {}
        for mf in self.paths.manifests():
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
                from shopsense.text import encoder_for

                self._encoder = encoder_for(self.settings, self.paths)
            return self._encoder

    def item_vectors(self) -> np.ndarray | None:
        """(n_items, dim) unit text vectors of the catalogue (cached on disk by text hash,
        in memory until the products change); ``None`` when no encoder is installed."""
        with self._lock:
            if self._vectors is None and not self._vectors_missing and len(self.catalog()) > 0:
                try:
                    from shopsense.text import item_embeddings

                    self._vectors = np.asarray(item_embeddings(self), np.float32)
                except (MissingDependencyError, ImportError) as exc:  # text is an extra
                    log.warning("no item vectors (%s); text-based features are off", exc)
                    self._vectors_missing = True
            return self._vectors

    # -- search ------------------------------------------------------------------
    @property
    def searcher(self) -> SearchService:
        """The search service (:class:`shopsense.search.SearchService`), created on first use."""
        with self._lock:
            if self._search is None:
                from shopsense.search import SearchService

                self._stamps["search"] = self._build_stamp("search")
                self._search = SearchService(self)
            return self._search

    def build_index(self, progress: bool = False) -> dict[str, Any]:
        """Build (or refresh) the lexical and dense indexes under ``home/index``."""
        manifest = self.searcher.build(progress=progress)
        self._stamps["search"] = self._build_stamp("search")
        return manifest

    def search(
        self, query: str, filters: dict[str, Any] | None = None, user_id: str | None = None, k: int = 20,
        **options: Any,
    ) -> Any:
        """Hybrid product search; see :class:`shopsense.search.SearchService`."""
        _check_k(k, "search")
        return self._finished(lambda n: self.searcher.search(query, filters=filters, user_id=user_id, k=n, **options),
                              k, "search", {"query": query}, filters)

    # -- recommendations ---------------------------------------------------------
    @property
    def recommender(self) -> RecommendService:
        """The recommendation service (:class:`shopsense.recommend.RecommendService`), created on
        first use."""
        with self._lock:
            if self._recommend is None:
                from shopsense.recommend import RecommendService

                self._stamps["recommend"] = self._build_stamp("recommend")
                self._recommend = RecommendService(self)
            return self._recommend

    def train(self, progress: Any = False, *, backend: str = "local", **options: Any) -> dict[str, Any]:
        """Retrain the recommendation models from the stored events; saves a new version.

        ``backend="local"`` fits every generator and the ranker in this process;
        ``backend="spark"`` fits ALS, popularity and trending as Spark jobs
        (:func:`shopsense.jobs.train_spark`, ``Settings.spark_master``) for event logs that
        outgrow one process. Both write the same model folders, so serving does not change."""
        check_param("backend", backend, backend in ("local", "spark"), "'local' or 'spark'", "train")
        if backend == "spark":
            from shopsense.jobs import train_spark

            manifest = train_spark(self, progress, **options)
            if self._recommend is not None:
                self._recommend.load()
        else:
            manifest = self.recommender.train(progress=progress, **options)
        self._stamps["recommend"] = self._build_stamp("recommend")
        return manifest

    def recommend(self, user_id: str, k: int = 10, filters: dict[str, Any] | None = None, **options: Any) -> Any:
        """Personal recommendations for ``user_id`` (popular items for a user with no history),
        finished by the rules, diversity and reasons of the ``recommend`` surface."""
        _check_k(k, "recommend")
        return self._finished(lambda n: self.recommender.recommend(user_id, k=n, filters=filters, **options),
                              k, "recommend", filters=filters)

    def similar(self, item_id: str, k: int = 10, filters: dict[str, Any] | None = None, **options: Any) -> Any:
        """Products similar to ``item_id`` (co-interaction and text), finished for the ``similar``
        surface."""
        _check_k(k, "similar")
        return self._finished(lambda n: self.recommender.similar(item_id, k=n, filters=filters, **options),
                              k, "similar", filters=filters)

    def next_items(
        self, session_events: Sequence[str | Event | dict[str, Any]], k: int = 10,
        filters: dict[str, Any] | None = None, **options: Any,
    ) -> Any:
        """What a shopper is likely to look at next, from the items (or events) of the current
        session, finished for the ``next`` surface."""
        _check_k(k, "next_items")
        return self._finished(lambda n: self.recommender.next_items(session_events, k=n, filters=filters, **options),
                              k, "next", filters=filters)

    # -- new builds written by another process ----------------------------------------
    def loaded_builds(self) -> tuple[Any, Any]:
        """What identifies the search index and the model version this engine serves now (the
        index manifest's time, the model version; ``None`` for a service not loaded yet): read
        from what was loaded, not from disk, where ``shopsense train`` may already have written
        a version the engine has not swapped in."""
        with self._lock:
            return self._stamps.get("search"), self._stamps.get("recommend")

    def _build_stamp(self, kind: str) -> Any:
        """What identifies the build on disk: the index manifest's mtime, the CURRENT model version."""
        try:
            if kind == "search":
                return (self.paths.index / "manifest.json").stat().st_mtime_ns
            return self.paths.models_current.read_text().strip()
        except OSError:
            return None

    def swap_new_builds(self, wait: bool = False) -> list[str]:
        """Pick up an index or model version that another process (``shopsense index`` /
        ``shopsense train``) wrote after this engine loaded its own.

        The new service loads in a background thread beside the old one, which keeps
        answering, and replaces it in one assignment: no request fails and none waits for
        the load (calls already running finish on the old one). A build that does not match
        this engine's catalogue is left alone (logged). Cheap when nothing changed (one stat
        and one small read), so servers call it about once a second. Returns the kinds
        (``"search"``, ``"recommend"``) being swapped; ``wait`` joins the loads.
        """
        todo = []
        with self._lock:
            for kind, svc in (("search", self._search), ("recommend", self._recommend)):
                if svc is None or kind in self._swapping:
                    continue
                stamp = self._build_stamp(kind)
                if stamp is not None and stamp != self._stamps.get(kind):
                    self._swapping.add(kind)
                    todo.append((kind, stamp))
        threads = [threading.Thread(target=self._swap, args=job, name=f"shopsense-swap-{job[0]}", daemon=True)
                   for job in todo]
        for t in threads:
            t.start()
        if wait:
            for t in threads:
                t.join()
        return [kind for kind, _ in todo]

    def _swap(self, kind: str, stamp: Any) -> None:
        try:
            if kind == "search":
                from shopsense.search import SearchService

                new_search = SearchService(self)
                if not new_search.load():  # never build in a serving process: keep the old index
                    log.warning("the new search index does not match this catalogue; keeping the loaded one")
                    return
                new_search.warm()  # here, in the swap's thread, not in the first request after it
                with self._lock:
                    self._search = new_search
            else:
                from shopsense.recommend import RecommendService

                new_rec = RecommendService(self)
                new_rec.load()
                with self._lock:
                    self._recommend = new_rec
            log.info("swapped in the new %s build", kind)
        except Exception:  # a broken build must never take the serving one down
            log.exception("loading the new %s build failed; keeping the loaded one", kind)
        finally:
            with self._lock:
                self._stamps[kind] = stamp
                self._swapping.discard(kind)

    # -- combinations --------------------------------------------------------------
    @property
    def bundler(self) -> BundleService:
        """The bundles service (:class:`shopsense.bundles.BundleService`), created on first use."""
        with self._lock:
            if self._bundles is None:
                from shopsense.bundles import BundleService

                self._bundles = BundleService(self)
            return self._bundles

    def complements(self, item_id: str, k: int = 10, **options: Any) -> Any:
        """What goes with one item (bought together, and complements learned beyond observed pairs)."""
        _check_k(k, "complements")
        return self._finished(lambda n: self.bundler.complements(item_id, k=n, **options), k, "complements")

    def complete_cart(self, item_ids: Sequence[str], k: int = 10, **options: Any) -> Any:
        """Additions for a whole cart: never the cart items nor their substitutes."""
        _check_k(k, "complete_cart")
        return self._finished(lambda n: self.bundler.complete_cart(list(item_ids), k=n, **options), k, "cart")

    def substitutes(self, item_id: str, k: int = 10, **options: Any) -> Any:
        """Items that could replace ``item_id``: similar text and category, rarely bought together."""
        _check_k(k, "substitutes")
        return self._finished(lambda n: self.bundler.substitutes(item_id, k=n, **options), k, "substitutes")

    def bundle(self, items: str | Sequence[str], size: int = 3, budget: float | None = None, **options: Any) -> Any:
        """A bundle around ``items`` within ``budget``; the set is chosen as a whole, so the
        finishing stage fills products and reasons but does not re-rank it."""
        ids = [items] if isinstance(items, str) else list(items)
        res = self.bundler.bundle(ids, size=size, budget=budget, **options)
        return self._finished(lambda n: res, max(1, len(res)), "bundle", reorder=False)

    # -- the one finishing stage every list passes through ------------------------------
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

    def _finished(self, fetch: Callable[[int], ResultList], k: int, surface: str,
                  context: dict[str, Any] | None = None, filters: dict[str, Any] | None = None,
                  reorder: bool = True) -> ResultList:
        """``fetch(n)`` candidates from a service, then :func:`shopsense.rerank.finish`:
        products, rules, diversity, reasons, rephrasing; ``info["rerank"]`` says what moved
        and why. With rules or diversity active for ``surface`` the service is asked for
        ``3k`` candidates, so diversity has choice and exclusions still leave ``k``. A pinned
        product that the call's own ``filters`` rule out (price, brand, stock...) is not inserted."""
        from shopsense.rerank import finish, reorders

        ctx = {"surface": surface, **(context or {})}
        rr = self.reranker if reorder else None
        active = rr is not None and reorders(rr, ctx)
        res = fetch(3 * k if active else k)
        out = finish(res, self.catalog(), k=k, context=ctx, reranker=rr if active else None, filters=filters,
                     vectors=self.item_vectors, rephraser=self._rephraser)
        # every list carries an id: impressions, clicks, carts and purchases report it (shopsense.insights)
        import uuid

        out.info["list_id"], out.info["surface"] = uuid.uuid4().hex, surface
        return out

    # -- shopping assistant -----------------------------------------------------------
    def ask(self, session_id: str, text: str, user_id: str | None = None) -> Any:
        """One turn of the shopping assistant (:class:`shopsense.assist.Assistant`, a consumer
        of this engine's public methods): answer text, cited facts, products and the updated
        query state, grounded in the catalogue and the shop's policy files."""
        with self._lock:
            if getattr(self, "_assistant", None) is None:
                from shopsense.assist import Assistant

                self._assistant = Assistant(self)
        return self._assistant.ask(session_id, text, user_id=user_id)

    # -- privacy -------------------------------------------------------------------
    def delete_user(self, user_id: str) -> dict[str, Any]:
        """Remove every event and profile of a user from the store, indexes and models,
        and the assistant sessions linked to them."""
        from shopsense.assist import delete_user_sessions

        events = self.store.delete_user(user_id)
        if self.paths.models_current.exists():
            _ = self.recommender  # saved models name their users (precomputed lists): erase them too
        try:
            _ = self.bundler  # saved complement models count their baskets: dropped too (no fit happens)
        except ImportError:  # the bundles extra is not installed: nothing of it was saved either
            pass
        return {"events": events, **self.forget_in_memory(user_id),
                "assistant_sessions": delete_user_sessions(self.paths.assistant_sessions, user_id)}


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
