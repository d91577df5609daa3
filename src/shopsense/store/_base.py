"""The storage interface. SQLite is the embedded default; a PostgreSQL back-end
implements the same class without touching callers."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import secrets
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shopsense.catalog import Event, Product
from shopsense.config import SURFACES


def event_key(e: Event) -> str:
    """The identity of an event for de-duplication: a 128-bit hash (hex) of every field
    but the price. The PostgreSQL store keeps it under a unique constraint, so re-ingesting
    a file skips the events already stored; the SQLite store's unique index holds the same
    fields themselves (no key to compute, see store/_sqlite.py)."""
    return _key(e.user_id, e.item_id, e.type.value, e.timestamp.timestamp(), e.session_id, e.query, e.quantity)


def _key(user_id: str, item_id: str | None, type_: str, ts: float, session_id: str | None,
         query: str | None, quantity: int) -> str:
    raw = "\x1f".join([user_id, item_id or "", type_, f"{ts:.6f}", session_id or "", query or "", str(quantity)])
    return hashlib.blake2b(raw.encode(), digest_size=16).hexdigest()


def event_values(events: Iterable[Event]) -> list[tuple[Any, ...]]:
    """The fields of ``events`` as tuples ``(user_id, item_id, type, ts, session_id, query,
    quantity, price)`` (``type`` its value, ``ts`` seconds since 1970), without a key: what the
    SQLite store inserts (its unique index holds the identity fields themselves). A batch from
    the ingest's fast path (it has ``event_tuples()``, already validated) is returned as it is."""
    tuples = getattr(events, "event_tuples", None)
    if tuples is not None:
        return tuples()  # type: ignore[no-any-return]
    return [(e.user_id, e.item_id, e.type.value, e.timestamp.timestamp(), e.session_id, e.query, e.quantity,
             e.price) for e in events]


def event_rows(events: Iterable[Event]) -> list[tuple[Any, ...]]:
    """The stored rows of ``events``: ``(key, user_id, item_id, type, ts, session_id, query,
    quantity, price)``, key as :func:`event_key`. A batch from the ingest's fast path (it has
    ``event_tuples()``: the same fields but the key, already validated) is read as is, without
    building an :class:`Event` per row."""
    blake2b = hashlib.blake2b
    return [(blake2b(f"{u}\x1f{i or ''}\x1f{ty}\x1f{ts:.6f}\x1f{s or ''}\x1f{q or ''}\x1f{n}".encode(),
                     digest_size=16).hexdigest(), u, i, ty, ts, s, q, n, p)
            for u, i, ty, ts, s, q, n, p in event_values(events)]  # _key, inlined: a call per row costs 20%


#: what an exposure row records: a list shown, or an action on one of its items
EXPOSURE_KINDS = ("impression", "click", "add_to_cart", "purchase")

#: the columns of an exposure as :meth:`Store.exposures` returns them (``user_key``, never the user id)
EXPOSURE_FIELDS = ("kind", "list_id", "user_key", "session_id", "surface", "variant", "experiment", "query",
                   "items", "n_results", "item_id", "position", "price", "quantity", "ts")


class Exposure(BaseModel):
    """One list shown to a shopper (``kind="impression"``: the ids in the order shown,
    ``n_results`` found) or one action on an item of such a list (``click``,
    ``add_to_cart``, ``purchase``: ``item_id`` and its 1-based ``position``). ``list_id``
    is the id the engine put in the list's ``info``. The store keeps a keyed hash of
    ``user_id`` (:meth:`Store.user_key`), never the id itself."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    kind: Literal["impression", "click", "add_to_cart", "purchase"]
    list_id: str = Field(min_length=1, max_length=64)
    user_id: str = Field(min_length=1, max_length=256)
    surface: str = Field(min_length=1, max_length=32)
    timestamp: datetime = Field(default_factory=lambda: datetime.now(UTC))
    session_id: str | None = Field(default=None, max_length=256)
    variant: str | None = Field(default=None, max_length=64)
    experiment: str | None = Field(default=None, max_length=64)
    query: str | None = Field(default=None, max_length=500)
    items: list[str] = Field(default_factory=list, max_length=1000)
    n_results: int | None = Field(default=None, ge=0)
    item_id: str | None = Field(default=None, max_length=256)
    position: int | None = Field(default=None, ge=1, le=1000)
    price: float | None = Field(default=None, ge=0)
    quantity: int = Field(default=1, ge=1)

    @field_validator("timestamp", mode="before")
    @classmethod
    def _parse_ts(cls, v: Any) -> Any:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return datetime.fromtimestamp(float(v), tz=UTC)
        return v

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)

    @field_validator("price")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError("must be finite")
        return v

    @model_validator(mode="after")
    def _check(self) -> Exposure:
        if self.surface not in SURFACES:
            raise ValueError(f"unknown surface {self.surface!r}; expected one of {list(SURFACES)}")
        if self.kind == "impression":
            if self.item_id is not None or self.position is not None:
                raise ValueError("an impression lists its items in 'items'; item_id and position are for actions")
        elif self.item_id is None or self.position is None:
            raise ValueError(f"a {self.kind!r} needs the item_id and the 1-based position it was shown at")
        return self


def exposure_row(e: Exposure, user_key: str) -> tuple[Any, ...]:
    """The stored row of ``e``: a de-duplication key, then :data:`EXPOSURE_FIELDS` in order.
    The key hashes every field but price and quantity, so a retried report is stored once."""
    ts = e.timestamp.timestamp()
    items = json.dumps(e.items) if e.kind == "impression" else None
    raw = "\x1f".join([e.kind, e.list_id, user_key, e.item_id or "", str(e.position or 0), f"{ts:.6f}"])
    key = hashlib.blake2b(raw.encode(), digest_size=16).hexdigest()
    return (key, e.kind, e.list_id, user_key, e.session_id, e.surface, e.variant, e.experiment, e.query,
            items, e.n_results, e.item_id, e.position, e.price, e.quantity, ts)


def exposure_dict(row: Iterable[Any]) -> dict[str, Any]:
    """A stored row (without its key) as a dict of :data:`EXPOSURE_FIELDS`."""
    d = dict(zip(EXPOSURE_FIELDS, row, strict=True))
    d["items"] = json.loads(d["items"]) if d["items"] else []
    d["ts"] = float(d["ts"])
    return d


@dataclass(frozen=True)
class EventArrays:
    """Events as column arrays, ordered by time: what models are handed."""

    user_id: np.ndarray  # object (str)
    item_id: np.ndarray  # object (str | None)
    type: np.ndarray  # object (str)
    timestamp: np.ndarray  # float64 seconds since epoch
    session_id: np.ndarray  # object (str | None)
    query: np.ndarray  # object (str | None)
    quantity: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.user_id)

    def mask(self, keep: np.ndarray) -> EventArrays:
        return EventArrays(**{k: getattr(self, k)[keep] for k in self.__dataclass_fields__})


def event_arrays(cols: list[Any] | tuple[Any, ...]) -> EventArrays:
    """Columns ``(user_id, item_id, type, ts, session_id, query, quantity)`` as arrays."""
    return EventArrays(
        user_id=np.array(cols[0], dtype=object),
        item_id=np.array(cols[1], dtype=object),
        type=np.array(cols[2], dtype=object),
        timestamp=np.array(cols[3], dtype=np.float64),
        session_id=np.array(cols[4], dtype=object),
        query=np.array(cols[5], dtype=object),
        quantity=np.array(cols[6], dtype=np.int64),
    )


class Store(ABC):
    """Durable store of products, events and small metadata."""

    @abstractmethod
    def upsert_products(self, products: Iterable[Product]) -> int:
        """Insert or replace products by id in one transaction; returns the count."""

    @abstractmethod
    def add_events(self, events: Iterable[Event]) -> int:
        """Append events in one transaction; an identical event already stored is
        skipped (idempotent re-ingest). Returns the number newly stored."""

    @contextmanager
    def bulk_events(self) -> Iterator[None]:
        """Around a large load of events (the ingest of a file): a back-end may defer work it can
        do faster once at the end (SQLite: the secondary indexes of an empty events table).
        Every event is stored, de-duplicated and committed batch by batch as without it."""
        yield

    @abstractmethod
    def get_product(self, product_id: str) -> Product | None: ...

    @abstractmethod
    def get_products(self, product_ids: list[str]) -> list[Product | None]:
        """Products in the order asked for, ``None`` for unknown ids."""

    @abstractmethod
    def iter_products(self, batch_size: int = 1000) -> Iterator[list[Product]]:
        """All products in insertion order, in batches."""

    @abstractmethod
    def product_ids(self) -> list[str]:
        """All product ids in insertion order (the dense index order)."""

    @abstractmethod
    def count_products(self) -> int: ...

    @abstractmethod
    def count_events(self, user_id: str | None = None) -> int: ...

    @abstractmethod
    def events(
        self, user_id: str | None = None, session_id: str | None = None, since: float | None = None
    ) -> EventArrays:
        """Events (optionally of one user or session, or after ``since``) in time order."""

    @abstractmethod
    def event_type_counts(self) -> dict[str, int]: ...

    @abstractmethod
    def delete_user(self, user_id: str) -> int:
        """Remove every event and every exposure of a user; returns the number of events removed."""

    @abstractmethod
    def delete_products(self, product_ids: list[str]) -> int: ...

    @abstractmethod
    def get_meta(self, key: str) -> str | None: ...

    @abstractmethod
    def set_meta(self, key: str, value: str) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    # -- exposures (what was shown, and what came of it) ------------------------------
    # Not abstract, so a back-end written before exposures existed still opens; the
    # SQLite and PostgreSQL stores implement them (tests/store/contract.py).
    def add_exposures(self, exposures: Iterable[Exposure]) -> int:
        """Append impressions and actions in one transaction (a repeat is stored once);
        the user id is kept only as :meth:`user_key`. Returns the number newly stored."""
        raise NotImplementedError(f"{type(self).__name__} does not store exposures")

    def exposures(self, since: float | None = None, until: float | None = None,
                  user_id: str | None = None) -> list[dict[str, Any]]:
        """Stored exposures with ``since <= ts < until`` (and of one user), in time order,
        as dicts of :data:`EXPOSURE_FIELDS`: ``user_key``, never the user id."""
        raise NotImplementedError(f"{type(self).__name__} does not store exposures")

    def sales(self, since: float | None = None, until: float | None = None) -> list[tuple[Any, ...]]:
        """Purchase events with ``since <= ts < until`` in time order, as tuples
        ``(user_id, item_id, ts, session_id, quantity, price)`` (what revenue figures need;
        :meth:`events` leaves the price out)."""
        raise NotImplementedError(f"{type(self).__name__} does not list sales")

    def delete_before(self, ts: float) -> dict[str, int]:
        """Retention: delete events and exposures older than ``ts``; returns the counts."""
        raise NotImplementedError(f"{type(self).__name__} does not delete by age")

    def set_meta_default(self, key: str, value: str) -> str:
        """Store ``value`` under ``key`` unless one is there; returns the stored value
        (back-ends make it atomic, so processes starting together agree)."""
        old = self.get_meta(key)
        if old is not None:
            return old
        self.set_meta(key, value)
        return self.get_meta(key) or value

    def user_key(self, user_id: str) -> str:
        """The pseudonym exposures are stored under: an HMAC of ``user_id`` keyed by a
        secret kept in the store's meta table, so every process on the store agrees and
        :meth:`delete_user` can find a user's exposures; nothing outside the store can
        link it back without that secret."""
        secret = getattr(self, "_user_secret", None)
        if secret is None:
            secret = self.set_meta_default("exposure_secret", secrets.token_hex(32)).encode()
            self._user_secret = secret
        return "u_" + hmac.new(secret, user_id.encode(), hashlib.sha256).hexdigest()[:24]


class SQLReads:
    """The reads both SQL back-ends answer with the same SQL, written once: a back-end
    sets ``_mark`` (its DB-API parameter mark: ``?`` for sqlite3, ``%s`` for psycopg) and
    runs a read with ``_query``. Mixed in before :class:`Store`."""

    _mark = "?"

    def _where(self, conditions: Iterable[tuple[str, Any]]) -> tuple[str, tuple[Any, ...]]:
        """``[("ts >=", 5.0), ("user_id =", None)]`` -> ``(" WHERE ts >= ?", (5.0,))``:
        a condition whose value is ``None`` is left out."""
        used = [(c, v) for c, v in conditions if v is not None]
        if not used:
            return "", ()
        return " WHERE " + " AND ".join(f"{c} {self._mark}" for c, _ in used), tuple(v for _, v in used)

    def iter_products(self, batch_size: int = 1000) -> Iterator[list[Product]]:
        last = 0
        while True:  # keyset pages: no lock or transaction is held between batches
            rows = self._query(  # type: ignore[attr-defined]
                f"SELECT seq, data FROM products WHERE seq > {self._mark} ORDER BY seq LIMIT {self._mark}",
                (last, batch_size))
            if not rows:
                return
            last = rows[-1][0]
            yield [Product.model_validate_json(d) for _, d in rows]

    def product_ids(self) -> list[str]:
        return [r[0] for r in self._query("SELECT id FROM products ORDER BY seq")]  # type: ignore[attr-defined]

    def count_products(self) -> int:
        return int(self._query("SELECT count(*) FROM products")[0][0])  # type: ignore[attr-defined]

    def count_events(self, user_id: str | None = None) -> int:
        where, args = self._where([("user_id =", user_id)])
        return int(self._query("SELECT count(*) FROM events" + where, args)[0][0])  # type: ignore[attr-defined]

    def event_type_counts(self) -> dict[str, int]:
        rows = self._query("SELECT type, count(*) FROM events GROUP BY type")  # type: ignore[attr-defined]
        return {t: int(n) for t, n in rows}

    def _event_query(self, user_id: str | None, session_id: str | None,
                     since: float | None) -> tuple[str, tuple[Any, ...]]:
        where, args = self._where([("user_id =", user_id), ("session_id =", session_id),
                                   ("ts >", None if since is None else float(since))])
        return ("SELECT user_id, item_id, type, ts, session_id, query, quantity FROM events" + where
                + " ORDER BY ts, seq"), args

    def sales(self, since: float | None = None, until: float | None = None) -> list[tuple[Any, ...]]:
        where, args = self._where([("ts >=", None if since is None else float(since)),
                                   ("ts <", None if until is None else float(until))])
        where = (where + " AND" if where else " WHERE") + " type = 'purchase'"
        return [tuple(r) for r in self._query(  # type: ignore[attr-defined]
            "SELECT user_id, item_id, ts, session_id, quantity, price FROM events" + where + " ORDER BY ts, seq",
            args)]

    def exposures(self, since: float | None = None, until: float | None = None,
                  user_id: str | None = None) -> list[dict[str, Any]]:
        key = None if user_id is None else self.user_key(user_id)  # type: ignore[attr-defined]
        where, args = self._where([("ts >=", None if since is None else float(since)),
                                   ("ts <", None if until is None else float(until)), ("user_key =", key)])
        cols = ", ".join(EXPOSURE_FIELDS)
        sql = f"SELECT {cols} FROM exposures{where} ORDER BY ts, seq"
        return [exposure_dict(r) for r in self._query(sql, args)]  # type: ignore[attr-defined]
