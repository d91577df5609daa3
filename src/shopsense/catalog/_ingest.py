"""Streaming ingestion of products and events from CSV, JSONL and Parquet.

Rows are read in batches (bounded memory), renamed by the shop's column mapping,
validated with the pydantic schema and written batch by batch, each batch in one
transaction. A bad row never stops good rows: it is written to a rejects file
(JSONL: line, field, value, reason) and counted in the report.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

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


def read_rows(path: Path, fmt: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """Yield (line number, row). A row that cannot even be parsed is yielded as an
    error string so it is reported, not dropped."""
    if fmt == "csv":
        with path.open(newline="", encoding="utf-8-sig") as fh:
            sample = fh.read(4096)
            fh.seek(0)
            delim = "\t" if sample.count("\t") > sample.count(",") else ","
            reader = csv.DictReader(fh, delimiter=delim)
            header = reader.fieldnames or []
            while True:
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    yield reader.line_num, f"unreadable CSV row: {exc}"
                    continue
                if None in row:  # more cells than the header
                    yield reader.line_num, f"row has more cells than the {len(header)}-column header"
                    continue
                yield reader.line_num, row
    elif fmt == "jsonl":
        with path.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield n, f"invalid JSON: {exc.msg}"
                    continue
                if not isinstance(obj, dict):
                    yield n, "a JSONL line must be an object"
                    continue
                yield n, obj
    else:
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        n = 0
        for batch in pf.iter_batches(batch_size=5000):
            for row in batch.to_pylist():
                n += 1
                yield n, row


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
        base = out.get("attributes") or {}
        if isinstance(base, str):
            base = json.loads(base) if base.strip() else {}
        out["attributes"] = {**attrs, **base}
    return out


def _rejects_from(exc: pydantic.ValidationError, line: int, raw: dict[str, Any]) -> list[Reject]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "(row)"
        value = raw.get(str(err["loc"][0])) if err["loc"] else ""
        out.append(Reject(line, loc, err["msg"], "" if value is None else str(value)[:200]))
    return out


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

    def reject(r: Reject) -> None:
        nonlocal rfile
        report.rejected += 1
        if len(report.rejects) < 100:
            report.rejects.append(r)
        if rpath is not None:
            if rfile is None:
                rpath.parent.mkdir(parents=True, exist_ok=True)
                rfile = rpath.open("w", encoding="utf-8")
                report.rejects_path = str(rpath)
            rfile.write(json.dumps(r.__dict__) + "\n")

    def flush() -> None:
        if batch:
            new = write(batch)
            report.stored += new
            report.duplicates += len(batch) - new
            batch.clear()

    prog = None
    if progress:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        prog = Progress(TextColumn(f"ingest {kind}"), BarColumn(), TextColumn("{task.completed:,} rows"),
                        TimeRemainingColumn())
        prog.start()
        task = prog.add_task(kind, total=None)
    try:
        for line, row in read_rows(path, fmt):
            report.read += 1
            if isinstance(row, str):
                reject(Reject(line, "(row)", row))
                continue
            mapped = _map_row(row, mapping, kind, unknown)
            try:
                obj = model.model_validate(mapped)
            except pydantic.ValidationError as exc:
                for r in _rejects_from(exc, line, mapped)[:1]:
                    reject(r)
                continue
            if kind == "products":
                first = seen_ids.get(obj.id)
                if first is not None:
                    reject(Reject(line, "id", f"duplicate id {obj.id!r} (first seen at line {first})", obj.id))
                    continue
                seen_ids[obj.id] = line
            batch.append(obj)
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
