"""Product and event schema (pydantic), and the bounds every value must respect.

One rule per field, whatever the source: the same field declaration (numeric bounds, in
the JSON schema too) or function (times: :func:`check_time`, :func:`check_datetime`; ids:
:func:`check_id`) checks a CSV cell, a JSONL value, a Parquet value and an HTTP body, so a
value refused by one is refused by all, with one message that names the rule, and never
read as "no value" (``inf`` and ``nan`` are refused). The rules apply to input (``model_validate``);
rows a store reads back (``model_validate_json`` of what it wrote) were checked when
they were written and are not refused again, so tightening a rule never makes an
existing home unreadable.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from enum import Enum
from typing import Any, overload

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError


class EventType(str, Enum):
    """What a shopper did: view, click, add_to_cart, purchase or search (a search event
    carries the query and may have no item)."""

    VIEW = "view"
    CLICK = "click"
    ADD_TO_CART = "add_to_cart"
    PURCHASE = "purchase"
    SEARCH = "search"


#: how strongly each event type signals interest; used by profiles and CF weights
EVENT_WEIGHTS: dict[str, float] = {
    "view": 1.0,
    "click": 1.0,
    "search": 0.0,
    "add_to_cart": 3.0,
    "purchase": 5.0,
}


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# -- bounds: one rule per field, for every format and for HTTP ---------------------------------
#: prices and ratings are finite (inf and nan are refused); a price above this is a data error
MAX_PRICE = 1e9
#: items of one event (a purchase of a million units is a data error, not a basket)
MAX_QUANTITY = 1_000_000
MAX_RATING_COUNT = 1_000_000_000
#: event and product times lie in [1970-01-01, now + TIME_AHEAD_S] (clock skew allowance)
TIME_AHEAD_S = 86_400.0
#: an id must come back unchanged from a URL path: no '/', no control characters
_BAD_URL_ID = re.compile(r"[/\x00-\x1f\x7f-\x9f]")
_BAD_ID = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _rule(rule: str, message: str, value: Any) -> PydanticCustomError:
    try:
        shown = str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else repr(value)
    except ValueError:  # an int too long to print (sys.get_int_max_str_digits)
        shown = f"an integer of {value.bit_length()} bits"
    if len(shown) > 80:
        shown = shown[:77] + "..."
    # braces in the value must not read as the error's template fields
    return PydanticCustomError(rule, f"{message}; got {shown}".replace("{", "{{").replace("}", "}}"))


def time_window() -> tuple[float, float]:
    """The accepted times, in seconds since 1970 (UTC): from 1970-01-01 to now plus a day."""
    return 0.0, time.time() + TIME_AHEAD_S


def _window_rule(value: Any, hint: str = "") -> PydanticCustomError:
    hi = datetime.fromtimestamp(time_window()[1], UTC).strftime("%Y-%m-%dT%H:%MZ")
    return _rule("time_out_of_range", f"must be a time from 1970-01-01 to now + 1 day ({hi}){hint}", value)


def check_time(value: Any) -> Any:
    """Seconds since 1970 (a number or a numeric string) -> an aware datetime, inside
    :func:`time_window`; other values pass to pydantic's datetime parsing and are checked by
    :func:`check_datetime` after it. Never an OverflowError: the bound is checked first."""
    if isinstance(value, str):
        if ":" in value or value[4:5] == "-":
            return value  # an ISO 8601 time (or nonsense): pydantic parses it, check_datetime checks it
        try:
            x = float(value)  # digits, 1e17, inf, nan; too many digits read as inf, never an error
        except ValueError:
            return value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            x = float(value)
        except OverflowError:
            x = math.inf
    elif isinstance(value, bool):
        raise _rule("datetime_type", "must be an ISO 8601 time or seconds since 1970", value)
    else:
        return value
    hi = time.time() + TIME_AHEAD_S
    if not 0.0 <= x <= hi:  # nan fails too
        hint = " (seconds since 1970, not milliseconds)" if hi < x < hi * 1e3 else ""
        raise _window_rule(value, hint)
    return datetime.fromtimestamp(x, tz=UTC)


def check_datetime(value: datetime) -> datetime:
    """A parsed datetime in UTC, inside :func:`time_window` (naive means UTC)."""
    tz = value.tzinfo
    if tz is None:
        value = value.replace(tzinfo=UTC)
    elif tz is not UTC:
        try:
            value = value.astimezone(UTC)
        except (OverflowError, ValueError, OSError):  # e.g. 0001-01-01T00:00:00+14:00
            raise _window_rule(value.isoformat()) from None
    if not 0.0 <= value.timestamp() <= time.time() + TIME_AHEAD_S:
        raise _window_rule(value.isoformat())
    return value


def check_id(value: str, url: bool = True) -> str:
    """An id that round-trips through a URL path: not ``.`` or ``..``, no ``/`` (when ``url``)
    and no control characters."""
    if value.isalnum():  # the common case, at C speed
        return value
    bad = _BAD_URL_ID if url else _BAD_ID
    if value in (".", "..") or bad.search(value):
        what = "contain '/' or control characters" if url else "contain control characters"
        raise _rule("id_not_url_safe", f"must not be '.' or '..' nor {what} (ids appear in URL paths)",
                    value)
    return value


def _as_id(v: Any) -> Any:
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return str(v) if isinstance(v, int) and not isinstance(v, bool) else v


def _input_id(v: Any, url: bool) -> Any:
    """An id cell as a string, checked as it will be stored (stripped)."""
    v = _as_id(v)
    if isinstance(v, str):
        check_id(v.strip(), url)
    return v


def _json_cell(v: str) -> Any:
    """A JSON cell (CSV export of a list or an object); a malformed one is that row's reject."""
    try:
        return json.loads(v)
    except RecursionError:
        raise _rule("json_invalid", "invalid JSON (nested too deeply)", v) from None
    except ValueError as exc:
        raise _rule("json_invalid", f"invalid JSON ({exc})", v) from None


def _input(info: ValidationInfo) -> bool:
    """True for input; False when a store reads back a row it wrote (JSON mode)."""
    return info.mode != "json"


class Product(BaseModel):
    """A catalogue item. ``id`` is the shop's own string id."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: str = Field(min_length=1, max_length=256)
    title: str = Field(min_length=1)
    description: str = ""
    brand: str = ""
    category: list[str] = Field(default_factory=list, description="category path, root first")
    attributes: dict[str, str] = Field(default_factory=dict)
    price: float | None = Field(default=None, ge=0, le=MAX_PRICE, allow_inf_nan=False)
    currency: str = "USD"
    in_stock: bool = True
    rating: float | None = Field(default=None, ge=0, le=5, allow_inf_nan=False)
    rating_count: int = Field(default=0, ge=0, le=MAX_RATING_COUNT)
    image_url: str | None = None
    created_at: datetime = Field(default_factory=_utcnow)

    @field_validator("id", mode="before")
    @classmethod
    def _id_to_str(cls, v: Any, info: ValidationInfo) -> Any:
        # product ids may hold '/' (real catalogues do: "rolls/buns"); see the README
        return _input_id(v, url=False) if _input(info) else _as_id(v)

    @field_validator("category", mode="before")
    @classmethod
    def _split_category(cls, v: Any) -> Any:
        if v is None:
            return []
        if isinstance(v, str) and v.strip().startswith("["):
            # a JSON list (CSV export): names such as "Tape, Adhesives & Fasteners" keep their comma
            return _json_cell(v)
        if isinstance(v, str):
            sep = ">" if ">" in v else ("/" if "/" in v else ",")
            return [p.strip() for p in v.split(sep) if p.strip()]
        return v

    @field_validator("attributes", mode="before")
    @classmethod
    def _attrs_to_str(cls, v: Any) -> Any:
        if v is None:
            return {}
        if isinstance(v, str):
            v = _json_cell(v) if v.strip() else {}
        if isinstance(v, dict):
            return {str(k): str(x) for k, x in v.items() if x is not None and x != ""}
        return v

    @field_validator("price", "rating", mode="before")
    @classmethod
    def _blank(cls, v: Any) -> Any:
        return None if isinstance(v, str) and not v.strip() else v  # an empty cell: no value

    @field_validator("created_at", mode="before")
    @classmethod
    def _parse_ts(cls, v: Any, info: ValidationInfo) -> Any:
        return check_time(v) if _input(info) else v

    @field_validator("created_at")
    @classmethod
    def _utc(cls, v: datetime, info: ValidationInfo) -> datetime:
        return check_datetime(v) if _input(info) else _as_utc(v)

    def text(self) -> str:
        """The text an encoder or a lexical index sees for this product."""
        parts = [self.title]
        if self.brand:
            parts.append(self.brand)
        if self.category:
            parts.append(" > ".join(self.category))
        if self.description:
            parts.append(self.description[:500])
        return ". ".join(parts)


class Event(BaseModel):
    """One user interaction. ``item_id`` may be empty only for ``search`` events."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    user_id: str = Field(min_length=1, max_length=256)
    item_id: str | None = None
    type: EventType
    timestamp: datetime = Field(default_factory=_utcnow)
    session_id: str | None = None
    query: str | None = None
    quantity: int = Field(default=1, ge=1, le=MAX_QUANTITY)
    price: float | None = Field(default=None, ge=0, le=MAX_PRICE, allow_inf_nan=False)

    @field_validator("user_id", mode="before")
    @classmethod
    def _user_id(cls, v: Any) -> Any:
        return _input_id(v, url=True)  # /users/{user_id}: read and erased over HTTP

    @field_validator("item_id", mode="before")
    @classmethod
    def _item_id(cls, v: Any) -> Any:
        return _input_id(v, url=False)

    @field_validator("session_id", mode="before")
    @classmethod
    def _id_to_str(cls, v: Any) -> Any:
        return _as_id(v)

    @field_validator("timestamp", mode="before")
    @classmethod
    def _parse_ts(cls, v: Any) -> Any:
        return check_time(v)

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        return check_datetime(v)

    @model_validator(mode="after")
    def _item_required(self) -> Event:
        if self.type != EventType.SEARCH and not self.item_id:
            raise ValueError(f"item_id is required for {self.type.value!r} events")
        return self


#: the fields of an :class:`EventRows` tuple, in order
EVENT_ROW_FIELDS = ("user_id", "item_id", "type", "timestamp", "session_id", "query", "quantity", "price")


class EventRows(Sequence[Event]):
    """Validated events kept as tuples of :data:`EVENT_ROW_FIELDS` (``type`` its value,
    ``timestamp`` seconds since 1970): what the ingest's fast path hands a store, which
    reads them with ``event_tuples()`` and builds no object per row. To any other reader it
    is a sequence of :class:`Event` (built on access, without validating them again)."""

    def __init__(self, rows: list[tuple[Any, ...]] | None = None) -> None:
        self.rows: list[tuple[Any, ...]] = rows if rows is not None else []

    def event_tuples(self) -> list[tuple[Any, ...]]:
        return self.rows

    def __len__(self) -> int:
        return len(self.rows)

    @overload
    def __getitem__(self, i: int) -> Event: ...

    @overload
    def __getitem__(self, i: slice) -> list[Event]: ...

    def __getitem__(self, i: int | slice) -> Event | list[Event]:
        if isinstance(i, slice):
            return [_event_of(t) for t in self.rows[i]]
        return _event_of(self.rows[i])

    def __iter__(self) -> Iterator[Event]:
        return map(_event_of, self.rows)


def _event_of(t: tuple[Any, ...]) -> Event:
    user_id, item_id, type_, ts, session_id, query, quantity, price = t
    return Event.model_construct(user_id=user_id, item_id=item_id, type=EventType(type_),
                                 timestamp=datetime.fromtimestamp(ts, UTC), session_id=session_id,
                                 query=query, quantity=quantity, price=price)
