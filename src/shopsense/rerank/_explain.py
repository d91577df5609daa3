"""Shopper-readable reasons derived only from a hit's ``source`` and ``evidence``.

Every reason is built from facts the candidate generator recorded (the item it
was recommended because of, the matched query terms, the category it is popular
in); nothing is invented. When the evidence is missing a generic but still true
sentence for the source is used, so a reason is never empty.

Claims the evidence cannot back are not made: "you viewed X" only when the
evidence says the event was a view (``event_type``; a shop whose history is all
purchases must not read "viewed"), "trending" only when the evidence dates the
popularity within :data:`RECENT_S` of now (popularity computed over 2014 events is
"popular", not "this week"), and "goes well with" only for a positive complement
score (the bundles service drops the rest).
"""

from __future__ import annotations

import functools
import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from shopsense.llm import ChatEndpoint
from shopsense.results import Hit

log = logging.getLogger(__name__)

__all__ = ["FALLBACK_REASONS", "OpenAIRephraser", "Rephraser", "explain", "reason_for", "short_title"]

_TITLE_CHARS = 48

#: popularity dated within this many seconds of now may be called "trending"
RECENT_S = 14 * 86400.0

#: a generic but true reason per source, used when the evidence says nothing more
FALLBACK_REASONS: dict[str, str] = {
    "bm25": "Matches your search",
    "dense": "Related to your search",
    "hybrid": "Matches your search",
    "search": "Matches your search",
    "personal": "Picked for you from your activity",
    "popular": "Popular with shoppers",
    "trending": "Popular with shoppers",
    "cf": "Shoppers with similar taste liked this",
    "als": "Shoppers with similar taste liked this",
    "ease": "Shoppers with similar taste liked this",
    "itemknn": "Shoppers with similar taste liked this",
    "content": "Similar to items you looked at",
    "sequential": "Often chosen next by other shoppers",
    "copurchase": "Often bought together",
    "complement": "Goes well with your items",
    "new_item": "New arrival",
    "bundle": "Part of a bundle",
    "pinned": "Featured by the shop",
    "low_confidence": "Might be related to your search",
}
_DEFAULT = "Recommended for you"

# what the shopper did with the evidence item, in the words of each event type
_DID = {"purchase": "Because you bought {}", "add_to_cart": "Because you added {} to your cart",
        "view": "Because you viewed {}", "click": "Because you viewed {}", "rating": "Because you rated {}",
        "wishlist": "Because you saved {}"}
_DONE_BY_OTHERS = {"purchase": "bought", "add_to_cart": "added to carts", "view": "viewed", "click": "viewed"}

# words that must not end a shortened title: "Table with…" reads as if something is missing
_DANGLING = frozenset({"a", "an", "and", "at", "by", "for", "from", "in", "of", "on", "or", "the", "to",
                       "with", "w/", "&", "+", "-", "x"})


# a served list's ten reasons each shortened a title (regex, splits): ~0.1 ms of a ~0.9 ms
# recommendation (cProfile, Beauty). A catalogue's titles repeat across lists: kept.
@functools.lru_cache(maxsize=1 << 16)
def short_title(title: str, limit: int = _TITLE_CHARS) -> str:
    """``title`` shortened for a reason: the name before the first comma or bracket
    when that still reads as a product (three words or more), then cut at a word
    boundary without a dangling "with"/"for"/"and", with an ellipsis when cut."""
    title = " ".join(str(title).split())
    head = re.split(r",\s|\s\(|\s[-|–—]\s|;\s", title, maxsplit=1)[0].strip()
    if head != title and len(head.split()) >= 3:
        title = head
        if len(title) <= limit + limit // 6:  # a whole product name reads better than a cut one
            return title
    if len(title) <= limit:
        return title
    words = title[: limit + 1].split(" ")
    words = words[:-1] if len(words) > 1 else [title[:limit]]
    while len(words) > 1 and (words[-1].lower() in _DANGLING or not words[-1].strip(" ,;:-")):
        words.pop()
    return " ".join(words).rstrip(" ,;:-") + "…"


def _title(item_id: Any, catalog: Any) -> str | None:
    """Short title of ``item_id`` from the catalogue, or None when unknown."""
    if catalog is None or item_id is None:
        return None
    idx = catalog.index.get(str(item_id))
    if idx is None:
        return None
    return short_title(catalog.products[idx].title.strip())


def _event_type(ev: Mapping[str, Any]) -> str | None:
    """The event type the evidence item came from (``event_type``), if recorded."""
    t = ev.get("event_type")
    t = getattr(t, "value", t)
    return str(t).lower() if t else None


def _recent(ev: Mapping[str, Any], now: float | None = None) -> bool:
    """Whether the evidence dates its popularity within :data:`RECENT_S` of now."""
    for key in ("as_of", "window_end", "last_event"):
        ts = ev.get(key)
        if isinstance(ts, (int, float)) and not isinstance(ts, bool):
            return (now or time.time()) - float(ts) <= RECENT_S
    return False


def _terms(ev: Mapping[str, Any]) -> list[str]:
    raw = ev.get("matched_terms") or []
    if isinstance(raw, str):
        raw = [raw]
    seen: list[str] = []
    for t in raw:
        t = str(t).strip()
        if t and t not in seen:
            seen.append(t)
    return seen[:3]


def _constraint_phrases(cons: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    keys = set(cons)
    price = cons.get("price")
    if isinstance(price, Mapping):  # the search parser's {"min": x, "max": y}
        keys |= {"price_max"} if "max" in price and "min" not in price else set()
        keys |= {"price_min"} if "min" in price else set()
    if keys & {"price_max", "max_price", "price_lte", "price_lt"}:
        out.append("your price limit")
    elif keys & {"price_min", "min_price", "price_gte", "price_gt", "price"}:
        out.append("your price range")
    if "brand" in keys:
        out.append(f"brand {cons['brand']}")
    if "category" in keys:
        out.append(f"category {cons['category']}")
    if cons.get("in_stock"):
        out.append("in stock")
    for k, v in cons.items():
        if k in {"price_max", "max_price", "price_lte", "price_lt", "price_min", "min_price",
                 "price_gte", "price_gt", "price", "brand", "category", "in_stock"}:
            continue
        if isinstance(v, (str, int, float)) and not isinstance(v, bool):
            out.append(f"{k} {v}")
    return out[:3]


def _join(parts: Sequence[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def reason_for(hit: Hit, catalog: Any = None, context: Mapping[str, Any] | None = None) -> str:
    """The reason sentence for one hit (see :func:`explain`)."""
    src = (hit.source or "").lower()
    ev = hit.evidence or {}
    because = _title(ev.get("because_item"), catalog)

    if src in {"bm25", "dense", "hybrid", "search"}:
        if ev.get("low_confidence"):
            return FALLBACK_REASONS["low_confidence"]
        terms = _terms(ev)
        cons = ev.get("constraints") or {}
        if isinstance(cons, Mapping) and str(cons.get("color", "")).lower() in {t.lower() for t in terms}:
            cons = {k: v for k, v in cons.items() if k != "color"}  # "Matches 'black'" says it already
        cphr = _constraint_phrases(cons) if isinstance(cons, Mapping) else []
        if terms:
            quoted = _join([f"'{t}'" for t in terms])
            return f"Matches {quoted}" + (f" and {_join(cphr)}" if cphr else "")
        if cphr:
            base = "Related to your search" if src == "dense" else "Matches your search"
            return f"{base} and {_join(cphr)}"
        return FALLBACK_REASONS[src]
    if src == "personal":
        return FALLBACK_REASONS["personal"]
    if src in {"popular", "trending"}:
        cat = ev.get("category")
        if src == "trending" and _recent(ev):
            return f"Trending in {cat} this week" if cat else "Trending this week"
        return f"Popular in {cat}" if cat else FALLBACK_REASONS[src]
    if src in {"cf", "als", "ease", "itemknn"}:
        if not because:
            return FALLBACK_REASONS["cf"]
        did = _DID.get(_event_type(ev) or "")
        return did.format(because) if did else f"Because of your interest in {because}"
    if src == "content":
        return f"Similar to {because}" if because else FALLBACK_REASONS["content"]
    if src == "sequential":
        if not because:
            return FALLBACK_REASONS["sequential"]
        done = _DONE_BY_OTHERS.get(_event_type(ev) or "")
        return f"Often {done} after {because}" if done else f"Often chosen after {because}"
    if src == "copurchase":
        return f"Often bought with {because}" if because else FALLBACK_REASONS["copurchase"]
    if src == "complement":
        return f"Goes well with {because}" if because else FALLBACK_REASONS["complement"]
    if src == "new_item":
        sim = _title(ev.get("similar_to"), catalog)
        return f"New arrival similar to {sim}" if sim else FALLBACK_REASONS["new_item"]
    if src == "bundle":
        return f"Completes a bundle with {because}" if because else FALLBACK_REASONS["bundle"]
    if src == "pinned":
        return FALLBACK_REASONS["pinned"]
    return FALLBACK_REASONS.get(src, _DEFAULT)


def explain(hits: Sequence[Hit], catalog: Any = None, context: Mapping[str, Any] | None = None,
            *, rephraser: Rephraser | None = None) -> list[Hit]:
    """Return NEW hits whose ``reason`` says, in shopper words, what produced them.

    The reason is derived only from ``hit.source`` and ``hit.evidence`` (titles are
    looked up in ``catalog``); inputs are never changed. ``context`` may carry
    surface facts (e.g. ``{"surface": "search"}``) and is passed to a rephraser.

    Example
    -------
    >>> from shopsense.results import Hit
    >>> explain([Hit("p2", 1.0, "copurchase", evidence={"because_item": "zz"})])[0].reason
    'Often bought together'
    """
    out = [h.with_(reason=reason_for(h, catalog, context)) for h in hits]
    return rephrase(out, rephraser, context) if rephraser is not None else out


def rephrase(hits: Sequence[Hit], rephraser: Rephraser, context: Mapping[str, Any] | None = None) -> list[Hit]:
    """NEW hits whose reasons the ``rephraser`` reworded; any failure, a wrong-length
    answer or an empty string keeps the reason as it was (it is always a good answer)."""
    out = list(hits)
    if not out:
        return out
    try:
        new = rephraser.rephrase([h.reason for h in out], context or {})
    except Exception as exc:  # noqa: BLE001 - the template reason is always a good answer
        log.warning("rephraser failed, keeping template reasons: %s", exc)
        return out
    if len(new) != len(out):
        return out
    return [h.with_(reason=r.strip()) if isinstance(r, str) and r.strip() else h for h, r in zip(out, new)]


class Rephraser(Protocol):
    """Optional back-end that rewrites template reasons (same count, same order)."""

    def rephrase(self, reasons: Sequence[str], context: Mapping[str, Any]) -> list[str]: ...


class OpenAIRephraser(ChatEndpoint):
    """Rephrase reasons through any OpenAI-compatible ``/chat/completions`` endpoint.

    Off by default: it is used only when a caller builds one, e.g. from
    ``Settings.llm_url``. The model must answer a JSON list of strings of the same
    length; anything else falls back to the template reasons.
    """

    def rephrase(self, reasons: Sequence[str], context: Mapping[str, Any]) -> list[str]:
        prompt = (
            "Rewrite each product recommendation reason to be friendly and short (max 12 words). "
            "Do not add facts. Answer only a JSON list of strings, same order and length.\n"
            + json.dumps(list(reasons))
        )
        out = json.loads(self.complete(prompt))
        if not isinstance(out, list) or len(out) != len(reasons):
            raise ValueError("rephraser answer is not a list of the same length")
        return [str(x) for x in out]
