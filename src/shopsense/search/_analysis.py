"""Text analysis for lexical search: one analyzer for products and queries.

Product titles mix units ("1-gal.", "55 in.", '3/4"'), brand spellings
("DeckOver", "Strong-Tie") and dimensions ("2x4"); shoppers write the same
things differently ("1 gallon", "55 inch", "deck over"). Normalising units,
splitting compounds and stemming on both sides is what makes BM25 match them.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

__all__ = ["STOPWORDS", "UNITS", "Analyzer"]

#: a short English stop list (bm25s's list, minus words that carry meaning in product
#: queries: "no", "not" and "in"/"on"/"off" are not dropped because they may be units
#: or attributes; "in" never reaches here as a unit, see ``UNITS``)
STOPWORDS = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
    "of", "on", "or", "such", "that", "the", "their", "then", "there", "these", "they", "this",
    "to", "was", "will", "with", "w", "&",
})

#: unit spellings -> one canonical word (applied only right after a number)
UNITS: dict[str, str] = {
    "in": "inch", "in.": "inch", "inch": "inch", "inches": "inch", '"': "inch", "''": "inch",
    "ft": "foot", "ft.": "foot", "feet": "foot", "foot": "foot", "'": "foot",
    "gal": "gallon", "gal.": "gallon", "gallon": "gallon", "gallons": "gallon",
    "lb": "pound", "lb.": "pound", "lbs": "pound", "lbs.": "pound", "pound": "pound", "pounds": "pound",
    "oz": "ounce", "oz.": "ounce", "ounce": "ounce", "ounces": "ounce",
    "qt": "quart", "qt.": "quart", "quart": "quart", "quarts": "quart",
    "yd": "yard", "yd.": "yard", "yard": "yard", "yards": "yard",
    "sq": "square", "sq.": "square", "cu": "cubic", "cu.": "cubic",
    "mm": "mm", "cm": "cm", "m": "meter", "meter": "meter", "meters": "meter",
    "v": "volt", "volt": "volt", "volts": "volt", "w": "watt", "watt": "watt", "watts": "watt",
    "amp": "amp", "amps": "amp", "a": "amp", "btu": "btu", "gpm": "gpm", "psi": "psi",
    "mah": "mah", "gb": "gb", "tb": "tb", "hz": "hz", "ghz": "ghz", "kg": "kg", "g": "gram",
    "pc": "piece", "pc.": "piece", "pcs": "piece", "piece": "piece", "pack": "pack", "pk": "pack",
    "gauge": "gauge", "ga": "gauge", "ga.": "gauge", "deg": "degree", "degree": "degree",
    "degrees": "degree", "sqft": "square foot", "cuft": "cubic foot", "x": "x",
}

_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z][a-z])")
# a number (int, decimal, fraction, mixed "1-1/2") followed by an optional unit
_NUM_UNIT = re.compile(
    r"(?<![a-z0-9])(\d+(?:[-\s]\d+/\d+)?(?:[./]\d+)?)\s*-?\s*"
    r"(inches|inch|in\.|in\b|feet|foot|ft\.?|''|\"|'|gallons?|gal\.?|pounds?|lbs?\.?|ounces?|oz\.?|"
    r"quarts?|qt\.?|yards?|yd\.?|sq\.?\s*ft\.?|sqft|cu\.?\s*ft\.?|cuft|mm|cm|meters?|m\b|volts?|v\b|"
    r"watts?|w\b|amps?|a\b|btu|gpm|psi|mah|gb|tb|ghz|hz|kg|g\b|pcs|pc\.?|pieces?|pack|pk|gauge|ga\.?|"
    r"degrees?|deg)?",
    re.IGNORECASE,
)
_DIM = re.compile(r"(?<=\d)\s*[x×]\s*(?=\d)", re.IGNORECASE)
_TOKEN = re.compile(r"\d+(?:/\d+|\.\d+)?|[a-z]+")
_SQ = re.compile(r"^sq\.?\s*ft\.?$|^sqft$")
_CU = re.compile(r"^cu\.?\s*ft\.?$|^cuft$")


def _unit_word(unit: str) -> str:
    u = unit.lower()
    if _SQ.match(u):
        return "square foot"
    if _CU.match(u):
        return "cubic foot"
    return UNITS.get(u, UNITS.get(u.rstrip("."), u))


def _normalise_units(text: str) -> str:
    def repl(m: re.Match[str]) -> str:
        num = m.group(1).replace("-", " ")
        unit = m.group(2)
        return f" {num} {_unit_word(unit)} " if unit else f" {num} "

    return _NUM_UNIT.sub(repl, _DIM.sub(" x ", text))


class Analyzer:
    """Lower-cases, normalises units, splits compounds, drops stop words and stems.

    ``analyze(text)`` returns index terms: for "DeckOver" and "Strong-Tie" both the
    parts and the joined word are emitted, so "deck over" and "deckover" both match.
    """

    def __init__(self, language: str = "english", stem: bool = True, stopwords: frozenset[str] = STOPWORDS) -> None:
        self.language = language
        self.stem = stem
        self.stopwords = stopwords
        self._stemmer: Any = None
        if stem:
            import Stemmer  # PyStemmer: the Snowball stemmers in C, fast enough for 50k titles a second

            self._stemmer = Stemmer.Stemmer(language)

    def words(self, text: str) -> list[str]:
        """Unstemmed normalised words (what spelling correction and evidence see)."""
        text = unicodedata.normalize("NFKC", text)
        text = _CAMEL.sub(" ", text)
        text = _normalise_units(text).lower()
        out: list[str] = []
        for chunk in text.split():
            parts = _TOKEN.findall(chunk)
            out.extend(parts)
            alpha = [p for p in parts if p.isalpha()]
            # hyphenated words ("strong-tie") also index joined ("strongtie")
            if len(alpha) > 1 and len(alpha) == len(parts) and "-" in chunk:
                out.append("".join(alpha))
        return [w for w in out if w not in self.stopwords]

    def terms(self, words: list[str]) -> list[str]:
        if self._stemmer is None:
            return list(words)
        return [self._stem(w) for w in words]

    def _stem(self, w: str) -> str:
        return _stem_cached(self._stemmer, w) if w.isalpha() else w

    def analyze(self, text: str) -> list[str]:
        """Index terms of ``text``; camel-case words also yield their joined form."""
        words = self.words(text)
        joined = [m.group(0).lower() for m in re.finditer(r"\b[A-Z]?[a-z]+(?:[A-Z][a-z]+)+\b", text)]
        return self.terms(words + joined)


# Snowball stemming is the hot loop of indexing; product vocabularies repeat words a lot
_STEM_CACHE: dict[tuple[int, str], str] = {}


def _stem_cached(stemmer: Any, w: str) -> str:
    key = (id(stemmer), w)
    s = _STEM_CACHE.get(key)
    if s is None:
        s = stemmer.stemWord(w)
        if len(_STEM_CACHE) < 500_000:
            _STEM_CACHE[key] = s
    return s
