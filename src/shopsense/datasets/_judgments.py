"""Graded relevance judgments: the one :class:`Judgments` class and the one reader of a
judgments file, used by ``shopsense eval search``, the benchmarks and the Home Depot loader.

A judgments file is a CSV (or TSV) of (query, product id, graded relevance) rows. The
reader is strict about structure and counts what it skips: malformed rows (wrong number
of cells, empty query or id, a relevance that is not a finite number) raise
:class:`~shopsense.errors.ValidationError` naming the file, line and column; blank lines
are skipped and counted. :meth:`Judgments.graded` joins the judgments to a catalogue
(product id -> row), skipping and counting unknown products and queries left empty.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from shopsense.errors import ValidationError

__all__ = ["JUDGMENT_FIELDS", "JudgedQueries", "Judgments", "load_judgments", "read_judgments"]

#: judgment fields and the column names accepted for each without a mapping (in order)
JUDGMENT_FIELDS: dict[str, tuple[str, ...]] = {
    "query": ("query", "search_term"),
    "product_id": ("product_id", "product_uid", "item_id"),
    "relevance": ("relevance", "median_relevance", "grade", "label"),
}


@dataclass(frozen=True)
class JudgedQueries:
    """Judgments joined to a catalogue: per query, gains keyed by catalogue row;
    ``report`` says what was read, joined and skipped."""

    queries: list[str]
    gains: list[dict[int, float]]
    report: dict[str, Any]


@dataclass(frozen=True)
class Judgments:
    """Graded relevance judgments: one row per (query, product) pair as read.

    ``query`` and ``product_id`` are object arrays of strings, ``relevance`` float64
    (the dataset's own scale, see ``scale``); ``line`` is each row's line in its file
    (or ``None``) and ``report`` what the reader saw (file, columns, rows, blank lines).
    """

    query: np.ndarray
    product_id: np.ndarray
    relevance: np.ndarray
    scale: tuple[float, float]
    line: np.ndarray | None = None
    report: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.query)

    def queries(self) -> list[str]:
        """Distinct queries in first-seen order."""
        return list(dict.fromkeys(self.query.tolist()))

    def by_query(self) -> dict[str, dict[str, float]]:
        """``{query: {product_id: relevance}}`` (a later duplicate pair keeps its mean)."""
        out: dict[str, dict[str, list[float]]] = {}
        for q, p, r in zip(self.query.tolist(), self.product_id.tolist(), self.relevance.tolist()):
            out.setdefault(q, {}).setdefault(p, []).append(r)
        return {q: {p: float(np.mean(v)) for p, v in d.items()} for q, d in out.items()}

    def subset(self, rows: np.ndarray) -> Judgments:
        """The judgments of some rows (a boolean mask or positions), same scale and report."""
        return Judgments(self.query[rows], self.product_id[rows], self.relevance[rows], self.scale,
                         None if self.line is None else self.line[rows], dict(self.report))

    def graded(self, index: Mapping[str, int], lowest: float | None = None,
               duplicates: Literal["mean", "last"] = "mean") -> JudgedQueries:
        """Gains per query keyed by catalogue row (``index``: product id -> row).

        Gain = relevance minus ``lowest`` (default: the lowest grade of these judgments),
        never below 0. A (query, product) pair judged twice gets the mean of its grades
        (``duplicates="last"``: the later grade, as the published benchmark figures were
        computed). Rows whose product is not in ``index`` and queries left with no known
        product are skipped and counted in the report; if no query is left, raises
        :class:`~shopsense.errors.ValidationError`.
        """
        name = Path(self.report["file"]).name if self.report.get("file") else "judgments"
        grades: dict[str, dict[str, list[float]]] = {}
        first_line: dict[tuple[str, str], int] = {}
        lines = self.line.tolist() if self.line is not None else range(1, len(self.query) + 1)
        for q, pid, rel, line in zip(self.query.tolist(), self.product_id.tolist(), self.relevance.tolist(), lines):
            grades.setdefault(q, {}).setdefault(pid, []).append(rel)
            first_line.setdefault((q, pid), line)
        where = "line" if self.line is not None else "row"
        lowest_grade = min(min(g) for per in grades.values() for g in per.values()) if grades else 0.0
        highest_grade = max(max(g) for per in grades.values() for g in per.values()) if grades else 0.0
        low = lowest_grade if lowest is None else float(lowest)
        queries: list[str] = []
        gains: list[dict[int, float]] = []
        unknown_rows = dup_pairs = skipped_queries = no_relevant = 0
        unknown_examples: list[str] = []
        for q, per in grades.items():
            g: dict[int, float] = {}
            for pid, rels in per.items():
                dup_pairs += len(rels) - 1
                r = index.get(pid)
                if r is None:
                    unknown_rows += len(rels)
                    if len(unknown_examples) < 5:
                        unknown_examples.append(f"{where} {first_line[(q, pid)]}: {pid!r}")
                    continue
                rel = float(np.mean(rels)) if duplicates == "mean" else rels[-1]
                g[int(r)] = max(0.0, rel - low)
            if not g:
                skipped_queries += 1
                continue
            no_relevant += max(g.values()) <= 0
            queries.append(q)
            gains.append(g)
        if not queries:
            raise ValidationError(f"{name}: none of the {len(grades):,} queries judges a product of the catalogue "
                                  f"(first unknown ids: {', '.join(unknown_examples)}); check the product id "
                                  "column and the products file.", field="judgments")
        report = {
            **self.report, f"duplicate_pairs_{'averaged' if duplicates == 'mean' else 'last_kept'}": dup_pairs,
            "rows_unknown_product_skipped": unknown_rows, "unknown_product_examples": unknown_examples,
            "queries": len(queries), "queries_skipped_no_known_product": skipped_queries,
            "queries_without_relevant_product": no_relevant, "lowest_grade": lowest_grade,
            "highest_grade": highest_grade, "gain": f"relevance - {low:g}",
        }
        return JudgedQueries(queries, gains, report)


def load_judgments(path: str | Path, mapping: Mapping[str, str] | None = None, *, limit: int | None = None,
                   scale: tuple[float, float] | None = None) -> Judgments:
    """Read a CSV (or TSV) of (query, product id, graded relevance) rows.

    Columns are found by ``mapping`` (``{column: field}`` with fields ``query``,
    ``product_id``, ``relevance``) or else by the names in :data:`JUDGMENT_FIELDS`.
    Queries and ids are stripped. Malformed rows (wrong number of cells, empty query or
    id, a relevance that is not a finite number) raise
    :class:`~shopsense.errors.ValidationError` naming the file, line and column; blank
    lines are skipped and counted in ``report``. ``limit`` stops after that many rows;
    ``scale`` is the dataset's (lowest, highest) grade (default: those of the file).
    """
    path = Path(path)
    if not path.exists():
        raise ValidationError(f"No such judgments file: {str(path)!r}.", field="judgments")
    mapping = dict(mapping or {})
    for col, fld in mapping.items():
        if fld not in JUDGMENT_FIELDS:
            raise ValidationError(f"The judgment mapping {col}={fld} names no judgment field; allowed: "
                                  f"{', '.join(JUDGMENT_FIELDS)}.", field="judgment_map")
    name = path.name
    qs: list[str] = []
    ids: list[str] = []
    rels: list[float] = []
    lines: list[int] = []
    blank = 0
    with path.open(newline="", encoding="utf-8-sig") as fh:
        sample = fh.read(4096)
        fh.seek(0)
        delim = "\t" if sample.count("\t") > sample.count(",") else ","
        reader = csv.reader(fh, delimiter=delim)
        header: list[str] | None = None
        cols: dict[str, int] = {}
        try:
            for row in reader:
                if limit is not None and len(qs) >= limit:
                    break
                line = reader.line_num
                if not any(c.strip() for c in row):
                    blank += header is not None
                    continue
                if header is None:
                    header = [c.strip() for c in row]
                    cols = _judgment_columns(name, header, mapping)
                    continue
                if len(row) != len(header):
                    raise ValidationError(f"{name}, line {line}: {len(row)} cells but the header has "
                                          f"{len(header)}.", field="judgments")
                q = row[cols["query"]].strip()  # the dev/test split hashes this string
                pid = row[cols["product_id"]].strip()
                raw = row[cols["relevance"]].strip()
                for fld, v in (("query", q), ("product_id", pid), ("relevance", raw)):
                    if not v:
                        raise ValidationError(f"{name}, line {line}, column {header[cols[fld]]!r}: empty {fld}.",
                                              field=fld)
                try:
                    rel = float(raw)
                except ValueError:
                    rel = math.nan
                if not math.isfinite(rel):
                    raise ValidationError(f"{name}, line {line}, column {header[cols['relevance']]!r}: "
                                          f"{raw!r} is not a number.", field="relevance")
                qs.append(q)
                ids.append(pid)
                rels.append(rel)
                lines.append(line)
        except csv.Error as exc:
            raise ValidationError(f"{name}, line {reader.line_num}: unreadable CSV ({exc}).",
                                  field="judgments") from None
    if header is None:
        raise ValidationError(f"{name}: the judgments file is empty.", field="judgments")
    if not qs:
        raise ValidationError(f"{name}: no judgment rows after the header.", field="judgments")
    relevance = np.array(rels, dtype=np.float64)
    report = {"file": str(path), "columns": {f: header[i] for f, i in cols.items()}, "rows": len(qs),
              "blank_lines_skipped": blank}
    return Judgments(np.array(qs, dtype=object), np.array(ids, dtype=object), relevance,
                     scale if scale is not None else (float(relevance.min()), float(relevance.max())),
                     np.array(lines, dtype=np.int64), report)


def read_judgments(path: str | Path, index: Mapping[str, int], mapping: Mapping[str, str] | None = None) -> JudgedQueries:
    """A judgments file joined to a catalogue: :func:`load_judgments` then
    :meth:`Judgments.graded` (gains = relevance minus the lowest grade in the file; a
    pair judged twice gets the mean; unknown products and queries left without a known
    product are skipped and counted in ``report``)."""
    return load_judgments(path, mapping).graded(index)


def _judgment_columns(name: str, header: list[str], mapping: Mapping[str, str]) -> dict[str, int]:
    cols: dict[str, int] = {}
    for col, fld in mapping.items():
        if col not in header:
            raise ValidationError(f"{name}, line 1: the judgment mapping {col}={fld} names no column; "
                                  f"columns: {header}.", field="judgment_map")
        cols[fld] = header.index(col)
    for fld, aliases in JUDGMENT_FIELDS.items():
        if fld in cols:
            continue
        col = next((c for c in aliases if c in header), None)
        if col is None:
            raise ValidationError(
                f"{name}, line 1: no {fld} column (looked for {', '.join(aliases)}); columns: {header}. "
                f"Name it with --judgment-map COLUMN={fld}.", field=fld)
        cols[fld] = header.index(col)
    return cols
