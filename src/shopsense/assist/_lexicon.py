"""What the assistant knows of the catalogue's vocabulary, built once per catalogue
snapshot: attribute names as shopper words, which attributes are yes/no, which name a
colour, brands, category names and the model names that identify a product."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["COLOUR_WORDS", "CatalogueLexicon", "field_label", "norm", "tokens"]

#: colour words a shopper types (the search parser's list, minus materials)
COLOUR_WORDS = frozenset({
    "red", "blue", "green", "yellow", "black", "white", "grey", "silver", "gold", "pink", "purple",
    "orange", "brown", "beige", "navy", "teal", "turquoise", "ivory", "cream", "bronze", "copper",
    "chrome", "maroon", "burgundy", "charcoal", "khaki", "olive", "lime", "violet", "magenta", "cyan",
    "transparent", "translucent",
})

_SPELLINGS = [
    (re.compile(r"\bwi[\s-]?fi\b"), "wifi"), (re.compile(r"\bwireless lan\b"), "wifi"),
    (re.compile(r"\bwlan\b"), "wifi"), (re.compile(r"\bgray\b"), "grey"), (re.compile(r"\bcolors?\b"), "colour"),
    (re.compile(r"\bcolours\b"), "colour"), (re.compile(r"\be-mail\b"), "email"),
    (re.compile(r"\bblue[\s-]?tooth\b"), "bluetooth"),
]
_TOKEN = re.compile(r"[a-z0-9]+")
#: words that name no property: dropped from attribute names and questions alike
GENERIC = frozenset({
    "a", "an", "the", "of", "for", "in", "on", "at", "to", "is", "are", "it", "its", "this", "that", "does",
    "do", "did", "has", "have", "had", "what", "which", "who", "how", "whats", "s", "product", "item", "one",
    "be", "can", "will", "with", "and", "or", "there", "any", "me", "i", "you", "your", "tell", "please",
    "about", "much", "many", "by", "from", "as", "than", "x", "my", "we", "our", "same", "get", "know",
    "first", "second", "third", "fourth", "fifth", "last", "top", "1st", "2nd", "3rd", "4th", "5th",
})


def norm(text: str) -> str:
    """Lower case with one spelling per concept (Wi-Fi, WLAN -> wifi; color -> colour)."""
    t = text.lower().replace("’", "'")
    for pat, rep in _SPELLINGS:
        t = pat.sub(rep, t)
    return t


def _singular(w: str) -> str:
    if len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is", "ics")):
        return w[:-3] + "y" if w.endswith("ies") else w[:-1]
    return w


def tokens(text: str, keep_generic: bool = False) -> list[str]:
    """Normalised word tokens (singular), generic words dropped unless ``keep_generic``."""
    out = [_singular(w) for w in _TOKEN.findall(norm(text))]
    return out if keep_generic else [w for w in out if w not in GENERIC]


def squash(text: str) -> str:
    """Letters and digits only, lower case: how model names are compared (``DR-230CL`` = ``dr230cl``)."""
    return re.sub(r"[^a-z0-9]+", "", text.lower())


#: how a built-in product field reads in an answer
_BUILTIN_LABELS = {"price": "price", "in_stock": "stock", "brand": "brand", "rating": "rating",
                   "category": "category"}


def field_label(name: str) -> str:
    """``attributes.wi_fi`` -> ``Wi-Fi``; ``attributes.processor_socket`` -> ``processor socket``."""
    raw = name.split(".", 1)[1] if name.startswith("attributes.") else name
    if raw in _BUILTIN_LABELS:
        return _BUILTIN_LABELS[raw]
    label = raw.replace("__", "_").replace("_", " ").strip()
    label = re.sub(r"\bwi fi\b", "Wi-Fi", label, flags=re.IGNORECASE)
    return label


@dataclass
class CatalogueLexicon:
    """Built from a catalogue's products by :meth:`build`; read-only afterwards."""

    attr_tokens: dict[str, frozenset[str]] = field(default_factory=dict)  # attribute -> its name's tokens
    attr_count: Counter[str] = field(default_factory=Counter)
    boolean_attrs: frozenset[str] = frozenset()
    colour_attrs: tuple[str, ...] = ()
    brands: dict[str, str] = field(default_factory=dict)  # lower-case brand -> as stored
    brand_keys: dict[str, str] = field(default_factory=dict)  # squashed brand -> as stored
    categories: dict[str, str] = field(default_factory=dict)  # singular lower-case leaf -> as stored
    models: dict[str, list[int]] = field(default_factory=dict)  # squashed model / ean -> rows
    max_model_words: int = 6

    @classmethod
    def build(cls, products: Sequence[Any]) -> CatalogueLexicon:
        values: dict[str, set[str]] = defaultdict(set)
        count: Counter[str] = Counter()
        brands: dict[str, str] = {}
        cats: dict[str, str] = {}
        models: dict[str, list[int]] = defaultdict(list)
        longest = 1
        for i, p in enumerate(products):
            for k, v in p.attributes.items():
                count[k] += 1
                if len(values[k]) < 50:
                    values[k].add(str(v).strip().lower())
            if p.brand:
                brands.setdefault(p.brand.lower().strip(), p.brand)
            if p.category:
                leaf = p.category[-1]
                cats.setdefault(" ".join(tokens(leaf, keep_generic=True)), leaf)
            for key in ("model", "mpn", "ean", "sku"):
                v = p.attributes.get(key)
                if v and len(v) <= 60:
                    sq = squash(v)
                    if len(sq) >= 4 or (len(sq) >= 3 and any(c.isdigit() for c in sq)):
                        models[sq].append(i)
                        longest = max(longest, len(_TOKEN.findall(v.lower())))
        attr_tokens = {k: frozenset(tokens(k.replace("_", " "))) for k in count}
        boolean = frozenset(k for k, vs in values.items() if vs and vs <= {"yes", "no", "y", "n", "true", "false"})
        colour = tuple(sorted((k for k in count if "colour" in norm(k.replace("_", " ")) and k not in boolean),
                              key=lambda k: -count[k]))
        return cls(attr_tokens=attr_tokens, attr_count=count, boolean_attrs=boolean, colour_attrs=colour,
                   brands=brands, brand_keys={squash(b): v for b, v in brands.items() if len(squash(b)) > 2},
                   categories=cats, models=dict(models), max_model_words=min(longest, 8))

    def find_models(self, words: Sequence[str]) -> list[tuple[int, int, list[int]]]:
        """Model names in ``words`` (raw lower-case tokens): ``(start, end, rows)`` per match,
        longest first."""
        found = []
        n = len(words)
        for size in range(min(self.max_model_words, n), 0, -1):
            for i in range(n - size + 1):
                key = "".join(words[i:i + size])
                rows = self.models.get(key)
                if rows and not any(s <= i < e or s < i + size <= e for s, e, _ in found):
                    found.append((i, i + size, rows))
        return found

    def brand_in(self, text: str) -> str | None:
        """The longest catalogue brand named in ``text`` (whole words)."""
        words = _TOKEN.findall(text.lower())
        for size in (3, 2, 1):
            for i in range(len(words) - size + 1):
                g = " ".join(words[i:i + size])
                if g in self.brands:
                    return self.brands[g]
                # brands written with punctuation ("StarTech.com", "TP-LINK") typed as one word
                sq = "".join(words[i:i + size])
                if len(sq) > 2 and sq in self.brand_keys:
                    return self.brand_keys[sq]
        return None

    def category_in(self, words: Iterable[str]) -> str | None:
        ws = list(words)
        for size in (3, 2, 1):
            for i in range(len(ws) - size + 1):
                g = " ".join(ws[i:i + size])
                if g in self.categories:
                    return self.categories[g]
        return None
