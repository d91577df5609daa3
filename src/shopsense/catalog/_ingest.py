"""Streaming ingestion of products and events from CSV, JSONL and Parquet.

Rows are read in batches (bounded memory), renamed by the shop's column mapping,
validated with the pydantic schema and written batch by batch, each batch in one
transaction. A bad row never stops good rows: it is written to a rejects file
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
import json
import logging
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Self

import pydantic

from shopsense.catalog._models import Event, Product
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
) -> IngestReport:
    """Stream ``path`` into ``write`` (a store method) in validated batches."""
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
        refused = 0
        try:
            new = write(batch)
        except _ROW_ERRORS:
            # one row the store cannot hold must not take the batch with it: retry row by row
            new = 0
            for obj, ln in zip(batch, lines, strict=True):
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
    try:
        for line, row in read_rows(path, fmt):
            if isinstance(row, str):
                n = getattr(row, "rows", 1)
                report.read += n
                reject(Reject(line, getattr(row, "field", "(row)"), str(row), getattr(row, "value", "")), n)
                continue
            report.read += 1
            try:
                mapped = _map_row(row, mapping, kind, unknown)
                obj = model.model_validate(mapped)
            except pydantic.ValidationError as exc:
                for r in _rejects_from(exc, line, mapped)[:1]:
                    reject(r)
                continue
            except Exception as exc:  # noqa: BLE001 - whatever a row holds, it never stops the file
                reject(Reject(line, "(row)", f"unexpected {type(exc).__name__}: {exc}"))
                continue
            if kind == "products":
                first = seen_ids.get(obj.id)
                if first is not None:
                    reject(Reject(line, "id", f"duplicate id {obj.id!r} (first seen at line {first})", obj.id))
                    continue
                seen_ids[obj.id] = line
            batch.append(obj)
            lines.append(line)
            if len(batch) >= batch_size:
                flush()
                if prog is not None:
                    prog.update(task, completed=report.read)
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
