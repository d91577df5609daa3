"""``/experiments``: create, follow, report and stop A/B and interleaving experiments
(admin key), and the search that serves them (``GET /experiments/{name}/search``).

The experiment search assigns the shopper (sticky salted hash), answers with the
variant's overrides (or, for an interleaving experiment, the team-draft interleaving
of both variants' rankings), records the impression with its variant in the exposure
log, and returns the list id the storefront reports clicks, carts and purchases with.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
from fastapi import APIRouter, Body, Depends, Query

from shopsense.errors import ValidationError
from shopsense.insights import (
    HOLDOUT,
    Experiment,
    ExperimentBook,
    assign,
    encode_teams,
    experiment_report,
    impression_of,
    srm_check,
    team_draft,
)
from shopsense.serve._results import render
from shopsense.serve._state import Principal, ServeState, get_engine, get_state, reader, writer

router = APIRouter(prefix="/experiments", tags=["experiments"])

_engines: dict[tuple[str, str], Any] = {}
_engines_lock = threading.Lock()


def _book(engine: Any) -> ExperimentBook:
    return ExperimentBook(engine.home)


@router.get("", summary="Every experiment")
def list_experiments(_: Principal = Depends(writer), engine: Any = Depends(get_engine)) -> dict[str, Any]:
    return {"experiments": [e.model_dump(mode="json") for e in _book(engine).all()]}


@router.post("", summary="Create an experiment (variants as named overrides; holdout share; kind ab or interleave)")
def create(body: dict[str, Any] = Body(...), _: Principal = Depends(writer),
           engine: Any = Depends(get_engine)) -> dict[str, Any]:
    return _book(engine).create(body).model_dump(mode="json")


@router.get("/{name}", summary="Definition, users per arm and the sample-ratio check")
def status(name: str, _: Principal = Depends(writer), engine: Any = Depends(get_engine)) -> dict[str, Any]:
    exp = _book(engine).get(name)
    rows = [r for r in engine.store.exposures(since=exp.started_at - 1) if r["experiment"] == name]
    users: dict[str, set[str]] = {}
    for r in rows:
        if r["kind"] == "impression":
            users.setdefault(r["variant"] or "", set()).add(r["user_key"])
    out: dict[str, Any] = {**exp.model_dump(mode="json"), "impressions": sum(r["kind"] == "impression" for r in rows),
                           "clicks": sum(r["kind"] == "click" for r in rows)}
    out.pop("salt")
    if exp.kind == "ab":
        observed = {a: len(users.get(a, ())) for a in exp.shares()}
        out["users"] = observed
        out["srm"] = srm_check(observed, exp.shares()).as_dict()
    return out


def _pre_period(engine: Any, exp: Experiment) -> dict[str, float]:
    """Purchases per user (by pseudonym) in the ``pre_period_days`` before the start."""
    start = exp.started_at
    ev = engine.store.events(since=start - exp.pre_period_days * 86400.0)
    keep = (ev.timestamp < start) & (ev.type == "purchase")
    counts: dict[str, float] = {}
    for u in ev.user_id[keep]:
        counts[u] = counts.get(u, 0.0) + 1
    return {engine.store.user_key(u): c for u, c in counts.items()}


@router.get("/{name}/report", summary="Per-variant metrics with intervals, SRM check, CUPED")
def report(name: str, _: Principal = Depends(writer), engine: Any = Depends(get_engine)) -> dict[str, Any]:
    exp = _book(engine).get(name)
    rows = engine.store.exposures(since=exp.started_at - 1, until=exp.stopped_at)
    pre = _pre_period(engine, exp) if exp.pre_period_days > 0 and exp.kind == "ab" else None
    return experiment_report(exp, rows, pre_period=pre or None, n_boot=1000)


@router.post("/{name}/stop", summary="Stop an experiment (its report stays)")
def stop(name: str, _: Principal = Depends(writer), engine: Any = Depends(get_engine)) -> dict[str, Any]:
    return _book(engine).stop(name).model_dump(mode="json")


def _engine_for(engine: Any, exp: Experiment, variant: str) -> Any:
    """The engine serving ``variant``: the main one, or one opened with the variant's
    setting overrides (encoder, re-ranking) on the same home and store."""
    v = exp.variant(variant)
    if not v.settings:
        return engine
    key = (exp.name, variant)
    with _engines_lock:
        if key not in _engines:
            from shopsense.engine import Engine

            _engines[key] = Engine(settings=engine.settings.model_copy(update=v.settings))
        return _engines[key]


@router.get("/{name}/search", summary="Search as the experiment serves it to this shopper; records the impression")
def search(
    name: str,
    q: str = Query(..., min_length=1, max_length=500),
    user_id: str = Query(..., min_length=1, max_length=256),
    session_id: str | None = Query(None, max_length=256),
    k: int = Query(10, ge=1, le=60),
    _: Principal = Depends(reader),
    state: ServeState = Depends(get_state),
    engine: Any = Depends(get_engine),
) -> Any:
    exp = _book(engine).get(name)
    if exp.status != "running":
        raise ValidationError(f"The experiment {name!r} is stopped.", field="name")
    if exp.kind == "interleave":
        a, b = exp.variants
        ra = _engine_for(engine, exp, a.name).search(q, k=k, **a.search)
        rb = _engine_for(engine, exp, b.name).search(q, k=k, **b.search)
        # the seed comes from the list id: the merge can be reproduced from the log
        rng = np.random.default_rng(int(ra.info["list_id"][:12], 16))
        merged = team_draft([h.id for h in ra.hits], [h.id for h in rb.hits], k=k, rng=rng)
        hits = {h.id: h for h in [*rb.hits, *ra.hits]}
        res = type(ra)([hits[i] for i in merged.items], {**ra.info, "total": max(ra.info.get("total", 0),
                                                                                 rb.info.get("total", 0))})
        variant = "tdi:" + encode_teams(merged.teams)
    else:
        arm = assign(exp, user_id)
        if arm == HOLDOUT:
            res = engine.search(q, k=k)
        else:
            v = exp.variant(arm)
            res = _engine_for(engine, exp, arm).search(q, k=k, **v.search)
        variant = arm
    engine.store.add_exposures([impression_of(res, user_id, session_id=session_id, variant=variant,
                                              experiment=name, query=q, timestamp=time.time())])
    out = render(res)
    out.update({"experiment": name, "variant": variant})
    return out
