"""The shopping assistant: one turn in, a grounded answer out.

The assistant is a consumer of the engine, like the HTTP server: it receives a context
with the engine's public methods (``search``, ``complements``, ``product``, ``catalog``,
``encoder``, ``settings``, ``paths``) and builds every sentence from what they return,
so it never states a product, price or property the store does not hold.
"""

from __future__ import annotations

import logging
import re
import statistics
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from shopsense.assist._generate import Generator, OpenAIGenerator, verify
from shopsense.assist._intent import _PRONOUN, Route, ordinals, route
from shopsense.assist._lexicon import COLOUR_WORDS, CatalogueLexicon, norm, tokens
from shopsense.assist._policy import PolicyIndex, policy_index_for, quote
from shopsense.assist._qa import (
    _HOW,
    BUILTINS,
    answer_field,
    asked_field,
    common_run,
    compare_products,
    named_window,
    product_facts,
    short_title,
    yes_no,
)
from shopsense.assist._refine import (
    compile_filters,
    constraint_index,
    describe,
    read_turn,
    strip_filler,
)
from shopsense.assist._sessions import DEFAULT_TTL_S, SessionStore, check_session_id
from shopsense.assist._state import DialogueState
from shopsense.assist._types import Answer, Fact
from shopsense.errors import ValidationError

if TYPE_CHECKING:  # the assistant consumes the engine; it never imports it at run time
    from shopsense.catalog import Catalog, Product
    from shopsense.config import Settings
    from shopsense.home import Home

__all__ = ["AssistContext", "Assistant"]

log = logging.getLogger(__name__)

MAX_TEXT = 1000
#: words that end the name of a product in a question ("the X *of* ...", "does *the* X have")
_EDGE = frozenset({"the", "of", "a", "an", "is", "does", "do", "have", "has", "what", "which", "for", "in", "on",
                   "it", "and", "or", "with", "to", "how", "who"})
#: words every policy question shares: they would match the policy file's own preamble
_POLICY_NOISE = frozenset({"policy", "policies", "shop", "store", "your", "you", "rules", "terms", "what", "is",
                           "the", "are", "do", "does", "how", "can", "i", "my", "a", "an", "about", "tell", "me"})
_LIST_LINES = 5


class AssistContext(Protocol):
    """What the assistant uses of the engine (its public methods)."""

    settings: Settings
    paths: Home

    def search(self, query: str, filters: dict[str, Any] | None = None, user_id: str | None = None,
               k: int = 20, **options: Any) -> Any: ...

    def complements(self, item_id: str, k: int = 10, **options: Any) -> Any: ...

    def product(self, product_id: str) -> Product: ...

    def catalog(self) -> Catalog: ...

    @property
    def encoder(self) -> Any: ...


def _money(p: Any) -> str:
    return f"{p.price:,.2f} {p.currency}".strip() if p.price is not None else "no price listed"


class Assistant:
    """Conversational search, product questions and shop policies over one engine.

    Parameters
    ----------
    ctx: the engine (or anything with the :class:`AssistContext` methods).
    sessions: where dialogue states live; default ``SessionStore(ctx.paths.assistant_sessions)``.
    generator: optional rewording back-end; default from ``ctx.settings.llm_url`` (off when unset).
        Pass ``False`` to switch it off whatever the settings say.
    k: products shown per list.
    ttl_s: seconds a session lives after its last turn.

    Example
    -------
    >>> from shopsense import Engine                                     # doctest: +SKIP
    >>> a = Assistant(Engine("shopsense_home"))                          # doctest: +SKIP
    >>> a.ask("s1", "I need a printer for a small office").text         # doctest: +SKIP
    'I found 12 products for “printer for a small office”. ...'
    >>> a.ask("s1", "only HP").state["constraints"]                      # doctest: +SKIP
    {'brand': 'HP'}
    """

    def __init__(self, ctx: AssistContext, *, sessions: SessionStore | None = None,
                 generator: Generator | bool | None = None, k: int = 8, ttl_s: float = DEFAULT_TTL_S) -> None:
        if not (isinstance(k, int) and not isinstance(k, bool) and 1 <= k <= 50):
            raise ValidationError(f"The 'k' parameter of Assistant must be an int in [1, 50]. Got {k!r} instead.",
                                  field="k")
        self.ctx = ctx
        self.k = k
        self.sessions = sessions or SessionStore(ctx.paths.assistant_sessions, ttl_s=ttl_s)
        if generator is None:
            generator = OpenAIGenerator.from_settings(ctx.settings)
        self.generator: Generator | None = generator or None  # type: ignore[assignment]
        self._lock = threading.RLock()
        self._lexicon: tuple[Any, CatalogueLexicon] | None = None
        self._index: tuple[CatalogueLexicon, Any] | None = None
        self._policies: tuple[Any, PolicyIndex] | None = None

    # -- what the assistant knows -------------------------------------------------
    def lexicon(self) -> CatalogueLexicon:
        """The catalogue's vocabulary, rebuilt when the engine's catalogue snapshot changes."""
        cat = self.ctx.catalog()
        with self._lock:
            if self._lexicon is None or self._lexicon[0] is not cat:
                self._lexicon = (cat, CatalogueLexicon.build(cat.products))
            return self._lexicon[1]

    def _indexes(self) -> tuple[dict[str, set[str]], dict[tuple[str, str], set[str]]]:
        lex = self.lexicon()
        with self._lock:
            if self._index is None or self._index[0] is not lex:
                self._index = (lex, constraint_index(self.ctx.catalog().products, lex))
            return self._index[1]

    def _colour_ids(self, colour: str) -> set[str]:
        return self._indexes()[0].get(norm(colour), set())

    def _attribute_ids(self, name: str, value: Any) -> set[str] | None:
        if name not in self.lexicon().boolean_attrs:
            return None
        return self._indexes()[1].get((name, str(value).strip().casefold()), set())

    def policies(self) -> PolicyIndex:
        """The index of ``<home>/policies`` (rebuilt when a file there changes)."""
        folder = self.ctx.paths.policies
        stamp = tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size)
                      for p in sorted(folder.glob("*")) if p.is_file()) if folder.is_dir() else ()
        with self._lock:
            if self._policies is None or self._policies[0] != stamp:
                encoder = None
                try:
                    encoder = self.ctx.encoder
                except Exception as exc:  # noqa: BLE001 - no encoder: BM25 alone still answers
                    log.info("policy passages without an encoder (%s)", exc)
                self._policies = (stamp, policy_index_for(folder, self.ctx.paths.policy_index, encoder))
            return self._policies[1]

    # -- one turn ---------------------------------------------------------------
    def ask(self, session_id: str, text: str, user_id: str | None = None) -> Answer:
        """Answer one turn of session ``session_id`` and store the updated state.

        ``user_id`` (optional) links the session to a user so :meth:`delete_user` (and
        ``Engine.delete_user``) erases it; sessions without one hold no user id.
        """
        t0 = time.perf_counter()
        check_session_id(session_id)
        if not isinstance(text, str) or len(text) > MAX_TEXT:
            raise ValidationError(f"The 'text' parameter must be a string of at most {MAX_TEXT} characters. "
                                  f"Got {type(text).__name__} of length {len(text) if isinstance(text, str) else '-'}"
                                  " instead.", field="text")
        if user_id is not None and not (isinstance(user_id, str) and 1 <= len(user_id) <= 256):
            raise ValidationError(f"The 'user_id' parameter must be 1 to 256 characters or None. Got {user_id!r} "
                                  "instead.", field="user_id")
        state = self.sessions.get(session_id) or DialogueState()
        answer = self.turn(text, state)
        state.turns += 1
        self.sessions.put(session_id, state, user_id)
        answer.state = state.as_dict()
        if self.generator is not None and answer.intent not in ("smalltalk", "reset"):
            self._reword(text, answer)
        answer.took_ms = round((time.perf_counter() - t0) * 1000.0, 2)
        return answer

    def reset(self, session_id: str) -> int:
        """Forget one session."""
        check_session_id(session_id)
        return self.sessions.delete(session_id)

    def delete_user(self, user_id: str) -> int:
        """Erase every session linked to ``user_id``."""
        return self.sessions.delete_user(user_id)

    def turn(self, text: str, state: DialogueState) -> Answer:
        """The grounded answer to ``text`` given ``state``, which is updated in place."""
        lex = self.lexicon()
        raw = re.findall(r"[a-z0-9]+", text.lower())
        named = self._named(raw)
        t = norm(text)
        words = set(tokens(text))
        asks = bool(words & self._field_words(lex)) or bool(re.search(r"\bhow (heavy|big|long|wide|tall|fast)\b|"
                                                                      r"\bweigh", t))
        question = bool(re.match(r"^(does|do|is|are|what|what's|whats|which|how|who|can|will|has|have)\b", t)) \
            or t.rstrip().endswith("?")
        refers = bool(_PRONOUN.search(t) or ordinals(t)) and bool(state.focus or state.shown)
        if asks and question and not refers and not (named and named[0][3]):
            # a question about a product named in words ("the C2G 3ft Cat5E Snagless Patch"),
            # or by a model name that is a plain word: the search names it when a longer run
            # of its title is in the question
            fields = self._field_words(lex)
            found = self._search_name(text, ignore=fields)
            if found is not None and found[0].id != (named[0][2].id if named else None):
                mine = 0
                if named:  # the model match's own run of title words in the question
                    words_ = tokens(text, keep_generic=True)
                    a, b = named_window(words_, named[0][2])
                    mine = len([w for w in words_[a:b] if tokens(w) and w not in fields])
                if found[1] > mine:
                    named = [(-1, -1, found[0], False)]
        r = route(text, state, lex, names_product=bool(named), asks_field=asks)
        handler = getattr(self, f"_{r.intent}")
        out: Answer = handler(text, state, r, named)
        return out

    # -- helpers ----------------------------------------------------------------
    def _field_words(self, lex: CatalogueLexicon) -> set[str]:
        with self._lock:
            cached = getattr(self, "_fw", None)
            if cached is None or cached[0] is not lex:
                fw: set[str] = set().union(*BUILTINS.values(), _HOW, COLOUR_WORDS)
                for toks in lex.attr_tokens.values():
                    fw |= toks
                self._fw = (lex, fw)
                cached = self._fw
            return cached[1]

    def _named(self, raw: list[str]) -> list[tuple[int, int, Product, bool]]:
        """Products the text names by model or EAN: ``(start, end, product, strong)`` in ``raw``
        tokens, best first. A model with a digit ("C8552A") is strong; one made of plain words
        ("Numeric Keypad") is weak; a match whose brand the text also names comes first."""
        lex = self.lexicon()
        cat = self.ctx.catalog()
        rs = set(raw)
        scored = []
        for start, end, rows in lex.find_models(raw):
            cands = [cat.products[i] for i in rows]
            if len(cands) > 1:  # the same model under several ids: the one whose words the text uses most
                cands.sort(key=lambda p: -len(rs & set(re.findall(r"[a-z0-9]+", (p.title + " " + p.brand).lower()))))
            p = cands[0]
            # one code-like token ("c8552a", "e8400", an EAN) identifies a product; a run of
            # words and numbers ("25ft cat6 550mhz snagless") may be the start of another's name
            tok = raw[start] if end - start == 1 else ""
            strong = bool(re.fullmatch(r"(?=.*[a-z])(?=.*\d)[a-z0-9]{4,}|\d{6,}", tok))
            brand = bool(p.brand) and set(re.findall(r"[a-z0-9]+", p.brand.lower())) <= rs
            # "wrist rest" names a field as often as a product ("does it have wrist rest?")
            field = set(tokens(" ".join(raw[start:end]))) <= self._field_words(lex)
            scored.append(((int(brand), int(strong), int(not field), end - start), (start, end, p, strong)))
        scored.sort(key=lambda x: x[0], reverse=True)
        return [x[1] for x in scored]

    def _products(self, ids: Sequence[str]) -> list[Product]:
        cat = self.ctx.catalog()
        return [cat.products[cat.index[i]] for i in ids if i in cat.index]

    def _pick(self, state: DialogueState, positions: Sequence[int]) -> tuple[list[str], str | None]:
        """Ids at 1-based ``positions`` of the shown list; a message when one is out of range."""
        ids = []
        for p in positions:
            i = len(state.shown) + p if p < 0 else p - 1
            if not 0 <= i < len(state.shown):
                return [], (f"I only showed {len(state.shown)} products." if state.shown
                            else "I haven't shown any products yet; tell me what you are looking for.")
            ids.append(state.shown[i])
        return ids, None

    def _search_name(self, text: str, ignore: frozenset[str] | set[str] = frozenset()) -> tuple[Product, int] | None:
        """The product a question names in words (no model number): the top search hit,
        when a run of at least two of the question's words is in its title; with the run's
        length, not counting the words in ``ignore`` (field names: "usb 2 0 ports" is in
        the title of a USB card, but it is what the question asks about)."""
        q = re.sub(r"^(does|do|is|are|what|what's|whats|which|how|who|can|will|has|have)\b", "", norm(text)).strip()
        if not q:
            return None
        try:  # words name a product: BM25 alone (no query encoding), the engine's own ranking
            res = self.ctx.search(q, k=5, mode="bm25", understand=False)
        except ValidationError:
            return None
        # of the best hits, the one whose title holds the longest run of the question's words
        # ("... Mono RCA" is not "... RCA Type Audio Video Cable", though both match)
        words = tokens(text, keep_generic=True)
        best: tuple[int, int, Product] | None = None
        for h in res.hits:
            if h.product is None:
                continue
            a, b = named_window(words, h.product)
            n = len([w for w in words[a:b] if tokens(w) and w not in ignore])
            run = common_run(words, h.product)
            if b - a >= 2 and n >= 2 and (best is None or (n, run) > best[:2]):
                best = (n, run, h.product)
        return (best[2], best[0]) if best else None

    def _results_answer(self, res: Any, state: DialogueState, lead: str, intent: str) -> Answer:
        hits = [h for h in res.hits if h.product is not None]
        # results no query word matched are "might be related": shown only when nothing else is
        sure = [h for h in hits if not h.evidence.get("low_confidence")]
        loose = bool(hits) and not sure
        products = [h.product for h in (sure or hits)]
        cons = describe(state.constraints)
        understood = {"query": state.query, "constraints": dict(state.constraints), "described": cons}
        q = res.info.get("query") or {}
        if q.get("corrections"):
            understood["corrections"] = q["corrections"]
        if q.get("category"):
            understood["category"] = q["category"]
        with_c = f" ({', '.join(cons)})" if cons else ""
        if not products:
            msg = (f"Nothing in the catalogue matches “{state.query}”{with_c}." +
                   (" Say “any brand”, “any price” or “any colour” to drop a constraint, or start over."
                    if cons else " Try other words."))
            return Answer(msg, intent, understood=understood)
        state.shown = [p.id for p in products]
        state.focus = None
        facts: list[Fact] = []
        lines = []
        for i, p in enumerate(products[:_LIST_LINES], 1):
            lines.append(f"{i}. {short_title(p.title)} — {_money(p)}")
            facts.append(Fact("product", p.title, p.id, "title", "title"))
            if p.price is not None:
                facts.append(Fact("field", f"{p.price:.2f}", p.id, "price", "price"))
        facts.extend(Fact("product", p.title, p.id, "title", "title") for p in products[_LIST_LINES:])
        total = int(res.info.get("total", len(products)) or len(products))
        if loose:
            text = (f"Nothing matches “{state.query}”{with_c} word for word; these might be related:\n"
                    + "\n".join(lines))
        else:
            n = total if total > len(products) and len(sure) == len(hits) else len(products)
            text = (f"{lead} {n} product{'s' if n != 1 else ''} for “{state.query}”{with_c}. "
                    f"{'The best matches' if len(products) > 1 else 'It is'}:\n" + "\n".join(lines))
        return Answer(text, intent, facts=facts, products=products, understood=understood)

    def _run(self, state: DialogueState) -> Any:
        filters = compile_filters(state.constraints, colour_ids=self._colour_ids, attribute_ids=self._attribute_ids)
        query = state.query or " ".join(describe(state.constraints)) or "products"
        return self.ctx.search(query, filters=filters or None, k=self.k)

    # -- intents ----------------------------------------------------------------
    def _search(self, text: str, state: DialogueState, r: Route, named: list[Any]) -> Answer:
        base = strip_filler(text)
        tc = read_turn(base, self.lexicon())
        if not tc.text and not tc.stated:  # "cheaper" with nothing shown yet
            return Answer("Tell me what you are looking for first, e.g. “I need a printer for a small office”.",
                          "search")
        state.query = tc.text or base
        state.constraints = {k: v for k, v in tc.stated.items()}
        if tc.relative:
            state.constraints.pop("price_max", None)
        state.shown, state.focus = [], None
        return self._results_answer(self._run(state), state, "I found", "search")

    def _refine(self, text: str, state: DialogueState, r: Route, named: list[Any]) -> Answer:
        lex = self.lexicon()
        tc = read_turn(text, lex)
        if tc.text:
            new_cat = lex.category_in(tokens(tc.text, keep_generic=True))
            old_cat = lex.category_in(tokens(state.query, keep_generic=True))
            if new_cat and new_cat != old_cat:  # "what about laptops?" is a new search
                return self._search(text, state, r, named)
        c = dict(state.constraints)
        for key in tc.drop:
            if key == "price":
                c.pop("price_min", None)
                c.pop("price_max", None)
            else:
                c.pop(key, None)
        attrs = dict(c.get("attributes") or {})
        for key, v in tc.stated.items():
            if key == "attributes":
                attrs.update(v)
            else:
                c[key] = v
        if attrs:
            c["attributes"] = attrs
        if tc.relative:
            ref = self._reference_price(state)
            if ref is None:
                return Answer("The products I showed have no prices in the catalogue, so I can't look for "
                              f"{'cheaper' if tc.relative == 'cheaper' else 'pricier'} ones.", "refine",
                              understood={"query": state.query, "constraints": dict(state.constraints)})
            if tc.relative == "cheaper":
                c["price_max"] = round(ref - 0.01, 2)
                c.pop("price_min", None) if c.get("price_min", 0) > c["price_max"] else None
            else:
                c["price_min"] = round(ref + 0.01, 2)
                c.pop("price_max", None) if c.get("price_max", float("inf")) < c["price_min"] else None
        if tc.text:
            state.query = f"{state.query} {tc.text}".strip()
        state.constraints = c
        return self._results_answer(self._run(state), state, "Now", "refine")

    def _reference_price(self, state: DialogueState) -> float | None:
        if state.focus:
            p = self._products([state.focus])
            if p and p[0].price is not None:
                return float(p[0].price)
        prices = [p.price for p in self._products(state.shown) if p.price is not None]
        return float(statistics.median(prices)) if prices else None

    def _select(self, text: str, state: DialogueState, r: Route, named: list[Any]) -> Answer:
        ids, err = self._pick(state, r.positions[:1])
        if err:
            return Answer(err, "select")
        p = self._products(ids)[0]
        state.focus = p.id
        desc, facts = product_facts(p)
        return Answer(desc, "select", facts=facts, products=[p])

    def _target(self, text: str, state: DialogueState, r: Route, named: list[Any]) -> tuple[Product | None, str]:
        """The product a turn is about and how it was found."""
        if named:
            return named[0][2], "named" if named[0][0] >= 0 else "search"
        if r.positions:
            ids, _ = self._pick(state, r.positions[:1])
            if ids:
                return self._products(ids)[0], "position"
        if state.focus and self._products([state.focus]):
            return self._products([state.focus])[0], "focus"
        found = self._search_name(text)
        if found is not None:
            return found[0], "search"
        if state.shown and _PRONOUN.search(norm(text)):
            return self._products(state.shown[:1])[0], "first"
        return None, ""

    def _complements(self, text: str, state: DialogueState, r: Route, named: list[Any]) -> Answer:
        target, how = self._target(text, state, r, named)
        if target is None:
            return Answer("Which product do you mean? Pick one from a search first.", "complements")
        state.focus = target.id
        res = self.ctx.complements(target.id, k=min(self.k, 6))
        products = [h.product for h in res.hits if h.product is not None]
        title = short_title(target.title)
        facts = [Fact("product", target.title, target.id, "title", "title")]
        if not products:
            return Answer(f"The shop has no data yet on what goes with {title}.", "complements", facts=facts,
                          products=[target])
        lines = []
        for i, p in enumerate(products[:_LIST_LINES], 1):
            lines.append(f"{i}. {short_title(p.title)} — {_money(p)}")
            facts.append(Fact("product", p.title, p.id, "title", "title"))
            if p.price is not None:
                facts.append(Fact("field", f"{p.price:.2f}", p.id, "price", "price"))
        reason = res.hits[0].reason if res.hits and res.hits[0].reason else ""
        state.shown = [p.id for p in products]
        lead = "the first result, " if how == "first" else ""
        text_out = f"What goes with {lead}{title}" + (f" ({reason.lower()})" if reason else "") + ":\n" + \
            "\n".join(lines)
        return Answer(text_out, "complements", facts=facts, products=products)

    def _compare(self, text: str, state: DialogueState, r: Route, named: list[Any]) -> Answer:
        products: list[Product] = [n[2] for n in named]
        if len(products) < 2 and r.positions:
            ids, err = self._pick(state, r.positions)
            if err:
                return Answer(err, "compare")
            products += [p for p in self._products(ids) if p.id not in {q.id for q in products}]
        if len(products) < 2:
            sides = re.split(r"\b(?:and|vs\.?|versus|or|with|to)\b", re.sub(r"^.*?\b(?:between|compare)\b", "",
                                                                          norm(text)))
            for side in sides:
                if len(products) >= 4 or not side.strip():
                    continue
                found = self._search_name(side)
                if found is not None and found[0].id not in {q.id for q in products}:
                    products.append(found[0])
        if len(products) < 2 and state.focus and state.focus not in {p.id for p in products}:
            products = self._products([state.focus]) + products
        if len(products) < 2 and len(state.shown) >= 2 and not named:
            products = self._products(state.shown[:2])
        if len(products) < 2:
            return Answer("Which two products should I compare? Say e.g. “compare the first two” after a search, "
                          "or name both.", "compare")
        products = products[:4]
        summary, facts, table = compare_products(products)
        head = "Comparing " + " and ".join(short_title(p.title, 40) for p in products) + ". "
        state.focus = None
        return Answer(head + summary, "compare", facts=facts, products=products, table=table)

    def _product_question(self, text: str, state: DialogueState, r: Route, named: list[Any]) -> Answer:
        target, how = self._target(text, state, r, named)
        if target is None:
            return Answer("Which product do you mean? Name it (brand and model) or pick one from a search.",
                          "product_question")
        state.focus = target.id
        words = tokens(text, keep_generic=True)
        if how == "named":  # the model's words, and the brand or title words right around them
            raw = re.findall(r"[a-z0-9]+", text.lower())
            s, e = next((s, e) for s, e, p, _ in named if p.id == target.id)
            vocab = set(re.findall(r"[a-z0-9]+", f"{target.brand} {target.title}".lower()))
            while s > 0 and raw[s - 1] in vocab and raw[s - 1] not in _EDGE:
                s -= 1
            while e < len(raw) and raw[e] in vocab and raw[e] not in _EDGE:
                e += 1
            words = tokens(" ".join(raw[:s] + raw[e:]), keep_generic=True)
        elif how == "search":
            a, b = named_window(words, target)
            words = words[:a] + words[b:]
        yn = yes_no(text)
        match = asked_field(words, target, self.lexicon(), yn, question=text)
        if match is None:  # no field asked: what the catalogue says of it
            desc, facts = product_facts(target)
            return Answer(desc, "product_question", facts=facts, products=[target],
                          understood={"product": target.id, "field": None, "answered": True, "found_by": how})
        body, facts, answered = answer_field(target, match, yn)
        if how == "first":
            body = f"(About the first result.) {body}"
        facts = [Fact("product", target.title, target.id, "title", "title"), *facts]
        out = Answer(body, "product_question", facts=facts, products=[target])
        out.understood = {"product": target.id, "field": match.name, "label": match.label, "answered": answered,
                          "found_by": how}
        return out

    def _policy(self, text: str, state: DialogueState, r: Route, named: list[Any]) -> Answer:
        idx = self.policies()
        if len(idx) == 0:
            return Answer("This shop hasn't published its policies here yet, so I can't answer that; please ask "
                          "the shop's customer service.", "policy")
        words = [w for w in re.findall(r"[\w'-]+", text) if w.lower() not in _POLICY_NOISE]
        hits = idx.search(" ".join(words) or text, k=3)
        if not hits:
            return Answer("The shop's policies don't cover that, so I can't answer it; please ask the shop's "
                          "customer service.", "policy")
        p, _ = hits[0]
        q = quote(p, text)
        facts = [Fact("policy", q, source=f"{p.file}#{p.anchor}", label=p.heading, link=p.link)]
        links = [{"title": p.heading, "href": p.link}]
        text_out = f"From the shop's policy “{p.heading}”: “{q}”"
        return Answer(text_out, "policy", facts=facts, links=links)

    def _handoff(self, text: str, state: DialogueState, r: Route, named: list[Any]) -> Answer:
        msg = ("I can't see orders, accounts or payments, so a person from the shop needs to help you with this.")
        idx = self.policies()
        hits = idx.search("contact customer service email phone", k=1) if len(idx) else []
        if hits and re.search(r"contact|customer service|support", (hits[0][0].heading + hits[0][0].text).lower()):
            p = hits[0][0]
            q = quote(p, "contact customer service email phone")
            return Answer(f"{msg} From the shop's policy “{p.heading}”: “{q}”", "handoff",
                          facts=[Fact("policy", q, source=f"{p.file}#{p.anchor}", label=p.heading, link=p.link)],
                          links=[{"title": p.heading, "href": p.link}])
        return Answer(msg + " Please contact the shop's customer service.", "handoff")

    def _smalltalk(self, text: str, state: DialogueState, r: Route, named: list[Any]) -> Answer:
        t = norm(text).strip(" !.?")
        if re.match(r"^(thanks?|thank you|cheers|great|perfect|awesome|cool|nice|ok|okay)\b", t):
            msg = "You're welcome! Anything else?"
        elif re.match(r"^(bye|goodbye|see you)\b", t):
            msg = "Goodbye, and thanks for visiting!"
        else:
            msg = ("Hello! I can search the catalogue with you (then say “cheaper”, “only HP”, “in black” or "
                   "“show me the second one”), answer questions about a product from its catalogue data, and "
                   "quote the shop's policies on shipping, returns, warranty and payment.")
        return Answer(msg, "smalltalk")

    def _reset(self, text: str, state: DialogueState, r: Route, named: list[Any]) -> Answer:
        state.query, state.constraints, state.shown, state.focus = "", {}, [], None
        return Answer("OK, starting over. What are you looking for?", "reset")

    # -- optional rewording -----------------------------------------------------
    def _reword(self, question: str, answer: Answer) -> None:
        assert self.generator is not None
        try:
            new = self.generator.reword(question, answer.grounded_text, answer.facts)
        except Exception as exc:  # noqa: BLE001 - the grounded answer is always a good answer
            log.warning("generative back-end failed, keeping the grounded answer: %s", exc)
            answer.verifier = [f"generator error: {type(exc).__name__}"]
            return
        cat = self.ctx.catalog()
        lex = self.lexicon()
        cited = {f.product_id for f in answer.facts if f.product_id}
        problems = verify(new, answer.grounded_text, answer.facts, brands=lex.brands.values(),
                          products={pid: cat.products[cat.index[pid]] for pid in cited if pid in cat.index},
                          is_product_id=lambda t: t in cat.index)
        answer.verifier = problems
        if not problems:
            answer.text, answer.generated = new, True
