"""Basket completion protocol: split baskets (random or by time), hide one item
per test basket, rank the rest of the catalogue, Hit@k and NDCG@k.

Shared by ``bench/bundles.py``, the bundle tests and ``shopsense eval baskets``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shopsense.errors import ValidationError, check_param
from shopsense.eval._inputs import (
    Skips,
    _check_file,
    _first_line,
    _id,
    _parse_time,
    _rows,
    _table_format,
    lookup_item,
)
from shopsense.metrics import loo_metrics

__all__ = ["BasketData", "BasketSplit", "HiddenItems", "basket_format", "evaluate_completion", "hide_each", "hide_one",
           "read_basket_file", "read_baskets", "split_baskets"]


@dataclass(frozen=True)
class BasketSplit:
    train: list[np.ndarray]
    test: list[np.ndarray]
    train_rows: np.ndarray  # positions in the input order
    test_rows: np.ndarray


@dataclass(frozen=True)
class HiddenItems:
    """One test case per basket: the visible items and the hidden one."""

    contexts: list[np.ndarray]
    targets: np.ndarray  # int64
    rows: np.ndarray  # which test basket each case came from

    def __len__(self) -> int:
        return len(self.targets)


def read_basket_file(path: str, sep: str = ",") -> tuple[list[np.ndarray], list[str]]:
    """Baskets from a file with one basket per line (item labels separated by ``sep``).

    Returns dense-index baskets (duplicates removed, first-seen order) and the
    labels in index order.
    """
    vocab: dict[str, int] = {}
    baskets: list[np.ndarray] = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            labels = [x.strip() for x in line.rstrip("\n").split(sep)]
            idx = list(dict.fromkeys(vocab.setdefault(x, len(vocab)) for x in labels if x))
            if idx:
                baskets.append(np.asarray(idx, dtype=np.int64))
    return baskets, list(vocab)


def split_baskets(baskets: Sequence[np.ndarray], mode: str = "random", test_fraction: float = 0.2,
                  times: np.ndarray | None = None, seed: int = 0) -> BasketSplit:
    """Random split, or time split (the latest ``test_fraction`` of baskets are
    the test set; without ``times`` the input order is taken as time order)."""
    check_param("mode", mode, mode in ("random", "time"), "'random' or 'time'", "split_baskets")
    check_param("test_fraction", test_fraction, 0 < test_fraction < 1, "a float in (0, 1)", "split_baskets")
    n = len(baskets)
    if mode == "random":
        order = np.random.default_rng(seed).permutation(n)
    else:
        order = np.argsort(times, kind="stable") if times is not None else np.arange(n)
    n_test = round(n * test_fraction)
    train_rows, test_rows = np.sort(order[: n - n_test]), np.sort(order[n - n_test:])
    return BasketSplit([baskets[i] for i in train_rows], [baskets[i] for i in test_rows], train_rows, test_rows)


def hide_one(baskets: Sequence[np.ndarray], seed: int = 0, min_size: int = 2,
             known: np.ndarray | None = None) -> HiddenItems:
    """Hide one random item of every basket with at least ``min_size`` distinct items.

    ``known`` (bool per item) restricts the hidden item to items a model could
    know (seen in training); ``None`` allows any item, so cold items count as misses.
    """
    rng = np.random.default_rng(seed)
    contexts, targets, rows = [], [], []
    for r, b in enumerate(baskets):
        b = np.unique(np.asarray(b, dtype=np.int64))
        if len(b) < min_size:
            continue
        pool = b if known is None else b[known[b]]
        if len(pool) == 0:
            continue
        t = int(pool[rng.integers(len(pool))])
        contexts.append(b[b != t])
        targets.append(t)
        rows.append(r)
    return HiddenItems(contexts, np.asarray(targets, dtype=np.int64), np.asarray(rows, dtype=np.int64))


def hide_each(baskets: Sequence[np.ndarray], min_size: int = 2, max_cases: int | None = None,
              seed: int = 0) -> HiddenItems:
    """Every item of every basket hidden in turn (one case each): more cases from
    few baskets, for validation; ``max_cases`` keeps a random subset."""
    contexts, targets, rows = [], [], []
    for r, b in enumerate(baskets):
        b = np.unique(np.asarray(b, dtype=np.int64))
        if len(b) < min_size:
            continue
        for t in b:
            contexts.append(b[b != t])
            targets.append(int(t))
            rows.append(r)
    cases = HiddenItems(contexts, np.asarray(targets, dtype=np.int64), np.asarray(rows, dtype=np.int64))
    if max_cases is not None and len(cases) > max_cases:
        keep = np.sort(np.random.default_rng(seed).choice(len(cases), max_cases, replace=False))
        cases = HiddenItems([contexts[i] for i in keep], cases.targets[keep], cases.rows[keep])
    return cases


def evaluate_completion(rank: Callable[[list[np.ndarray], int], np.ndarray], cases: HiddenItems, k: int = 10,
                        batch_size: int = 512) -> dict[str, np.ndarray]:
    """Per-case Hit@k and NDCG@k of ``rank(contexts, k) -> (n, k) item indices``.

    ``rank`` must not return the context items (a cart completer never does).
    """
    out: dict[str, list[np.ndarray]] = {f"hit@{k}": [], f"ndcg@{k}": []}
    for s in range(0, len(cases), batch_size):
        ctx = cases.contexts[s:s + batch_size]
        ranked = np.asarray(rank(ctx, k))
        if ranked.shape[0] != len(ctx) or ranked.shape[1] < k:
            raise ValueError(f"rank returned shape {ranked.shape}; expected ({len(ctx)}, >={k})")
        m = loo_metrics(ranked[:, :k], cases.targets[s:s + batch_size], k=k)
        out[f"hit@{k}"].append(m[f"recall@{k}"])
        out[f"ndcg@{k}"].append(m[f"ndcg@{k}"])
    return {key: np.concatenate(v) if v else np.zeros(0) for key, v in out.items()}


# -- a shop's basket file ------------------------------------------------------------------
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
        with path.open(encoding="utf-8-sig") as fh:
            for n, line in enumerate(fh, start=1):
                labels = [x.strip() for x in line.rstrip("\r\n").split(sep)]
                if not any(labels):
                    skips.add("empty_lines", f"{path.name}:{n}")
                    continue
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
