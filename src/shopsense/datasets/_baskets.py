"""Basket datasets: UCI Online Retail and the arules Groceries."""

from __future__ import annotations

import csv
import statistics
from datetime import UTC, datetime

from shopsense.catalog import Event, Product
from shopsense.datasets._arrays import Baskets
from shopsense.datasets._basket_files import basket_lines
from shopsense.datasets._paths import dataset_file

__all__ = [
    "SERVICE_CODES", "load_groceries_baskets", "load_groceries_products", "load_online_retail_baskets",
    "load_online_retail_events", "load_online_retail_products",
]

#: Online Retail stock codes that are fees and bookkeeping lines, not products
#: (postage, carriage, manual adjustments, bank and marketplace fees, discounts, samples).
SERVICE_CODES = frozenset({
    "POST", "DOT", "M", "m", "C2", "BANK CHARGES", "AMAZONFEE", "CRUK", "D", "S", "B", "PADS",
})

_DIR = ("baskets", "online-retail")


def _read_rows40k() -> list[dict[str, str]]:
    with dataset_file(*_DIR, "online_retail_random40k_rows.csv").open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _is_sale(row: dict[str, str]) -> bool:
    """A real sale: not a cancellation (C-invoice), positive quantity and price, not a fee line."""
    try:
        qty, price = int(float(row["Quantity"])), float(row["UnitPrice"])
    except ValueError:
        return False
    return (qty > 0 and price > 0 and not row["InvoiceNo"].startswith("C")
            and row["StockCode"] not in SERVICE_CODES)


def load_online_retail_products() -> list[Product]:
    """Products from the stock-code -> description lookup plus the 40k full rows.

    ``price`` is the median unit price (GBP) of the code's sales among the 40k rows
    (the shop charges lower unit prices on bulk quantities, so the median is the
    usual shelf price); codes never sold in those rows have no price. Fee and
    bookkeeping codes (:data:`SERVICE_CODES`) are not products.
    """
    titles: dict[str, str] = {}
    with dataset_file(*_DIR, "DERIVED_stockcode_description_lookup.csv").open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["Description"].strip():
                titles[row["StockCode"].strip()] = row["Description"].strip()
    prices: dict[str, list[float]] = {}
    for row in _read_rows40k():
        code = row["StockCode"].strip()
        if _is_sale(row):
            titles.setdefault(code, row["Description"].strip())
            prices.setdefault(code, []).append(float(row["UnitPrice"]))
    out = []
    for code, title in titles.items():
        if code in SERVICE_CODES or not title:
            continue
        p = prices.get(code)
        out.append(Product(id=code, title=title, price=statistics.median(p) if p else None,
                           currency="GBP"))
    return out


def load_online_retail_events() -> list[Event]:
    """Purchase events from the 40k full rows, in time order.

    Real ``InvoiceDate`` (shop local time, UK, read as UTC), ``CustomerID``, quantity,
    unit price, and ``session_id`` = InvoiceNo. Rows without a CustomerID are guest
    checkouts: their user id is ``guest-<InvoiceNo>``. Cancellations, returns
    (quantity <= 0), zero-price rows and fee lines are not purchases and are left out.
    """
    out = []
    for row in _read_rows40k():
        if not _is_sale(row):
            continue
        cust = row["CustomerID"].strip()
        user = str(int(float(cust))) if cust else f"guest-{row['InvoiceNo']}"
        ts = datetime.strptime(row["InvoiceDate"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        out.append(Event(user_id=user, item_id=row["StockCode"].strip(), type="purchase", timestamp=ts,
                         session_id=row["InvoiceNo"], quantity=int(float(row["Quantity"])),
                         price=float(row["UnitPrice"])))
    out.sort(key=lambda e: e.timestamp)
    return out


def load_online_retail_baskets(limit: int | None = None) -> Baskets:
    """All 25,900 invoices as baskets of stock codes (keys ``inv-<line>``: the file has no
    invoice numbers). Cancellation invoices are included and cannot be told apart."""
    keys, rows = [], []
    for n, labels in basket_lines(dataset_file(*_DIR, "online_retail_invoice_baskets_stockcodes.csv")):
        if limit is not None and len(keys) >= limit:
            break
        keys.append(f"inv-{n}")
        rows.append([x for x in labels if x])
    return Baskets.from_lists(keys, rows)


def load_groceries_baskets(limit: int | None = None) -> Baskets:
    """The 9,835 point-of-sale baskets over 169 categories (keys ``g-<line>``).

    A few lines of ``groceries.csv`` write the label "long life bakery product" as
    "long life, bakery product"; such split labels are re-joined against the itemInfo
    label list, so every item is one of the 169 products.
    """
    labels = {p.id for p in load_groceries_products()}
    keys, rows = [], []
    for n, line in basket_lines(dataset_file("baskets", "groceries", "groceries.csv")):
        if limit is not None and len(keys) >= limit:
            break
        items: list[str] = []
        for x in line:
            if items and items[-1] not in labels and f"{items[-1]} {x}" in labels:
                items[-1] = f"{items[-1]} {x}"
            elif x:
                items.append(x)
        keys.append(f"g-{n}")
        rows.append(items)
    return Baskets.from_lists(keys, rows)


def load_groceries_products() -> list[Product]:
    """The 169 grocery categories as products (id = title = label) with the two
    category levels of the arules itemInfo (root first)."""
    out = []
    path = dataset_file("baskets", "groceries", "DERIVED_groceries_itemInfo_from_rda.csv")
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            out.append(Product(id=row["labels"], title=row["labels"],
                               category=[row["level1"], row["level2"]]))
    return out
