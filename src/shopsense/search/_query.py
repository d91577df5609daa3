"""Query understanding: spelling correction against the catalogue vocabulary,
synonyms (a shop-editable file plus compounds mined from the catalogue) and
extraction of price, colour, brand, size and attribute constraints."""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from shopsense.errors import require
from shopsense.search._analysis import Analyzer

__all__ = ["COLOURS", "ParsedQuery", "QueryParser", "load_synonyms"]

log = logging.getLogger(__name__)

COLOURS = frozenset({
    "red", "blue", "green", "yellow", "black", "white", "grey", "gray", "silver", "gold", "pink",
    "purple", "orange", "brown", "beige", "navy", "teal", "turquoise", "ivory", "cream", "tan",
    "bronze", "copper", "chrome", "brass", "nickel", "maroon", "burgundy", "charcoal", "espresso",
    "walnut", "oak", "cherry", "mahogany", "khaki", "olive", "lime", "aqua", "violet", "magenta",
    "almond", "bisque", "biscuit", "clear", "transparent", "multicolor", "multicolour",
})

# possessive quantifiers: "30 inch" must not backtrack into "3" + "0 inch"
_NUM = r"\$?\s*(\d++(?:[.,]\d+)?+)\s*(?:\$|dollars?|usd|eur|euros?|€|£)?"
_NOT_UNIT = r"(?!\s*(?:in\b|inch|inches|ft\b|feet|foot|gal|lb|oz|mm|cm|v\b|volt|w\b|watt|amp|\"|'|x\b|%|btu|gb|tb))"
_PRICE_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\bbetween\s+" + _NUM + r"\s*(?:and|-|to)\s*" + _NUM + _NOT_UNIT, re.IGNORECASE), "range"),
    (re.compile(r"\$\s*(\d+(?:\.\d+)?)\s*(?:-|to)\s*\$?\s*(\d+(?:\.\d+)?)", re.IGNORECASE), "range"),
    (re.compile(r"\b(\d+(?:\.\d+)?)\s*(?:-|to)\s*(\d+(?:\.\d+)?)\s*(?:\$|dollars?|usd|eur|euros?)", re.IGNORECASE), "range"),
    (re.compile(r"(?:\b(?:under|below|less\s+than|cheaper\s+than|max(?:imum)?|up\s+to|at\s+most|no\s+more\s+than)|<=?)\s*"
                + _NUM + _NOT_UNIT, re.IGNORECASE), "max"),
    (re.compile(r"(?:\b(?:over|above|more\s+than|at\s+least|min(?:imum)?|from)|>=?)\s*" + _NUM + _NOT_UNIT, re.IGNORECASE), "min"),
]
_SIZE = re.compile(r"(?<![\w/.])(\d+(?:\.\d+)?|\d+/\d+)\s+(inch|foot|gallon|pound|ounce|quart|yard|mm|cm|meter|volt|watt|amp|gb|tb)\b")
_SIZE_UNITS = {"inch", "foot", "gallon", "pound", "ounce", "quart", "yard", "mm", "cm", "meter", "volt", "watt",
               "amp", "gb", "tb"}


def load_synonyms(path: str | Path) -> tuple[list[set[str]], dict[str, set[str]]]:
    """Read a Solr-style synonyms file: ``a, b, c`` (equivalent) or ``a, b => c`` (one way)."""
    groups: list[set[str]] = []
    oneway: dict[str, set[str]] = {}
    for raw in Path(path).read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip().lower()
        if not line:
            continue
        if "=>" in line:
            left, right = line.split("=>", 1)
            targets = {t.strip() for t in right.split(",") if t.strip()}
            for s in (t.strip() for t in left.split(",")):
                if s:
                    oneway.setdefault(s, set()).update(targets)
        else:
            g = {t.strip() for t in line.split(",") if t.strip()}
            if len(g) > 1:
                groups.append(g)
    return groups, oneway


@dataclass
class ParsedQuery:
    """What the engine understood from a query (returned to the caller as ``info["query"]``)."""

    original: str
    text: str  # corrected text, constraint phrases removed (what retrieval sees)
    corrections: dict[str, str] = field(default_factory=dict)
    synonyms: dict[str, list[str]] = field(default_factory=dict)  # query phrase -> added terms
    constraints: dict[str, Any] = field(default_factory=dict)
    filters: dict[str, Any] = field(default_factory=dict)  # the constraints applied as hard filters
    boosts: dict[str, Any] = field(default_factory=dict)  # the constraints applied as boosts
    category: str | None = None
    category_confidence: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class QueryParser:
    """Fit on the catalogue, then ``parse(query)``.

    Parameters
    ----------
    synonyms_path: shop-editable synonyms file (Solr format); optional.
    mine_compounds: add "dish washer" <-> "dishwasher" pairs found in the catalogue.
    protected_words: words never "corrected" although absent from the catalogue
        (e.g. the encoder's whole-word vocabulary, so "sofa" is not turned into "soft").
    max_edit: largest edit distance a correction may have (1 for words of <= 5 letters).
    """

    def __init__(self, analyzer: Analyzer | None = None, synonyms_path: str | Path | None = None,
                 mine_compounds: bool = True, protected_words: Iterable[str] = (), max_edit: int = 2,
                 min_word_count: int = 1) -> None:
        self.analyzer = analyzer or Analyzer()
        self.synonyms_path = synonyms_path
        self.mine_compounds = mine_compounds
        self.protected_words = frozenset(w.lower() for w in protected_words)
        self.max_edit = max_edit
        self.min_word_count = min_word_count
        self.word_counts_: dict[str, int] = {}
        self.brands_: dict[str, str] = {}  # lowercase phrase -> display brand
        self.attr_values_: dict[str, tuple[str, str]] = {}  # phrase -> (attribute, value)
        self.compounds_: dict[str, str] = {}  # "dish washer" <-> "dishwasher", both directions
        self.has_prices_: bool = False
        self.colour_attr_: str | None = None
        self._symspell: Any = None
        self._close: dict[tuple[str, int], list[str]] = {}  # close_words' answers, per word
        self._frequent: list[str] | None = None
        self._groups: list[set[str]] = []
        self._oneway: dict[str, set[str]] = {}

    # -- fitting ---------------------------------------------------------------
    def fit(self, products: Sequence[Any]) -> QueryParser:
        counts: Counter[str] = Counter()
        brands: dict[str, str] = {}
        attrs: Counter[tuple[str, str, str]] = Counter()
        prices = False
        for p in products:
            counts.update(self.analyzer.words(" ".join([p.title, p.brand, " ".join(p.category),
                                                         " ".join(p.attributes.values())])))
            if p.brand:
                brands.setdefault(p.brand.lower().strip(), p.brand)
            for k, v in p.attributes.items():
                vl = v.lower().strip()
                if 2 <= len(vl) <= 30 and len(vl.split()) <= 3 and not re.fullmatch(r"[\d.,/ ]+", vl):
                    attrs[(vl, k, v)] += 1
            prices = prices or p.price is not None
        self.word_counts_ = {w: c for w, c in counts.items() if c >= self.min_word_count and w.isalpha()}
        self.brands_ = brands
        best: dict[str, tuple[int, str, str]] = {}
        for (vl, k, v), c in attrs.items():
            if vl not in best or c > best[vl][0]:
                best[vl] = (c, k, v)
        self.attr_values_ = {vl: (k, v) for vl, (c, k, v) in best.items()}
        colour_keys = Counter(k for (vl, k, v) in attrs if k.lower() in ("color", "colour"))
        self.colour_attr_ = colour_keys.most_common(1)[0][0] if colour_keys else None
        self.has_prices_ = prices
        self.compounds_ = self._mine_compounds() if self.mine_compounds else {}
        self._load_synonyms()
        self._symspell = None
        self._close, self._frequent = {}, None
        return self

    def _mine_compounds(self) -> dict[str, str]:
        # a catalogue word that is two other frequent catalogue words glued together
        # ("dishwasher" = "dish" + "washer"): shoppers type either form
        wc = self.word_counts_
        out: dict[str, str] = {}
        for w, c in wc.items():
            if len(w) < 7 or c < 2:
                continue
            for i in range(3, len(w) - 2):
                a, b = w[:i], w[i:]
                if wc.get(a, 0) >= 3 and wc.get(b, 0) >= 3:
                    out[f"{a} {b}"] = w
                    out.setdefault(w, f"{a} {b}")
                    break
        return out

    def _load_synonyms(self) -> None:
        self._groups, self._oneway = ([], {})
        if self.synonyms_path and Path(self.synonyms_path).exists():
            self._groups, self._oneway = load_synonyms(self.synonyms_path)

    @property
    def symspell(self) -> Any:
        if self._symspell is None:
            sp = require("symspellpy", "search")
            sym = sp.SymSpell(max_dictionary_edit_distance=self.max_edit, prefix_length=7)
            for w, c in self.word_counts_.items():
                if len(w) >= 3:
                    sym.create_dictionary_entry(w, c)
            self._symspell = sym
        return self._symspell

    #: words whose close_words answer is remembered (a shop's zero-result typos repeat)
    CLOSE_CACHE_WORDS = 4096

    def close_words(self, word: str, n: int = 3) -> list[str]:
        """Up to ``n`` catalogue words close to ``word`` (spelling suggestions for a query
        that matched nothing): SymSpell within ``max_edit``, else difflib over the 20,000
        most frequent words. Each answer is remembered: difflib's pass cost ~20 ms a word
        (Home Depot's 17,832 words), and "taladros" or "backbrace" typed again cost it again,
        a 30-ms search in a served worker whose other requests waited behind it."""
        hit = self._close.get((word, n))
        if hit is not None:
            return list(hit)
        out: list[str] = []
        try:
            from symspellpy import Verbosity

            for sug in self.symspell.lookup(word, Verbosity.CLOSEST, max_edit_distance=self.max_edit):
                if sug.term != word and sug.term not in out:
                    out.append(sug.term)
        except ImportError:  # symspellpy is part of the search extra; difflib still answers
            pass
        if len(out) < n:
            import difflib

            if self._frequent is None:
                wc = self.word_counts_
                self._frequent = sorted(wc, key=lambda w: -wc[w])[:20_000]
            out += [w for w in difflib.get_close_matches(word, self._frequent, n=n, cutoff=0.75) if w not in out]
        out = out[:n]
        if len(self._close) < self.CLOSE_CACHE_WORDS:
            self._close[(word, n)] = out
        return list(out)

    # -- parsing ---------------------------------------------------------------
    def correct_word(self, w: str) -> str | None:
        """The catalogue word ``w`` most likely meant, or None to leave it."""
        if (len(w) < 4 or not w.isalpha() or w in self.word_counts_ or w in self.protected_words
                or w in COLOURS):
            return None
        sp = require("symspellpy", "search")
        max_d = 1 if len(w) <= 5 else self.max_edit
        sugg = self.symspell.lookup(w, sp.Verbosity.TOP, max_edit_distance=max_d)
        if sugg and sugg[0].term != w and sugg[0].distance <= max_d:
            return str(sugg[0].term)
        return None

    def parse(self, query: str) -> ParsedQuery:
        original = query
        text = " ".join(query.split())
        constraints: dict[str, Any] = {}
        filters: dict[str, Any] = {}
        boosts: dict[str, Any] = {}

        # price phrases are removed from the text: "under 500" is not a product word
        price: dict[str, float] = {}
        for pat, kind in _PRICE_PATTERNS:
            m = pat.search(text)
            if not m:
                continue
            nums = [float(g.replace(",", ".")) for g in m.groups() if g is not None]
            if kind == "range" and len(nums) >= 2:
                price.update({"min": min(nums[:2]), "max": max(nums[:2])})
            elif kind == "max":
                price["max"] = nums[0]
            elif kind == "min":
                price["min"] = nums[0]
            text = (text[: m.start()] + " " + text[m.end():]).strip()
        if price:
            constraints["price"] = price
            if self.has_prices_:
                filters["price"] = price

        words = [w for w in self.analyzer.words(text)]
        # spelling: only words the catalogue does not know
        corrections: dict[str, str] = {}
        fixed = []
        for w in words:
            c = self.correct_word(w)
            if c:
                corrections[w] = c
            fixed.append(c or w)
        if corrections:
            def _fix(m: re.Match[str]) -> str:
                return corrections.get(m.group(0).lower(), m.group(0))

            text = re.sub(r"[A-Za-z]+", _fix, text)
        words = fixed
        lowered = " ".join(words)

        # brand: the longest catalogue brand phrase in the query
        for n in (3, 2, 1):
            grams = [" ".join(words[i:i + n]) for i in range(len(words) - n + 1)]
            hit = next((g for g in grams if g in self.brands_), None)
            if hit:
                constraints["brand"] = self.brands_[hit]
                boosts["brand"] = self.brands_[hit]
                break
        colours = [w for w in words if w in COLOURS]
        if colours:
            constraints["color"] = colours[0]
            boosts["color"] = colours[0]
        sizes = _SIZE.findall(lowered)
        if sizes:
            constraints["size"] = " ".join(sizes[0])
            boosts["size"] = constraints["size"]
        attrs: dict[str, str] = {}
        for n in (3, 2, 1):
            for i in range(len(words) - n + 1):
                g = " ".join(words[i:i + n])
                if g in self.attr_values_ and g not in self.brands_:
                    k, v = self.attr_values_[g]
                    if k.lower() in ("color", "colour"):
                        continue
                    attrs.setdefault(k, v)
        if attrs:
            constraints["attributes"] = attrs
            boosts["attributes"] = attrs

        synonyms: dict[str, list[str]] = {}
        for n in (2, 1):
            for i in range(len(words) - n + 1):
                g = " ".join(words[i:i + n])
                added: set[str] = set()
                if g in self.compounds_:
                    added.add(self.compounds_[g])
                for grp in self._groups:
                    if g in grp:
                        added |= grp - {g}
                added |= self._oneway.get(g, set())
                if added:
                    synonyms[g] = sorted(added)
        return ParsedQuery(original=original, text=" ".join(text.split()), corrections=corrections,
                           synonyms=synonyms, constraints=constraints, filters=filters, boosts=boosts)

    # -- persistence -----------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"format": "shopsense.query/1", "word_counts": self.word_counts_, "brands": self.brands_,
                "attr_values": {k: list(v) for k, v in self.attr_values_.items()}, "compounds": self.compounds_,
                "has_prices": self.has_prices_, "colour_attr": self.colour_attr_, "max_edit": self.max_edit,
                "synonyms_path": str(self.synonyms_path) if self.synonyms_path else None}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.state()))

    @classmethod
    def load(cls, path: str | Path, analyzer: Analyzer | None = None,
             protected_words: Iterable[str] = ()) -> QueryParser:
        s = json.loads(Path(path).read_text())
        self = cls(analyzer=analyzer, synonyms_path=s["synonyms_path"], protected_words=protected_words,
                   max_edit=s["max_edit"])
        self.word_counts_ = s["word_counts"]
        self.brands_ = s["brands"]
        self.attr_values_ = {k: (v[0], v[1]) for k, v in s["attr_values"].items()}
        self.compounds_ = s["compounds"]
        self.has_prices_ = s["has_prices"]
        self.colour_attr_ = s["colour_attr"]
        self._load_synonyms()
        return self
