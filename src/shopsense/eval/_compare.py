"""Offline A/B comparison of two evaluation result files with paired bootstrap
confidence intervals over queries or users.

A result file is ``{"dataset": {"system": {"metric": value}}}``; files written by
``shopsense eval`` also hold per-unit scores under ``"_per_unit"`` as
``{"dataset": {"system": {"metric": {unit_id: score}}}}``, which is what the
bootstrap resamples. Units present in only one file are left out (and counted).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shopsense.errors import ValidationError


@dataclass(frozen=True)
class MetricDiff:
    """One metric of one system pair on one dataset: A, B, B - A and its bootstrap interval
    over ``n_units`` paired queries or users."""

    dataset: str
    system_a: str
    system_b: str
    metric: str
    a: float
    b: float
    diff: float  # b - a on the shared units
    ci_low: float
    ci_high: float
    n_units: int

    @property
    def significant(self) -> bool:
        return self.ci_low > 0 or self.ci_high < 0


def load_result(path: str | Path) -> dict[str, Any]:
    """A result JSON written by ``shopsense eval`` or ``bench/``; a missing or malformed file
    raises an error naming it."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValidationError(f"No such result file: {str(path)!r}.", field="path") from None
    except json.JSONDecodeError as exc:
        raise ValidationError(f"{path}: line {exc.lineno}, column {exc.colno}: {exc.msg}", field="path") from None
    if not isinstance(data, dict):
        raise ValidationError(f"{path}: expected an object of datasets.", field="path")
    return data


def bootstrap_diff(a: np.ndarray, b: np.ndarray, n_boot: int = 2000, seed: int = 0,
                   alpha: float = 0.05) -> tuple[float, float, float]:
    """Mean of ``b - a`` over paired units and its percentile bootstrap interval."""
    d = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    if len(d) == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    for start in range(0, n_boot, 200):  # chunks keep memory bounded for many units
        m = min(200, n_boot - start)
        idx = rng.integers(0, len(d), size=(m, len(d)))
        means[start : start + m] = d[idx].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(d.mean()), float(lo), float(hi)


def compare(a: dict[str, Any], b: dict[str, Any], system_a: str | None = None,
            system_b: str | None = None, n_boot: int = 2000, seed: int = 0) -> list[MetricDiff]:
    """Per-metric differences (B minus A) for every dataset, system and metric both files share.

    With ``system_a``/``system_b`` the named systems are compared across the two
    files (or within one file when both are the same file).
    """
    pa, pb = a.get("_per_unit", {}), b.get("_per_unit", {})
    out: list[MetricDiff] = []
    for ds in sorted(k for k in a if not k.startswith("_") and k in b):
        sys_pairs = (
            [(system_a, system_b)] if system_a and system_b
            else [(s, s) for s in sorted(a[ds]) if s in b[ds]]
        )
        for sa, sb in sys_pairs:
            if sa not in a[ds] or sb not in b[ds]:
                raise ValidationError(
                    f"System {sa!r} or {sb!r} is not in dataset {ds!r}; A has {sorted(a[ds])}, "
                    f"B has {sorted(b[ds])}.", field="system",
                )
            for metric in sorted(a[ds][sa]):
                va, vb = a[ds][sa][metric], b[ds][sb].get(metric)
                if not isinstance(va, (int, float)) or not isinstance(vb, (int, float)):
                    continue
                ua = pa.get(ds, {}).get(sa, {}).get(metric)
                ub = pb.get(ds, {}).get(sb, {}).get(metric)
                if ua and ub:
                    shared = sorted(set(ua) & set(ub))
                    diff, lo, hi = bootstrap_diff(
                        np.array([ua[u] for u in shared]), np.array([ub[u] for u in shared]),
                        n_boot=n_boot, seed=seed,
                    )
                    n = len(shared)
                else:  # no per-unit scores saved: a difference without an interval
                    diff, lo, hi, n = float(vb) - float(va), float("nan"), float("nan"), 0
                out.append(MetricDiff(ds, sa, sb, metric, float(va), float(vb), diff, lo, hi, n))
    return out
