"""Progress display for the long phases of an evaluation (fitting, ranking every user).

A run takes a :class:`Phases`; the quiet default prints nothing, so the protocol
functions stay usable from tests and notebooks.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any, Self

__all__ = ["Phases", "RichPhases"]


class Phases:
    """No display: phases run silently and messages go to ``echo`` (default: dropped)."""

    def __init__(self, echo: Callable[[str], None] | None = None) -> None:
        self._echo = echo

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    @contextlib.contextmanager
    def phase(self, description: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
        """Context of one phase; the yielded ``update(done)`` reports progress."""
        yield lambda done: None

    def echo(self, message: str) -> None:
        if self._echo is not None:
            self._echo(message)


class RichPhases(Phases):
    """Rich progress bars (a bar when the total is known, a pulse otherwise) and
    messages printed above them."""

    def __init__(self, console: Any = None, transient: bool = False) -> None:
        super().__init__()
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self.console = console or Console()
        self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                  MofNCompleteColumn(), TimeElapsedColumn(), console=self.console,
                                  transient=transient)

    def __enter__(self) -> Self:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    @contextlib.contextmanager
    def phase(self, description: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
        task = self._progress.add_task(description, total=total)
        t0 = time.perf_counter()

        def update(done: int) -> None:
            self._progress.update(task, completed=done)

        try:
            yield update
        finally:
            self._progress.update(task, total=total or 1, completed=total or 1,
                                  description=f"{description} ({time.perf_counter() - t0:.1f}s)")

    def echo(self, message: str) -> None:
        self._progress.console.print(message, highlight=False)
