"""The Store contract: one suite of tests that every back-end must pass.

A back-end joins by providing a :class:`Backend` (how to open a store on some storage,
and, where it can, the raw bytes that storage keeps) as the ``backend`` fixture of a
class that inherits :class:`StoreContract` (see ``test_contract.py``), in the manner
of gorse's one SQL test suite for every data store.

The data are a few real rows of the demo catalogues (``data/demo``) and events shaped
like the demo's, so an answer that is right here is right for a shop.
"""

from __future__ import annotations

import json
import threading
from abc import ABC, abstractmethod
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from shopsense.catalog import Event, EventType, Product
from shopsense.store import Exposure, Store

DEMO = Path(__file__).resolve().parents[2] / "data" / "demo"


def demo_products() -> list[Product]:
    """Four office products (no attributes, no price) and four Icecat products (with
    attributes, price and image), in file order."""
    rows: list[Product] = []
    for name in ("office_products.jsonl", "icecat_products.jsonl"):
        with (DEMO / name).open(encoding="utf-8") as fh:
            for line, _ in zip(fh, range(4), strict=False):
                rows.append(Product.model_validate(json.loads(line)))
    return rows


T0 = datetime(2014, 1, 1, 9, 30, tzinfo=UTC)


def ev(user: str, item: str | None, kind: str = "view", minute: float = 0, **kw: object) -> Event:
    return Event(user_id=user, item_id=item, type=EventType(kind),
                 timestamp=T0 + timedelta(minutes=minute), **kw)


def session_events() -> list[Event]:
    """Two shoppers' sessions; added out of time order on purpose."""
    return [
        ev("office-u1", "office-3", "purchase", 30, session_id="s-u1-1", price=4.99),
        ev("office-u0", None, "search", 0, session_id="s-u0-1", query="cordless phone"),
        ev("office-u0", "office-0", "click", 1, session_id="s-u0-1"),
        ev("office-u0", "office-0", "add_to_cart", 2, session_id="s-u0-1", quantity=2),
        ev("office-u1", "office-2", "view", 10, session_id="s-u1-1"),
        ev("office-u0", "office-0", "purchase", 5, session_id="s-u0-1", quantity=2, price=39.95),
        ev("office-u1", "office-3", "add_to_cart", 20, session_id="s-u1-1"),
    ]


def shown(user: str, list_id: str, items: list[str], minute: float = 0, **kw: object) -> Exposure:
    """An impression of a search list (the ids in the order shown)."""
    kw.setdefault("surface", "search")
    return Exposure(kind="impression", list_id=list_id, user_id=user, items=items, n_results=len(items),
                    timestamp=T0 + timedelta(minutes=minute), **kw)


def acted(user: str, list_id: str, item: str, position: int, kind: str = "click", minute: float = 1,
          **kw: object) -> Exposure:
    kw.setdefault("surface", "search")
    return Exposure(kind=kind, list_id=list_id, user_id=user, item_id=item, position=position,  # type: ignore[arg-type]
                    timestamp=T0 + timedelta(minutes=minute), **kw)


class Unstorable:
    """A value no driver can bind: makes the database fail mid-batch."""


class Backend(ABC):
    """How the contract reaches one back-end."""

    name: str

    @abstractmethod
    def open(self) -> Store:
        """A new store on the same storage each call (so a second call is a reopen)."""

    def raw_bytes(self) -> bytes | None:
        """Every byte the back-end keeps for its events right now (files, pages), or
        ``None`` where the test cannot read them (a remote server)."""
        return None


class StoreContract:
    """Inherit this and provide a ``backend`` fixture yielding a :class:`Backend`."""

    @pytest.fixture
    def store(self, backend: Backend):
        s = backend.open()
        yield s
        s.close()

    # -- products ----------------------------------------------------------------------
    def test_empty_store(self, store: Store) -> None:
        assert store.count_products() == 0 and store.count_events() == 0
        assert store.product_ids() == [] and list(store.iter_products()) == []
        assert store.event_type_counts() == {}
        assert store.get_meta("anything") is None
        ea = store.events()
        assert len(ea) == 0
        assert ea.timestamp.dtype == np.float64 and ea.quantity.dtype == np.int64
        assert ea.user_id.dtype == object

    def test_upsert_replaces_by_id(self, store: Store) -> None:
        products = demo_products()
        assert store.upsert_products(products) == len(products)
        assert store.upsert_products(products) == len(products)  # idempotent
        assert store.count_products() == len(products)
        changed = products[1].model_copy(update={"title": "Big-Button Corded Phone (renewed)",
                                                 "price": 19.5, "in_stock": False})
        store.upsert_products([changed])
        assert store.count_products() == len(products)
        assert store.get_product(products[1].id) == changed
        assert store.get_product(products[0].id) == products[0]

    def test_insertion_order_is_stable_across_upserts(self, store: Store) -> None:
        p = demo_products()
        store.upsert_products(p[:3])
        store.upsert_products([p[2].model_copy(update={"title": "x"}), p[3], p[0]])
        store.upsert_products(p[4:])
        ids = [x.id for x in p]
        assert store.product_ids() == ids
        batches = list(store.iter_products(batch_size=3))
        assert [len(b) for b in batches] == [3, 3, 2]
        assert [x.id for b in batches for x in b] == ids
        assert store.get_product(p[2].id).title == "x"  # type: ignore[union-attr]

    def test_one_id_twice_in_a_batch_keeps_the_last_at_the_first_place(self, store: Store) -> None:
        p = demo_products()
        late = p[0].model_copy(update={"title": "VTech CS6114 (second row)"})
        store.upsert_products([p[0], p[1], late])
        assert store.product_ids() == [p[0].id, p[1].id]
        assert store.get_product(p[0].id) == late

    def test_unknown_ids(self, store: Store) -> None:
        p = demo_products()
        store.upsert_products(p)
        assert store.get_product("office-404") is None
        got = store.get_products([p[5].id, "office-404", p[0].id, p[5].id])
        assert got == [p[5], None, p[0], p[5]]
        assert store.get_products([]) == []

    def test_products_round_trip_with_attributes_unicode_and_none(self, store: Store) -> None:
        p = demo_products()
        assert p[4].attributes and p[4].price is not None  # Icecat rows carry attributes
        odd = Product(
            id="büro-ünïcödé-1", title="Bürostuhl „Ergo“ — 人体工学椅 🪑", description="Größe: L\nFarbe: grün\t✓",
            brand="Müller & Söhne", category=["Büro", "Stühle & Sessel"], attributes={"färg": "röd", "size": "A4",
            "quote": "\"'\\"}, price=None, rating=None, image_url=None, currency="EUR",
        )
        store.upsert_products([*p, odd])
        for want in [*p, odd]:
            got = store.get_product(want.id)
            assert got == want and got.model_dump() == want.model_dump()  # type: ignore[union-attr]
        assert store.get_products([odd.id]) == [odd]

    def test_delete_products(self, store: Store) -> None:
        p = demo_products()
        store.upsert_products(p)
        store.add_events(session_events())
        assert store.delete_products([p[1].id, "office-404", p[5].id]) == 2
        assert store.product_ids() == [x.id for x in p if x.id not in (p[1].id, p[5].id)]
        assert store.get_product(p[1].id) is None
        assert store.count_events() == len(session_events())  # events stay (history)
        assert store.delete_products([]) == 0

    # -- events ------------------------------------------------------------------------
    def test_events_come_in_time_order(self, store: Store) -> None:
        evs = session_events()
        assert store.add_events(evs) == len(evs)
        ea = store.events()
        assert len(ea) == len(evs)
        assert np.all(np.diff(ea.timestamp) >= 0)
        want = sorted(evs, key=lambda e: e.timestamp)
        assert list(ea.item_id) == [e.item_id for e in want]
        assert list(ea.type) == [e.type.value for e in want]
        assert list(ea.quantity) == [e.quantity for e in want]
        assert ea.timestamp[0] == T0.timestamp()

    def test_equal_timestamps_keep_insertion_order(self, store: Store) -> None:
        items = ["office-3", "office-0", "office-2", "office-1"]
        store.add_events([ev("office-u7", i, "view", 0) for i in items])
        store.add_events([ev("office-u7", "office-9", "view", 0)])
        assert list(store.events().item_id) == [*items, "office-9"]

    def test_identical_events_are_stored_once(self, store: Store) -> None:
        evs = session_events()
        assert store.add_events(evs) == len(evs)
        new = ev("office-u0", "office-1", "view", 40)
        assert store.add_events([*evs, new]) == 1
        assert store.add_events([new, new]) == 0
        assert store.count_events() == len(evs) + 1
        twice = ev("office-u2", "office-4", "click", 3)
        assert store.add_events([twice, twice]) == 1  # within one batch too
        # the price is not part of an event's identity (a re-export with prices is a re-ingest)
        assert store.add_events([evs[0].model_copy(update={"price": 5.49})]) == 0

    def test_event_filters(self, store: Store) -> None:
        store.add_events(session_events())
        u0 = store.events(user_id="office-u0")
        assert set(u0.user_id) == {"office-u0"} and len(u0) == 4
        s = store.events(session_id="s-u1-1")
        assert list(s.item_id) == ["office-2", "office-3", "office-3"]
        since = (T0 + timedelta(minutes=5)).timestamp()
        later = store.events(since=since)  # strictly after
        assert list(later.timestamp) == sorted(later.timestamp) and len(later) == 3
        assert np.all(later.timestamp > since)
        both = store.events(user_id="office-u0", since=(T0 + timedelta(minutes=1)).timestamp())
        assert list(both.type) == ["add_to_cart", "purchase"]
        assert len(store.events(user_id="nobody")) == 0
        assert len(store.events(user_id="office-u0", session_id="s-u1-1")) == 0

    def test_counts(self, store: Store) -> None:
        store.add_events(session_events())
        assert store.count_events() == 7
        assert store.count_events("office-u0") == 4 and store.count_events("office-u1") == 3
        assert store.count_events("nobody") == 0
        assert store.event_type_counts() == {"search": 1, "click": 1, "view": 1, "add_to_cart": 2,
                                             "purchase": 2}

    def test_events_round_trip_unicode_and_none(self, store: Store) -> None:
        odd = [
            ev("käufer-ß-用户", None, "search", 0, query="bürostuhl 🪑 „ergo“"),
            ev("käufer-ß-用户", "büro-ünïcödé-1", "purchase", 1, session_id="sitzung-ü", quantity=3,
               price=0.0),
        ]
        store.add_events(odd)
        ea = store.events(user_id="käufer-ß-用户")
        assert list(ea.item_id) == [None, "büro-ünïcödé-1"]
        assert list(ea.query) == ["bürostuhl 🪑 „ergo“", None]
        assert list(ea.session_id) == [None, "sitzung-ü"]
        assert list(ea.quantity) == [1, 3]
        assert list(ea.timestamp) == [e.timestamp.timestamp() for e in odd]
        assert len(store.events(session_id="sitzung-ü")) == 1

    def test_sub_second_timestamps_round_trip(self, store: Store) -> None:
        t = datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=UTC)
        store.add_events([Event(user_id="u", item_id="i", type=EventType.VIEW, timestamp=t)])
        assert store.events().timestamp[0] == t.timestamp()

    def test_large_batch(self, store: Store) -> None:
        n = 20_000
        evs = [ev(f"office-u{i % 997}", f"office-{i % 2420}", ("view", "click", "purchase")[i % 3],
                  i / 60.0) for i in range(n)]
        assert store.add_events(evs) == n
        assert store.count_events() == n
        ea = store.events()
        assert len(ea) == n and np.all(np.diff(ea.timestamp) > 0)
        assert ea.item_id[12_345] == evs[12_345].item_id
        assert store.add_events(evs) == 0
        assert store.count_events("office-u5") == len(range(5, n, 997))

    # -- erasure -----------------------------------------------------------------------
    def test_delete_user_removes_every_event_of_the_user_and_nothing_else(self, store: Store) -> None:
        store.upsert_products(demo_products())
        store.add_events(session_events())
        assert store.delete_user("office-u0") == 4
        assert store.count_events("office-u0") == 0 and len(store.events(user_id="office-u0")) == 0
        assert len(store.events(session_id="s-u0-1")) == 0
        assert store.count_events() == 3 and set(store.events().user_id) == {"office-u1"}
        assert store.count_products() == len(demo_products())
        assert store.delete_user("office-u0") == 0
        assert store.delete_user("nobody") == 0
        # the user can come back as a new shopper
        assert store.add_events(session_events()) == 4

    def test_delete_user_leaves_no_trace(self, backend: Backend, store: Store) -> None:
        secret_user, secret_query = "erase-me-7f3a9c", "pregnancy test discreet"
        noise = [ev(f"office-u{i}", f"office-{i}", "view", i) for i in range(300)]
        mine = [ev(secret_user, None, "search", 0.5, query=secret_query, session_id=f"{secret_user}-s1"),
                *[ev(secret_user, f"office-{i}", "click", i + 0.5, session_id=f"{secret_user}-s1")
                  for i in range(50)]]
        store.add_events(noise[:150])
        store.add_events(mine)
        store.add_events(noise[150:])
        before = backend.raw_bytes()
        if before is None:
            pytest.skip(f"{backend.name}: the storage's bytes cannot be read from here")
        assert secret_user.encode() in before  # the check can see what it looks for
        assert store.delete_user(secret_user) == len(mine)
        after = backend.raw_bytes()
        assert after is not None
        assert secret_user.encode() not in after
        assert secret_query.encode() not in after
        assert b"office-u299" in after  # everybody else is still there
        assert store.count_events() == len(noise)

    # -- meta, atomicity, durability ----------------------------------------------------
    def test_meta(self, store: Store) -> None:
        assert store.get_meta("index_version") is None
        store.set_meta("index_version", "3")
        store.set_meta("index_version", "4")
        store.set_meta("note", "ünïcödé ✓")
        assert store.get_meta("index_version") == "4" and store.get_meta("note") == "ünïcödé ✓"

    def test_a_failed_event_batch_leaves_nothing(self, store: Store) -> None:
        store.add_events(session_events()[:2])
        good = [ev("office-u9", f"office-{i}", "view", 50 + i) for i in range(5)]
        # a row whose price no database driver can store, in the middle of the batch: the
        # rows before it were already handed to the database when it fails (the price is
        # not part of the event's key, so nothing fails before the write starts)
        bad = Event.model_construct(user_id="office-u9", item_id="office-7", type=EventType.VIEW,
                                    timestamp=T0, session_id=None, query=None, quantity=1,
                                    price=Unstorable())
        with pytest.raises(Exception):  # noqa: B017 - each back-end raises its driver's error
            store.add_events([*good[:3], bad, *good[3:]])
        assert store.count_events() == 2 and store.count_events("office-u9") == 0
        assert store.add_events(good) == 5  # the store is usable after the failure
        assert store.count_events() == 7

    @pytest.mark.filterwarnings("ignore::UserWarning")  # pydantic warns when dumping the bad row
    def test_a_failed_product_batch_leaves_nothing(self, store: Store) -> None:
        p = demo_products()
        store.upsert_products(p[:2])
        changed = p[0].model_copy(update={"title": "changed in a batch that fails"})
        bad = Product.model_construct(**{**p[3].model_dump(), "id": None})
        with pytest.raises(Exception):  # noqa: B017
            store.upsert_products([changed, p[2], bad, p[3]])
        assert store.product_ids() == [p[0].id, p[1].id]
        assert store.get_product(p[0].id) == p[0]
        assert store.upsert_products([changed, p[2]]) == 2
        assert store.get_product(p[0].id) == changed

    def test_reopening_keeps_the_data(self, backend: Backend, store: Store) -> None:
        p = demo_products()
        store.upsert_products(p)
        store.add_events(session_events())
        store.set_meta("catalog_version", "7")
        store.close()
        again = backend.open()
        try:
            assert again.product_ids() == [x.id for x in p]
            assert again.get_product(p[4].id) == p[4]
            assert again.count_events() == 7 and again.get_meta("catalog_version") == "7"
            assert again.add_events(session_events()) == 0  # de-duplication survives too
        finally:
            again.close()

    def test_two_stores_on_one_storage_see_each_other(self, backend: Backend, store: Store) -> None:
        other = backend.open()
        try:
            store.add_events(session_events()[:3])
            assert other.count_events() == 3
            assert other.add_events(session_events()) == 4
            assert store.count_events() == 7
        finally:
            other.close()

    def test_threads_share_one_store(self, store: Store) -> None:
        errors: list[BaseException] = []

        def work(t: int) -> None:
            try:
                for b in range(5):
                    store.add_events([ev(f"office-u{t}", f"office-{b * 10 + i}", "view", b * 10 + i)
                                      for i in range(10)])
                    store.events(user_id=f"office-u{t}")
                    store.count_events()
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert errors == []
        assert store.count_events() == 200
        assert all(store.count_events(f"office-u{t}") == 50 for t in range(4))

    # -- exposures (impressions and the actions on their items) -------------------------
    def test_exposures_round_trip_without_the_user_id(self, store: Store) -> None:
        rows = [shown("office-u0", "L1", ["office-0", "office-1", "office-2"], session_id="s1",
                      query="cordless phöne", variant="B", experiment="fusion-1"),
                acted("office-u0", "L1", "office-1", 2, session_id="s1"),
                acted("office-u0", "L1", "office-1", 2, "purchase", 3, session_id="s1", price=4.5, quantity=2),
                shown("office-u1", "L2", [], 0.5, surface="recommend")]
        assert store.add_exposures(rows) == 4
        got = store.exposures()
        assert [g["list_id"] for g in got] == ["L1", "L2", "L1", "L1"]  # time order
        first = got[0]
        assert first["items"] == ["office-0", "office-1", "office-2"] and first["n_results"] == 3
        assert first["query"] == "cordless phöne" and first["variant"] == "B" and first["experiment"] == "fusion-1"
        assert got[1]["items"] == [] and got[1]["surface"] == "recommend"
        assert got[3]["kind"] == "purchase" and got[3]["position"] == 2 and got[3]["price"] == 4.5
        assert got[3]["quantity"] == 2
        assert all("user_id" not in g and g["user_key"] != "office-u0" for g in got)
        assert got[0]["user_key"] == store.user_key("office-u0") != store.user_key("office-u1")
        assert [g["kind"] for g in store.exposures(user_id="office-u0")] == ["impression", "click", "purchase"]

    def test_a_repeated_exposure_is_stored_once(self, store: Store) -> None:
        rows = [shown("office-u0", "L1", ["office-0"]), acted("office-u0", "L1", "office-0", 1)]
        assert store.add_exposures(rows) == 2
        assert store.add_exposures(rows) == 0  # a retried report
        assert len(store.exposures()) == 2

    def test_exposure_time_range(self, store: Store) -> None:
        store.add_exposures([shown("office-u0", f"L{i}", ["office-0"], minute=i) for i in range(5)])
        t = (T0 + timedelta(minutes=1)).timestamp()
        u = (T0 + timedelta(minutes=3)).timestamp()
        assert [g["list_id"] for g in store.exposures(since=t, until=u)] == ["L1", "L2"]

    def test_user_key_is_stable_across_reopening(self, backend: Backend, store: Store) -> None:
        key = store.user_key("office-u0")
        other = backend.open()
        try:
            assert other.user_key("office-u0") == key
        finally:
            other.close()

    def test_delete_user_removes_their_exposures_and_leaves_no_trace(self, backend: Backend, store: Store) -> None:
        secret_query = "discreet pregnancy test 4f1"
        store.add_exposures([shown(f"office-u{i}", f"N{i}", ["office-1"], i) for i in range(50)])
        store.add_exposures([shown("erase-me", "S1", ["office-0"], 0.5, query=secret_query),
                             acted("erase-me", "S1", "office-0", 1, query=secret_query)])
        store.add_events(session_events())
        assert len(store.exposures(user_id="erase-me")) == 2
        store.delete_user("erase-me")
        assert store.exposures(user_id="erase-me") == [] and len(store.exposures()) == 50
        raw = backend.raw_bytes()
        if raw is None:
            pytest.skip(f"{backend.name}: the storage's bytes cannot be read from here")
        assert secret_query.encode() not in raw
        assert store.user_key("erase-me").encode() not in raw

    def test_delete_before_applies_retention_to_events_and_exposures(self, store: Store) -> None:
        store.add_events(session_events())  # minutes 0..30
        store.add_exposures([shown("office-u0", f"L{i}", ["office-0"], minute=i * 10) for i in range(4)])
        cut = (T0 + timedelta(minutes=15)).timestamp()
        assert store.delete_before(cut) == {"events": 5, "exposures": 2}
        assert store.count_events() == 2 and len(store.exposures()) == 2
        assert store.events().timestamp.min() >= cut

    def test_sales_are_the_purchases_with_their_price(self, store: Store) -> None:
        store.add_events(session_events())
        got = store.sales()
        assert [(u, i, q, p) for u, i, _, _, q, p in got] == [("office-u0", "office-0", 2, 39.95),
                                                             ("office-u1", "office-3", 1, 4.99)]
        assert got[0][3] == "s-u0-1"
        assert store.sales(since=(T0 + timedelta(minutes=10)).timestamp()) == [got[1]]

    def test_exposure_validation(self) -> None:
        with pytest.raises(ValueError, match="position"):
            Exposure(kind="click", list_id="L", user_id="u", surface="search", item_id="x")
        with pytest.raises(ValueError, match="surface"):
            Exposure(kind="impression", list_id="L", user_id="u", surface="homepage")
        with pytest.raises(ValueError, match="items"):
            Exposure(kind="impression", list_id="L", user_id="u", surface="search", item_id="x", position=1)
