"""Lesson 1: catalogue, events and the store.

A shop's raw export (the invoice lines of UCI Online Retail, CC BY 4.0) becomes a product
catalogue and an event log in one engine home. Bad rows are rejected with their line, field
and reason; good rows are kept.

    python docs/lessons/01_catalogue.py [--size 3000] [--check]
"""

from __future__ import annotations

import collections
import json
from pathlib import Path
from typing import Any

import pandas as pd
from _course import cli, heading, new_home, table

from shopsense import Engine
from shopsense.datasets import dataset_file

RAW = ("baskets", "online-retail", "online_retail_first10k_rows.csv")

# the shop's column -> the engine's field; "-" ignores a column
PRODUCT_COLUMNS = {"StockCode": "id", "Description": "title", "UnitPrice": "price"}
EVENT_COLUMNS = {"CustomerID": "user_id", "StockCode": "item_id", "InvoiceDate": "timestamp",
                 "InvoiceNo": "session_id", "Quantity": "quantity", "UnitPrice": "price", "type": "type"}


def shop_export(size: int, folder: Path) -> Path:
    """The first ``size`` invoice lines, exactly as the shop exported them, plus the event type
    (every line of an invoice is a purchase)."""
    lines = pd.read_csv(dataset_file(*RAW), nrows=size, dtype=str, keep_default_na=False)
    lines["type"] = "purchase"
    path = folder / "invoice_lines.csv"
    lines.to_csv(path, index=False)
    return path


def ignore_others(columns: list[str], mapping: dict[str, str]) -> dict[str, str]:
    """The mapping plus ``"-"`` for every other column, so nothing lands in ``attributes``."""
    return {c: mapping.get(c, "-") for c in columns}


def main(size: int = 3000) -> dict[str, Any]:
    home = new_home("lesson1")
    raw = shop_export(size, home)
    columns = list(pd.read_csv(raw, nrows=0).columns)
    eng = Engine(home / "engine")

    heading("1. Products straight from the invoice lines")
    naive = eng.ingest_products(raw, mapping=ignore_others(columns, PRODUCT_COLUMNS))
    print(f"read {naive.read}, stored {naive.stored}, rejected {naive.rejected}")
    print("first reject:", naive.rejects[0])
    print("(the first line of each stock code was stored; its repeats were rejected)")

    heading("2. One row per product")
    products = pd.read_csv(raw, dtype=str, keep_default_na=False).drop_duplicates("StockCode", keep="last")
    catalogue = home / "products.csv"
    products.to_csv(catalogue, index=False)
    report = eng.ingest_products(catalogue, mapping=ignore_others(columns, PRODUCT_COLUMNS))
    print(f"read {report.read}, stored {report.stored}, rejected {report.rejected}")
    for r in report.rejects[:3]:
        print("  reject:", r)

    heading("3. Events, with the rows that cannot be events")
    events = eng.ingest_events(raw, mapping=ignore_others(columns, EVENT_COLUMNS))
    print(f"read {events.read}, stored {events.stored}, rejected {events.rejected}, "
          f"identical rows skipped {events.duplicates}")
    reasons = collections.Counter()
    for line in Path(events.rejects_path).read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        reasons[(r["field"], r["reason"])] += 1
    table([{"field": f, "reason": why, "rows": n} for (f, why), n in reasons.most_common()])
    print("rejects file:", events.rejects_path)

    heading("4. What the store holds")
    stats = eng.stats()
    print({k: stats[k] for k in ("products", "events", "events_by_type")})
    catalog = eng.catalog()
    first = catalog.products[0]
    print(f"{len(catalog)} products; the models see row {catalog.index[first.id]} for id {first.id!r}: {first.title!r}, "
          f"price {first.price}")
    eng.close()
    return {"home": home, "raw": raw, "report": report, "events": events, "reasons": reasons,
            "products": stats["products"], "stored_events": stats["events"]}


# -- exercise -------------------------------------------------------------------------------
def exercise(raw: Path) -> int:
    """YOUR TURN: using pandas only (not shopsense), count the invoice lines of ``raw`` that
    cannot become events because they have no customer id. Replace this body with your own
    code and run the lesson with ``--check``. (The body below is one answer.)"""
    lines = pd.read_csv(raw, dtype=str, keep_default_na=False)
    return int((lines["CustomerID"].str.strip() == "").sum())


def exercise_check(result: dict[str, Any] | None = None, solution: Any = None) -> None:
    """Your count must equal the engine's rejects for a missing ``user_id``."""
    result = result or main(400)
    answer = (solution or exercise)(result["raw"])
    expected = sum(n for (field, _), n in result["reasons"].items() if field == "user_id")
    assert answer == expected, f"you counted {answer} lines without a customer id; the engine rejected {expected}"
    print(f"exercise: correct, {answer} invoice lines have no customer id")


if __name__ == "__main__":
    cli(main, exercise_check, "invoice lines to read", 3000)
