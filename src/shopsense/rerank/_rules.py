"""Business rules: pin, boost, bury and exclude by id, category, brand, attribute
or price; hide out-of-stock. Stored as JSON in the engine home and validated
with errors that name the field."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from shopsense.catalog import match_mask
from shopsense.config import SURFACES
from shopsense.errors import ValidationError

__all__ = ["RULES_FILE", "Match", "Rule", "RuleSet", "load_rules", "rules_version", "save_rules", "validate_rules"]

RULES_FILE = "rules.json"


class Match(BaseModel):
    """Which products a rule applies to; every given condition must hold (AND)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    ids: list[str] = Field(default_factory=list)
    category: str | None = Field(default=None, description="matches any level of the category path")
    brand: str | None = None
    attributes: dict[str, str] = Field(default_factory=dict)
    price_min: float | None = Field(default=None, ge=0)
    price_max: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _check(self) -> Match:
        if not (self.ids or self.category or self.brand or self.attributes
                or self.price_min is not None or self.price_max is not None):
            raise ValueError("a rule must match on at least one of ids, category, brand, "
                             "attributes, price_min, price_max")
        if self.price_min is not None and self.price_max is not None and self.price_min > self.price_max:
            raise ValueError(f"price_min ({self.price_min}) is above price_max ({self.price_max})")
        return self

    def as_filters(self) -> dict[str, Any]:
        """This match as catalogue conditions (what :func:`shopsense.catalog.match_mask` takes)."""
        f: dict[str, Any] = {}
        if self.ids:
            f["ids"] = list(self.ids)
        if self.category is not None:
            f["category"] = self.category
        if self.brand is not None:
            f["brand"] = self.brand
        if self.attributes:
            f["attributes"] = dict(self.attributes)
        if self.price_min is not None:
            f["price_min"] = self.price_min
        if self.price_max is not None:
            f["price_max"] = self.price_max
        return f

    def mask(self, catalog: Any, idx: np.ndarray) -> np.ndarray:
        """Boolean mask over ``idx`` (catalog indices, -1 for unknown products); the
        matching is :func:`shopsense.catalog.match_mask`, the same as search filters."""
        idx = np.asarray(idx, dtype=np.int64)
        ok = idx >= 0
        return match_mask(catalog, self.as_filters(), rows=np.where(ok, idx, 0)) & ok


class Rule(BaseModel):
    """One merchandising rule.

    ``boost``/``bury`` move matching items by ``weight`` times the score range of
    the list (so 0.2 means "a fifth of the spread"), ``pin`` puts matching items
    at ``position`` (1-based), ``exclude`` removes them. ``surfaces`` (e.g.
    ``["search"]``) and ``queries`` (exact, case-insensitive) limit where it acts.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=100)
    action: Literal["pin", "boost", "bury", "exclude"]
    match: Match
    weight: float = Field(default=0.2, gt=0, le=10)
    position: int | None = Field(default=None, ge=1, le=1000)
    surfaces: list[str] = Field(default_factory=list)
    queries: list[str] = Field(default_factory=list)
    enabled: bool = True

    @model_validator(mode="after")
    def _check(self) -> Rule:
        if self.action == "pin" and self.position is None:
            raise ValueError("a 'pin' rule needs a position (1-based)")
        if self.action != "pin" and self.position is not None:
            raise ValueError(f"position is only for 'pin' rules, not {self.action!r}")
        unknown = [x for x in self.surfaces if x not in SURFACES]
        if unknown:
            raise ValueError(f"unknown surface(s) {unknown}; expected some of {list(SURFACES)}")
        return self

    def active(self, context: Mapping[str, Any] | None) -> bool:
        if not self.enabled:
            return False
        ctx = context or {}
        if self.surfaces and ctx.get("surface") not in self.surfaces:
            return False
        if self.queries:
            q = str(ctx.get("query") or "").strip().casefold()
            if q not in {x.casefold() for x in self.queries}:
                return False
        return True


class RuleSet(BaseModel):
    """All rules of a shop plus the out-of-stock switch."""

    model_config = ConfigDict(extra="forbid")

    hide_out_of_stock: bool = False
    rules: list[Rule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> RuleSet:
        seen: set[str] = set()
        for r in self.rules:
            if r.name in seen:
                raise ValueError(f"duplicate rule name {r.name!r}")
            seen.add(r.name)
        return self

    def add(self, rule: Rule | Mapping[str, Any]) -> RuleSet:
        """A new RuleSet with ``rule`` added (names are unique)."""
        r = rule if isinstance(rule, Rule) else _validated(Rule, rule, "rule")
        if any(x.name == r.name for x in self.rules):
            raise ValidationError(f"A rule named {r.name!r} already exists.", field="name")
        return RuleSet(hide_out_of_stock=self.hide_out_of_stock, rules=[*self.rules, r])

    def remove(self, name: str) -> RuleSet:
        if not any(x.name == name for x in self.rules):
            raise ValidationError(
                f"No rule named {name!r}; existing: {[x.name for x in self.rules]}.", field="name")
        return RuleSet(hide_out_of_stock=self.hide_out_of_stock,
                       rules=[x for x in self.rules if x.name != name])


def _validated(model: Any, obj: Any, where: str) -> Any:
    import pydantic

    try:
        return model.model_validate(obj)
    except pydantic.ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        field = f"{where}.{loc}" if loc else where
        msg = err["msg"].removeprefix("Value error, ")
        raise ValidationError(f"Invalid {field!r}: {msg} (got {err.get('input')!r}).", field=field) from exc


def validate_rules(data: Any) -> RuleSet:
    """Validate a rules document (dict) into a :class:`RuleSet` with clear errors."""
    return _validated(RuleSet, data, "rules")


def rules_version(home: str | Path) -> int | None:
    """The rules file's modification time (None when there is none): what a cache of
    rule-dependent results keys on, so a rule saved by another process is seen."""
    try:  # os.stat on a str: pathlib's construction was half of this call's cost, twice per request
        return os.stat(os.path.join(home, RULES_FILE)).st_mtime_ns
    except FileNotFoundError:
        return None


def load_rules(home: str | Path) -> RuleSet:
    """The rules stored in ``home/rules.json`` (an empty set when absent)."""
    path = Path(home) / RULES_FILE
    if not path.exists():
        return RuleSet()
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValidationError(f"{path} is not valid JSON: {exc}", field="rules") from exc
    return validate_rules(data)


def save_rules(home: str | Path, rules: RuleSet) -> Path:
    """Write atomically (temp file then rename) so a crash never leaves half a file."""
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    path = home / RULES_FILE
    fd, tmp = tempfile.mkstemp(dir=home, prefix=".rules-", suffix=".json")
    with os.fdopen(fd, "w") as fh:
        json.dump(rules.model_dump(mode="json", exclude_defaults=False), fh, indent=2)
    os.replace(tmp, path)
    return path


def active_rules(rules: RuleSet | Iterable[Rule] | None, context: Mapping[str, Any] | None) -> Sequence[Rule]:
    if rules is None:
        return []
    seq = rules.rules if isinstance(rules, RuleSet) else list(rules)
    return [r for r in seq if r.active(context)]
