"""Product questions answered from the product's own fields, quoting the field.

Which product: a model name or EAN found in the question (the catalogue's own
identifiers), else the product the dialogue points at ("it", "the second one"), else
the top search hit when the question names it (a run of its title words). Which
field: the attribute whose name the question's words cover best (a yes/no question
prefers yes/no attributes), or price, stock, brand, rating, category. When the
product has no such field the answer says the catalogue doesn't list it, never a
guess; a sentence of the description that names the field is quoted instead when
there is one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shopsense.assist._lexicon import (
    COLOUR_WORDS,
    GENERIC,
    CatalogueLexicon,
    field_label,
    norm,
    tokens,
)
from shopsense.assist._types import Fact

__all__ = [
    "FieldMatch",
    "answer_field",
    "asked_field",
    "compare_products",
    "named_window",
    "product_facts",
    "short_title",
    "yes_no",
]

#: built-in fields and the words that ask for them
BUILTINS: dict[str, frozenset[str]] = {
    "price": frozenset({"price", "cost", "expensive", "cheap", "pay", "priced"}),
    "in_stock": frozenset({"stock", "available", "availability", "instock", "buy"}),
    "brand": frozenset({"brand", "make", "maker", "manufacturer", "manufactured", "manufacture", "producer"}),
    "rating": frozenset({"rating", "rated", "review", "star", "score"}),
    "category": frozenset({"category", "kind", "department"}),
}
#: "how heavy" asks for the weight; the catalogue may still not list it
_HOW = {"heavy": "weight", "weigh": "weight", "weight": "weight", "big": "size", "large": "size",
        "small": "size", "long": "length", "wide": "width", "tall": "height", "high": "height",
        "deep": "depth", "fast": "speed", "old": "age", "loud": "noise level", "much": "price"}
_YES_NO = re.compile(r"^(does|do|is|are|was|were|can|could|will|would|has|have|did)\b")
_PHRASE = [
    re.compile(r"\bwhat(?:'s| is| are| was)?\s+(?:the\s+|its\s+)?(.+?)\s+(?:of|for|on|in)\s+(?:the\s+|this|that|it\b)"),
    re.compile(r"\b(?:have|has|support|supports|come with|include|includes|offer)\s+(?:an?\s+|any\s+|the\s+)?"
               r"([a-z0-9 \-]+?)\s*\??$"),
    re.compile(r"\bwhat(?:'s| is| are)?\s+(?:its|the)\s+([a-z0-9 \-]+?)\s*\??$"),
]


def short_title(title: str, limit: int = 60) -> str:
    """The product name before its first comma when that reads as a name, cut at a word."""
    t = " ".join(title.split())
    head = re.split(r",\s|\s\(|;\s", t, maxsplit=1)[0].strip()
    if head != t and len(head.split()) >= 3:
        t = head
    if len(t) <= limit:
        return t
    return t[:limit].rsplit(" ", 1)[0].rstrip(" ,;:-") + "…"


def yes_no(question: str) -> bool:
    """Whether ``question`` asks yes or no ("does it have...", "is it...")."""
    return bool(_YES_NO.match(norm(question).strip()))


def named_window(words: Sequence[str], product: Any) -> tuple[int, int]:
    """The longest run of ``words`` (normalised tokens, generic words kept) that all
    occur in the product's title, brand or model: the part of the question that names it."""
    vocab = set(tokens(" ".join([product.title, product.brand, product.attributes.get("model", "")]),
                       keep_generic=True))
    best = (0, 0)
    i = 0
    while i < len(words):
        if words[i] in vocab:
            j = i
            while j < len(words) and words[j] in vocab:
                j += 1
            # generic words at either edge ("the", "of") do not name the product
            a, b = i, j
            while a < b and tokens(words[a]) == []:
                a += 1
            while b > a and tokens(words[b - 1]) == []:
                b -= 1
            if b - a > best[1] - best[0]:
                best = (a, b)
            i = j
        else:
            i += 1
    return best


def common_run(words: Sequence[str], product: Any) -> int:
    """The longest run of ``words`` that the product's title has in the same order: tells
    "... Stereo Audio Extension Cable" from "... Stereo M/M audio cable" when both hold
    every word of the question's name."""
    title = tokens(f"{product.brand} {product.title}", keep_generic=True)
    best = 0
    prev = [0] * (len(title) + 1)
    for w in words:
        cur = [0] * (len(title) + 1)
        for j, t in enumerate(title, 1):
            if w == t:
                cur[j] = prev[j - 1] + 1
                best = max(best, cur[j])
        prev = cur
    return best


@dataclass(frozen=True)
class FieldMatch:
    """The field a question asks for. ``name``: ``price`` / ``in_stock`` / ``brand`` /
    ``rating`` / ``category`` / ``attributes.<name>``; ``None`` with ``phrase`` when the
    question asks for something no field is named after (``"weight"``)."""

    name: str | None
    label: str
    score: float = 0.0
    value_word: str | None = None  # "is it black?": the value asked about


def asked_field(words: Sequence[str], product: Any, lexicon: CatalogueLexicon, yes_no_q: bool,
                question: str = "") -> FieldMatch | None:
    """The field the question's remaining ``words`` (product name removed) ask about."""
    # "how much" / "how heavy" ask for a field by a word that is otherwise generic
    q = {_HOW.get(w, w) for w in tokens(" ".join(words), keep_generic=True) if w in _HOW or w not in GENERIC}
    if "made" in q and re.search(r"\bmade (?:of|from|out of)\b", norm(question)):
        q = (q - {"made"}) | {"material"}
    if "weight" in q or "size" in q:
        q -= {"price"}  # "how much does it weigh"
    if not q:
        return None
    # candidates are ranked by: how many of the question's words they cover, whether they
    # cover all of them, whether the product has the field (a built-in field it always has),
    # whether the field's whole name is in the question, and whether a yes/no question meets
    # a yes/no field; "brand compatibility" beats "brand" for "the brand compatibility of X",
    # and "black toner page yield" (on the product) beats "page yield" (not on it)
    best: tuple[tuple[int, ...], str] | None = None
    for name, vocab in BUILTINS.items():
        covered = q & vocab
        if covered:
            type_ok = (name == "in_stock") == yes_no_q or name != "in_stock" and not yes_no_q
            key = (1, int(len(covered) == len(q)), 1, 1, int(type_ok), 0)
            if best is None or key > best[0]:
                best = (key, name)
    for attr, toks in lexicon.attr_tokens.items():
        if not toks:
            continue
        covered = toks & q
        if not covered:
            continue
        name_full = covered == toks
        asked_full = covered == q
        if not (name_full or asked_full or len(covered) >= 2):
            continue
        key = (len(covered), int(asked_full), int(attr in product.attributes), int(name_full),
               int((attr in lexicon.boolean_attrs) == yes_no_q), -(len(toks) - len(covered)))
        if best is None or key > best[0]:
            best = (key, f"attributes.{attr}")
    colour = next((w for w in q if w in COLOUR_WORDS), None)
    if colour and yes_no_q and best is None:
        attr = next((a for a in lexicon.colour_attrs if a in product.attributes), None)
        name = f"attributes.{attr}" if attr else (f"attributes.{lexicon.colour_attrs[0]}" if lexicon.colour_attrs
                                                  else None)
        return FieldMatch(name, "colour", 1.0, value_word=colour)
    if best is not None:
        return FieldMatch(best[1], field_label(best[1]), float(best[0][0]))
    return FieldMatch(None, _phrase(question, q), 0.0)


def _phrase(question: str, q: set[str]) -> str:
    """What an unknown field is called in the question ("weight", "battery life")."""
    t = norm(question).strip()
    m = re.search(r"\bhow (heavy|big|large|small|long|wide|tall|high|deep|fast|old|loud)\b", t)
    if m:
        return _HOW[m.group(1)]
    if re.search(r"\bweigh", t):
        return "weight"
    for pat in _PHRASE:
        m = pat.search(t)
        if m:
            words = [w for w in m.group(1).split() if w not in {"the", "a", "an", "its", "it"}]
            if words and len(words) <= 5:
                return " ".join(words)
    return " ".join(sorted(q)) or "that"


def _fmt_price(p: Any) -> str:
    return f"{p.price:,.2f} {p.currency}".strip()


def answer_field(product: Any, match: FieldMatch, yes_no_q: bool) -> tuple[str, list[Fact], bool]:
    """(answer text, cited facts, answered) for one product and field. ``answered`` is False
    when the catalogue does not hold the answer (the text says so)."""
    title = short_title(product.title)
    pid = product.id
    if match.name is None:
        return (f"The catalogue doesn't list the {match.label} of {title}, so I can't tell you that.",
                [Fact("absent", "", pid, None, match.label)], False)
    if match.name == "price":
        if product.price is None:
            return (f"The catalogue doesn't list a price for {title}.", [Fact("absent", "", pid, "price", "price")],
                    False)
        return (f"{title} costs {_fmt_price(product)} (catalogue field “price”).",
                [Fact("field", f"{product.price:.2f}", pid, "price", "price")], True)
    if match.name == "in_stock":
        state = "in stock" if product.in_stock else "out of stock"
        lead = ("Yes, " if product.in_stock else "No, ") if yes_no_q else ""
        return (f"{lead}{title} is {state} (catalogue field “in stock”: {'yes' if product.in_stock else 'no'}).",
                [Fact("field", "yes" if product.in_stock else "no", pid, "in_stock", "in stock")], True)
    if match.name == "brand":
        if not product.brand:
            return (f"The catalogue doesn't list the brand of {title}.", [Fact("absent", "", pid, "brand", "brand")],
                    False)
        return (f"{title} is made by {product.brand} (catalogue field “brand”).",
                [Fact("field", product.brand, pid, "brand", "brand")], True)
    if match.name == "rating":
        if product.rating is None:
            return (f"The catalogue doesn't list a rating for {title}.",
                    [Fact("absent", "", pid, "rating", "rating")], False)
        return ((f"{title} is rated {product.rating:g} out of 5 by {product.rating_count:,} shoppers "
                f"(catalogue field “rating”)."), [Fact("field", f"{product.rating:g}", pid, "rating", "rating")], True)
    if match.name == "category":
        if not product.category:
            return (f"The catalogue doesn't list a category for {title}.",
                    [Fact("absent", "", pid, "category", "category")], False)
        path = " > ".join(product.category)
        return (f"{title} is listed under {path} (catalogue field “category”).",
                [Fact("field", path, pid, "category", "category")], True)
    attr = match.name.split(".", 1)[1]
    label = field_label(match.name)
    value = product.attributes.get(attr)
    if value is None:
        quote = _description_quote(product, match)
        if quote is not None:
            where, text = quote
            return (f"The catalogue has no “{label}” field for {title}, but its {where} says: “{text}”.",
                    [Fact("field", text, pid, where, where)], True)
        if yes_no_q and match.value_word is None:
            return (f"The catalogue doesn't say whether {title} has {label}, so I can't tell you.",
                    [Fact("absent", "", pid, match.name, label)], False)
        return ((f"The catalogue doesn't list the {match.label if match.value_word else label} of {title}, "
                "so I can't tell you."), [Fact("absent", "", pid, match.name, label)], False)
    fact = [Fact("field", value, pid, match.name, label)]
    v = value.strip().lower()
    if match.value_word is not None:
        has = match.value_word in tokens(value, keep_generic=True)
        return (f"{'Yes' if has else 'No'}: the {label} of {title} is {value} (catalogue field “{label}”).", fact, True)
    if v in ("yes", "y", "true"):
        lead = "Yes: " if yes_no_q else ""
        return f"{lead}{title} has {label} (catalogue field “{label}”: yes).", fact, True
    if v in ("no", "n", "false"):
        lead = "No: " if yes_no_q else ""
        return f"{lead}{title} does not have {label} (catalogue field “{label}”: no).", fact, True
    return f"The {label} of {title} is {value} (catalogue field “{label}”).", fact, True


def _description_quote(product: Any, match: FieldMatch) -> tuple[str, str] | None:
    """A sentence of the description (or the title) that names every word of the field."""
    if match.name is None or match.value_word is not None:
        return None
    want = tokens(field_label(match.name))
    if not want:
        return None
    # the field's name as a phrase, followed by a value ("Weight: 2 kg", "page yield of 6000
    # pages"); a lone word is not enough ("Color LaserJet" says nothing of the product's colour)
    phrase = r"\b" + r"\W+".join(re.escape(w) for w in want) + r"\w*\s*(?::|=|is\b|of\b|up to\b)\s*\S"
    for where, text in (("description", product.description), ("title", product.title)):
        for sent in re.split(r"(?<=[.!?;])\s+|\n+", text or ""):
            s = sent.strip()
            if s and len(s) <= 300 and re.search(phrase, norm(s)):
                return where, s
    return None


def product_facts(product: Any, n_attrs: int = 6) -> tuple[str, list[Fact]]:
    """A short grounded description of one product: price, brand, stock and a few attributes."""
    title = short_title(product.title, 90)
    facts = [Fact("product", product.title, product.id, "title", "title")]
    parts = []
    if product.price is not None:
        parts.append(f"price {_fmt_price(product)}")
        facts.append(Fact("field", f"{product.price:.2f}", product.id, "price", "price"))
    if product.brand:
        parts.append(f"brand {product.brand}")
        facts.append(Fact("field", product.brand, product.id, "brand", "brand"))
    parts.append("in stock" if product.in_stock else "out of stock")
    facts.append(Fact("field", "yes" if product.in_stock else "no", product.id, "in_stock", "in stock"))
    shown = 0
    for k, v in product.attributes.items():
        if k.lower() in ("ean", "upc", "gtin", "sku") or shown >= n_attrs or len(v) > 60:
            continue
        label = field_label(f"attributes.{k}")
        parts.append(f"{label}: {v}")
        facts.append(Fact("field", v, product.id, f"attributes.{k}", label))
        shown += 1
    return f"{title} — " + "; ".join(parts) + ".", facts


def compare_products(products: Sequence[Any], max_rows: int = 14) -> tuple[str, list[Fact], dict[str, Any]]:
    """A side-by-side table of the products' fields and a sentence on where they differ."""
    names = [short_title(p.title, 40) for p in products]
    rows: list[list[str]] = []
    facts: list[Fact] = [Fact("product", p.title, p.id, "title", "title") for p in products]

    def add(label: str, field: str, values: list[str | None]) -> None:
        rows.append([label, *[v if v is not None else "—" for v in values]])
        for p, v in zip(products, values):
            facts.append(Fact("field", v, p.id, field, label) if v is not None else Fact("absent", "", p.id, field,
                                                                                          label))

    add("price", "price", [f"{p.price:.2f}" if p.price is not None else None for p in products])
    add("brand", "brand", [p.brand or None for p in products])
    add("in stock", "in_stock", ["yes" if p.in_stock else "no" for p in products])
    if any(p.rating is not None for p in products):
        add("rating", "rating", [f"{p.rating:g}" if p.rating is not None else None for p in products])
    seen: dict[str, int] = {}
    for p in products:
        for k in p.attributes:
            if k.lower() not in ("ean", "upc", "gtin", "sku"):
                seen[k] = seen.get(k, 0) + 1
    for k in sorted(seen, key=lambda k: (-seen[k], list(seen).index(k)))[: max_rows - len(rows)]:
        add(field_label(f"attributes.{k}"), f"attributes.{k}", [p.attributes.get(k) for p in products])
    diffs = [r for r in rows if len(set(r[1:])) > 1]
    same = [r[0] for r in rows if len(set(r[1:])) == 1 and r[1] != "—"]
    if diffs:
        bits = []
        for r in diffs[:4]:
            bits.append(f"{r[0]} (" + ", ".join(f"{n}: {v}" for n, v in zip(names, r[1:])) + ")")
        text = "They differ in " + "; ".join(bits) + "."
    else:
        text = "The catalogue lists the same values for both."
    if same:
        text += " Same " + ", ".join(same[:4]) + "."
    table = {"ids": [p.id for p in products], "columns": names, "rows": rows}
    return text, facts, table
