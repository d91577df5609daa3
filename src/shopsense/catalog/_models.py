"""Product and event schema (pydantic)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class EventType(str, Enum):
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


class Product(BaseModel):
    """A catalogue item. ``id`` is the shop's own string id."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: str = Field(min_length=1, max_length=256)
    title: str = Field(min_length=1)
    description: str = ""
    brand: str = ""
    category: list[str] = Field(default_factory=list, description="category path, root first")
    attributes: dict[str, str] = Field(default_factory=dict)
    price: float | None = Field(default=None, ge=0)
    currency: str = "USD"
    in_stock: bool = True
    rating: float | None = Field(default=None, ge=0, le=5)
    rating_count: int = Field(default=0, ge=0)
    image_url: str | None = None
    created_at: datetime = Field(default_factory=_utcnow)

    @field_validator("id", mode="before")
    @classmethod
    def _id_to_str(cls, v: Any) -> Any:
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        return str(v) if isinstance(v, int) else v

    @field_validator("category", mode="before")
    @classmethod
    def _split_category(cls, v: Any) -> Any:
        if v is None:
            return []
        if isinstance(v, str) and v.strip().startswith("["):
            # a JSON list (CSV export): names such as "Tape, Adhesives & Fasteners" keep their comma
            import json

            return json.loads(v)
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
            import json

            v = json.loads(v) if v.strip() else {}
        if isinstance(v, dict):
            return {str(k): str(x) for k, x in v.items() if x is not None and x != ""}
        return v

    @field_validator("price", "rating", mode="before")
    @classmethod
    def _finite(cls, v: Any) -> Any:
        if isinstance(v, str) and not v.strip():
            return None
        if isinstance(v, float) and math.isnan(v):
            return None
        if isinstance(v, float) and math.isinf(v):
            raise ValueError("must be finite")
        return v

    @field_validator("created_at")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        return _as_utc(v)

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
    quantity: int = Field(default=1, ge=1)
    price: float | None = Field(default=None, ge=0)

    @field_validator("user_id", "item_id", "session_id", mode="before")
    @classmethod
    def _id_to_str(cls, v: Any) -> Any:
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        return str(v) if isinstance(v, int) else v

    @field_validator("timestamp", mode="before")
    @classmethod
    def _parse_ts(cls, v: Any) -> Any:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return datetime.fromtimestamp(float(v), tz=UTC)
        if isinstance(v, str) and v.strip().replace(".", "", 1).isdigit():
            return datetime.fromtimestamp(float(v), tz=UTC)
        return v

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        return _as_utc(v)

    @model_validator(mode="after")
    def _item_required(self) -> Event:
        if self.type != EventType.SEARCH and not self.item_id:
            raise ValueError(f"item_id is required for {self.type.value!r} events")
        return self
