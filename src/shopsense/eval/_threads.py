"""One CPU-thread bound for a whole evaluation run (BLAS/LAPACK and OpenMP)."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def bounded_threads(threads: int) -> Iterator[None]:
    """``threadpool_limits(threads)`` after loading every native library a run uses.

    threadpoolctl limits only the libraries already loaded when it is entered; scipy's
    LAPACK (EASE's Cholesky) is otherwise first loaded inside the block and runs with
    its default threads, and multi-threaded LAPACK rounds differently from one thread
    (enough to flip near-ties in small evaluations).
    """
    from threadpoolctl import threadpool_limits

    for mod in ("scipy.linalg", "scipy.sparse.linalg", "lightgbm", "implicit"):
        try:
            importlib.import_module(mod)
        except ImportError:  # optional extras: what is not installed is not used
            pass
    with threadpool_limits(threads):
        yield
