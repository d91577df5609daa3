"""Catalogue and events: schema, the id mapping, and ingestion."""

from shopsense.catalog._catalog import Catalog
from shopsense.catalog._ingest import (
    IngestReport,
    Reject,
    Unreadable,
    detect_format,
    ingest,
    parse_mapping,
    read_rows,
)
from shopsense.catalog._match import FILTER_KEYS, match_mask
from shopsense.catalog._models import (
    EVENT_WEIGHTS,
    MAX_PRICE,
    MAX_QUANTITY,
    MAX_RATING_COUNT,
    TIME_AHEAD_S,
    Event,
    EventType,
    Product,
    check_id,
    check_time,
    time_window,
)

__all__ = [
    "EVENT_WEIGHTS", "FILTER_KEYS", "MAX_PRICE", "MAX_QUANTITY", "MAX_RATING_COUNT", "TIME_AHEAD_S",
    "Catalog", "Event", "EventType", "IngestReport", "Product", "Reject", "Unreadable",
    "check_id", "check_time", "detect_format", "ingest", "match_mask", "parse_mapping",
    "read_rows", "time_window",
]
