"""Catalogue and events: schema, the id mapping, and ingestion."""

from shopsense.catalog._catalog import Catalog
from shopsense.catalog._ingest import (
    IngestReport,
    Reject,
    detect_format,
    ingest,
    parse_mapping,
    read_rows,
)
from shopsense.catalog._match import FILTER_KEYS, match_mask
from shopsense.catalog._models import EVENT_WEIGHTS, Event, EventType, Product

__all__ = [
    "EVENT_WEIGHTS", "FILTER_KEYS", "Catalog", "Event", "EventType", "IngestReport", "Product", "Reject",
    "detect_format", "ingest", "match_mask", "parse_mapping", "read_rows",
]
