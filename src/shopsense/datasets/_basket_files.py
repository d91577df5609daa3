"""Basket files: one basket a line (Groceries, the Online Retail invoice baskets) or a
table with one item a row (a shop's order lines). One reader, used by ``shopsense eval
baskets``, the benchmarks and the basket loaders of this package.

Structural problems raise :class:`~shopsense.errors.ValidationError` naming the file,
line and column; what carries nothing to learn from is skipped and counted in
:class:`~shopsense.datasets.Skips`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shopsense.datasets._readers import (
    Skips,
    _check_file,
    _first_line,
    _id,
    _parse_time,
    _rows,
    _table_format,
    lookup_item,
)
from shopsense.errors import ValidationError, check_param

__all__ = ["BasketData", "basket_format", "basket_lines", "read_basket_file", "read_baskets"]


#: column names (lower case) recognised in a rows file
_BASKET_COLS = ("basket_id", "basket", "order_id", "order", "invoiceno", "invoice_no", "invoice", "transaction_id",
                "transaction", "session_id")
_ITEM_COLS = ("item_id", "item", "product_id", "stockcode", "sku", "product")
_TIME_COLS = ("timestamp", "time", "invoicedate", "order_date", "date", "datetime")
_QTY_COLS = ("quantity", "qty")


@dataclass
class BasketData:
    """Baskets over dense item indices, with their ids, times (or ``None``) and the skips."""

    baskets: list[np.ndarray]
    basket_ids: list[str]
    item_ids: list[str]
    times: np.ndarray | None
    source: str
    format: str
    skips: Skips

    @property
    def n_items(self) -> int:
        return len(self.item_ids)


def _pick(columns: Sequence[str], names: Sequence[str]) -> str | None:
    low = {c.lower().strip(): c for c in columns}
    return next((low[n] for n in names if n in low), None)


def basket_format(path: str | Path) -> str:
    """``"rows"`` (a table with a basket column) or ``"lines"`` (one basket a line)."""
    path = Path(path)
    if path.suffix.lower() in (".parquet", ".pq", ".jsonl", ".ndjson"):
        return "rows"
    cells = [c.strip().strip('"') for c in re.split(r"[,\t]", _first_line(path))]
    return "rows" if _pick(cells, _BASKET_COLS) else "lines"


def basket_lines(path: str | Path, sep: str = ",", skips: Skips | None = None) -> Iterator[tuple[int, list[str]]]:
    """The lines of a one-basket-a-line file as ``(line number, item labels)``: labels
    stripped, in file order, repeats kept, an empty field as ``""`` (column = position
    + 1). Lines with no label are skipped and counted in ``skips``."""
    path = Path(path)
    skips = skips if skips is not None else Skips()
    with path.open(encoding="utf-8-sig") as fh:
        for n, line in enumerate(fh, start=1):
            labels = [x.strip() for x in line.rstrip("\r\n").split(sep)]
            if not any(labels):
                skips.add("empty_lines", f"{path.name}:{n}")
                continue
            yield n, labels


def read_basket_file(path: str | Path, sep: str = ",") -> tuple[list[np.ndarray], list[str]]:
    """Baskets from a file with one basket per line (item labels separated by ``sep``).

    Returns dense-index baskets (duplicates removed, first-seen order) and the
    labels in index order (:func:`read_baskets` in ``"lines"`` mode, without the report).
    """
    data = read_baskets(path, "lines", sep=sep)
    return data.baskets, data.item_ids


def read_baskets(path: str | Path, fmt: str = "auto", item_ids: Sequence[str] | None = None,
                 sep: str = ",") -> BasketData:
    """Baskets from a shop's file.

    ``"lines"``: one basket a line, item ids separated by ``sep`` (Groceries, the Online
    Retail invoice baskets); basket ids are line numbers and the file order is the time
    order. ``"rows"``: a CSV/JSONL/Parquet table, one item a row, with a basket column
    (basket_id, order_id, InvoiceNo, session_id, ...), an item column (item_id,
    StockCode, ...) and optionally a time column (a basket's time is its earliest row)
    and a quantity column (rows with quantity <= 0, returns, are skipped and counted).
    ``item_ids`` fixes the vocabulary: other items are skipped and counted. Items
    repeated within a basket count once.
    """
    path = Path(path)
    check_param("format", fmt, fmt in ("auto", "lines", "rows"), "one of 'auto', 'lines', 'rows'", "read_baskets")
    _check_file(path, "baskets")
    if fmt == "auto":
        fmt = basket_format(path)
    fixed = item_ids is not None
    index: dict[str, int] = {str(i): n for n, i in enumerate(item_ids)} if fixed else {}  # type: ignore[union-attr]
    skips = Skips()

    def lookup(label: str, where: str) -> int | None:
        return lookup_item(label, index, fixed, skips, where)

    baskets: list[np.ndarray] = []
    ids: list[str] = []
    times: np.ndarray | None = None
    if fmt == "lines":
        for n, labels in basket_lines(path, sep, skips):
            idx: list[int] = []
            for col, x in enumerate(labels, start=1):
                if not x:
                    skips.add("empty_item_fields", f"{path.name}:{n}, column {col}")
                    continue
                j = lookup(x, f"{path.name}:{n}, column {col}")
                if j is not None:
                    idx.append(j)
            _add(baskets, ids, idx, str(n), skips, f"{path.name}:{n}")
    else:
        columns, rows = _rows(path, _table_format(path))
        bcol, icol = _pick(columns, _BASKET_COLS), _pick(columns, _ITEM_COLS)
        tcol, qcol = _pick(columns, _TIME_COLS), _pick(columns, _QTY_COLS)
        missing = [what for what, c in (("basket", bcol), ("item", icol)) if c is None]
        if missing:
            raise ValidationError(
                f"{path}: no {' and no '.join(missing)} column; a rows file needs a basket column (one of "
                f"{list(_BASKET_COLS)}) and an item column (one of {list(_ITEM_COLS)}). Columns found: {columns}.",
                field="baskets")
        members: dict[str, list[int]] = {}
        first_time: dict[str, float] = {}
        for line, row in rows:
            where = f"{path.name}:{line}"
            if isinstance(row, str):
                raise ValidationError(f"{path}: line {line}: {row}", field="baskets")
            b, it = _id(row.get(bcol)), _id(row.get(icol))
            if not b:
                skips.add("rows_without_basket_id", f"{where}, column {bcol!r}")
                continue
            if not it:
                skips.add("rows_without_item_id", f"{where}, column {icol!r}")
                continue
            if qcol is not None and _id(row.get(qcol)):
                q = row.get(qcol)
                try:
                    qv = float(q)  # type: ignore[arg-type]
                except (TypeError, ValueError):
                    raise ValidationError(f"{path}: line {line}, column {qcol!r}: {q!r} is not a number.",
                                          field=qcol) from None
                if not qv > 0:
                    skips.add("rows_with_quantity_<=0_(returns)", f"{where}, column {qcol!r}")
                    continue
            t = None
            if tcol is not None:
                if not _id(row.get(tcol)):
                    skips.add("rows_without_time", f"{where}, column {tcol!r}")
                    continue
                t = _parse_time(row.get(tcol), f"{path}: line {line}", tcol)
            j = lookup(it, f"{where}, column {icol!r}")
            if j is None:
                continue
            members.setdefault(b, []).append(j)
            if t is not None:
                first_time[b] = min(first_time.get(b, t), t)
        for b, idx in members.items():
            _add(baskets, ids, idx, b, skips, f"{path.name}: basket {b!r}")
        if tcol is not None:
            times = np.array([first_time[b] for b in ids], np.float64)
    if not baskets:
        raise ValidationError(f"{path}: no baskets found ({skips.counts or 'empty file'}).", field="baskets")
    return BasketData(baskets, ids, list(index), times, str(path), fmt, skips)


def _add(baskets: list[np.ndarray], ids: list[str], idx: list[int], basket_id: str, skips: Skips, where: str) -> None:
    uniq = list(dict.fromkeys(idx))
    if len(uniq) < len(idx):
        skips.add("repeated_items_in_baskets", None, len(idx) - len(uniq))
    if not uniq:
        skips.add("baskets_without_known_items", where)
        return
    baskets.append(np.asarray(uniq, np.int64))
    ids.append(basket_id)
