"""What a re-ranking step changed, so callers and dashboards can see it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["RerankReport", "diff_positions"]


@dataclass
class RerankReport:
    """Changes made by one re-ranking call (ids are external product ids).

    ``moved`` maps id -> (old position, new position) (0-based); ``removed`` maps
    id -> why; ``inserted`` lists ids that were not candidates (pinned items);
    ``steps`` lists the stages that ran; ``stats`` holds measured figures such as
    the fairness ``relevance_cost`` and the exposure share of each group.
    """

    steps: list[str] = field(default_factory=list)
    moved: dict[str, tuple[int, int]] = field(default_factory=dict)
    removed: dict[str, str] = field(default_factory=dict)
    inserted: list[str] = field(default_factory=list)
    rules_applied: dict[str, list[str]] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.moved or self.removed or self.inserted)

    def as_dict(self) -> dict[str, Any]:
        return {
            "steps": list(self.steps),
            "moved": {k: list(v) for k, v in self.moved.items()},
            "removed": dict(self.removed),
            "inserted": list(self.inserted),
            "rules_applied": {k: list(v) for k, v in self.rules_applied.items()},
            "stats": dict(self.stats),
        }


def diff_positions(before: list[str], after: list[str]) -> dict[str, tuple[int, int]]:
    """Ids present in both lists whose position changed."""
    pos = {h: i for i, h in enumerate(before)}
    return {h: (pos[h], j) for j, h in enumerate(after) if h in pos and pos[h] != j}
