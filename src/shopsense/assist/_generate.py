"""The optional generative back-end and the verifier that keeps it honest.

A generator may only reword the grounded answer; :func:`verify` then checks the new
text against the answer's cited facts: every number (prices, model numbers, ids), every
catalogue brand, every product id, every colour and every attribute value of the cited
products that the new text mentions must already be in the grounded answer or its
facts, and a "no"/"not" may not appear or vanish. Any problem, an error or a timeout
keeps the grounded answer. Nothing here is needed to answer: it is off unless
``Settings.llm_url`` names an OpenAI-compatible endpoint.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from shopsense.assist._lexicon import COLOUR_WORDS, norm
from shopsense.assist._types import Fact
from shopsense.llm import ChatEndpoint

__all__ = ["Generator", "OpenAIGenerator", "numbers_in", "verify"]

log = logging.getLogger(__name__)

_NUMBER = re.compile(r"(?<![A-Za-z])\d+(?:[.,]\d+)*")
_NEGATION = re.compile(r"\b(no|not|never|none|nothing|without|doesn'?t|don'?t|isn'?t|aren'?t|can'?t|cannot|won'?t"
                       r"|hasn'?t|haven'?t|lacks?|out of stock|unavailable)\b|n't\b")
_WORD = re.compile(r"[a-z0-9]+")
_YES_NO = re.compile(r"\b(yes|no)\b")


class Generator(Protocol):
    """Rewords a grounded answer; must not add facts (the verifier checks)."""

    def reword(self, question: str, answer: str, facts: Sequence[Fact]) -> str: ...


def _num_key(raw: str) -> str:
    s = raw
    if "," in s and "." in s:
        s = s.replace(",", "")
    elif "," in s:
        head, _, tail = s.rpartition(",")
        s = s.replace(",", "") if len(tail) == 3 else head.replace(",", "") + "." + tail
    try:
        x = float(s)
    except ValueError:
        return raw
    return f"{x:.2f}".rstrip("0").rstrip(".")


def numbers_in(text: str) -> set[str]:
    """Every number in ``text`` in one form (``1,299.00`` = ``1299``; ``49,95`` = ``49.95``)."""
    out = set()
    for m in _NUMBER.finditer(text):
        raw = m.group(0).rstrip(".,")
        out.add(_num_key(raw))
    return out


def _contains(haystack: str, needle: str) -> bool:
    n = needle.strip().lower()
    return bool(n) and re.search(r"(?<![a-z0-9])" + re.escape(n) + r"(?![a-z0-9])", haystack) is not None


def verify(text: str, grounded: str, facts: Sequence[Fact], *, brands: Iterable[str] = (),
           products: Mapping[str, Any] | None = None, is_product_id: Callable[[str], bool] | None = None) -> list[str]:
    """Problems of ``text`` (a reworded ``grounded`` answer) against the cited ``facts``;
    ``[]`` when every product id, number, brand, colour and attribute value it states is
    grounded.

    ``brands``: the catalogue's brands; ``products``: the cited products by id (their
    other attribute values are what a generator is most tempted to add);
    ``is_product_id``: whether a token is a catalogue id.
    """
    problems: list[str] = []
    if not text or not text.strip():
        return ["empty text"]
    allowed_text = norm(" ".join([grounded, *(f.value for f in facts), *(f.label or "" for f in facts)]))
    low = norm(text)
    allowed_nums = numbers_in(grounded)
    for f in facts:
        allowed_nums |= numbers_in(f.value)
        if f.product_id:
            allowed_nums |= numbers_in(f.product_id)
    for n in sorted(numbers_in(text) - allowed_nums):
        problems.append(f"number {n} is not in the grounded facts")
    cited = {f.product_id for f in facts if f.product_id}
    if is_product_id is not None:
        for tok in set(re.findall(r"[A-Za-z0-9][A-Za-z0-9_.\-]*[A-Za-z0-9]", text)):
            if tok not in cited and is_product_id(tok) and not _contains(allowed_text, tok):
                problems.append(f"product id {tok} is not cited")
    # a brand or colour must be one the answer itself states: a cited product's brand that
    # the answer does not mention ("it beats the Brother one") is a new claim
    said = norm(grounded)
    for b in brands:
        if len(b) >= 3 and _contains(low, norm(b)) and not _contains(said, norm(b)):
            problems.append(f"brand {b} is not in the grounded answer")
    for w in set(_WORD.findall(low)) & COLOUR_WORDS:
        if not _contains(said, w):
            problems.append(f"colour {w} is not in the grounded answer")
    for pid, p in (products or {}).items():
        for k, v in getattr(p, "attributes", {}).items():
            vv = norm(str(v))
            if len(vv) >= 4 and vv not in ("yes", "no") and _contains(low, vv) and not _contains(allowed_text, vv):
                problems.append(f"value {v!r} of {pid} ({k}) is not cited")
    if len(_NEGATION.findall(text.lower())) != len(_NEGATION.findall(grounded.lower())):
        problems.append("the reworded text adds or drops a negation (a yes may have become a no)")
    said = set(_YES_NO.findall(text.lower()))
    if not said <= set(_YES_NO.findall(grounded.lower())):
        problems.append(f"the reworded text says {'/'.join(sorted(said))} where the answer does not")
    return problems


class OpenAIGenerator(ChatEndpoint):
    """Rewords answers through an OpenAI-compatible ``/chat/completions`` endpoint
    (``Settings.llm_url``, ``llm_model``, ``llm_api_key``, as the reason rephraser)."""

    def prompt(self, question: str, answer: str, facts: Sequence[Fact]) -> str:
        cited = [{k: v for k, v in f.as_dict().items() if k in ("product_id", "label", "value", "source")}
                 for f in facts[:40]]
        return ("You are a shop assistant. Reword the ANSWER for the shopper in a friendly, short way. "
                "Use only the ANSWER and the FACTS: do not add products, prices, numbers, brands or properties, "
                "do not change yes to no, keep every number exactly as written. Reply with the reworded answer only."
                f"\nQUESTION:\n{question}\nANSWER:\n{answer}\nFACTS:\n{json.dumps(cited, ensure_ascii=False)}")

    def reword(self, question: str, answer: str, facts: Sequence[Fact]) -> str:
        return self.complete(self.prompt(question, answer, facts))
