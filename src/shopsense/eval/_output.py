"""The end of every ``shopsense eval`` run: a Rich table with the peer ratio, the
JSON result document and a PNG (see :mod:`shopsense.eval._report`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shopsense.eval._report import bar_chart, print_table, write_json

__all__ = ["save_report"]


def save_report(doc: dict[str, Any], out: str | Path, *, title: str, peer: str | None, chart_metric: str,
                table_metrics: Sequence[str] | None = None) -> tuple[Path, Path | None]:
    """Print the table (``table_metrics`` only, when given), write ``out`` (JSON) and
    ``out`` with a ``.png`` suffix; returns both paths (the PNG is ``None`` without matplotlib)."""
    results = {d: s for d, s in doc.items() if not d.startswith("_")}
    shown = results if table_metrics is None else {
        d: {s: {m: v for m, v in r.items() if m in table_metrics} for s, r in sy.items()} for d, sy in results.items()}
    peers = {s for sy in results.values() for s in sy}
    print_table(shown, title=title, peer=peer if peer in peers else None)
    body = {k: v for k, v in doc.items() if k != "_meta"}
    path = write_json(body, out, doc.get("_meta"))
    png = bar_chart(results, chart_metric, Path(out).with_suffix(".png"), title=f"{title}: {chart_metric}")
    return path, png
