"""Statistics of experiments as plain functions: intervals (bootstrap, delta method),
CUPED, the sample-ratio-mismatch check, and noise for differentially private exports.

Each function takes arrays and returns numbers or a small frozen record; none reads
the store. (GrowthBook's stats engine is the model: an interval on every metric, an
SRM check before any result is read.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from shopsense.errors import check_param

__all__ = [
    "SRM_P_THRESHOLD",
    "Interval",
    "SRMResult",
    "bootstrap_diff",
    "cuped",
    "delta_ratio_diff",
    "mean_interval",
    "noisy_counts",
    "srm_check",
]

#: p-value under which a sample ratio is called a mismatch (GrowthBook and Optimizely use 0.001)
SRM_P_THRESHOLD = 0.001


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided ``level`` interval."""

    estimate: float
    low: float
    high: float
    level: float = 0.95

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def as_dict(self) -> dict[str, float]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high, "level": self.level}


def _z(level: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(0.5 + level / 2))


def _arr(x: Any, name: str, owner: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).ravel()
    check_param(name, f"array of {a.size} values", a.size > 0 and bool(np.isfinite(a).all()),
                "a non-empty array of finite numbers", owner)
    return a


def mean_interval(x: Sequence[float] | np.ndarray, level: float = 0.95) -> Interval:
    """The mean of ``x`` with a normal-approximation interval."""
    a = _arr(x, "x", "mean_interval")
    m = float(a.mean())
    se = float(a.std(ddof=1) / math.sqrt(a.size)) if a.size > 1 else 0.0
    z = _z(level)
    return Interval(m, m - z * se, m + z * se, level)


def bootstrap_diff(control: Sequence[float] | np.ndarray, treatment: Sequence[float] | np.ndarray,
                   n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> Interval:
    """``mean(treatment) - mean(control)`` with a percentile bootstrap interval: each arm
    resampled with replacement ``n_boot`` times (units are users, so a user's events
    stay together).

    Example
    -------
    >>> bootstrap_diff([0, 1, 0, 0], [1, 1, 0, 1], n_boot=200).estimate
    0.5
    """
    a = _arr(control, "control", "bootstrap_diff")
    b = _arr(treatment, "treatment", "bootstrap_diff")
    check_param("n_boot", n_boot, isinstance(n_boot, int) and n_boot >= 100, "an int >= 100", "bootstrap_diff")
    rng = np.random.default_rng(seed)
    # resampling the mean through multinomial counts: O(n_boot * n) without index arrays
    ma = rng.multinomial(a.size, np.full(a.size, 1 / a.size), size=n_boot) @ a / a.size
    mb = rng.multinomial(b.size, np.full(b.size, 1 / b.size), size=n_boot) @ b / b.size
    d = mb - ma
    lo, hi = np.quantile(d, [0.5 - level / 2, 0.5 + level / 2])
    return Interval(float(b.mean() - a.mean()), float(lo), float(hi), level)


def delta_ratio_diff(num_c: Sequence[float] | np.ndarray, den_c: Sequence[float] | np.ndarray,
                     num_t: Sequence[float] | np.ndarray, den_t: Sequence[float] | np.ndarray,
                     level: float = 0.95) -> Interval:
    """Difference of two ratio metrics (e.g. clicks / impressions, summed over users)
    with the delta-method variance: the user is the unit, so impressions of one user
    are not treated as independent (Deng et al., 2018)."""

    def ratio(num: Any, den: Any, name: str) -> tuple[float, float]:
        x = _arr(num, f"num_{name}", "delta_ratio_diff")
        y = _arr(den, f"den_{name}", "delta_ratio_diff")
        check_param(f"den_{name}", "its sum", x.size == y.size and y.sum() > 0,
                    "as many values as the numerator, with a positive sum", "delta_ratio_diff")
        n = x.size
        mx, my = x.mean(), y.mean()
        r = mx / my
        if n < 2:
            return float(r), 0.0
        vx, vy = x.var(ddof=1), y.var(ddof=1)
        cxy = np.cov(x, y, ddof=1)[0, 1]
        var = (vx / my**2 - 2 * mx * cxy / my**3 + mx**2 * vy / my**4) / n
        return float(r), float(max(var, 0.0))

    rc, vc = ratio(num_c, den_c, "c")
    rt, vt = ratio(num_t, den_t, "t")
    z = _z(level)
    se = math.sqrt(vc + vt)
    return Interval(rt - rc, rt - rc - z * se, rt - rc + z * se, level)


def cuped(y: Sequence[float] | np.ndarray, x: Sequence[float] | np.ndarray) -> tuple[np.ndarray, float, float]:
    """CUPED (Deng, Xu, Kohavi, Walker 2013): ``y - theta * (x - mean(x))`` with
    ``theta = cov(x, y) / var(x)``, where ``x`` is the same unit's metric in a
    pre-period (unaffected by the treatment). Returns (adjusted y, theta, variance
    reduction = 1 - var(adjusted) / var(y)); the mean is unchanged.

    Pool both arms to estimate ``theta`` (one theta for all), then compare the adjusted
    means as usual.
    """
    yy = _arr(y, "y", "cuped")
    xx = _arr(x, "x", "cuped")
    check_param("x", f"{xx.size} values", xx.size == yy.size, f"as many values as y ({yy.size})", "cuped")
    vx = float(xx.var(ddof=1)) if xx.size > 1 else 0.0
    if vx == 0.0:
        return yy.copy(), 0.0, 0.0
    theta = float(np.cov(xx, yy, ddof=1)[0, 1] / vx)
    adj = yy - theta * (xx - xx.mean())
    vy = float(yy.var(ddof=1))
    reduction = 1.0 - float(adj.var(ddof=1)) / vy if vy > 0 else 0.0
    return adj, theta, reduction


@dataclass(frozen=True)
class SRMResult:
    """Pearson's chi-squared test of observed arm sizes against the configured shares."""

    observed: dict[str, int]
    expected: dict[str, float]
    chi2: float
    p_value: float
    mismatch: bool
    threshold: float = SRM_P_THRESHOLD

    def as_dict(self) -> dict[str, Any]:
        return {"observed": self.observed, "expected": self.expected, "chi2": self.chi2,
                "p_value": self.p_value, "mismatch": self.mismatch, "threshold": self.threshold}


def srm_check(observed: dict[str, int], shares: dict[str, float], threshold: float = SRM_P_THRESHOLD) -> SRMResult:
    """Sample-ratio mismatch: are the units per arm consistent with the shares the
    assignment was configured with? A mismatch (p < ``threshold``) means the assignment
    or the logging is broken, and no metric of the experiment should be trusted.

    Example
    -------
    >>> srm_check({"A": 5000, "B": 5000}, {"A": 0.5, "B": 0.5}).mismatch
    False
    >>> srm_check({"A": 5300, "B": 4700}, {"A": 0.5, "B": 0.5}).mismatch
    True
    """
    from scipy.stats import chi2 as chi2_dist

    check_param("shares", sorted(shares), set(shares) == set(observed) and len(shares) >= 2
                and all(s > 0 for s in shares.values()),
                f"a positive share for each observed arm ({sorted(observed)})", "srm_check")
    total_share = sum(shares.values())
    n = sum(observed.values())
    expected = {k: n * shares[k] / total_share for k in shares}
    if n == 0:
        return SRMResult(dict(observed), expected, 0.0, 1.0, False, threshold)
    stat = sum((observed[k] - expected[k]) ** 2 / expected[k] for k in shares)
    p = float(chi2_dist.sf(stat, len(shares) - 1))
    return SRMResult(dict(observed), expected, float(stat), p, p < threshold, threshold)


def noisy_counts(values: Sequence[float] | np.ndarray, epsilon: float, mechanism: Literal["laplace", "gaussian"] = "laplace",
                 sensitivity: float = 1.0, delta: float = 1e-5, seed: int | None = None) -> np.ndarray:
    """``values`` (counts or sums) plus noise for ``epsilon``-differential privacy:
    Laplace with scale ``sensitivity / epsilon``, or Gaussian with the classic
    ``sigma = sqrt(2 ln(1.25 / delta)) * sensitivity / epsilon`` (epsilon < 1 for the
    guarantee). ``sensitivity`` is how much one person can change one value: 1 for a
    count where each person adds at most one; callers that let a person add more must
    bound or scale it. Results are rounded and clipped at 0 (post-processing keeps the
    guarantee)."""
    check_param("epsilon", epsilon, isinstance(epsilon, (int, float)) and epsilon > 0, "a number > 0",
                "noisy_counts")
    check_param("mechanism", mechanism, mechanism in ("laplace", "gaussian"), "'laplace' or 'gaussian'",
                "noisy_counts")
    v = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    if mechanism == "laplace":
        noise = rng.laplace(0.0, sensitivity / epsilon, size=v.shape)
    else:
        noise = rng.normal(0.0, math.sqrt(2 * math.log(1.25 / delta)) * sensitivity / epsilon, size=v.shape)
    return np.clip(np.round(v + noise), 0, None)
