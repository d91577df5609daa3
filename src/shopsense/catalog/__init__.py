"""Catalogue and events: schema, the id mapping, and ingestion."""

from shopsense.catalog._catalog import Catalog
from shopsense.catalog._ingest import IngestReport, Reject, ingest, parse_mapping
from shopsense.catalog._models import EVENT_WEIGHTS, Event, EventType, Product

__all__ = [
    "EVENT_WEIGHTS", "Catalog", "Event", "EventType", "IngestReport", "Product", "Reject",
    "ingest", "parse_mapping",
]
