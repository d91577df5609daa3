"""Readers for the files a shop brings (and the public datasets are read with):
interaction sequences, event logs, item records and the columns of a products file.

One reader per format, used by ``shopsense eval`` and by the loaders of this package.
Malformed input never crashes a run and never changes a figure silently:
structural problems (a missing column, a value that cannot be read) raise
:class:`~shopsense.errors.ValidationError` naming the file, line and column;
rows that carry nothing to learn from (empty lines, missing ids, items the item
file does not know) are skipped and counted in :class:`Skips`, which every
eval prints and writes to the result's ``_meta``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from shopsense.errors import ValidationError, check_param

__all__ = ["PRODUCT_ALIASES", "ItemData", "SequenceData", "Skips", "lookup_item", "product_mapping", "read_events",
           "read_items", "read_sequences", "sequence_format"]

log = logging.getLogger(__name__)

_SPLIT = re.compile(r"[,\s]+")
#: item-file columns recognised without a mapping (lower case) -> field
_ITEM_ALIASES = {
    "id": "id", "item_id": "id", "product_id": "id", "product_uid": "id", "asin": "id", "sku": "id",
    "title": "title", "name": "title", "product_title": "title",
    "brand": "brand",
    "categories": "categories", "category": "categories", "category_path": "categories",
    "description": "description",
}
_ITEM_FIELDS = ("id", "title", "brand", "categories", "description")


@dataclass
class Skips:
    """What a reader left out, by reason, with the first few places for the report."""

    counts: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)
    max_examples: int = 5

    def add(self, reason: str, where: str | None = None, n: int = 1) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + n
        if where is not None and len(self.examples) < self.max_examples:
            self.examples.append(f"{where}: {reason.replace('_', ' ')}")

    def __bool__(self) -> bool:
        return any(self.counts.values())

    def as_dict(self) -> dict[str, Any]:
        return {"counts": dict(self.counts), "examples": list(self.examples)}


@dataclass
class SequenceData:
    """Per-user item sequences (dense item indices, oldest first)."""

    sequences: list[np.ndarray]
    user_ids: list[str]
    item_ids: list[str]  # index -> external id
    source: str
    format: str
    skips: Skips
    repeats: int = 0  # items a user has more than once (kept: the file's own preprocessing)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)


@dataclass
class ItemData:
    """Item records (id, title, brand, categories, description) in file order."""

    ids: list[str]
    records: list[dict[str, str]]
    source: str
    skips: Skips

    @property
    def index(self) -> dict[str, int]:
        return {i: n for n, i in enumerate(self.ids)}


# -- helpers --------------------------------------------------------------------------------
def _check_file(path: Path, what: str) -> None:
    if not path.exists():
        raise ValidationError(f"No such {what} file: {str(path)!r}.", field=what)
    if path.is_dir():
        raise ValidationError(f"{path} is a folder; the {what} option takes a file.", field=what)


def _first_line(path: Path) -> str:
    with path.open(encoding="utf-8-sig", errors="replace") as fh:
        for line in fh:
            if line.strip():
                return line.strip()
    return ""


def _parse_time(value: Any, where: str, column: str) -> float:
    """Epoch seconds from a number or an ISO 8601 string; anything else is an error."""
    if isinstance(value, bool):
        raise ValidationError(f"{where}, column {column!r}: {value!r} is not a time", field=column)
    if isinstance(value, (int, float, np.integer, np.floating)):
        v = float(value)
        if not np.isfinite(v):
            raise ValidationError(f"{where}, column {column!r}: {value!r} is not a time", field=column)
        return v
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(
            f"{where}, column {column!r}: cannot read {text!r} as a time (epoch seconds or ISO 8601, "
            "e.g. 2024-05-01T12:00:00).", field=column) from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def _id(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _rows(path: Path, fmt: str) -> tuple[list[str], Iterator[tuple[int, dict[str, Any] | str]]]:
    """(columns, rows) of a CSV/JSONL/Parquet table; rows as (line, dict) or (line, error)."""
    from shopsense.catalog import read_rows

    if fmt == "csv":
        import csv

        with path.open(newline="", encoding="utf-8-sig") as fh:
            sample = fh.read(4096)
            fh.seek(0)
            delim = "\t" if sample.count("\t") > sample.count(",") else ","
            header = next(csv.reader(fh, delimiter=delim), [])
        columns = [h.strip() for h in header]
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        columns = list(pq.ParquetFile(path).schema_arrow.names)
    else:  # jsonl: the keys of the first object
        columns = []
        first = _first_line(path)
        try:
            obj = json.loads(first) if first else {}
            columns = list(obj) if isinstance(obj, dict) else []
        except json.JSONDecodeError as exc:
            raise ValidationError(f"{path}: line 1: invalid JSON ({exc.msg}).", field="format") from None
    return columns, read_rows(path, fmt)


def _table_format(path: Path) -> str:
    from shopsense.catalog import detect_format

    return detect_format(path)


# -- sequences and events -----------------------------------------------------------------
def sequence_format(path: str | Path) -> str:
    """``"sequences"`` or ``"events"``: what ``--format auto`` reads ``path`` as.

    Parquet and JSON lines are event tables; a ``.json`` file is a ``{user: [items]}``
    object; a text/CSV file is an event table when its first line names both
    ``user_id`` and ``item_id``, else one user per line."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq", ".jsonl", ".ndjson"):
        return "events"
    if suffix == ".json":
        return "sequences"
    cells = {c.strip().strip('"').lower() for c in re.split(r"[,\t]", _first_line(path))}
    return "events" if {"user_id", "item_id"} <= cells else "sequences"


def read_sequences(path: str | Path, fmt: str = "auto", item_ids: Sequence[str] | None = None,
                   limit: int | None = None) -> SequenceData:
    """Per-user sequences from a sequence file or an event log.

    ``fmt``: ``"sequences"`` (one user a line: user id, then item ids in time order,
    separated by whitespace or commas; or a ``{user: [items]}`` JSON object),
    ``"events"`` (CSV/JSONL/Parquet with ``user_id``, ``item_id``, ``timestamp`` and
    optionally ``type``; sorted by time within each user) or ``"auto"``.
    ``item_ids`` fixes the item vocabulary (from an item file): items outside it are
    skipped and counted. Without it, items are indexed in order of first appearance.
    ``limit`` stops a sequences file after that many users are kept (not for events).
    """
    path = Path(path)
    check_param("format", fmt, fmt in ("auto", "sequences", "events"), "one of 'auto', 'sequences', 'events'",
                "read_sequences")
    _check_file(path, "sequences")
    if fmt == "auto":
        fmt = sequence_format(path)
    fixed = item_ids is not None
    index: dict[str, int] = {str(i): n for n, i in enumerate(item_ids)} if fixed else {}  # type: ignore[union-attr]
    if fmt == "events":
        return _read_events(path, index, fixed)
    if path.suffix.lower() == ".json":
        return _read_json_sequences(path, index, fixed, limit)
    skips = Skips()
    seqs: list[np.ndarray] = []
    users: list[str] = []
    seen: dict[str, int] = {}
    repeats = 0
    with path.open(encoding="utf-8-sig") as fh:
        for n, line in enumerate(fh, start=1):
            if limit is not None and len(seqs) >= limit:
                break
            parts = [p for p in _SPLIT.split(line.strip()) if p]
            if not parts:
                skips.add("empty_lines", f"{path.name}:{n}")
                continue
            user, items = parts[0], parts[1:]
            if user in seen:
                raise ValidationError(
                    f"{path}: line {n}, column 1: user {user!r} already has a sequence on line {seen[user]}; "
                    "a sequences file holds one line per user (use an events file for raw logs).", field="sequences")
            seen[user] = n
            if not items:
                skips.add("users_without_items", f"{path.name}:{n}")
                continue
            idx = _index_items(items, index, fixed, skips, f"{path.name}:{n}")
            if len(idx) == 0:
                skips.add("users_without_known_items", f"{path.name}:{n}")
                continue
            repeats += len(idx) - len(np.unique(idx))
            seqs.append(idx)
            users.append(user)
    if not seqs:
        raise ValidationError(f"{path}: no user sequences found (expected one user a line: user id, then item ids).",
                              field="sequences")
    return SequenceData(seqs, users, list(index), str(path), "sequences", skips, repeats)


def lookup_item(label: str, index: dict[str, int], fixed: bool, skips: Skips, where: str) -> int | None:
    """The item's index. An open vocabulary (no ``--items``) grows with each new label;
    in a fixed one an unknown label is skipped, counted under ``unknown_items`` at ``where``."""
    if not fixed:
        return index.setdefault(label, len(index))
    j = index.get(label)
    if j is None:
        skips.add("unknown_items", f"{where}: item {label!r}")
    return j


def _index_items(items: Sequence[str], index: dict[str, int], fixed: bool, skips: Skips, where: str,
                 unit: str = "column", start: int = 2) -> np.ndarray:
    out = [lookup_item(it, index, fixed, skips, f"{where}, {unit} {col}") for col, it in enumerate(items, start=start)]
    return np.asarray([j for j in out if j is not None], np.int64)


def _read_json_sequences(path: Path, index: dict[str, int], fixed: bool, limit: int | None = None) -> SequenceData:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise ValidationError(f"{path}: line {exc.lineno}, column {exc.colno}: {exc.msg}", field="sequences") from None
    if not isinstance(data, dict):
        raise ValidationError(f"{path}: expected a JSON object {{user id: [item ids in time order]}}.",
                              field="sequences")
    skips = Skips()
    seqs, users, repeats = [], [], 0
    for user, items in data.items():
        if limit is not None and len(seqs) >= limit:
            break
        if not isinstance(items, list):
            raise ValidationError(f"{path}: user {user!r}: expected a list of item ids, got {type(items).__name__}.",
                                  field="sequences")
        ids = [_id(i) for i in items]
        if not any(ids):
            skips.add("users_without_items", f"{path.name}: user {user!r}")
            continue
        idx = _index_items([i for i in ids if i], index, fixed, skips, f"{path.name}: user {user!r}", "position", 1)
        if len(idx) == 0:
            skips.add("users_without_known_items", f"{path.name}: user {user!r}")
            continue
        repeats += len(idx) - len(np.unique(idx))
        seqs.append(idx)
        users.append(str(user))
    if not seqs:
        raise ValidationError(f"{path}: no user sequences found.", field="sequences")
    return SequenceData(seqs, users, list(index), str(path), "sequences", skips, repeats)


def read_events(path: str | Path, item_ids: Sequence[str] | None = None) -> SequenceData:
    """Per-user sequences from an event table in the store's schema (see :func:`read_sequences`)."""
    path = Path(path)
    _check_file(path, "sequences")
    fixed = item_ids is not None
    index = {str(i): n for n, i in enumerate(item_ids)} if fixed else {}  # type: ignore[union-attr]
    return _read_events(path, index, fixed)


def _read_events(path: Path, index: dict[str, int], fixed: bool) -> SequenceData:
    fmt = _table_format(path)
    columns, rows = _rows(path, fmt)
    missing = [c for c in ("user_id", "item_id", "timestamp") if c not in columns]
    if missing:
        raise ValidationError(
            f"{path}: missing column(s) {missing}; an events file needs user_id, item_id, timestamp "
            f"(and optionally type). Columns found: {columns}.", field="sequences")
    skips = Skips()
    users: dict[str, int] = {}
    u_l, i_l, t_l = [], [], []
    for line, row in rows:
        where = f"{path.name}:{line}"
        if isinstance(row, str):
            raise ValidationError(f"{path}: line {line}: {row}", field="sequences")
        user, item = _id(row.get("user_id")), _id(row.get("item_id"))
        etype = _id(row.get("type")).lower()
        if not user:
            skips.add("rows_without_user_id", f"{where}, column 'user_id'")
            continue
        if not item:
            skips.add("search_events" if etype == "search" else "rows_without_item_id", f"{where}, column 'item_id'")
            continue
        t = _parse_time(row.get("timestamp"), f"{path}: line {line}", "timestamp")
        j = lookup_item(item, index, fixed, skips, f"{where}, column 'item_id'")
        if j is None:
            continue
        u_l.append(users.setdefault(user, len(users)))
        i_l.append(j)
        t_l.append(t)
    if not u_l:
        raise ValidationError(f"{path}: no usable events (every row was skipped: {skips.counts}).",
                              field="sequences")
    u, it, t = np.asarray(u_l, np.int64), np.asarray(i_l, np.int64), np.asarray(t_l, np.float64)
    order = np.lexsort((np.arange(len(u)), t, u))  # by user, then time, file order on ties
    u, it = u[order], it[order]
    # one interaction per (user, item): a view, a cart and a purchase of one product are one
    # step of the sequence (the first), as in the standard leave-one-out preprocessing
    key = u * max(len(index), 1) + it
    _, first = np.unique(key, return_index=True)
    keep = np.zeros(len(u), bool)
    keep[first] = True
    if (~keep).sum():
        skips.add("repeat_interactions", None, int((~keep).sum()))
    u, it = u[keep], it[keep]
    bounds = np.searchsorted(u, np.arange(len(users) + 1))
    seqs = [it[bounds[k]:bounds[k + 1]] for k in range(len(users))]
    return SequenceData(seqs, list(users), list(index), str(path), "events", skips, 0)


# -- items ---------------------------------------------------------------------------------
def read_items(path: str | Path, mapping: Mapping[str, str] | None = None) -> ItemData:
    """Item records from CSV/JSONL/Parquet (one item a row) or a JSON object
    ``{item id: {"title": ..., "brand": ..., "categories": ..., "description": ...}}``
    (Amazon Office's ``Office.item.json``).

    Columns named id/item_id/product_id/asin/sku, title/name, brand,
    categories/category and description are recognised; ``mapping`` (column -> field)
    names others. Several columns mapped to ``categories`` form a path in mapping order.
    """
    path = Path(path)
    _check_file(path, "items")
    mapping = dict(mapping or {})
    bad = [f for f in mapping.values() if f not in _ITEM_FIELDS]
    if bad:
        raise ValidationError(f"The item mapping names unknown field(s) {bad}; fields are {list(_ITEM_FIELDS)}.",
                              field="items_map")
    skips = Skips()
    ids: list[str] = []
    records: list[dict[str, str]] = []
    seen: dict[str, str] = {}

    def add(raw: Mapping[str, Any], where: str, id_: str | None = None) -> None:
        rec = _item_record(raw, mapping)
        if id_ is not None:
            rec["id"] = id_
        if not rec.get("id"):
            skips.add("items_without_id", where)
            return
        if rec["id"] in seen:
            skips.add("duplicate_item_ids", f"{where}: {rec['id']!r} first on {seen[rec['id']]}")
            return
        seen[rec["id"]] = where
        ids.append(rec["id"])
        records.append(rec)

    if path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8-sig"))
        except json.JSONDecodeError as exc:
            raise ValidationError(f"{path}: line {exc.lineno}, column {exc.colno}: {exc.msg}", field="items") from None
        if isinstance(data, dict):
            for key, val in data.items():
                if not isinstance(val, dict):
                    raise ValidationError(f"{path}: item {key!r}: expected an object of fields.", field="items")
                add(val, f"{path.name}: item {key!r}", str(key))
        elif isinstance(data, list):
            for n, val in enumerate(data):
                if not isinstance(val, dict):
                    raise ValidationError(f"{path}: entry {n}: expected an object of fields.", field="items")
                add(val, f"{path.name}: entry {n}")
        else:
            raise ValidationError(f"{path}: expected a JSON object or list of items.", field="items")
    else:
        columns, rows = _rows(path, _table_format(path))
        fields = {mapping.get(c, _ITEM_ALIASES.get(c.lower())) for c in columns}
        if "id" not in fields:
            raise ValidationError(
                f"{path}: no item id column; name one id, item_id, product_id, asin or sku, or map it "
                f"(e.g. --items-map {columns[0] if columns else 'COLUMN'}=id). Columns found: {columns}.",
                field="items")
        for line, row in rows:
            if isinstance(row, str):
                raise ValidationError(f"{path}: line {line}: {row}", field="items")
            add(row, f"{path.name}:{line}")
    if not ids:
        raise ValidationError(f"{path}: no items with an id.", field="items")
    return ItemData(ids, records, str(path), skips)


def _item_record(raw: Mapping[str, Any], mapping: Mapping[str, str]) -> dict[str, str]:
    rec: dict[str, str] = {}
    cats: list[str] = []
    for col, val in raw.items():
        f = mapping.get(col, _ITEM_ALIASES.get(str(col).lower()))
        if f is None or val is None:
            continue
        if f == "categories":
            if isinstance(val, (list, tuple)):
                cats += [str(v).strip() for v in val if str(v).strip()]
            elif str(val).strip():
                cats.append(str(val).strip())
        elif f not in rec:
            v = _id(val) if f == "id" else str(val).strip()
            if v and v.lower() != "nan":
                rec[f] = v
    if cats:
        rec["categories"] = ", ".join(cats)
    return rec


# -- products files ------------------------------------------------------------------------
#: product fields a file may name differently; used only when the file has no column
#: of that name and no ``--map`` targets it (Home Depot: product_uid, product_title)
PRODUCT_ALIASES: dict[str, tuple[str, ...]] = {
    "id": ("product_id", "product_uid", "item_id"),
    "title": ("product_title", "product_name", "name"),
}


def _file_header(path: Path, fmt: str) -> list[str]:
    import csv
    import json

    if fmt == "csv":
        with path.open(newline="", encoding="utf-8-sig") as fh:
            sample = fh.read(4096)
            fh.seek(0)
            delim = "\t" if sample.count("\t") > sample.count(",") else ","
            for row in csv.reader(fh, delimiter=delim):
                if any(c.strip() for c in row):
                    return [c.strip() for c in row]
        return []
    if fmt == "jsonl":
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    try:
                        obj = json.loads(line)
                    except json.JSONDecodeError:
                        return []  # the ingest reports the bad line itself
                    return list(obj) if isinstance(obj, dict) else []
        return []
    import pyarrow.parquet as pq

    return list(pq.read_schema(path).names)


def product_mapping(path: str | Path, mapping: dict[str, str] | None = None, fmt: str | None = None) -> dict[str, str]:
    """The ``column=field`` mapping for a products file: ``mapping`` plus, for ``id``
    and ``title`` when the file has no such column and nothing maps to them, the first
    column of :data:`PRODUCT_ALIASES` the file has (so Home Depot's ``product_uid`` and
    ``product_title`` work without flags). The result is reported, never hidden."""
    from shopsense.catalog import detect_format

    path = Path(path)
    if not path.exists():
        raise ValidationError(f"No such products file: {str(path)!r}.", field="products")
    out = dict(mapping or {})
    header = _file_header(path, detect_format(path, fmt))
    targets = set(out.values())
    for fld, aliases in PRODUCT_ALIASES.items():
        if fld in header or fld in targets:
            continue
        col = next((c for c in aliases if c in header and c not in out), None)
        if col is not None:
            out[col] = fld
    return out
