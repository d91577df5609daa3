"""A server worker's ONNX query encoder stays within its share of the cores:
`shopsense serve --workers N` sets OMP_NUM_THREADS per worker, which ONNX Runtime's own
thread pool would otherwise ignore (2 workers x 2 threads on 2 cores served searches
slower than one worker), and its threads do not spin-wait when `shopsense serve` says so
(concurrent requests' sessions spinning took each other's cores)."""

from __future__ import annotations

import os

import pytest

from shopsense.text import SPIN_ENV, ort_threads, session_options


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


def test_serving_sessions_do_not_spin(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("onnxruntime")
    monkeypatch.delenv(SPIN_ENV, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    so = session_options()
    assert so.intra_op_num_threads == 1 and so.inter_op_num_threads == 1
    with pytest.raises(RuntimeError):  # not set: ORT's default, spinning
        so.get_session_config_entry("session.intra_op.allow_spinning")
    monkeypatch.setenv(SPIN_ENV, "0")
    assert session_options().get_session_config_entry("session.intra_op.allow_spinning") == "0"
