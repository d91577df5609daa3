"""Reporting shared by ``bench/`` and ``shopsense eval``: a Rich table, the JSON
file in the ``{"dataset": {"system": {"metric": value}}}`` form, and a PNG."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

Results = dict[str, dict[str, dict[str, float]]]


def machine() -> str:
    return f"{platform.machine()} {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def meta(protocol: str, **extra: Any) -> dict[str, Any]:
    """The ``_meta`` block of a result: the command line, the machine, the date, the protocol
    and ``extra``."""
    return {"command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), "machine": machine(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "protocol": protocol, **extra}


def print_table(results: Results, title: str = "", peer: str | None = None) -> None:
    """One table per dataset; with ``peer``, each metric also shows its ratio to the peer."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for ds, systems in results.items():
        if ds.startswith("_"):
            continue
        metrics = list(dict.fromkeys(m for s in systems.values() for m in s))
        table = Table(title=f"{title} {ds}".strip())
        table.add_column("system")
        for m in metrics:
            table.add_column(m, justify="right")
        base = systems.get(peer or "", {})
        for name, vals in systems.items():
            cells = []
            for m in metrics:
                v = vals.get(m)
                if not isinstance(v, (int, float)):
                    cells.append("" if v is None else str(v))
                    continue
                cell = f"{v:.4f}" if abs(v) < 100 else f"{v:,.0f}"
                b = base.get(m)
                if peer and name != peer and isinstance(b, (int, float)) and b:
                    cell += f" ({v / b:.2f}x)"
                cells.append(cell)
            table.add_row(name, *cells)
        console.print(table)


def write_json(results: dict[str, Any], path: str | Path, meta_: dict[str, Any] | None = None) -> Path:
    """Write ``results`` (plus ``_meta`` when given) as JSON to ``path``; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = dict(results)
    if meta_ is not None:
        out["_meta"] = meta_
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=2, sort_keys=False, default=float))
    tmp.replace(path)
    return path


def bar_chart(results: Results, metric: str, path: str | Path, title: str = "") -> Path | None:
    """Grouped bars of one metric: datasets on the x axis, one bar per system."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # plotting is an extra; the JSON is the record
        return None
    datasets = [d for d in results if not d.startswith("_")]
    systems = list(dict.fromkeys(s for d in datasets for s in results[d]))
    # bars get thinner, not the page wider: 20 systems on 2 datasets drew a 4,356 px wide chart
    bars = len(systems) * len(datasets)
    fig, ax = plt.subplots(figsize=(min(12.0, max(6.0, 2.0 + 0.3 * bars)), 4.5))
    width = 0.8 / max(1, len(systems))
    colours = plt.get_cmap("tab10" if len(systems) <= 10 else "tab20")  # no two systems share a colour
    for j, s in enumerate(systems):
        xs = [i + j * width for i in range(len(datasets))]
        ys = [float(results[d].get(s, {}).get(metric, 0.0) or 0.0) for d in datasets]
        ax.bar(xs, ys, width, label=s, color=colours(j % colours.N))
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(datasets))], datasets)
    ax.set_ylabel(metric)
    ax.set_title(title or metric)
    ax.legend(fontsize=7, ncol=2 if len(systems) > 8 else 1, loc="upper left", bbox_to_anchor=(1.01, 1.0),
              borderaxespad=0.0)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
