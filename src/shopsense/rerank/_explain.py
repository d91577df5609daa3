"""Shopper-readable reasons derived only from a hit's ``source`` and ``evidence``.

Every reason is built from facts the candidate generator recorded (the item it
was recommended because of, the matched query terms, the category it is popular
in); nothing is invented. When the evidence is missing a generic but still true
sentence for the source is used, so a reason is never empty.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from shopsense.results import Hit

log = logging.getLogger(__name__)

__all__ = ["FALLBACK_REASONS", "OpenAIRephraser", "Rephraser", "explain", "reason_for"]

_TITLE_CHARS = 40

#: a generic but true reason per source, used when the evidence says nothing more
FALLBACK_REASONS: dict[str, str] = {
    "bm25": "Matches your search",
    "dense": "Related to your search",
    "hybrid": "Matches your search",
    "search": "Matches your search",
    "personal": "Picked for you from your activity",
    "popular": "Popular right now",
    "trending": "Trending this week",
    "cf": "Shoppers with similar taste liked this",
    "als": "Shoppers with similar taste liked this",
    "ease": "Shoppers with similar taste liked this",
    "itemknn": "Shoppers with similar taste liked this",
    "content": "Similar to items you looked at",
    "sequential": "Often viewed next",
    "copurchase": "Often bought together",
    "complement": "Goes well with your items",
    "new_item": "New arrival",
    "bundle": "Part of a bundle",
    "pinned": "Featured by the shop",
}
_DEFAULT = "Recommended for you"


def _title(item_id: Any, catalog: Any) -> str | None:
    """Short title of ``item_id`` from the catalogue, or None when unknown."""
    if catalog is None or item_id is None:
        return None
    idx = catalog.index.get(str(item_id))
    if idx is None:
        return None
    title = catalog.products[idx].title.strip()
    if len(title) > _TITLE_CHARS:
        # cut at a word boundary so the shortened title still reads naturally
        cut = title[: _TITLE_CHARS].rsplit(" ", 1)[0].rstrip(" ,;:-")
        title = (cut or title[:_TITLE_CHARS]) + "…"
    return title


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
        terms = _terms(ev)
        cons = ev.get("constraints") or {}
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
        if cat:
            return f"Popular in {cat} this week" if src == "trending" else f"Popular in {cat}"
        return FALLBACK_REASONS[src]
    if src in {"cf", "als", "ease", "itemknn"}:
        return f"Because you viewed {because}" if because else FALLBACK_REASONS["cf"]
    if src == "content":
        return f"Similar to {because}" if because else FALLBACK_REASONS["content"]
    if src == "sequential":
        return f"Often viewed after {because}" if because else FALLBACK_REASONS["sequential"]
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


class OpenAIRephraser:
    """Rephrase reasons through any OpenAI-compatible ``/chat/completions`` endpoint.

    Off by default: it is used only when a caller builds one, e.g. from
    ``Settings.llm_url``. The model must answer a JSON list of strings of the same
    length; anything else falls back to the template reasons.
    """

    def __init__(self, url: str, model: str = "gpt-4o-mini", api_key: str | None = None,
                 timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.timeout = timeout

    @classmethod
    def from_settings(cls, settings: Any) -> OpenAIRephraser | None:
        url = getattr(settings, "llm_url", None)
        if not url:
            return None
        key = getattr(settings, "llm_api_key", None)
        return cls(url, model=getattr(settings, "llm_model", None) or "gpt-4o-mini",
                   api_key=key.get_secret_value() if hasattr(key, "get_secret_value") else key)

    def _endpoint(self) -> str:
        return self.url if self.url.endswith("/chat/completions") else self.url + "/chat/completions"

    def rephrase(self, reasons: Sequence[str], context: Mapping[str, Any]) -> list[str]:
        import httpx

        prompt = (
            "Rewrite each product recommendation reason to be friendly and short (max 12 words). "
            "Do not add facts. Answer only a JSON list of strings, same order and length.\n"
            + json.dumps(list(reasons))
        )
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        resp = httpx.post(self._endpoint(), timeout=self.timeout, headers=headers, json={
            "model": self.model, "temperature": 0,
            "messages": [{"role": "user", "content": prompt}],
        })
        resp.raise_for_status()
        content = resp.json()["choices"][0]["message"]["content"]
        out = json.loads(content)
        if not isinstance(out, list) or len(out) != len(reasons):
            raise ValueError("rephraser answer is not a list of the same length")
        return [str(x) for x in out]
