"""What every lesson script shares: a throwaway engine home, headings, and the command line.

Each lesson is ``python docs/lessons/NN_name.py [--size N] [--check]``: ``--size`` sets the
slice of the public dataset (the default runs in a few minutes on 2 cores), ``--check`` runs
the lesson's exercise check after the lesson. The datasets are read from
``../shared/datasets`` beside the repository (or ``$SHOPSENSE_DATASETS``).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def new_home(lesson: str) -> Path:
    """A fresh, empty folder for an engine home (left in the temp dir so you can look inside)."""
    return Path(tempfile.mkdtemp(prefix=f"shopsense-{lesson}-"))


def heading(text: str) -> None:
    """Print a section heading: the lesson page refers to these by name."""
    print(f"\n== {text} ==", flush=True)


def table(rows: list[dict[str, Any]], floats: int = 4) -> None:
    """Print rows of dicts as an aligned table."""
    if not rows:
        return
    cols = list(rows[0])
    cells = [[f"{r[c]:.{floats}f}" if isinstance(r[c], float) else str(r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)))


def cli(main: Callable[..., Any], exercise_check: Callable[..., None], size_help: str, default: int) -> None:
    """``--size N`` and ``--check``, then run the lesson (and its check)."""
    parser = argparse.ArgumentParser(description=(main.__module__ or "lesson"))
    parser.add_argument("--size", type=int, default=default, help=size_help)
    parser.add_argument("--check", action="store_true", help="run the exercise check after the lesson")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)  # a script may configure logging; the package never does
    result = main(args.size)
    if args.check:
        exercise_check(result)
