"""The dialogue state of one conversation: the search being refined and what was shown.

A turn that refines ("cheaper", "only HP", "in black", "with wifi") changes the
constraints and keeps the base query; a new search replaces both. ``shown`` is the
list the shopper last saw, so "the second one" and "compare the first two" point at
real products; ``focus`` is the product "it" refers to.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["DialogueState"]


@dataclass
class DialogueState:
    """Base query text, the shopper's stated constraints, the ids shown and the focus.

    ``constraints`` keys: ``brand`` (str), ``price_min`` / ``price_max`` (float),
    ``colour`` (str), ``in_stock`` (bool), ``attributes`` ({name: value}).
    """

    query: str = ""
    constraints: dict[str, Any] = field(default_factory=dict)
    shown: list[str] = field(default_factory=list)
    focus: str | None = None
    turns: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, raw: str) -> DialogueState:
        d = json.loads(raw)
        return cls(query=str(d.get("query", "")), constraints=dict(d.get("constraints") or {}),
                   shown=[str(x) for x in d.get("shown") or []], focus=d.get("focus"),
                   turns=int(d.get("turns", 0)))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
