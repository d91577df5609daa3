"""Intent routing without a language model: rules over the words of the turn, the
catalogue's vocabulary and the dialogue state.

Intents: ``search`` (a new search), ``refine`` (narrow or change the current one),
``select`` ("show me the second one"), ``compare``, ``complements`` ("what goes with
it?"), ``product_question``, ``policy``, ``smalltalk``, ``handoff`` (a person is needed:
orders, accounts, complaints) and ``reset``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from shopsense.assist._lexicon import CatalogueLexicon, norm, tokens
from shopsense.assist._state import DialogueState

__all__ = ["INTENTS", "Route", "ordinals", "route"]

INTENTS = ("search", "refine", "select", "compare", "complements", "product_question", "policy", "smalltalk",
           "handoff", "reset")

_HANDOFF = re.compile(
    r"\b(human|real person|a person|someone real|an agent|agent|representative|operator|customer (?:service|care|support)"
    r"|support team|speak (?:to|with)|talk (?:to|with) (?:someone|a|an|somebody)|call me|complain|complaint"
    r"|my order|my orders|my parcel|my package|my delivery|order (?:number|no|#|status)|where is my|has ?n[o']t arrived"
    r"|not arrived|never arrived|hasn't come|arrived (?:damaged|broken)|my account|(?:forgot|reset) (?:my )?password"
    r"|(?:can'?t|cannot|unable to) (?:log|sign) ?in|charged twice|double charged|cancel my|my refund|unsubscribe)\b")
_SMALLTALK = re.compile(
    r"^(hi|hello|hey|hiya|good (?:morning|afternoon|evening)|thanks?|thank you(?: very much)?|cheers|bye|goodbye"
    r"|see you|who are you|what are you|what can you do|how does this work|help|ok|okay|great|cool|nice|perfect"
    r"|awesome|yes|no|hmm+|how are you)(?:[\s,]+(?:there|so much|a lot|bot|assistant))?[\s!.?]*$")
_RESET = re.compile(r"^(start over|start again|new search|reset|clear( everything| all)?|forget (?:it|that|everything))"
                    r"[\s!.?]*$")
#: policy words that are rarely product words
_POLICY = re.compile(
    r"\b(ship(?:s|ping|ped)?|deliver(?:y|ies)|refund(?:s|ed)?|warrant(?:y|ies)|payments?|paypal|credit card"
    r"|debit card|invoice|cancell?ation|tracking number|vat|customs|import dut(?:y|ies)|click and collect"
    r"|opening hours|gift card|voucher|discount code|promo code|policy|policies|faq)\b")
#: policy words that are also product words ("return air grille", "track lighting", "privacy fence")
_POLICY_WEAK = re.compile(
    r"\b(return(?:s|ing|ed)?|exchange|track|privacy|personal data|contact|pay(?:ing)?|pick ?up|cancel|deliver(?:ed)?"
    r"|guarantee(?:s|d)?|terms|send)\b")
#: a shopper asking the shop something, not typing a product query
_ASKING = re.compile(
    r"(\?\s*$|^(?:can|could|do|does|how|what|when|where|is|are|will|may|which|who)\b|\b(?:can i|may i|do you|your|my"
    r"|i want to|i'd like to|i would like to|is there a)\b)")
_COMPARE = re.compile(r"\b(compare|comparison|difference(?:s)? between|versus|vs\.?|which (?:one )?is better)\b")
#: "what goes with it?": a reference to a product is part of every pattern ("rack accessory"
#: and "cable to go with a router" are searches)
_COMPLEMENTS = re.compile(
    r"\b(goes? (?:well )?with (?:it|this|that|them|these|those|the (?:first|second|third|last))|go together"
    r"|what else (?:do|should|would|could) (?:i|we) (?:need|buy|get)|accessor(?:y|ies) (?:for|to go with|that go with)"
    r" (?:it|this|that|them|the (?:first|second|third|last))|complete (?:it|this|the set|my (?:set|order|cart))"
    r"|to go with (?:it|this|that)|pairs? (?:well )?with (?:it|this|that)|compatible with (?:it|this|that)"
    r"|match(?:es|ing)? (?:it|this|that))\b")
_SEARCH_CUE = re.compile(
    r"^(?:(?:do|did) you (?:have|sell|carry|stock)|are there|is there (?:a|an|any)|have you got|show me (?!the\b)"
    r"|find me|find|i need|i want|i'm looking for|im looking for|i am looking for|looking for|search(?: for)?"
    r"|get me|i'd like|i would like|recommend|suggest)\b")
_QUESTION = re.compile(
    r"^(does|do|is|are|was|what|what's|whats|which|how|who|can|could|will|would|has|have|tell me|where|why|when)\b")
_PRONOUN = re.compile(r"\b(it|its|it's|this|that|this one|that one|these|those|them|they)\b")
_REFINE_CUE = re.compile(
    r"^(?:only|just|but|and|also|with|without|in|from|by|make it|made by|preferably|rather|something|anything"
    r"|cheaper|less expensive|more expensive|pricier|under|below|over|above|less than|more than|between|not|no"
    r"|any|in stock|available|what about|how about)\b")
_ORDINAL = {"first": 1, "1st": 1, "top": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4,
            "fifth": 5, "5th": 5, "sixth": 6, "6th": 6, "seventh": 7, "7th": 7, "eighth": 8, "8th": 8,
            "last": -1, "latter": -1, "former": 1}
_COUNT = {"two": 2, "three": 3, "four": 4, "both": 2, "2": 2, "3": 3, "4": 4}
_ORD_RE = re.compile(r"\b(first|1st|top|second|2nd|third|3rd|fourth|4th|fifth|5th|sixth|6th|seventh|7th|eighth|8th"
                     r"|last|latter|former)\b(?:\s+(two|three|four|2|3|4))?")
_NUM_RE = re.compile(r"(?:\b(?:number|no\.?|item|option|result)\s*|#)(\d{1,2})\b")
_BARE_NUMS = re.compile(r"^(?:compare\s+)?(\d{1,2})(?:\s*(?:,|and|&|vs\.?|with)\s*(\d{1,2}))+\s*$")


@dataclass
class Route:
    """The intent and what the rules found on the way (positions of shown items, ...)."""

    intent: str
    positions: list[int] = field(default_factory=list)  # 1-based positions in the shown list (-1 = last)
    notes: dict[str, Any] = field(default_factory=dict)


def ordinals(text: str) -> list[int]:
    """Positions named in ``text``: "the second one" -> [2]; "the first two" -> [1, 2];
    "#3", "number 3" -> [3]; "compare 1 and 3" -> [1, 3]; "the last" -> [-1]."""
    t = norm(text)
    out: list[int] = []
    for m in _ORD_RE.finditer(t):
        start = _ORDINAL[m.group(1)]
        n = _COUNT.get(m.group(2) or "", 1)
        out.extend(range(start, start + n) if start > 0 else [start])
    out.extend(int(m.group(1)) for m in _NUM_RE.finditer(t))
    m = _BARE_NUMS.match(t.strip())
    if m:
        out.extend(int(x) for x in re.findall(r"\d{1,2}", t))
    if re.search(r"\b(both|the two|these two|those two|them)\b", t) and not out:
        out = [1, 2]
    seen: list[int] = []
    for x in out:
        if x not in seen and x != 0:
            seen.append(x)
    return seen


def route(text: str, state: DialogueState, lexicon: CatalogueLexicon, *, names_product: bool = False,
          asks_field: bool = False) -> Route:
    """The intent of one turn.

    ``names_product``: the turn names a catalogue product (a model name was found);
    ``asks_field``: it names a product property (an attribute name or price, stock, brand...).
    Both come from :mod:`shopsense.assist._qa`, which knows the catalogue.
    """
    t = " ".join(norm(text).split()).strip()
    if not t or not re.search(r"[a-z0-9]", t):
        return Route("smalltalk")
    has_state = bool(state.query or state.shown or state.focus)
    if _RESET.match(t):
        return Route("reset")
    if _SMALLTALK.match(t):
        return Route("smalltalk")
    if _HANDOFF.search(t):
        return Route("handoff")
    pos = ordinals(t) if state.shown else []
    question = bool(_QUESTION.match(t)) or t.endswith("?")
    search_cue = bool(_SEARCH_CUE.match(t))
    if _COMPARE.search(t):
        return Route("compare", positions=pos)
    if _COMPLEMENTS.search(t) and (state.shown or state.focus or names_product):
        return Route("complements", positions=pos)
    asking = bool(_ASKING.search(t))
    policy = bool(_POLICY.search(t)) and (asking or len(t.split()) <= 3) or bool(_POLICY_WEAK.search(t)) and asking
    if policy and not (names_product and asks_field):
        return Route("policy")
    if has_state and state.query and not question and _REFINE_CUE.match(t):
        return Route("refine")  # "with numeric keypad" narrows the list, whatever product is called so
    refers = bool(pos) or (bool(_PRONOUN.search(t)) and has_state)
    if question and not search_cue and (names_product or (refers and (asks_field or not pos))):
        return Route("product_question", positions=pos)
    if pos and not search_cue:
        return Route("select", positions=pos)
    if names_product and asks_field:
        return Route("product_question")
    if has_state and state.query and not search_cue:
        words = tokens(t)
        if _REFINE_CUE.match(t) or len(words) <= 3:
            return Route("refine")
    return Route("search")
