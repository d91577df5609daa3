"""A server worker's ONNX query encoder stays within its share of the cores:
`shopsense serve --workers N` sets OMP_NUM_THREADS per worker, which ONNX Runtime's own
thread pool would otherwise ignore (2 workers x 2 threads on 2 cores served searches
slower than one worker)."""

from __future__ import annotations

import os

from shopsense.text import ort_threads


def test_worker_share_caps_onnx_threads(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert ort_threads() == 1
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert ort_threads() == 2  # never more than 2 on a shared CPU
    monkeypatch.setenv("OMP_NUM_THREADS", "not-a-number")
    assert ort_threads() == 2
    assert ort_threads(4) == 4  # an explicit setting wins
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert ort_threads() == 1
