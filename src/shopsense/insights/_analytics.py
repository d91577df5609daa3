"""Search and recommendation analytics from the exposure log and the events.

Every figure is an aggregate computed from stored rows: counts per day, per query, per
surface and per position, never a user id (rows carry only a keyed pseudonym, and
no output includes it). Tables are lists of flat dicts, so the CLI prints them, the
HTTP API returns them and :func:`to_csv` exports them unchanged.

Attribution rule (documented, tested): revenue comes from purchase *events* (price x
quantity; the catalogue price when the event has none). A purchase is credited to the
surface of the **last touch** on the same item by the same shopper within the same
session before the purchase: the latest click, add-to-cart or purchase exposure of
that item with the same session id, or, where either side has no session id, within
``session_gap_s`` (30 minutes) before it. Purchases without such a touch are
``unattributed``.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from shopsense.errors import check_param
from shopsense.insights._stats import noisy_counts
from shopsense.store import Store

__all__ = ["COUNT_COLUMNS", "Analytics", "normalise_query", "private_table", "to_csv"]

#: columns that are counts of rows: the ones differential privacy adds noise to
COUNT_COLUMNS = ("searches", "search_events", "zero_results", "sessions", "impressions", "lists_clicked",
                 "clicks", "add_to_carts", "purchases", "users", "shown", "lists_with_cart", "lists_with_purchase",
                 "count")

SESSION_GAP_S = 1800.0


def normalise_query(q: str | None) -> str:
    """Case-folded, whitespace-collapsed: how queries are grouped."""
    return " ".join((q or "").casefold().split())


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d")


def _rate(num: float, den: float) -> float | None:
    return num / den if den else None


class Analytics:
    """Analytics of one time range ``[since, until)`` (seconds; ``None``: open).

    Parameters
    ----------
    store
        The shop's store (exposures, events, products).
    understand
        ``query -> dict`` of what the engine understood (corrections, synonyms,
        constraints), shown beside zero-result and low-click queries; e.g.
        ``lambda q: engine.searcher.parse(q).as_dict()``.

    Example
    -------
    >>> a = Analytics(engine.store, since=time.time() - 7 * 86400)   # doctest: +SKIP
    >>> a.top_queries(limit=10)                                       # doctest: +SKIP
    """

    def __init__(self, store: Store, since: float | None = None, until: float | None = None,
                 understand: Callable[[str], Mapping[str, Any]] | None = None) -> None:
        if since is not None and until is not None:
            check_param("until", until, until > since, f"a time after since ({since})", "Analytics")
        self.store, self.since, self.until, self.understand = store, since, until, understand
        self.rows = store.exposures(since=since, until=until)
        self.impressions = [r for r in self.rows if r["kind"] == "impression"]
        # actions joined to impressions by list id *and* shopper: a cached list can reach
        # several shoppers under one id, and one's click is not another's
        self._actions: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
        for r in self.rows:
            if r["kind"] != "impression":
                self._actions[(r["list_id"], r["user_key"])][r["kind"]].append(r)

    def _acted(self, impression: Mapping[str, Any], kind: str) -> list[dict[str, Any]]:
        return self._actions.get((impression["list_id"], impression["user_key"]), {}).get(kind, [])

    # -- traffic ----------------------------------------------------------------------
    def daily(self) -> list[dict[str, Any]]:
        """Per day: searches (search impressions) and zero-result searches, search events
        of the event log, sessions (distinct session ids, or shoppers without one),
        impressions, clicks, purchases and revenue."""
        days: dict[str, Counter[str]] = defaultdict(Counter)
        sessions: dict[str, set[str]] = defaultdict(set)
        for r in self.rows:
            d = _day(r["ts"])
            sessions[d].add(r["session_id"] or "u:" + r["user_key"])
            if r["kind"] == "impression":
                days[d]["impressions"] += 1
                if r["surface"] == "search":
                    days[d]["searches"] += 1
                    days[d]["zero_results"] += int(_n_results(r) == 0)
            else:
                days[d][r["kind"] + "s"] += 1
        ev = self._events()
        for i in range(len(ev)):
            if ev.type[i] == "search":
                days[_day(float(ev.timestamp[i]))]["search_events"] += 1
        revenue: Counter[str] = Counter()
        n_sales: Counter[str] = Counter()
        for s in self._sales():
            revenue[_day(s["ts"])] += s["revenue"]
            n_sales[_day(s["ts"])] += 1
        out = []
        for d in sorted(set(days) | set(revenue) | set(n_sales)):
            c = days[d]
            out.append({"day": d, "searches": c["searches"], "zero_results": c["zero_results"],
                        "search_events": c["search_events"], "sessions": len(sessions[d]),
                        "impressions": c["impressions"], "clicks": c["clicks"], "add_to_carts": c["add_to_carts"],
                        "purchases": n_sales[d], "revenue": round(revenue[d], 2)})
        return out

    # -- queries ----------------------------------------------------------------------
    def _queries(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for r in self.impressions:
            if r["surface"] != "search" or not r["query"]:
                continue
            q = normalise_query(r["query"])
            e = out.setdefault(q, {"query": q, "searches": 0, "users": set(), "zero_results": 0, "lists_clicked": 0,
                                   "clicks": 0, "positions": [], "last_seen": r["ts"]})
            e["searches"] += 1
            e["users"].add(r["user_key"])
            e["zero_results"] += int(_n_results(r) == 0)
            clicks = self._acted(r, "click")
            e["lists_clicked"] += int(bool(clicks))
            e["clicks"] += len(clicks)
            e["positions"] += [c["position"] for c in clicks]
            e["last_seen"] = max(e["last_seen"], r["ts"])
        return out

    @staticmethod
    def _query_row(e: Mapping[str, Any]) -> dict[str, Any]:
        pos = e["positions"]
        return {"query": e["query"], "searches": e["searches"], "users": len(e["users"]),
                "zero_results": e["zero_results"], "lists_clicked": e["lists_clicked"], "clicks": e["clicks"],
                "ctr": _rate(e["lists_clicked"], e["searches"]),
                "mean_click_position": sum(pos) / len(pos) if pos else None, "last_seen": _day(e["last_seen"])}

    def top_queries(self, limit: int = 20, min_users: int = 1) -> list[dict[str, Any]]:
        """The most searched queries; a query typed by fewer than ``min_users`` shoppers is
        left out (a rare query can identify who typed it)."""
        rows = [self._query_row(e) for e in self._queries().values() if len(e["users"]) >= min_users]
        rows.sort(key=lambda r: (-r["searches"], r["query"]))
        return rows[:limit]

    def zero_result_queries(self, limit: int = 20, min_users: int = 1) -> list[dict[str, Any]]:
        """Queries that found nothing, most frequent first, with what the engine understood."""
        rows = [self._query_row(e) for e in self._queries().values()
                if e["zero_results"] > 0 and len(e["users"]) >= min_users]
        rows.sort(key=lambda r: (-r["zero_results"], r["query"]))
        return [self._with_understanding(r) for r in rows[:limit]]

    def low_click_queries(self, limit: int = 20, min_searches: int = 3, min_users: int = 1) -> list[dict[str, Any]]:
        """Queries with results but the lowest click-through (at least ``min_searches``)."""
        rows = [self._query_row(e) for e in self._queries().values()
                if e["searches"] - e["zero_results"] >= min_searches and len(e["users"]) >= min_users]
        rows.sort(key=lambda r: (r["ctr"] or 0.0, -r["searches"], r["query"]))
        return [self._with_understanding(r) for r in rows[:limit]]

    def _with_understanding(self, row: dict[str, Any]) -> dict[str, Any]:
        if self.understand is None:
            return row
        try:
            u = dict(self.understand(row["query"]))
        except Exception as exc:  # noqa: BLE001 - an explanation must never break the report
            return {**row, "understood": f"(not available: {exc})"}
        parts = []
        if u.get("text") is not None and u.get("text") != row["query"]:
            parts.append(f"searched as {u['text']!r}")
        if u.get("corrections"):
            parts.append("corrected " + ", ".join(f"{a}->{b}" for a, b in u["corrections"].items()))
        if u.get("synonyms"):
            parts.append("synonyms " + ", ".join(f"{a}: {'/'.join(b)}" for a, b in u["synonyms"].items()))
        if u.get("filters"):
            parts.append("filters " + json.dumps(u["filters"], default=str))
        if u.get("category"):
            parts.append(f"category {u['category']}")
        return {**row, "understood": "; ".join(parts) or "taken as typed"}

    # -- surfaces and positions ---------------------------------------------------------
    def surfaces(self) -> list[dict[str, Any]]:
        """Per surface: impressions, click-through (share of lists with a click),
        add-to-cart and conversion rates (share of lists with one), and attributed revenue."""
        agg: dict[str, Counter[str]] = defaultdict(Counter)
        for r in self.impressions:
            c = agg[r["surface"]]
            c["impressions"] += 1
            clicks = self._acted(r, "click")
            c["clicks"] += len(clicks)
            c["lists_clicked"] += int(bool(clicks))
            c["lists_with_cart"] += int(bool(self._acted(r, "add_to_cart")))
            c["lists_with_purchase"] += int(bool(self._acted(r, "purchase")))
        rev = {r["surface"]: r for r in self.revenue()}
        out = []
        for s in sorted(set(agg) | (set(rev) - {"unattributed"})):
            c = agg[s]
            out.append({"surface": s, "impressions": c["impressions"], "clicks": c["clicks"],
                        "lists_clicked": c["lists_clicked"], "lists_with_cart": c["lists_with_cart"],
                        "lists_with_purchase": c["lists_with_purchase"],
                        "ctr": _rate(c["lists_clicked"], c["impressions"]),
                        "add_to_cart_rate": _rate(c["lists_with_cart"], c["impressions"]),
                        "conversion_rate": _rate(c["lists_with_purchase"], c["impressions"]),
                        "purchases": rev.get(s, {}).get("purchases", 0), "revenue": rev.get(s, {}).get("revenue", 0.0)})
        return out

    def positions(self, surface: str | None = None, max_position: int = 20) -> list[dict[str, Any]]:
        """Per position (1-based): how often something was shown there, clicked, added to
        cart, and the click-through rate: the position bias of the shop's lists."""
        shown: Counter[int] = Counter()
        acts: dict[str, Counter[int]] = defaultdict(Counter)
        for r in self.impressions:
            if surface is not None and r["surface"] != surface:
                continue
            for p in range(1, min(len(r["items"]), max_position) + 1):
                shown[p] += 1
            for kind in ("click", "add_to_cart", "purchase"):
                for a in self._acted(r, kind):
                    if a["position"] and a["position"] <= max_position:
                        acts[kind][a["position"]] += 1
        return [{"position": p, "shown": shown[p], "clicks": acts["click"][p], "add_to_carts": acts["add_to_cart"][p],
                 "purchases": acts["purchase"][p], "ctr": _rate(acts["click"][p], shown[p])}
                for p in range(1, max_position + 1) if shown[p]]

    # -- revenue ------------------------------------------------------------------------
    def _events(self) -> Any:
        ev = self.store.events(since=None if self.since is None else self.since - 1e-6)
        if self.until is not None:
            ev = ev.mask(ev.timestamp < self.until)
        return ev

    def _sales(self, session_gap_s: float = SESSION_GAP_S) -> list[dict[str, Any]]:
        """Purchase events with their revenue and the surface they are credited to."""
        sales = self.store.sales(since=self.since, until=self.until)
        if not sales:
            return []
        prices: dict[str, float | None] = {}
        missing = sorted({s[1] for s in sales if s[5] is None and s[1]})
        if missing:
            prices = {pid: (p.price if p is not None else None)
                      for pid, p in zip(missing, self.store.get_products(missing), strict=True)}
        # touches of each (user, item), in time order; exposures since the range start
        # minus one gap, so a click just before the range still counts
        since = None if self.since is None else self.since - session_gap_s
        touches: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for r in self.store.exposures(since=since, until=self.until) if since != self.since else self.rows:
            if r["kind"] != "impression" and r["item_id"]:
                touches[(r["user_key"], r["item_id"])].append(r)
        keys: dict[str, str] = {}
        out = []
        for user, item, ts, session, qty, price in sales:
            if user not in keys:
                keys[user] = self.store.user_key(user)
            unit = price if price is not None else prices.get(item)
            surface = "unattributed"
            for t in reversed(touches.get((keys[user], item), [])):
                if t["ts"] > ts:
                    continue
                same = (session == t["session_id"]) if session and t["session_id"] else ts - t["ts"] <= session_gap_s
                if same:
                    surface = t["surface"]
                    break
            out.append({"ts": float(ts), "surface": surface, "quantity": int(qty or 1),
                        "revenue": float(unit or 0.0) * int(qty or 1)})
        return out

    def revenue(self, session_gap_s: float = SESSION_GAP_S) -> list[dict[str, Any]]:
        """Revenue and purchases per surface under the last-touch rule of this module, and
        each surface's share of the total."""
        agg: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
        for s in self._sales(session_gap_s):
            agg[s["surface"]][0] += 1
            agg[s["surface"]][1] += s["revenue"]
        total = sum(v[1] for v in agg.values())
        rows = [{"surface": k, "purchases": int(v[0]), "revenue": round(v[1], 2), "share": _rate(v[1], total)}
                for k, v in agg.items()]
        rows.sort(key=lambda r: (r["surface"] == "unattributed", -r["revenue"], r["surface"]))
        return rows

    # -- catalogue ----------------------------------------------------------------------
    def catalogue_health(self, examples: int = 10) -> list[dict[str, Any]]:
        """Products without price, description, image or stock; never shown and never
        clicked in the range (ids are the shop's products, not personal data)."""
        shown: set[str] = set()
        for r in self.impressions:
            shown.update(r["items"])
        clicked = {r["item_id"] for r in self.rows if r["kind"] == "click"}
        checks: dict[str, list[str]] = {k: [] for k in ("no price", "no description", "no image", "out of stock",
                                                        "never shown", "shown, never clicked")}
        n = 0
        for batch in self.store.iter_products(5000):
            for p in batch:
                n += 1
                for name, bad in (("no price", p.price is None), ("no description", not p.description.strip()),
                                  ("no image", not p.image_url), ("out of stock", not p.in_stock),
                                  ("never shown", p.id not in shown),
                                  ("shown, never clicked", p.id in shown and p.id not in clicked)):
                    if bad:
                        checks[name].append(p.id)
        return [{"check": k, "count": len(v), "share": _rate(len(v), n), "products": n, "examples": v[:examples]}
                for k, v in checks.items()]

    def summary(self) -> dict[str, Any]:
        """Headline figures of the range."""
        searches = [r for r in self.impressions if r["surface"] == "search"]
        sales = self._sales()
        return {"since": self.since, "until": self.until, "searches": len(searches),
                "zero_result_searches": sum(1 for r in searches if _n_results(r) == 0),
                "impressions": len(self.impressions),
                "clicks": sum(1 for r in self.rows if r["kind"] == "click"),
                "sessions": len({r["session_id"] or "u:" + r["user_key"] for r in self.rows}),
                "purchases": len(sales), "revenue": round(sum(s["revenue"] for s in sales), 2),
                "generated_at": time.time()}

    def table(self, name: str, **kw: Any) -> list[dict[str, Any]]:
        """One table by name (what the CLI and HTTP API dispatch on)."""
        fns: dict[str, Callable[..., list[dict[str, Any]]]] = {
            "daily": self.daily, "top-queries": self.top_queries, "zero-results": self.zero_result_queries,
            "low-click": self.low_click_queries, "surfaces": self.surfaces, "positions": self.positions,
            "revenue": self.revenue, "catalogue": self.catalogue_health}
        check_param("table", name, name in fns, f"one of {', '.join(fns)}", "Analytics.table")
        return fns[name](**kw)

    TABLES = ("daily", "top-queries", "zero-results", "low-click", "surfaces", "positions", "revenue", "catalogue")


def _n_results(r: Mapping[str, Any]) -> int:
    return int(r["n_results"]) if r["n_results"] is not None else len(r["items"])


def private_table(rows: Sequence[Mapping[str, Any]], epsilon: float,
                  mechanism: Literal["laplace", "gaussian"] = "laplace", delta: float = 1e-5,
                  seed: int | None = None) -> list[dict[str, Any]]:
    """``rows`` with Laplace or Gaussian noise on every count column (:data:`COUNT_COLUMNS`)
    for ``epsilon``-differential privacy per released count, event-level (one event
    changes one count by at most 1). Rates, shares, revenue and example lists, which
    noise alone does not protect, are dropped; recompute rates from the noisy counts."""
    rows = [dict(r) for r in rows]
    cols = [c for c in COUNT_COLUMNS if rows and c in rows[0]]
    for j, c in enumerate(cols):
        noisy = noisy_counts([r[c] for r in rows], epsilon, mechanism, delta=delta,
                             seed=None if seed is None else seed + j)
        for r, v in zip(rows, noisy, strict=True):
            r[c] = int(v)
    drop = {"ctr", "add_to_cart_rate", "conversion_rate", "share", "revenue", "examples", "mean_click_position"}
    return [{k: v for k, v in r.items() if k not in drop} for r in rows]


def to_csv(rows: Iterable[Mapping[str, Any]]) -> str:
    """A table as CSV text (header from the first row; nested values as JSON)."""
    rows = list(rows)
    buf = io.StringIO()
    if not rows:
        return ""
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: json.dumps(v) if isinstance(v, (list, dict)) else ("" if v is None else v)
                    for k, v in r.items()})
    return buf.getvalue()
