"""Write products and events as CSV, JSONL or Parquet files that ``shopsense ingest``
reads back unchanged (the demo files and the ingest benchmark are made this way)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from shopsense.catalog import Event, Product, detect_format

__all__ = ["export_events", "export_products"]

_PRODUCT_COLS = list(Product.model_fields)
_EVENT_COLS = list(Event.model_fields)


def _product_row(p: Product) -> dict[str, Any]:
    # exclude_unset: a created_at the source did not give stays empty, so ingest sets it
    row = p.model_dump(mode="json", exclude_unset=True)
    row["id"] = p.id
    return row


def _event_row(e: Event) -> dict[str, Any]:
    row = e.model_dump(mode="json", exclude_none=True)
    ts = e.timestamp.timestamp()
    row["timestamp"] = int(ts) if ts.is_integer() else ts  # epoch seconds: compact, exact
    return row


def _flat(row: dict[str, Any], kind: str) -> dict[str, Any]:
    out = dict(row)
    if kind == "products":
        # JSON list and object: a single category name may itself contain "/" or ","
        if "category" in out:
            out["category"] = json.dumps(out["category"], ensure_ascii=False) if out["category"] else ""
        if "attributes" in out:
            out["attributes"] = json.dumps(out["attributes"], ensure_ascii=False) if out["attributes"] else ""
    return out


def _write(rows: Iterable[dict[str, Any]], path: Path, fmt: str, kind: str, cols: list[str],
           columns: list[str] | None) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    cols = columns or cols
    n = 0
    if fmt == "jsonl":
        with path.open("w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps({k: row[k] for k in cols if k in row}, ensure_ascii=False) + "\n")
                n += 1
    elif fmt == "csv":
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                writer.writerow(_flat(row, kind))
                n += 1
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        # fixed types, so a first chunk without prices still types the column as float
        _ARROW_TYPES = {
            "category": pa.list_(pa.string()), "price": pa.float64(), "in_stock": pa.bool_(),
            "rating": pa.float64(), "rating_count": pa.int64(), "timestamp": pa.float64(),
            "quantity": pa.int64(),
        }

        writer = None
        chunk: list[dict[str, Any]] = []

        def flush() -> None:
            nonlocal writer
            if not chunk:
                return
            schema = pa.schema([(k, _ARROW_TYPES.get(k, pa.string())) for k in cols])
            table = pa.Table.from_pylist(
                [{k: (json.dumps(r[k]) if k == "attributes" and k in r else r.get(k)) for k in cols}
                 for r in chunk], schema=schema)
            if writer is None:
                writer = pq.ParquetWriter(path, schema, compression="zstd")
            writer.write_table(table)
            chunk.clear()

        for row in rows:
            chunk.append(row)
            n += 1
            if len(chunk) >= 20000:
                flush()
        flush()
        if writer is not None:
            writer.close()
    return n


def export_products(products: Iterable[Product], path: str | Path, *, format: str | None = None,
                    columns: list[str] | None = None) -> int:
    """Write products to ``path`` (format from the suffix: .csv, .jsonl, .parquet); returns the count.

    CSV cells hold the category path as a JSON list and attributes as a JSON object;
    fields the source did not give are left empty. ``columns`` picks and orders columns.

    Example
    -------
    >>> from shopsense.datasets import export_products, load_icecat_products
    >>> export_products(load_icecat_products(limit=10), "icecat.csv")   # doctest: +SKIP
    10
    """
    path = Path(path)
    return _write((_product_row(p) for p in products), path, detect_format(path, format), "products",
                  _PRODUCT_COLS, columns)


def export_events(events: Iterable[Event], path: str | Path, *, format: str | None = None,
                  columns: list[str] | None = None) -> int:
    """Write events to ``path`` (streamed; timestamps as epoch seconds); returns the count."""
    path = Path(path)
    return _write((_event_row(e) for e in events), path, detect_format(path, format), "events",
                  _EVENT_COLS, columns)
