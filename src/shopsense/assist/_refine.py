"""Reading constraints from a turn ("cheaper", "only HP", "in black", "with wifi",
"under 200") and turning the dialogue's constraints into the engine's filters."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shopsense.assist._lexicon import COLOUR_WORDS, GENERIC, CatalogueLexicon, norm, tokens

__all__ = ["TurnConstraints", "compile_filters", "describe", "read_turn", "satisfies", "strip_filler"]

_FILLER = re.compile(
    r"^(?:(?:hi|hello|hey|please|ok|okay|so|well|now)[,!.]?\s+)*"
    r"(?:(?:do|did) you (?:have|sell|carry|stock)|have you got|are there(?: any)?|is there(?: an?| any)?"
    r"|can you (?:find|show|get)(?: me)?|could you (?:find|show|get)(?: me)?|show me|find me|find|get me"
    r"|i(?:'m| am) looking for|im looking for|looking for|i(?: would|'d) like|i need|i want|we need|search(?: for)?"
    r"|recommend(?: me)?|suggest)?\s*(?:some|an?|any|the)?\s+", re.IGNORECASE)
_NUM = r"\$?\s*(\d++(?:[.,]\d+)?+)\s*(?:\$|dollars?|usd|eur|euros?|€|£|bucks)?"
_NOT_UNIT = r"(?!\s*(?:in\b|inch|inches|ft\b|feet|gb|tb|mb|mm|cm|m\b|v\b|volts?|w\b|watts?|%|x\b|hz|ghz|pages?|ppm))"
_PRICES = [
    (re.compile(r"\b(?:between|from)\s+" + _NUM + r"\s*(?:and|-|to)\s*" + _NUM + _NOT_UNIT), "range"),
    (re.compile(r"(?:\b(?:under|below|less than|cheaper than|max(?:imum)?|up to|at most|no more than|within)|<=?)\s*"
                + _NUM + _NOT_UNIT), "max"),
    (re.compile(r"(?:\b(?:over|above|more than|at least|min(?:imum)?|from|pricier than)|>=?)\s*" + _NUM + _NOT_UNIT),
     "min"),
]
_CHEAPER = re.compile(r"\b(cheaper|less expensive|lower price[ds]?|more affordable|cheapest|budget|inexpensive"
                      r"|cost less|costs less)\b")
_PRICIER = re.compile(r"\b(more expensive|pricier|higher end|high end|premium|fancier|costlier)\b")
_DROP = {
    "brand": re.compile(r"\b(any brand|other brands?|all brands|another brand|forget the brand|whatever brand"
                        r"|not (?:only|just) )"),
    "price": re.compile(r"\b(any price|forget the (?:price|budget)|no (?:price )?limit|whatever price"
                        r"|price doesn'?t matter|any budget)\b"),
    "colour": re.compile(r"\b(any colour|other colours?|whatever colour|colour doesn'?t matter)\b"),
    "in_stock": re.compile(r"\b(out of stock too|include out of stock|even if out of stock)\b"),
}
_IN_STOCK = re.compile(r"\b(in stock|available now|available today|that you have|available)\b")
_WITH = re.compile(r"\b(with|has|have|having|supports?|supporting|featuring|including|incl)\b")
_WITHOUT = re.compile(r"\b(without|no|not|non|lacking)\b")
#: words that only steer the dialogue ("make it", "only", "ones") and never join the query
_CUE_WORDS = frozenset({
    "only", "just", "but", "also", "make", "made", "preferably", "rather", "instead", "ones", "something",
    "anything", "cheaper", "expensive", "pricier", "price", "priced", "less", "more", "under", "below",
    "over", "above", "between", "than", "within", "up", "most", "least", "dollar", "dollars", "usd", "eur",
    "euro", "euros", "bucks", "stock", "available", "now", "today", "please", "ok", "okay", "yes", "thanks",
    "show", "see", "what", "about", "how", "some", "those", "them", "these", "like", "want", "need",
    "would", "prefer", "should", "could", "without", "no", "not", "colour", "brand", "in", "color", "shade",
    "cost", "costs", "lower", "higher", "end", "high", "low", "budget", "affordable", "cheap", "cheapest",
    "premium", "fancier", "max", "maximum", "min", "minimum", "sorry", "mean", "meant", "actually", "one",
    "any", "other", "all", "another", "forget", "whatever", "matter", "doesn", "doesnt", "t", "too", "even",
    "include", "includes", "including", "incl", "if", "out", "then", "enabled", "support",
    "supports", "supporting", "featuring", "having", "lacking", "non", "by",
})


def strip_filler(text: str) -> str:
    """``"I need a printer for a small office"`` -> ``"printer for a small office"``."""
    t = " ".join(text.split())
    for _ in range(2):
        t2 = _FILLER.sub("", t + " ", count=1).strip()
        if t2 == t:
            break
        t = t2
    return t.strip(" ?!.,") or text.strip(" ?!.,")


@dataclass
class TurnConstraints:
    """What one turn says: constraints it states, constraint keys to drop, a relative price
    move (``"cheaper"`` / ``"pricier"``) and the remaining content words."""

    stated: dict[str, Any] = field(default_factory=dict)
    drop: set[str] = field(default_factory=set)
    relative: str | None = None
    words: list[str] = field(default_factory=list)
    text: str = ""  # the content words as typed, steering words at the ends removed

    @property
    def empty(self) -> bool:
        return not (self.stated or self.drop or self.relative or self.words)


def _price(t: str) -> tuple[dict[str, float], str]:
    out: dict[str, float] = {}
    for pat, kind in _PRICES:
        m = pat.search(t)
        if not m:
            continue
        nums = [float(g.replace(",", ".")) for g in m.groups() if g is not None]
        if kind == "range" and len(nums) >= 2:
            out.update({"price_min": min(nums[:2]), "price_max": max(nums[:2])})
        elif kind == "max" and "price_max" not in out:
            out["price_max"] = nums[0]
        elif kind == "min" and "price_min" not in out:
            out["price_min"] = nums[0]
        t = t[:m.start()] + " " + t[m.end():]
    return out, t


def _boolean_attrs(t: str, lexicon: CatalogueLexicon) -> tuple[dict[str, str], set[str]]:
    """``with wifi`` -> {wi_fi: yes}; ``without bluetooth`` -> {bluetooth: no}; returns the
    words used."""
    words = tokens(t, keep_generic=True)
    found: dict[str, str] = {}
    used: set[str] = set()
    for name in sorted(lexicon.boolean_attrs, key=lambda k: -lexicon.attr_count[k]):
        toks = lexicon.attr_tokens.get(name) or frozenset()
        if not toks:
            continue
        hit = [i for i, w in enumerate(words) if w in toks]
        if not hit or any(words[i] in used for i in hit):
            continue
        covered = {words[i] for i in hit}
        before = words[max(0, hit[0] - 3):hit[0]]
        neg = any(_WITHOUT.fullmatch(w) for w in before)
        cue = neg or any(_WITH.fullmatch(w) for w in before)
        # every word of the name; after "with"/"without" also the first word of a two-word
        # name ("with ethernet" for ethernet_lan), never a product word alone ("mouse" is
        # not "mouse included")
        first = name.split("_", 1)[0].lower()
        if not (covered == toks or (cue and len(toks) == 2 and first in covered)):
            continue
        found[name] = "no" if neg else "yes"
        used.update(words[i] for i in hit)
    return found, used


def read_turn(text: str, lexicon: CatalogueLexicon) -> TurnConstraints:
    """The constraints one turn states (brand, price, colour, stock, yes/no attributes) and
    its other content words."""
    t = " " + norm(text) + " "
    out = TurnConstraints()
    for key, pat in _DROP.items():
        if pat.search(t):
            out.drop.add(key)
            t = pat.sub(" ", t)
    price, t = _price(t)
    out.stated.update(price)
    if _CHEAPER.search(t) and "price_max" not in price:
        out.relative = "cheaper"
    elif _PRICIER.search(t) and "price_min" not in price:
        out.relative = "pricier"
    if _IN_STOCK.search(t):
        out.stated["in_stock"] = True
    used: set[str] = set()
    if "brand" not in out.drop:
        brand = lexicon.brand_in(t)
        if brand:
            neg = re.search(r"\b(not|no|except|other than|besides)\s+" + re.escape(brand.lower()) + r"\b", t)
            if neg:
                out.drop.add("brand")
            else:
                out.stated["brand"] = brand
            used.update(tokens(brand, keep_generic=True))
    colours = [w for w in tokens(t, keep_generic=True) if w in COLOUR_WORDS]
    if colours and "colour" not in out.drop:
        out.stated["colour"] = colours[0]
        used.update(colours)
    attrs, words_used = _boolean_attrs(t, lexicon)
    if attrs:
        out.stated["attributes"] = attrs
        used |= words_used
    out.words = [w for w in tokens(t, keep_generic=True) if w not in used and w not in _CUE_WORDS and w not in GENERIC]
    out.text = _leftover(t, used)
    return out


def _leftover(t: str, used: set[str]) -> str:
    """The turn's own words without its constraint words and without the steering words at
    either end ("make it 18 volt please" -> "18 volt"); inner words are kept as typed."""
    words = [w for w in t.split() if not (set(tokens(w, keep_generic=True)) & used and
                                          set(tokens(w, keep_generic=True)) <= used | GENERIC)]

    def steering(w: str) -> bool:
        toks = tokens(w, keep_generic=True)
        return not toks or all(x in _CUE_WORDS or x in GENERIC for x in toks)

    while words and steering(words[0]):
        words.pop(0)
    while words and steering(words[-1]):
        words.pop()
    return " ".join(words).strip(" ?!.,")


def colour_rows(catalog: Any, lexicon: CatalogueLexicon, colour: str) -> list[str]:
    """Ids of products of ``colour``: a colour attribute names it, or (for products
    without one) the title does."""
    colour = norm(colour)
    ids = []
    for p in catalog.products:
        vals = [p.attributes[a] for a in lexicon.colour_attrs if a in p.attributes]
        if vals:
            if any(colour in tokens(v, keep_generic=True) for v in vals):
                ids.append(p.id)
        elif colour in tokens(p.title, keep_generic=True):
            ids.append(p.id)
    return ids


def satisfies(product: Any, constraints: Mapping[str, Any], lexicon: CatalogueLexicon) -> bool:
    """Whether ``product`` meets every constraint (the rules :func:`compile_filters` applies)."""
    c = constraints
    if c.get("brand") and product.brand.strip().casefold() != str(c["brand"]).strip().casefold():
        return False
    for key, ok in (("price_min", lambda p, x: p >= x), ("price_max", lambda p, x: p <= x)):
        if c.get(key) is not None and (product.price is None or not ok(product.price, float(c[key]))):
            return False
    if c.get("in_stock") and not product.in_stock:
        return False
    for name, value in (c.get("attributes") or {}).items():
        if str(product.attributes.get(name, "")).strip().casefold() != str(value).strip().casefold():
            return False
    if c.get("colour"):
        col = norm(str(c["colour"]))
        vals = [product.attributes[a] for a in lexicon.colour_attrs if a in product.attributes]
        words = [w for v in vals for w in tokens(v, keep_generic=True)] if vals else tokens(product.title, True)
        if col not in words:
            return False
    return True


def constraint_index(products: Any, lexicon: CatalogueLexicon) -> tuple[dict[str, set[str]], dict[tuple[str, str], set[str]]]:
    """Ids by colour word (:func:`colour_rows`'s rule) and by (attribute, folded value), in
    one pass over the catalogue: a constraint then costs a set lookup, not a scan."""
    colours: dict[str, set[str]] = {}
    attrs: dict[tuple[str, str], set[str]] = {}
    for p in products:
        vals = [p.attributes[a] for a in lexicon.colour_attrs if a in p.attributes]
        words = {w for v in vals for w in tokens(v, keep_generic=True)} if vals else set(tokens(p.title, True))
        for w in words & COLOUR_WORDS:
            colours.setdefault(w, set()).add(p.id)
        for k, v in p.attributes.items():
            if k in lexicon.boolean_attrs:
                attrs.setdefault((k, str(v).strip().casefold()), set()).add(p.id)
    return colours, attrs


def compile_filters(constraints: Mapping[str, Any], colour_ids: Any = None, attribute_ids: Any = None
                    ) -> dict[str, Any]:
    """The engine's filter dict for ``constraints``.

    ``colour_ids(colour)`` gives the ids of a colour (see :func:`colour_rows`); with
    ``attribute_ids(name, value)`` (ids, or ``None`` for an attribute it does not index)
    the attribute constraints become part of one ``ids`` condition too.
    """
    f: dict[str, Any] = {}
    c = constraints
    if c.get("brand"):
        f["brand"] = c["brand"]
    if c.get("price_min") is not None:
        f["price_min"] = float(c["price_min"])
    if c.get("price_max") is not None:
        f["price_max"] = float(c["price_max"])
    if c.get("in_stock"):
        f["in_stock"] = True
    ids: set[str] | None = None
    rest: dict[str, Any] = {}
    for name, value in (c.get("attributes") or {}).items():
        got = attribute_ids(name, value) if attribute_ids is not None else None
        if got is None:
            rest[name] = value
        else:
            ids = set(got) if ids is None else ids & set(got)
    if rest:
        f["attributes"] = rest
    if c.get("colour") and colour_ids is not None:
        got = set(colour_ids(c["colour"]))
        ids = got if ids is None else ids & got
    if ids is not None:
        f["ids"] = sorted(ids)
    return f


def _money(x: float) -> str:
    return f"{x:,.2f}"


def describe(constraints: Mapping[str, Any]) -> list[str]:
    """Shopper words for each constraint: ``["brand HP", "under 120.00", "black", "with Wi-Fi"]``."""
    from shopsense.assist._lexicon import field_label

    c = constraints
    out = []
    if c.get("brand"):
        out.append(f"brand {c['brand']}")
    lo, hi = c.get("price_min"), c.get("price_max")
    if lo is not None and hi is not None:
        out.append(f"price {_money(lo)}-{_money(hi)}")
    elif hi is not None:
        out.append(f"up to {_money(hi)}")
    elif lo is not None:
        out.append(f"from {_money(lo)}")
    if c.get("colour"):
        out.append(str(c["colour"]))
    for name, v in (c.get("attributes") or {}).items():
        label = field_label(name)
        vv = str(v).lower()
        out.append(f"with {label}" if vv == "yes" else f"without {label}" if vv == "no" else f"{label} {v}")
    if c.get("in_stock"):
        out.append("in stock")
    return out
