"""Experiments: variants as named setting overrides, sticky assignment by a salted hash
with a holdout share, and the per-variant report (SRM check first, then intervals and
CUPED).

Experiments are kept in one JSON file beside the rules (``<home>/experiments.json``),
written atomically, so the CLI and every server worker see the same definitions.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import tempfile
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from shopsense.errors import NotFoundError, ValidationError
from shopsense.insights._stats import Interval, bootstrap_diff, cuped, delta_ratio_diff, srm_check

__all__ = [
    "EXPERIMENTS_FILE",
    "HOLDOUT",
    "SEARCH_OPTIONS",
    "SETTING_OVERRIDES",
    "Experiment",
    "ExperimentBook",
    "Variant",
    "assign",
    "experiment_report",
]

EXPERIMENTS_FILE = "experiments.json"
#: the arm of users kept out of every variant (they get the shop's normal settings)
HOLDOUT = "holdout"

#: per-call search options a variant may override (see shopsense.search.SearchOptions)
SEARCH_OPTIONS = ("mode", "fusion", "understand", "lexical_weight", "dense_weight", "dense_norm", "synonym_weight",
                  "rrf_k", "boost", "lexical_candidates", "dense_candidates", "personal_weight")
#: engine settings a variant may override (served by an engine opened with them)
SETTING_OVERRIDES = ("rerank_diversity", "rerank_method", "encoder_model", "encoder_backend")


class Variant(BaseModel):
    """A named set of overrides: ``search`` options applied per call, ``settings``
    applied by an engine opened with them; ``weight`` is its share of the
    non-holdout traffic."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.-]+$")
    search: dict[str, Any] = Field(default_factory=dict)
    settings: dict[str, Any] = Field(default_factory=dict)
    weight: float = Field(default=1.0, gt=0)

    @model_validator(mode="after")
    def _check(self) -> Variant:
        if self.name == HOLDOUT:
            raise ValueError(f"{HOLDOUT!r} is reserved for the holdout arm")
        bad = sorted(set(self.search) - set(SEARCH_OPTIONS))
        if bad:
            raise ValueError(f"unknown search option {bad[0]!r}; allowed: {', '.join(SEARCH_OPTIONS)}")
        bad = sorted(set(self.settings) - set(SETTING_OVERRIDES))
        if bad:
            raise ValueError(f"unknown setting {bad[0]!r}; allowed: {', '.join(SETTING_OVERRIDES)}")
        return self


class Experiment(BaseModel):
    """An A/B test (users split between variants) or an interleaving test (every search
    answered by team-draft interleaving of exactly two variants' rankings)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.-]+$")
    kind: Literal["ab", "interleave"] = "ab"
    surface: str = "search"
    variants: list[Variant] = Field(min_length=2, max_length=10)
    holdout: float = Field(default=0.0, ge=0.0, lt=1.0, description="share of users kept on normal settings")
    salt: str = Field(default_factory=lambda: secrets.token_hex(8), min_length=1)
    status: Literal["running", "stopped"] = "running"
    started_at: float = Field(default_factory=time.time)
    stopped_at: float | None = None
    pre_period_days: float = Field(default=28.0, ge=0, description="days before the start used as CUPED covariate")
    description: str = ""

    @model_validator(mode="after")
    def _check(self) -> Experiment:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"variant names must be unique, got {names}")
        if self.kind == "interleave" and len(self.variants) != 2:
            raise ValueError("an interleaving experiment compares exactly two variants")
        if self.kind == "interleave" and self.surface != "search":
            raise ValueError("interleaving is for the search surface")
        return self

    @property
    def control(self) -> str:
        """The first variant: what the others are compared against."""
        return self.variants[0].name

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise NotFoundError("variant", name)

    def shares(self) -> dict[str, float]:
        """Expected share of users per arm (holdout included when configured)."""
        total = sum(v.weight for v in self.variants)
        out = {v.name: (1 - self.holdout) * v.weight / total for v in self.variants}
        if self.holdout > 0:
            out[HOLDOUT] = self.holdout
        return out


def _unit(salt: str, name: str, user_id: str) -> float:
    """A uniform number in [0, 1) from a salted hash: the same user always gets the same."""
    h = hashlib.sha256(f"{salt}:{name}:{user_id}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def assign(experiment: Experiment, user_id: str) -> str:
    """The arm of ``user_id``: :data:`HOLDOUT` or a variant name. Sticky (a hash of the
    salt, the experiment name and the user id, nothing stored) and independent across
    experiments (each has its own salt).

    Example
    -------
    >>> exp = Experiment(name="fusion", variants=[Variant(name="A"), Variant(name="B")], salt="s")
    >>> assign(exp, "u1") == assign(exp, "u1")
    True
    """
    u = _unit(experiment.salt, experiment.name, user_id)
    if u < experiment.holdout:
        return HOLDOUT
    u = (u - experiment.holdout) / (1 - experiment.holdout)
    total = sum(v.weight for v in experiment.variants)
    acc = 0.0
    for v in experiment.variants:
        acc += v.weight / total
        if u < acc:
            return v.name
    return experiment.variants[-1].name


class ExperimentBook:
    """The experiments of one home (``<home>/experiments.json``)."""

    def __init__(self, home: str | Path) -> None:
        self.path = Path(home) / EXPERIMENTS_FILE

    def all(self) -> list[Experiment]:
        if not self.path.exists():
            return []
        try:
            data = json.loads(self.path.read_text())
        except json.JSONDecodeError as exc:
            raise ValidationError(f"{self.path} is not valid JSON: {exc}", field="experiments") from exc
        return [Experiment.model_validate(x) for x in data.get("experiments", [])]

    def get(self, name: str) -> Experiment:
        for e in self.all():
            if e.name == name:
                return e
        raise NotFoundError("experiment", name)

    def running(self, surface: str = "search") -> list[Experiment]:
        return [e for e in self.all() if e.status == "running" and e.surface == surface]

    def create(self, experiment: Experiment | Mapping[str, Any]) -> Experiment:
        exp = experiment if isinstance(experiment, Experiment) else _validated(experiment)
        current = self.all()
        if any(e.name == exp.name for e in current):
            raise ValidationError(f"An experiment named {exp.name!r} already exists.", field="name")
        self._write([*current, exp])
        return exp

    def stop(self, name: str) -> Experiment:
        current = self.all()
        for i, e in enumerate(current):
            if e.name == name:
                current[i] = e.model_copy(update={"status": "stopped", "stopped_at": e.stopped_at or time.time()})
                self._write(current)
                return current[i]
        raise NotFoundError("experiment", name)

    def delete(self, name: str) -> None:
        current = self.all()
        if not any(e.name == name for e in current):
            raise NotFoundError("experiment", name)
        self._write([e for e in current if e.name != name])

    def _write(self, exps: Sequence[Experiment]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".experiments-", suffix=".json")
        with os.fdopen(fd, "w") as fh:
            json.dump({"experiments": [e.model_dump(mode="json") for e in exps]}, fh, indent=2)
        os.replace(tmp, self.path)


def _validated(obj: Mapping[str, Any]) -> Experiment:
    import pydantic

    try:
        return Experiment.model_validate(obj)
    except pydantic.ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err["loc"]) or "experiment"
        msg = err["msg"].removeprefix("Value error, ")
        raise ValidationError(f"Invalid 'experiment.{loc}': {msg}.", field=loc) from exc


# -- the report -------------------------------------------------------------------------

def _per_user(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """arm -> user_key -> impressions, clicks, add_to_carts, purchases, revenue."""
    out: dict[str, dict[str, dict[str, float]]] = defaultdict(
        lambda: defaultdict(lambda: {"impressions": 0.0, "clicks": 0.0, "add_to_carts": 0.0, "purchases": 0.0,
                                     "revenue": 0.0}))
    arm_of: dict[str, str] = {}
    for r in rows:
        if r["kind"] == "impression" and r["variant"]:
            arm_of[r["list_id"]] = r["variant"]
    for r in rows:
        arm = r["variant"] or arm_of.get(r["list_id"])
        if not arm:
            continue
        m = out[arm][r["user_key"]]
        if r["kind"] == "impression":
            m["impressions"] += 1
        elif r["kind"] == "click":
            m["clicks"] += 1
        elif r["kind"] == "add_to_cart":
            m["add_to_carts"] += 1
        elif r["kind"] == "purchase":
            m["purchases"] += 1
            m["revenue"] += (r["price"] or 0.0) * (r["quantity"] or 1)
    return out


def experiment_report(experiment: Experiment, exposures: Sequence[Mapping[str, Any]],
                      pre_period: Mapping[str, float] | None = None, n_boot: int = 2000,
                      seed: int = 0) -> dict[str, Any]:
    """Per-arm metrics with intervals, the SRM check, and CUPED where a pre-period exists.

    ``exposures`` are the store's rows (:meth:`shopsense.store.Store.exposures`) of the
    experiment; ``pre_period`` maps a user key to that user's metric (e.g. purchases)
    before the experiment started, the CUPED covariate of ``purchases_per_user``.
    Units are users (user keys); click-through is the ratio clicks / impressions summed
    over users, with a delta-method interval; per-user metrics get a bootstrap interval
    of the difference to the control. Interleaving experiments report team wins instead.
    """
    rows = [r for r in exposures if r.get("experiment") == experiment.name]
    if experiment.kind == "interleave":
        return _interleave_report(experiment, rows)
    users = _per_user(rows)
    arms = [v.name for v in experiment.variants] + ([HOLDOUT] if experiment.holdout > 0 else [])
    observed = {a: len(users.get(a, {})) for a in arms}
    srm = srm_check(observed, experiment.shares())
    ctrl = users.get(experiment.control, {})
    per_arm: dict[str, Any] = {}
    for arm in arms:
        u = users.get(arm, {})
        tot = {m: sum(x[m] for x in u.values()) for m in ("impressions", "clicks", "add_to_carts", "purchases",
                                                          "revenue")}
        n = len(u)
        entry: dict[str, Any] = {
            "users": n, **{k: int(v) if k != "revenue" else round(v, 2) for k, v in tot.items()},
            "ctr": tot["clicks"] / tot["impressions"] if tot["impressions"] else None,
            "purchases_per_user": tot["purchases"] / n if n else None,
            "revenue_per_user": tot["revenue"] / n if n else None,
        }
        if arm != experiment.control and n >= 2 and len(ctrl) >= 2:
            c, t = list(ctrl.values()), list(u.values())
            if sum(x["impressions"] for x in c) > 0 and tot["impressions"] > 0:
                entry["ctr_diff"] = delta_ratio_diff([x["clicks"] for x in c], [x["impressions"] for x in c],
                                                     [x["clicks"] for x in t], [x["impressions"] for x in t]).as_dict()
            for metric in ("purchases", "revenue"):
                entry[f"{metric}_per_user_diff"] = bootstrap_diff(
                    [x[metric] for x in c], [x[metric] for x in t], n_boot=n_boot, seed=seed).as_dict()
            if pre_period is not None:
                entry["purchases_per_user_diff_cuped"] = _cuped_diff(ctrl, u, pre_period, n_boot, seed)
        per_arm[arm] = entry
    return {"experiment": experiment.name, "kind": "ab", "status": experiment.status, "control": experiment.control,
            "srm": srm.as_dict(), "arms": per_arm,
            "trust": "sample ratio mismatch: do not read the metrics" if srm.mismatch else "ok"}


def _cuped_diff(ctrl: Mapping[str, Mapping[str, float]], treat: Mapping[str, Mapping[str, float]],
                pre: Mapping[str, float], n_boot: int, seed: int) -> dict[str, Any]:
    keys_c, keys_t = list(ctrl), list(treat)
    y = np.array([ctrl[k]["purchases"] for k in keys_c] + [treat[k]["purchases"] for k in keys_t])
    x = np.array([pre.get(k, 0.0) for k in keys_c + keys_t])
    adj, theta, reduction = cuped(y, x)
    iv: Interval = bootstrap_diff(adj[:len(keys_c)], adj[len(keys_c):], n_boot=n_boot, seed=seed)
    return {**iv.as_dict(), "theta": theta, "variance_reduction": reduction}


def _interleave_report(experiment: Experiment, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    from shopsense.insights._interleave import credit, decode_teams, preference

    teams: dict[str, list[int]] = {}
    clicks: dict[str, list[int]] = defaultdict(list)
    for r in rows:
        if r["kind"] == "impression" and (r["variant"] or "").startswith("tdi:"):
            teams[r["list_id"]] = decode_teams(r["variant"][4:])
        elif r["kind"] == "click" and r["position"]:
            clicks[r["list_id"]].append(int(r["position"]))
    outcomes = [credit(t, [p for p in clicks.get(lid, []) if p <= len(t)]) for lid, t in teams.items()]
    pref = preference(outcomes)
    a, b = experiment.variants[0].name, experiment.variants[1].name
    return {"experiment": experiment.name, "kind": "interleave", "status": experiment.status, "a": a, "b": b,
            **pref, "better": (a if pref["wins_a"] > pref["wins_b"] else b) if pref["p_value"] < 0.05 else None}
