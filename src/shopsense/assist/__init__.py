"""The shopping assistant: conversational search with state, product questions answered
from the catalogue, the shop's policies quoted from its own files, and an optional
generative back-end that may only reword grounded answers (a verifier checks it).

Rules, not a language model, route each turn (:func:`route`); every answer is built from
what the engine's public methods return and cites the facts it rests on (:class:`Fact`).
``Engine.ask(session_id, text)`` is the entry point most callers want.
"""

from __future__ import annotations

from shopsense.assist._assistant import Assistant, AssistContext
from shopsense.assist._generate import Generator, OpenAIGenerator, numbers_in, verify
from shopsense.assist._intent import INTENTS, Route, ordinals, route
from shopsense.assist._lexicon import CatalogueLexicon, field_label
from shopsense.assist._policy import (
    Passage,
    PolicyIndex,
    chunk_policy,
    policy_files,
    policy_index_for,
    render_policy_html,
)
from shopsense.assist._refine import compile_filters, describe, read_turn, satisfies, strip_filler
from shopsense.assist._sessions import (
    DEFAULT_TTL_S,
    SessionStore,
    check_session_id,
    delete_user_sessions,
)
from shopsense.assist._state import DialogueState
from shopsense.assist._types import Answer, Fact

__all__ = [
    "DEFAULT_TTL_S", "INTENTS", "Answer", "AssistContext", "Assistant", "CatalogueLexicon", "DialogueState", "Fact",
    "Generator", "OpenAIGenerator", "Passage", "PolicyIndex", "Route", "SessionStore", "check_session_id",
    "chunk_policy", "compile_filters", "delete_user_sessions", "describe", "field_label", "numbers_in", "ordinals",
    "policy_files", "policy_index_for", "read_turn", "render_policy_html", "route", "satisfies", "strip_filler",
    "verify",
]
