"""Streaming ingestion of products and events from CSV, JSONL and Parquet.

Rows are read in batches (bounded memory), renamed by the shop's column mapping,
validated with the pydantic schema and written batch by batch, each batch in one
transaction. Events take a fast path: a block of rows is checked column by column and only
the rows those checks cannot pass go through pydantic (:func:`_fast_events`), with the same
stored events and the same rejects. A bad row never stops good rows: it is written to a rejects file
(JSONL: line, field, value, reason) and counted in the report.

Whatever a row holds, it is that row's reject, never a traceback:

- values outside the bounds of :mod:`shopsense.catalog._models` (one rule per field, the same
  for every format and for HTTP);
- bytes that are not UTF-8 (CSV, JSONL): the line is rejected, not repaired, and the reject
  names the line, the column and the byte;
- a damaged Parquet row group: its rows are one reject naming their range, the readable
  groups are kept; a file whose footer cannot be read is refused before anything is stored;
- a row the store itself refuses: the batch is retried row by row and only that row is lost.
"""

from __future__ import annotations

import csv
import itertools
import json
import logging
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Self

import pydantic

from shopsense.catalog._models import (
    MAX_PRICE,
    MAX_QUANTITY,
    Event,
    EventRows,
    EventType,
    Product,
    time_window,
)
from shopsense.errors import ValidationError

log = logging.getLogger(__name__)

Kind = Literal["products", "events"]
FORMATS = ("csv", "jsonl", "parquet")
_PRODUCT_FIELDS = set(Product.model_fields)
_EVENT_FIELDS = set(Event.model_fields)


@dataclass
class Reject:
    """One refused row: its line in the file, the field at fault, the reason and the value."""

    line: int
    field: str
    reason: str
    value: str = ""

    def __str__(self) -> str:
        return f"line {self.line}, field {self.field!r}: {self.reason}"


@dataclass
class IngestReport:
    """What an ingest did. ``read == stored + rejected + duplicates``."""

    kind: str
    source: str
    read: int = 0
    stored: int = 0
    rejected: int = 0
    duplicates: int = 0
    rejects: list[Reject] = field(default_factory=list)  # the first 100, for display
    rejects_path: str | None = None
    unknown_columns: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.rejected == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "source": self.source, "read": self.read, "stored": self.stored,
            "rejected": self.rejected, "duplicates": self.duplicates,
            "rejects_path": self.rejects_path, "unknown_columns": self.unknown_columns,
            "rejects": [r.__dict__ for r in self.rejects],
        }


def parse_mapping(pairs: list[str] | None) -> dict[str, str]:
    """``["product_uid=id", "name=title"]`` -> ``{"product_uid": "id", "name": "title"}``."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ValidationError(
                f"The 'map' parameter must look like column=field. Got {pair!r} instead.",
                field="map",
            )
        col, fld = pair.split("=", 1)
        out[col.strip()] = fld.strip()
    return out


def detect_format(path: Path, fmt: str | None = None) -> str:
    """The file's format (``csv``, ``jsonl`` or ``parquet``): ``fmt`` when given, else from the
    file name's extension; an unknown one raises a :class:`ValidationError` naming the choices."""
    if fmt:
        if fmt not in FORMATS:
            raise ValidationError(
                f"The 'format' parameter must be one of {FORMATS}. Got {fmt!r} instead.",
                field="format",
            )
        return fmt
    suffix = path.suffix.lower().lstrip(".")
    if suffix in ("csv", "tsv", "txt"):
        return "csv"
    if suffix in ("jsonl", "ndjson", "json"):
        return "jsonl"
    if suffix in ("parquet", "pq"):
        return "parquet"
    raise ValidationError(
        f"Cannot tell the format of {path.name!r} from its suffix; pass format= one of {FORMATS}.",
        field="format",
    )


class Unreadable(str):
    """What :func:`read_rows` yields for a part of a file it cannot read: the reason, and
    how many rows it covers (a damaged Parquet row group covers many), which column, and
    the offending text. It is a ``str``, so callers that test for an error string work."""

    rows: int
    field: str
    value: str

    def __new__(cls, reason: str, *, rows: int = 1, field: str = "(row)", value: str = "") -> Self:
        self = super().__new__(cls, reason)
        self.rows, self.field, self.value = rows, field, value
        return self


#: a byte that is not UTF-8, as the 'surrogateescape' error handler decodes it
_UNDECODABLE = re.compile("[\udc80-\udcff]")


def _undecodable(text: str) -> str | None:
    """Where ``text`` holds a byte that was not UTF-8, said in words; None when it holds none."""
    if text.isascii():  # O(1) in CPython: the common case costs nothing
        return None
    m = _UNDECODABLE.search(text)
    if m is None:
        return None
    return f"byte 0x{ord(m.group()) - 0xDC00:02x} at character {m.start() + 1}"


def _readable(text: str) -> str:
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")[:200]


class _Lines:
    """The lines of a text file, for the csv module: numbered, those holding bytes that are
    not UTF-8 noted in ``bad`` (line, where, text), and those of the record being read kept
    in ``record``, so that a broken record can be re-read from its second line."""

    def __init__(self, fh: Iterator[str]) -> None:
        self._fh = fh
        self._back: list[str] = []
        self.n = 0
        self.record: list[str] = []
        self.bad: list[tuple[int, str, str]] = []

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = self._back.pop() if self._back else next(self._fh)
        self.n += 1
        if not line.isascii():
            where = _undecodable(line)
            if where is not None:
                self.bad.append((self.n, where, _readable(line.rstrip("\r\n"))))
        self.record.append(line)
        return line

    def reread_after_first(self) -> None:
        """Forget the current record but its first line: its other lines are read again."""
        rest = self.record[1:]
        self._back.extend(reversed(rest))
        self.n -= len(rest)
        self.bad = [b for b in self.bad if b[0] <= self.n]
        self.record = []


def _one_record(lines: list[str], delim: str, width: int) -> bool:
    """Whether the lines of a record that ran over several lines are one well-formed record
    of ``width`` cells: a quoted cell opened and closed at cell boundaries (strict parsing).
    A stray quote that swallowed the lines after it fails: it runs to the end of the file,
    or its closing quote is the next stray one, followed by more text."""
    try:
        records = list(csv.reader(lines, delimiter=delim, strict=True))
    except csv.Error:
        return False
    return len(records) == 1 and len(records[0]) == width


def _csv_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """Rows of a CSV file. A quoted cell may run over several lines, but a record that runs
    over several lines and is not one well-formed record (:func:`_one_record`), or that the
    csv module cannot read, is an unbalanced quote: its first line is rejected and reading
    goes on from the next line, so a stray quote never swallows the good rows after it."""
    with path.open(newline="", encoding="utf-8-sig", errors="surrogateescape") as fh:
        sample = fh.read(4096)
        fh.seek(0)
        delim = "\t" if sample.count("\t") > sample.count(",") else ","
        lines = _Lines(fh)
        reader = csv.reader(lines, delimiter=delim)
        header = next(reader, [])
        if lines.bad:
            line, where, _ = lines.bad[0]
            raise ValidationError(
                f"{path.name}: line {line} (the header) is not valid UTF-8 ({where}); nothing was "
                "stored. Convert the file to UTF-8 first.", field="path")
        yield from _csv_records(lines, header, delim)


def _csv_records(lines: _Lines, header: list[str], delim: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """The records after the header (see :func:`_csv_rows`), from ``lines``."""
    reader = csv.reader(lines, delimiter=delim)
    width = len(header)
    while True:
        start = lines.n + 1
        lines.record.clear()
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            hint = " (an unbalanced quote?); only this line is rejected" if len(lines.record) > 1 else ""
            lines.reread_after_first()
            reader = csv.reader(lines, delimiter=delim)  # a fresh parser: no half-read quote
            yield start, f"unreadable CSV row: {exc}{hint}"
            continue
        if not cells:  # a blank line
            continue
        end = lines.n
        # a record over several lines must be one well-formed record; a cell of a one-line
        # record ends with a newline only when its quote ran to the end of the file
        if (end > start and not _one_record(lines.record, delim, width)) or cells[-1].endswith(("\n", "\r")):
            lines.reread_after_first()
            reader = csv.reader(lines, delimiter=delim)
            yield start, "unbalanced quote: the row ran over the lines after it; only this line is rejected"
            continue
        if lines.bad:  # a byte of this row is not UTF-8: rejected, not repaired
            line, where, text = lines.bad[0]
            lines.bad.clear()
            column = next((str(h) for h, v in zip(header, cells, strict=False) if _undecodable(v)), "(row)")
            yield end, Unreadable(f"invalid UTF-8 on line {line} ({where})", field=column, value=text)
            continue
        if len(cells) > width:
            yield end, f"row has more cells than the {width}-column header"
            continue
        row: dict[str, Any] = dict(zip(header, cells, strict=False))
        if len(cells) < width:
            for h in header[len(cells):]:
                row.setdefault(h, None)
        yield end, row


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    with path.open(encoding="utf-8-sig", errors="surrogateescape") as fh:
        for n, line in enumerate(fh, start=1):
            where = _undecodable(line)
            if where is not None:  # rejected, not repaired
                yield n, Unreadable(f"invalid UTF-8 on line {n} ({where})", field=_undecodable_key(line),
                                    value=_readable(line.rstrip("\r\n")))
                continue
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                yield n, f"invalid JSON: {exc.msg}"
                continue
            except RecursionError:
                yield n, "invalid JSON: nested too deeply"
                continue
            except ValueError as exc:  # e.g. an integer of more than 4,300 digits
                yield n, f"invalid JSON: {exc}"
                continue
            if not isinstance(obj, dict):
                yield n, "a JSONL line must be an object"
                continue
            yield n, obj


def _undecodable_key(line: str) -> str:
    """The key whose value holds the non-UTF-8 byte, when the line is otherwise an object."""
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):
        return "(row)"
    if not isinstance(obj, dict):
        return "(row)"
    return next((str(k) for k, v in obj.items() if isinstance(v, str) and _undecodable(v)), "(row)")


def _batch_rows(batch: Any) -> list[dict[str, Any] | Unreadable]:
    """The rows of one Arrow batch; a value Python cannot hold (a timestamp past year 9999)
    is that row's reject, naming the column, not the whole batch's."""
    try:
        return batch.to_pylist()  # type: ignore[no-any-return]
    except Exception:  # noqa: BLE001, S110 - fall back to value by value to find the culprit
        pass
    out: list[dict[str, Any] | Unreadable] = []
    names, columns = batch.schema.names, batch.columns
    for i in range(batch.num_rows):
        row: dict[str, Any] = {}
        for name, col in zip(names, columns, strict=True):
            try:
                row[name] = col[i].as_py()
            except Exception as exc:  # noqa: BLE001
                out.append(Unreadable(f"unreadable value ({type(exc).__name__}: {exc})", field=name))
                break
        else:
            out.append(row)
    return out


def _parquet_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        sizes = [pf.metadata.row_group(g).num_rows for g in range(pf.num_row_groups)]
    except Exception as exc:  # noqa: BLE001 - pyarrow raises OSError, ArrowInvalid...
        raise ValidationError(f"{path.name} is not a readable Parquet file ({exc}); nothing was stored.",
                              field="path") from None
    start = 0  # rows before this group
    for g, size in enumerate(sizes):
        done = 0
        try:
            for batch in pf.iter_batches(batch_size=5000, row_groups=[g]):
                for row in _batch_rows(batch):
                    done += 1
                    yield start + done, row
        except Exception as exc:  # noqa: BLE001 - a damaged group: report it, keep the others
            if done < size:
                first, last = start + done + 1, start + size
                yield first, Unreadable(
                    f"row group {g} is damaged: rows {first}-{last} unreadable ({type(exc).__name__}: "
                    f"{str(exc).strip()[:200]})", rows=size - done, value=f"{first}-{last}")
        start += size


def read_rows(path: Path, fmt: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """Yield (line number, row); for Parquet the row's number, from 1. A row that cannot even
    be parsed is yielded as an error string (an :class:`Unreadable`) so it is reported, not
    dropped; a file that cannot be read at all raises :class:`ValidationError` before the
    first row."""
    if fmt == "csv":
        return _csv_rows(path)
    if fmt == "jsonl":
        return _jsonl_rows(path)
    return _parquet_rows(path)


def _map_row(
    row: dict[str, Any], mapping: dict[str, str], kind: Kind, unknown: set[str]
) -> dict[str, Any]:
    fields = _PRODUCT_FIELDS if kind == "products" else _EVENT_FIELDS
    out: dict[str, Any] = {}
    attrs: dict[str, Any] = {}
    for col, value in row.items():
        if value is None or (isinstance(value, str) and value.strip() == ""):
            continue
        target = mapping.get(col, col)
        if target == "-":  # explicitly ignored column
            continue
        if target.startswith("attributes."):
            attrs[target.split(".", 1)[1]] = value
        elif target in fields:
            out[target] = value
        elif kind == "products":
            # A shop's extra product columns are attributes (reported once in the summary).
            unknown.add(col)
            attrs[col.removeprefix("attr_")] = value
        else:
            unknown.add(col)
    if attrs:
        base = out.get("attributes", {})
        if isinstance(base, str):
            try:
                base = json.loads(base) if base.strip() else {}
            except (ValueError, RecursionError):
                base = None
        if isinstance(base, dict):
            out["attributes"] = {**attrs, **base}
        # else the cell is left as it is, and the schema rejects it, naming 'attributes'
    return out


def _rejects_from(exc: pydantic.ValidationError, line: int, raw: dict[str, Any]) -> list[Reject]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"])
        if not loc:  # a rule on the whole row names its field first ("item_id is required ...")
            first = err["msg"].removeprefix("Value error, ").split(" ", 1)[0]
            loc = first if first in raw or first in _EVENT_FIELDS | _PRODUCT_FIELDS else "(row)"
        value = raw.get(loc.split(".", 1)[0], "")
        out.append(Reject(line, loc, err["msg"], "" if value is None else _shown(value)))
    return out


def _shown(value: Any) -> str:
    try:
        return str(value)[:200]
    except ValueError:  # an int too long to print
        return f"<an integer of {value.bit_length()} bits>"


#: errors of a store that mean "this row's data", not "the store is down": retried row by row
_ROW_ERRORS = (ValueError, TypeError, OverflowError)


def ingest(
    path: str | Path,
    kind: Kind,
    write: Callable[[list[Any]], int],
    *,
    mapping: dict[str, str] | None = None,
    fmt: str | None = None,
    batch_size: int = 2000,
    rejects_path: str | Path | None = None,
    progress: bool = False,
    fast: bool = True,
) -> IngestReport:
    """Stream ``path`` into ``write`` (a store method) in validated batches. Events take the
    fast path (columns checked together, see :func:`_fast_events`; ``write`` then gets an
    :class:`EventRows`) unless ``fast`` is False: the row-by-row path, with the same results."""
    path = Path(path)
    if not path.exists():
        raise ValidationError(f"No such file: {str(path)!r}.", field="path")
    if kind not in ("products", "events"):
        raise ValidationError(
            f"The 'kind' parameter must be 'products' or 'events'. Got {kind!r} instead.",
            field="kind",
        )
    fmt = detect_format(path, fmt)
    mapping = mapping or {}
    valid_targets = (_PRODUCT_FIELDS if kind == "products" else _EVENT_FIELDS) | {"-"}
    for col, target in mapping.items():
        if target not in valid_targets and not target.startswith("attributes."):
            raise ValidationError(
                f"The mapping {col}={target} names no {kind[:-1]} field; allowed: "
                f"{sorted(valid_targets)} or attributes.<name>.",
                field="map",
            )
    model = Product if kind == "products" else Event
    fast = fast and kind == "events"
    report = IngestReport(kind=kind, source=str(path))
    rpath = Path(rejects_path) if rejects_path else None
    rfile = None
    unknown: set[str] = set()
    seen_ids: dict[str, int] = {}
    batch: list[Any] = []
    lines: list[int] = []

    def reject(r: Reject, rows: int = 1) -> None:
        nonlocal rfile
        report.rejected += rows
        if len(report.rejects) < 100:
            report.rejects.append(r)
        if rpath is not None:
            if rfile is None:
                rpath.parent.mkdir(parents=True, exist_ok=True)
                # rejected rows hold shop data (user ids): readable by the owner only
                fd = os.open(rpath, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                rfile = os.fdopen(fd, "w", encoding="utf-8")
                report.rejects_path = str(rpath)
            rfile.write(json.dumps(r.__dict__) + "\n")

    def flush() -> None:
        if not batch:
            return
        items = EventRows(list(batch)) if fast else batch
        refused = 0
        try:
            new = write(items)
        except _ROW_ERRORS:
            # one row the store cannot hold must not take the batch with it: retry row by row
            new = 0
            for obj, ln in zip(items, lines, strict=True):
                try:
                    new += write([obj])
                except _ROW_ERRORS as exc:
                    refused += 1
                    reject(Reject(ln, "(row)", f"the store refused the row ({type(exc).__name__}: {exc})"))
        report.stored += new
        report.duplicates += len(batch) - new - refused
        batch.clear()
        lines.clear()

    prog = None
    if progress:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        prog = Progress(TextColumn(f"ingest {kind}"), BarColumn(), TextColumn("{task.completed:,} rows"),
                        TimeRemainingColumn())
        prog.start()
        task = prog.add_task(kind, total=None)
    def validate(line: int, row: dict[str, Any]) -> Any:
        """The row-by-row validator: the model, or None when the row was rejected (reported)."""
        try:
            mapped = _map_row(row, mapping, kind, unknown)
            return model.model_validate(mapped)
        except pydantic.ValidationError as exc:
            for r in _rejects_from(exc, line, mapped)[:1]:
                reject(r)
        except Exception as exc:  # noqa: BLE001 - whatever a row holds, it never stops the file
            reject(Reject(line, "(row)", f"unexpected {type(exc).__name__}: {exc}"))
        return None

    def unreadable(line: int, row: str) -> None:
        n = getattr(row, "rows", 1)
        report.read += n
        reject(Reject(line, getattr(row, "field", "(row)"), str(row), getattr(row, "value", "")), n)

    def add(rows: list[Any], at: range | list[int]) -> None:
        """Append valid rows to the batch, flushing each time it is full."""
        k = 0
        while k < len(rows):
            take = batch_size - len(batch)
            batch.extend(rows[k:k + take])
            lines.extend(at[k:k + take])
            k += take
            if len(batch) >= batch_size:
                flush()
                if prog is not None:
                    prog.update(task, completed=report.read)

    try:
        if fast:  # events: blocks of rows checked by columns; the rest row by row
            import numpy as np

            checked = ((item, None) if isinstance(item, tuple) else (item, _fast_events(item, mapping, unknown))
                       for item in read_event_blocks(path, fmt))
            for item, result in _read_ahead(checked):
                if isinstance(item, tuple):
                    unreadable(*item)
                    continue
                report.read += len(item)
                passed, rows = result
                start = 0
                for i in [*np.flatnonzero(~passed).tolist(), len(item)]:
                    add(rows[start:i], item.lines[start:i])
                    if i == len(item):
                        break
                    ev = validate(item.lines[i], item.row(i))
                    if ev is not None:
                        add([(ev.user_id, ev.item_id, ev.type.value, ev.timestamp.timestamp(), ev.session_id,
                              ev.query, ev.quantity, ev.price)], [item.lines[i]])
                    start = i + 1
        for line, row in () if fast else read_rows(path, fmt):
            if isinstance(row, str):
                unreadable(line, row)
                continue
            report.read += 1
            obj = validate(line, row)
            if obj is None:
                continue
            if kind == "products":
                first = seen_ids.get(obj.id)
                if first is not None:
                    reject(Reject(line, "id", f"duplicate id {obj.id!r} (first seen at line {first})", obj.id))
                    continue
                seen_ids[obj.id] = line
            add([obj], [line])
        flush()
    finally:
        if prog is not None:
            prog.update(task, completed=report.read)
            prog.stop()
        if rfile is not None:
            rfile.close()
    report.unknown_columns = sorted(unknown)
    if report.rejected:
        log.warning("%s: %d of %d rows rejected", path.name, report.rejected, report.read)
    return report


def _read_ahead(items: Iterator[Any], depth: int = 2) -> Iterator[Any]:
    """``items``, produced by a thread up to ``depth`` ahead: the next blocks are read and checked
    while the store commits this one (SQLite and pyarrow compute let go of the GIL while they
    work), so an ingest uses a second core. An exception of the producer is raised here, in
    order; a consumer that stops early stops the producer. Hand-written because the standard
    pools map functions over inputs, they do not read a generator ahead in order."""
    import queue
    import threading

    q: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple[bool, Any]) -> bool:
        while not stop.is_set():
            try:
                q.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for x in items:
                if not put((False, x)):
                    return
            put((True, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            put((True, exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="shopsense-ingest-read", daemon=True)
    thread.start()
    try:
        while True:
            end, x = q.get()
            if end:
                if x is not None:
                    raise x
                return
            yield x
    finally:
        stop.set()
        thread.join()


# -- events: the fast path ----------------------------------------------------------------------
# Why hand-written: pydantic validates one Python object at a time (about 15 us an event, with the
# dict and the model each row needs), and no library validates Arrow columns while reporting each
# failing row with its line, field and message, as the rejects file must. So the columns of a block
# of rows are checked here with pyarrow compute, conservatively: a row passes only when every value
# has a shape whose outcome is certain (printable ASCII ids without surrounding spaces, a known
# type, whole seconds inside the time window, a plain decimal price...), and then its stored values
# are exactly those Event would hold. Every other row goes through the row-by-row validator
# (_map_row + Event.model_validate), which stores or rejects it exactly as before: the rejects
# report is unchanged, only fewer rows pay for pydantic. A rule added to Event must be added here
# too, or its values must fail these checks (tests/catalog/test_fast_events.py compares the paths).

#: printable ASCII, no space at either end (so str_strip_whitespace changes nothing)
_PLAIN = r"^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$"
#: the same without '/' (user ids appear in URL paths: check_id)
_PLAIN_NO_SLASH = r"^[\x21-\x2e\x30-\x7e](?:[\x20-\x2e\x30-\x7e]*[\x21-\x2e\x30-\x7e])?$"
_SECONDS = r"^[0-9]{1,11}$"  # whole seconds since 1970
_QUANTITY = r"^[1-9][0-9]{0,6}$"
_PRICE = r"^[0-9]{1,10}(?:\.[0-9]{1,9})?$"
_EVENT_TYPES = [t.value for t in EventType]


@dataclass
class _Block:
    """Consecutive parsed rows as columns (raw cells, by source column). ``rows``: the rows as
    read (JSONL, Parquet); None when a row is rebuilt from the columns (CSV, as _csv_records
    builds it). ``arrow``: the columns are Arrow string arrays (plain CSV lines parsed by
    pyarrow, see _arrow_block), not lists."""

    lines: range | list[int]
    columns: dict[str, Any]
    rows: list[dict[str, Any]] | None = None
    arrow: bool = False

    def __len__(self) -> int:
        return len(self.lines)

    def row(self, i: int) -> dict[str, Any]:
        if self.rows is not None:
            return self.rows[i]
        if self.arrow:
            return {k: v[i].as_py() for k, v in self.columns.items()}
        return {k: v[i] for k, v in self.columns.items()}

    @classmethod
    def of_rows(cls, lines: list[int], rows: list[dict[str, Any]]) -> _Block:
        keys = dict.fromkeys(k for r in rows for k in r)
        return cls(lines, {k: [r.get(k) for r in rows] for k in keys}, rows)


_Item = tuple[int, str] | _Block


def _grouped(rows: Iterator[tuple[int, dict[str, Any] | str]], size: int = 5000) -> Iterator[_Item]:
    """Rows from :func:`read_rows` as blocks; an unreadable part stays an item of its own, in order."""
    lines: list[int] = []
    block: list[dict[str, Any]] = []
    for line, row in rows:
        if isinstance(row, str):
            if block:
                yield _Block.of_rows(lines, block)
                lines, block = [], []
            yield line, row
            continue
        lines.append(line)
        block.append(row)
        if len(block) >= size:
            yield _Block.of_rows(lines, block)
            lines, block = [], []
    if block:
        yield _Block.of_rows(lines, block)


def _plain_text(text: str) -> bool:
    """Whether every line of ``text`` is one CSV record that the csv module splits on the
    delimiter alone, with nothing for _csv_records to report: no quote, no NUL, no byte that
    was not UTF-8."""
    return '"' not in text and "\x00" not in text and (text.isascii() or _UNDECODABLE.search(text) is None)


def _csv_blocks(path: Path, size: int = 1 << 18) -> Iterator[_Item]:
    """The rows of :func:`_csv_rows`, a chunk of lines (``size`` characters) at a time: a chunk
    of plain lines (:func:`_plain_text`) is one record per line, split by the csv module in one
    call; from the first chunk that is not, the rest of the file goes through _csv_records line
    by line, as in the row-by-row path."""
    with path.open(newline="", encoding="utf-8-sig", errors="surrogateescape") as fh:
        sample = fh.read(4096)
        fh.seek(0)
        delim = "\t" if sample.count("\t") > sample.count(",") else ","
        first = fh.readline()
        header = next(csv.reader([first], delimiter=delim), []) if _plain_text(first) else []
        if not header or len(set(header)) < len(header):  # a quoted, odd or repeated header
            yield from _grouped(_csv_rows(path))
            return
        width, n = len(header), 1  # n: lines read so far
        while chunk := fh.readlines(size):
            records: list[list[str]] = []
            text = "".join(chunk)
            if _plain_text(text):
                block = _arrow_block(text, chunk, header, delim, n)
                if block is not None:
                    yield block
                    n += len(chunk)
                    continue
                try:
                    records = list(csv.reader(chunk, delimiter=delim))
                except csv.Error:  # e.g. a cell over the csv module's size limit: reported below
                    records = []
            if len(records) != len(chunk):  # not plain (one record per line cannot be assumed)
                lines = _Lines(itertools.chain(chunk, fh))
                lines.n = n
                yield from _grouped(_csv_records(lines, header, delim))
                return
            if set(map(len, records)) == {width}:
                yield _Block(range(n + 1, n + 1 + len(records)), dict(zip(header, map(list, zip(*records)),
                                                                          strict=True)))
            else:  # blank lines, short rows, long rows: as _csv_records reads them
                keep: list[int] = []
                for i, cells in enumerate(records):
                    if len(cells) > width:
                        if keep:
                            yield _csv_block(header, records, keep, n)
                            keep = []
                        yield n + 1 + i, f"row has more cells than the {width}-column header"
                    elif cells:
                        keep.append(i)
                if keep:
                    yield _csv_block(header, records, keep, n)
            n += len(chunk)


def _arrow_block(text: str, chunk: list[str], header: list[str], delim: str, n: int) -> _Block | None:
    """Plain lines (:func:`_plain_text`: no quote, no NUL, valid UTF-8) split by pyarrow's CSV
    reader into Arrow string columns, when that is certain to give what the csv module gives:
    one record per line, each of the header's width. Otherwise None, and the chunk goes through
    the csv module as before (blank, short or long lines, a cell past its size limit, a
    one-column file where a blank line would read as an empty cell).

    Why: the csv module builds a list per row, which then has to be turned into columns, and
    _fast_events turns each column into an Arrow array anyway; pyarrow reads the text into
    those arrays directly (bench/ingest.py's 494,839 events: 0.4-0.6 s instead of 1.0-1.1 s
    for reading the lines into columns)."""
    import io

    import pyarrow as pa
    import pyarrow.csv as pcsv

    if len(header) < 2 or max(map(len, chunk)) >= csv.field_size_limit():
        return None
    try:
        table = pcsv.read_csv(
            io.BytesIO(text.encode("utf-8")),
            read_options=pcsv.ReadOptions(column_names=header, use_threads=False),
            parse_options=pcsv.ParseOptions(delimiter=delim, quote_char=False, double_quote=False,
                                            escape_char=False, newlines_in_values=False, ignore_empty_lines=False),
            convert_options=pcsv.ConvertOptions(column_types=dict.fromkeys(header, pa.string()),
                                                strings_can_be_null=False, quoted_strings_can_be_null=False),
        )
    except (pa.ArrowException, ValueError, UnicodeError):
        return None
    if table.num_rows != len(chunk) or table.num_columns != len(header):
        return None
    return _Block(range(n + 1, n + 1 + len(chunk)),
                  {h: table.column(i).combine_chunks() for i, h in enumerate(header)}, arrow=True)


def _csv_block(header: list[str], records: list[list[str]], keep: list[int], n: int) -> _Block:
    """The records ``keep`` as a block; a short row's missing cells are None (as _csv_records)."""
    cols: dict[str, list[Any]] = {h: [] for h in header}
    for i in keep:
        cells = records[i]
        for j, h in enumerate(header):
            cols[h].append(cells[j] if j < len(cells) else None)
    return _Block([n + 1 + i for i in keep], cols)


def read_event_blocks(path: Path, fmt: str) -> Iterator[_Item]:
    """What :func:`read_rows` yields, as blocks of rows (an unreadable part is ``(line, reason)``)."""
    if fmt == "csv":
        return _csv_blocks(path)
    return _grouped(read_rows(path, fmt))


def _as_arrow(values: list[Any]) -> tuple[Any, Any]:
    """(the column as an Arrow array, numpy bool per row: the value was left out). Values of
    mixed types (JSON: numbers and text in one column) keep those of the commonest type; the
    others are left out (null in the array), and so are values Arrow cannot hold (a string
    that is not UTF-8, an integer past 64 bits): their rows take the row-by-row path."""
    import numpy as np
    import pyarrow as pa

    if isinstance(values, pa.Array):  # a column _arrow_block read
        return values, np.zeros(len(values), dtype=bool)
    try:
        return pa.array(values), np.zeros(len(values), dtype=bool)
    except (pa.ArrowException, ValueError, TypeError, OverflowError):
        pass
    kinds = [type(v) for v in values]
    counts: dict[type, int] = {}
    for k in kinds:
        if k is not type(None):
            counts[k] = counts.get(k, 0) + 1
    keep = max(counts, key=counts.__getitem__) if counts else type(None)
    left_out = np.fromiter((k is not keep and k is not type(None) for k in kinds), bool, len(values))
    try:
        arr = pa.array([v if k is keep else None for v, k in zip(values, kinds, strict=True)])
    except (pa.ArrowException, ValueError, TypeError, OverflowError):
        return pa.nulls(len(values)), np.fromiter((v is not None for v in values), bool, len(values))
    return arr, left_out


def _fast_events(block: _Block, mapping: dict[str, str], unknown: set[str]) -> tuple[Any, list[tuple[Any, ...]]]:
    """(passed, rows): a numpy bool per row of ``block``, True when the columns show the row is a
    valid event; ``rows[i]`` is row i as an :class:`EventRows` tuple (meaningless where not passed)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(block)
    passed = np.ones(n, dtype=bool)
    fields: dict[str, Any] = {}

    def pylist(values: Any) -> list[Any]:
        return values.to_pylist() if block.arrow else values  # type: ignore[no-any-return]

    for col, values in block.columns.items():
        target = mapping.get(col, col)
        if target == "-":
            continue
        if target in _EVENT_FIELDS and target not in fields:
            fields[target] = values
            continue
        values = pylist(values)
        # a repeated field, an attribute (no such field for events) or an unknown column: the
        # rows with a value in it take the row-by-row path, which reports or drops the value
        blank = np.fromiter((v is None or (isinstance(v, str) and not v.strip()) for v in values), bool, n)
        if target in _EVENT_FIELDS or target.startswith("attributes."):
            passed &= blank
        elif not blank.all():
            unknown.add(col)

    def check(name: str, pattern: str, *, required: bool) -> tuple[Any, Any, list[Any]]:
        """(present, arrow array, values) of a string field; rows failing ``pattern`` fail."""
        nonlocal passed
        values = fields.get(name)
        if values is None:
            if required:
                passed[:] = False
            return np.zeros(n, dtype=bool), None, [None] * n
        arr, left_out = _as_arrow(values)
        passed &= ~left_out
        present = pc.fill_null(pc.not_equal(arr, ""), False).to_numpy(zero_copy_only=False) if \
            pa.types.is_string(arr.type) else pc.is_valid(arr).to_numpy(zero_copy_only=False)
        if pa.types.is_string(arr.type) and pattern:
            ok = pc.fill_null(pc.match_substring_regex(arr, pattern), False).to_numpy(zero_copy_only=False)
        elif pattern:
            ok = np.zeros(n, dtype=bool)  # a number or a list where text is expected
        else:
            ok = np.ones(n, dtype=bool)
        passed &= ok | (~present & (not required))
        return present, arr, pylist(values)

    # ids: check_id (not '.' or '..', no control characters, and no '/' for users), stripped,
    # user_id 1 to 256 characters
    def not_dots(arr: Any) -> Any:
        if arr is None or not pa.types.is_string(arr.type):
            return np.ones(n, dtype=bool)
        return ~pc.fill_null(pc.is_in(arr, value_set=pa.array([".", ".."])), False).to_numpy(zero_copy_only=False)

    _, u_arr, user = check("user_id", _PLAIN_NO_SLASH, required=True)
    passed &= not_dots(u_arr)
    if u_arr is not None and pa.types.is_string(u_arr.type):
        passed &= pc.fill_null(pc.less_equal(pc.binary_length(u_arr), 256), False).to_numpy(zero_copy_only=False)
    i_present, i_arr, item = check("item_id", _PLAIN, required=False)
    passed &= not_dots(i_arr)
    _, _, session = check("session_id", _PLAIN, required=False)
    _, _, query = check("query", _PLAIN, required=False)
    _, t_arr, types = check("type", "", required=True)
    if t_arr is not None and pa.types.is_string(t_arr.type):
        is_type = pc.fill_null(pc.is_in(t_arr, value_set=pa.array(_EVENT_TYPES)), False).to_numpy(
            zero_copy_only=False)
        search = pc.fill_null(pc.equal(t_arr, "search"), False).to_numpy(zero_copy_only=False)
        passed &= is_type & (i_present | search)  # item_id is required but for searches
    else:
        passed[:] = False

    # timestamp: whole seconds in [0, now + 1 day] (check_time); a minute's margin below the
    # upper bound, as the row-by-row path reads the clock later; no timestamp means "now": that
    # row takes the row-by-row path, as does an ISO 8601 time or a fraction of a second
    hi = time_window()[1] - 60
    ts = np.zeros(n)
    ts_values = fields.get("timestamp")
    ts_arr = None
    if ts_values is not None:
        ts_arr, left_out = _as_arrow(ts_values)
        passed &= ~left_out
    if ts_arr is None:
        passed[:] = False
    elif pa.types.is_string(ts_arr.type):
        ok = pc.fill_null(pc.match_substring_regex(ts_arr, _SECONDS), False)
        secs = pc.cast(pc.if_else(ok, ts_arr, "0"), pa.int64()).to_numpy(zero_copy_only=False).astype(float)
        passed &= ok.to_numpy(zero_copy_only=False) & (secs <= hi)
        ts = secs
    elif pa.types.is_integer(ts_arr.type) or pa.types.is_floating(ts_arr.type):
        x = pc.cast(ts_arr, pa.float64(), safe=False).to_numpy(zero_copy_only=False)  # nulls: nan
        with np.errstate(invalid="ignore"):
            passed &= (x >= 0) & (x <= hi) & (np.floor(x) == x)
        ts = np.where(passed, x, 0.0)
    else:
        passed[:] = False

    # quantity: an integer in [1, MAX_QUANTITY]; none means 1
    quantity: list[Any] = [1] * n
    q_values = fields.get("quantity")
    if q_values is not None:
        q_arr, left_out = _as_arrow(q_values)
        passed &= ~left_out
        if pa.types.is_string(q_arr.type):
            present = pc.fill_null(pc.not_equal(q_arr, ""), False)
            ok = pc.fill_null(pc.match_substring_regex(q_arr, _QUANTITY), False)
            q = pc.cast(pc.if_else(ok, q_arr, "1"), pa.int64()).to_numpy(zero_copy_only=False)
            okn = ok.to_numpy(zero_copy_only=False) & (q <= MAX_QUANTITY)
            passed &= okn | ~present.to_numpy(zero_copy_only=False)
            quantity = np.where(okn, q, 1).tolist()
        elif pa.types.is_integer(q_arr.type) or pa.types.is_floating(q_arr.type):
            # a whole float is that integer (pydantic's lax int; JSON mixing 2 and 2.0 reads as floats)
            q = pc.fill_null(pc.cast(q_arr, pa.float64(), safe=False), 1.0).to_numpy(zero_copy_only=False)
            with np.errstate(invalid="ignore"):
                okq = (q >= 1) & (q <= MAX_QUANTITY) & (np.floor(q) == q)
            passed &= okq
            quantity = np.where(okq, q, 1).astype(np.int64).tolist()
        else:
            passed &= ~pc.is_valid(q_arr).to_numpy(zero_copy_only=False)

    # price: finite, in [0, MAX_PRICE]; none means None. A decimal string is read by float(),
    # which rounds as pydantic does (correctly rounded)
    price: list[Any] = [None] * n
    p_values = fields.get("price")
    if p_values is not None:
        p_arr, left_out = _as_arrow(p_values)
        passed &= ~left_out
        if pa.types.is_string(p_arr.type):
            present = pc.fill_null(pc.not_equal(p_arr, ""), False).to_numpy(zero_copy_only=False)
            ok = pc.fill_null(pc.match_substring_regex(p_arr, _PRICE), False).to_numpy(zero_copy_only=False)
            price = [float(v) if k else None for v, k in zip(pylist(p_values), ok.tolist(), strict=True)]
            pv = np.array([v if v is not None else 0.0 for v in price])
            passed &= (ok & (pv <= MAX_PRICE)) | ~present
        elif pa.types.is_integer(p_arr.type) or pa.types.is_floating(p_arr.type):
            x = pc.cast(p_arr, pa.float64(), safe=False).to_numpy(zero_copy_only=False)
            valid = pc.is_valid(p_arr).to_numpy(zero_copy_only=False)
            with np.errstate(invalid="ignore"):
                passed &= ~valid | ((x >= 0) & (x <= MAX_PRICE))
            price = [float(v) if k else None for v, k in zip(x.tolist(), valid.tolist(), strict=True)]
        else:
            passed &= ~pc.is_valid(p_arr).to_numpy(zero_copy_only=False)

    def opt(name: str, values: list[Any]) -> list[Any]:
        if name not in fields:
            return values  # no such column: None throughout
        return [v or None for v in values]  # "" (a blank cell) -> None

    rows = list(zip(user, opt("item_id", item), types, ts.tolist(), opt("session_id", session),
                    opt("query", query), quantity, price, strict=True))
    return passed, rows
