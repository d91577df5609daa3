"""Team-draft interleaving (Radlinski, Kurup, Joachims 2008) as plain functions.

Two rankers answer the same query; their lists are merged the way captains pick
teams: a coin decides who picks first in each round, and each picks its best item
not yet taken. The shopper sees one list; a click counts for the team that put the
clicked item there. One impression gives one outcome: A wins, B wins, or a tie.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shopsense.errors import check_param

__all__ = ["TEAM_A", "TEAM_B", "Interleaved", "credit", "decode_teams", "encode_teams", "preference", "team_draft"]

TEAM_A, TEAM_B = 0, 1


@dataclass(frozen=True)
class Interleaved:
    """The merged list and, per position, the team (:data:`TEAM_A` or :data:`TEAM_B`) that placed it."""

    items: list[Any]
    teams: list[int]


def team_draft(a: Sequence[Any], b: Sequence[Any], k: int | None = None,
               rng: np.random.Generator | None = None) -> Interleaved:
    """Interleave rankings ``a`` and ``b`` (best first) into at most ``k`` items.

    In each round the team with fewer picks goes first (a coin breaks ties), and picks
    its highest-ranked item not already in the list; a team whose list is used up
    passes. Neither input is changed.

    Example
    -------
    >>> r = team_draft(["x", "y", "z"], ["y", "w", "x"], k=4, rng=np.random.default_rng(0))
    >>> sorted(r.items) == ["w", "x", "y", "z"] and len(r.teams) == 4
    True
    """
    k = max(len(a), len(b)) if k is None else k
    check_param("k", k, isinstance(k, int) and k >= 0, "an int >= 0", "team_draft")
    rng = rng if rng is not None else np.random.default_rng()
    items: list[Any] = []
    teams: list[int] = []
    taken: set[Any] = set()
    picks = [0, 0]
    ptr = [0, 0]
    lists = (a, b)
    n = min(k, len(set(a) | set(b)))
    while len(items) < n:
        # the team with fewer picks goes; a coin decides at the start of each round
        team = TEAM_A if picks[0] < picks[1] else TEAM_B if picks[1] < picks[0] else int(rng.integers(2))
        for t in (team, 1 - team):  # a team whose list is used up passes
            lst = lists[t]
            while ptr[t] < len(lst) and lst[ptr[t]] in taken:
                ptr[t] += 1
            if ptr[t] < len(lst):
                items.append(lst[ptr[t]])
                teams.append(t)
                taken.add(lst[ptr[t]])
                picks[t] += 1
                break
    return Interleaved(items, teams)


def credit(teams: Sequence[int], clicked_positions: Iterable[int]) -> int:
    """Per-impression outcome: +1 when team A got more clicks, -1 when B did, 0 for a
    tie (no clicks included). ``clicked_positions`` are 1-based."""
    ca = cb = 0
    for p in clicked_positions:
        check_param("position", p, isinstance(p, (int, np.integer)) and 1 <= p <= len(teams),
                    f"an int in [1, {len(teams)}]", "credit")
        if teams[p - 1] == TEAM_A:
            ca += 1
        else:
            cb += 1
    return (ca > cb) - (cb > ca)


def preference(outcomes: Iterable[int]) -> dict[str, float]:
    """Wins of A and B and ties over impressions, the preference
    ``(wins_A - wins_B) / impressions`` and a two-sided sign-test p-value on the
    impressions with a winner."""
    from scipy.stats import binomtest

    o = np.fromiter(outcomes, dtype=np.int64)
    wa, wb = int((o > 0).sum()), int((o < 0).sum())
    n = int(o.size)
    p = float(binomtest(wa, wa + wb, 0.5).pvalue) if wa + wb else 1.0
    return {"impressions": n, "wins_a": wa, "wins_b": wb, "ties": n - wa - wb,
            "preference": (wa - wb) / n if n else 0.0, "p_value": p}


def encode_teams(teams: Sequence[int]) -> str:
    """Teams as a short string ("ABBA...") to store with an impression."""
    return "".join("A" if t == TEAM_A else "B" for t in teams)


def decode_teams(code: str) -> list[int]:
    """The inverse of :func:`encode_teams`: ``"ABBA"`` -> per-position teams."""
    return [TEAM_A if c == "A" else TEAM_B for c in code]
