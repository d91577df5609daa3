"""Shopping assistant benchmark: product questions, multi-turn refinement, grounding and
latency, each beside a peer run in the same process.

* **Product questions** on Icecat products *not used in development*: the Icecat catalogue
  is split by a salted hash of the product id and only the test half is used, minus the
  2,000 products of the bundled demo (developed on). Questions come from templates per
  attribute type (yes/no, number, text; price, brand, stock) on the product's real
  attributes, plus the same templates for attributes the product lacks (attributes its
  category has elsewhere, whose words its title and description do not contain) and
  its weight (never in the catalogue). Scored: accuracy on answerable questions (right
  product, right field, the stored value in the answer), share of unanswerable ones
  declined. Peer: the top search hit's best-matching line (title, description sentence or
  "name: value"), the usual "answer with the top hit's text" baseline.
* **Multi-turn refinement**: sessions scripted from real catalogue values: a category
  name, then three refinements (brand, price, colour, yes/no attribute) whose values are
  drawn from the facet counts of the products that match so far, so every constraint
  set has at least two products. After each turn: the share of result lists in which
  every product meets every constraint stated so far (an empty list fails). Peer: each
  turn searched on its own (stateless). Home Depot: real queries cut in two turns
  ("I need <head>", "make it <tail>"); NDCG@10 of the final list against the judgments,
  peer = the second turn searched alone, reference = the whole query in one search.
* **Grounding**: every product and every fact of every answer checked against the store
  (and the quoted policy file), without and with a generative back-end: a local fake
  OpenAI-compatible endpoint that rewords every answer and, every other call, invents a
  price, a colour, a brand or flips yes/no. The verifier must catch every lie.
* **Latency**: assistant turns on the demo home (no language model), after a warm-up.

    python bench/assistant.py                       # full run
    python bench/assistant.py --quick               # smaller samples (a smoke run)
    python bench/assistant.py --demo-home PATH      # an already built demo home

Homes are built once under bench/.cache/assistant/. Writes bench/results/assistant.json
and bench/results/assistant.png.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import platform
import random
import re
import shutil
import sys
import threading
import time
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from shopsense.assist import Assistant, OpenAIGenerator, SessionStore, numbers_in
from shopsense.datasets import (
    demo_paths,
    load_homedepot_judgments,
    load_homedepot_products,
    load_icecat_products,
)
from shopsense.engine import Engine
from shopsense.errors import NotFoundError
from shopsense.metrics import ndcg_at_k

log = logging.getLogger("bench.assistant")

CACHE = HERE / ".cache" / "assistant"
RESULTS = HERE / "results"
POLICY = HERE.parent / "data" / "demo" / "policies" / "shop_policies.md"
SALT = "shopsense-assistant-split-v1"
IDENTIFIERS = {"model", "ean", "upc", "gtin", "sku", "mpn"}
COLOURS = {"black", "white", "grey", "gray", "silver", "blue", "red", "green", "yellow", "orange", "pink",
           "purple", "brown", "beige", "gold", "cyan", "magenta", "transparent"}
STOP = {"the", "a", "an", "of", "is", "does", "do", "have", "has", "what", "which", "how", "who", "in", "it",
        "for", "to", "and", "with", "on", "cost", "much"}


# -- the Icecat split -----------------------------------------------------------------------
def split_of(product_id: str) -> str:
    """``"test"`` or ``"dev"`` by a salted hash of the id (half each)."""
    h = hashlib.blake2b(f"{SALT}:{product_id}".encode(), digest_size=8).digest()
    return "test" if h[0] % 2 else "dev"


def icecat_test_products(n: int) -> tuple[list[Any], dict[str, Any]]:
    demo_ids = {json.loads(line)["id"] for line in (HERE.parent / "data" / "demo" / "icecat_products.jsonl")
                .read_text().splitlines()}
    allp = load_icecat_products(max_attributes=16)
    usable = [p for p in allp if p.price and p.category and len(p.attributes) > 2]
    test = [p for p in usable if split_of(p.id) == "test" and p.id not in demo_ids]
    test.sort(key=lambda p: hashlib.blake2b(f"{SALT}:order:{p.id}".encode(), digest_size=8).hexdigest())
    meta = {"icecat_products": len(allp), "usable (price, category, >2 attributes)": len(usable),
            "test half": sum(1 for p in usable if split_of(p.id) == "test"),
            "dev half": sum(1 for p in usable if split_of(p.id) == "dev"),
            "test minus the demo's 2,000 (developed on)": len(test), "in the bench shop": min(n, len(test)),
            "split": f"blake2b('{SALT}:' + id)[0] % 2 == 1 -> test"}
    return test[:n], meta


def build_home(path: Path, products: list[Any], events: Any = None) -> Path:
    if (path / "index" / "manifest.json").exists():
        return path
    shutil.rmtree(path, ignore_errors=True)
    with Engine(path) as eng:
        eng.add_products(products)
        if events:
            eng.add_events(events)
        t0 = time.time()
        eng.build_index()
        log.info("built %s (%d products) in %.0fs", path.name, len(products), time.time() - t0)
    return path


def with_policy(eng: Engine) -> None:
    eng.paths.policies.mkdir(parents=True, exist_ok=True)
    shutil.copy(POLICY, eng.paths.policies / POLICY.name)


# -- grounding: every product and fact against the store -----------------------------------
def grounding_problems(ans: Any, eng: Engine, brands: set[str]) -> list[str]:
    out = []
    for p in ans.products:
        try:
            s = eng.product(p.id)
        except NotFoundError:
            out.append(f"product {p.id} not in the store")
            continue
        if (s.title, s.price, s.brand) != (p.title, p.price, p.brand):
            out.append(f"product {p.id} differs from the store")
    allowed_nums = numbers_in(ans.grounded_text)
    for f in ans.facts:
        allowed_nums |= numbers_in(f.value) | numbers_in(f.product_id or "")
        if f.kind == "policy":
            text = " ".join((eng.paths.policies / (f.source or "").split("#")[0]).read_text().split())
            if " ".join(f.value.split()) not in text:
                out.append("policy quote not in the file")
            continue
        if not f.product_id:
            continue
        try:
            p = eng.product(f.product_id)
        except NotFoundError:
            out.append(f"fact about unknown product {f.product_id}")
            continue
        fld = f.field or ""
        if f.kind == "absent":
            if fld.startswith("attributes.") and fld[11:] in p.attributes:
                out.append(f"says {fld} is not listed but it is")
            continue
        stored = {"title": p.title, "price": None if p.price is None else f"{p.price:.2f}", "brand": p.brand,
                  "in_stock": "yes" if p.in_stock else "no", "category": " > ".join(p.category),
                  "rating": None if p.rating is None else f"{p.rating:g}"}
        if fld.startswith("attributes."):
            ok = p.attributes.get(fld[11:]) == f.value
        elif fld == "title":
            ok = f.value in p.title
        elif fld == "description":
            ok = f.value in p.description
        else:
            ok = stored.get(fld) == f.value
        if not ok:
            out.append(f"fact {fld}={f.value!r} of {f.product_id} is not the stored value")
    # the text itself: no number, brand or colour that the grounded facts do not hold
    text = ans.text
    for n in numbers_in(text) - allowed_nums:
        out.append(f"number {n} in the text is not grounded")
    grounded_low = ans.grounded_text.lower()  # brands and colours: only those the answer states
    low = text.lower()
    for b in brands:
        bl = b.lower()
        if len(bl) >= 3 and re.search(rf"(?<![a-z0-9]){re.escape(bl)}(?![a-z0-9])", low) and bl not in grounded_low:
            out.append(f"brand {b} in the text is not grounded")
    for c in COLOURS:
        if re.search(rf"\b{c}\b", low) and not re.search(rf"\b{c}\b", grounded_low):
            out.append(f"colour {c} in the text is not grounded")
    return out


# -- a local fake OpenAI-compatible endpoint ------------------------------------------------
class FakeLLM:
    """Rewords every answer; in ``lying`` mode every other call adds an invented price, a
    colour, a brand, or flips yes/no. ``lies`` records what it invented on which call."""

    KINDS = ("price", "colour", "brand", "flip")

    BRANDS = ("Brother", "Canon", "Epson", "Xerox", "Lexmark", "Samsung")

    def __init__(self, mode: str = "lying") -> None:
        self.mode, self.calls, self.lies = mode, 0, {}
        self.log: list[str | None] = []  # per call: the kind of lie told, or None
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                prompt = body["messages"][-1]["content"]
                m = re.search(r"\nANSWER:\n(.*)\nFACTS:\n", prompt, re.DOTALL)
                answer = m.group(1) if m else ""
                with outer.lock:
                    n = outer.calls
                    outer.calls += 1
                text = "Happy to help! " + answer
                kind = None
                if outer.mode == "lying" and n % 2 == 1:
                    kind = outer.KINDS[(n // 2) % len(outer.KINDS)]
                    if kind == "price":
                        text += " It is on sale today for 7.77 USD."
                    elif kind == "colour":
                        text += " It also comes in turquoise."
                    elif kind == "brand":  # a brand the answer does not name
                        other = next(b for b in outer.BRANDS if b.lower() not in answer.lower())
                        text += f" Shoppers say it beats the {other} one."
                    elif re.search(r"\bYes\b", text):
                        text = re.sub(r"\bYes\b", "No", text, count=1)
                    elif re.search(r"\bNo\b", text):
                        text = re.sub(r"\bNo\b", "Yes", text, count=1)
                    else:
                        text += " It is out of stock."
                    outer.lies[answer.strip()[:200] + f"#{n}"] = kind
                with outer.lock:
                    outer.log.append(kind)
                out = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out.encode())))
                self.end_headers()
                self.wfile.write(out.encode())

            def log_message(self, *a: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- product questions ---------------------------------------------------------------------
def label(attr: str) -> str:
    return attr.replace("__", "_").replace("_", " ").strip()


def name_words(attr: str) -> set[str]:
    """The distinctive words of an attribute name: singular, without "product" and one-letter
    parts. A missing attribute whose words are all in an attribute the product has is
    ambiguous ("connector s" vs "connector 2", "product colour" vs "printing colours"), so it
    makes no unanswerable question."""
    out = set()
    for w in label(attr).lower().split():
        w = w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w
        if len(w) > 1 and w != "product":
            out.add(w)
    return out


def is_bool(values: set[str]) -> bool:
    return bool(values) and values <= {"yes", "no"}


def is_number(v: str) -> bool:
    return re.fullmatch(r"[\d.,]+", v.strip()) is not None


def product_name(p: Any, titles: list[str] | None = None, models: Counter[str] | None = None) -> str | None:
    """How a shopper names ``p``: brand and model when the model is short and no other
    product has the same brand and model, else the shortest start of its title (6 to 12
    words) that no other title in the shop starts with; ``None`` when even 12 words are
    ambiguous."""
    m = p.attributes.get("model", "")
    if m and len(m) <= 30 and p.brand and (models is None or models[f"{p.brand} {m}".lower()] == 1):
        return f"{p.brand} {m}"
    words = p.title.split()
    for n in range(6, 13):
        head = " ".join(words[:n]).rstrip(",;-")
        if titles is None or sum(1 for t in titles if t.startswith(head)) == 1:
            return head
        if n >= len(words):
            break
    return None


def words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in STOP}


#: the first named products of the test shop were looked at while the assistant was
#: developed (their failures were read); the reported questions skip them
INSPECTED = 300


def make_questions(products: list[Any], n_products: int, rng: random.Random,
                   skip: int = 0) -> list[dict[str, Any]]:
    values: dict[str, set[str]] = defaultdict(set)
    by_cat: dict[str, Counter[str]] = defaultdict(Counter)
    for p in products:
        for k, v in p.attributes.items():
            if len(values[k]) < 60:
                values[k].add(v.strip().lower())
            by_cat[p.category[0]][k] += 1
    titles = [p.title for p in products]
    models = Counter(f"{p.brand} {p.attributes.get('model', '')}".lower() for p in products)
    picked = [(p, name) for p in products if (name := product_name(p, titles, models))][skip:skip + n_products]
    qs: list[dict[str, Any]] = []
    for i, (p, name) in enumerate(picked):
        own = [k for k in p.attributes if k not in IDENTIFIERS and len(p.attributes[k]) <= 60]
        rng.shuffle(own)
        for k in own[:3]:
            lab = label(k)
            if is_bool(values[k]):
                q, kind = f"Does the {name} have {lab}?", "yes/no"
            elif is_number(p.attributes[k]):
                q, kind = f"What is the {lab} of the {name}?", "number"
            else:
                q, kind = (f"What is the {lab} of the {name}?" if i % 2 else f"Which {lab} does the {name} have?",
                           "text")
            qs.append({"q": q, "pid": p.id, "field": f"attributes.{k}", "gold": p.attributes[k], "kind": kind,
                       "answerable": True})
        builtin = [("How much does the {} cost?", "price", f"{p.price:.2f}", "price"),
                   ("Who makes the {}?", "brand", p.brand, "brand"),
                   ("Is the {} in stock?", "in_stock", "yes", "stock")][i % 3]
        qs.append({"q": builtin[0].format(name), "pid": p.id, "field": builtin[1], "gold": builtin[2],
                   "kind": builtin[3], "answerable": True})
        # unanswerable: attributes of its category it lacks, that no own attribute contains
        # and that its title and description do not mention
        own_words = [name_words(k) for k in p.attributes]
        text_words = words(p.title + " " + p.description)
        missing = [k for k, c in by_cat[p.category[0]].most_common() if c >= 3 and k not in p.attributes
                   and k not in IDENTIFIERS and not any(name_words(k) <= ow for ow in own_words)
                   and not (name_words(k) & text_words)]
        for k in missing[:2]:
            lab = label(k)
            q = f"Does the {name} have {lab}?" if is_bool(values[k]) else f"What is the {lab} of the {name}?"
            qs.append({"q": q, "pid": p.id, "field": f"attributes.{k}", "gold": None,
                       "kind": "yes/no" if is_bool(values[k]) else "missing attribute", "answerable": False})
        if i % 2 == 0:
            qs.append({"q": f"What is the weight of the {name}?" if i % 4 == 0 else f"How heavy is the {name}?",
                       "pid": p.id, "field": "weight", "gold": None, "kind": "weight", "answerable": False})
    return qs


def norm_text(s: str) -> str:
    return " ".join(str(s).lower().replace("\\n", " ").split())


def assistant_correct(ans: Any, q: dict[str, Any]) -> bool:
    u = ans.understood or {}
    if u.get("product") != q["pid"]:
        return False
    if not q["answerable"]:
        return u.get("answered") is False
    if not u.get("answered") or u.get("field") != q["field"]:
        return False
    # the first yes or no the shopper reads (a reworded answer may open with a greeting)
    lead = (re.findall(r"\b(Yes|No)\b", ans.text) or [""])[0]
    if q["field"] == "in_stock":
        return lead == "Yes"
    gold = q["gold"].lower()
    if gold in ("yes", "no") and q["kind"] == "yes/no":
        return lead == ("Yes" if gold == "yes" else "No")
    return norm_text(q["gold"]) in norm_text(ans.text) or (q["field"] == "price" and
                                                           f"{float(q['gold']):,.2f}" in ans.text)


def peer_answer(eng: Engine, question: str) -> tuple[str | None, str]:
    """The top hit and its line that shares most words with the question ("" = nothing)."""
    res = eng.search(question, k=1)
    if not res.hits:
        return None, ""
    p = res.hits[0].product
    lines = [p.title, *re.split(r"(?<=[.!?;])\s+", p.description or "")]
    lines += [f"{label(k)}: {v}" for k, v in p.attributes.items()]
    lines += [f"price: {p.price:.2f}" if p.price is not None else "", f"brand: {p.brand}",
              f"in stock: {'yes' if p.in_stock else 'no'}"]
    qw = words(question) - words(f"{p.brand} {p.title} {p.attributes.get('model', '')}")
    best, best_n = "", 0
    for line in lines:
        n = len(qw & words(line))
        if n > best_n:
            best, best_n = line, n
    return p.id, best


def peer_correct(pid: str | None, line: str, q: dict[str, Any]) -> bool:
    if not q["answerable"]:
        return line == ""
    if pid != q["pid"] or not line:
        return False
    gold = norm_text(q["gold"])
    if q["field"].startswith("attributes."):
        return norm_text(line) == f"{label(q['field'][11:])}: {gold}" or (q["kind"] != "yes/no" and
                                                                        gold in norm_text(line))
    return gold in norm_text(line)


def wilson(k: int, n: int) -> list[float]:
    if n == 0:
        return [0.0, 0.0]
    z, p = 1.96, k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return [round(max(0.0, c - h), 4), round(min(1.0, c + h), 4)]


def lie_outcome(fake: FakeLLM | None, before: int, ans: Any, told: Counter[str], caught: Counter[str]) -> None:
    """Count the lie the fake told during one turn (if any) and whether it was kept out."""
    if fake is None:
        return
    for kind in fake.log[before:]:
        if kind is not None:
            told[kind] += 1
            caught[kind] += (not ans.generated) and bool(ans.verifier)


def run_questions(eng: Engine, qs: list[dict[str, Any]], generator: Any, brands: set[str],
                  with_peer: bool, tag: str, fake: FakeLLM | None = None) -> dict[str, Any]:
    a = Assistant(eng, sessions=SessionStore(CACHE / f"sessions-{tag}.sqlite3", ttl_s=3600), generator=generator)
    rows = []
    grounded = 0
    problems: Counter[str] = Counter()
    lies_caught = 0
    told: Counter[str] = Counter()
    caught: Counter[str] = Counter()
    for i, q in enumerate(qs):
        before = len(fake.log) if fake else 0
        ans = a.ask(f"{tag}-q{i}", q["q"])
        lie_outcome(fake, before, ans, told, caught)
        ok = assistant_correct(ans, q)
        probs = grounding_problems(ans, eng, brands)
        grounded += not probs
        problems.update(p.split(" ")[0] for p in probs)
        if generator is not None and ans.verifier and not ans.verifier[0].startswith("generator error"):
            lies_caught += 1
        row = {"kind": q["kind"], "answerable": q["answerable"], "ok": ok}
        if with_peer:
            pid, line = peer_answer(eng, q["q"])
            row["peer_ok"] = peer_correct(pid, line, q)
        rows.append(row)
    a.sessions.close()
    out = summarise_questions(rows, with_peer)
    out["grounded"] = {"answers": len(qs), "fully_grounded": grounded, "share": round(grounded / len(qs), 4),
                       "problems": dict(problems)}
    if generator is not None:
        out["verifier_rejections"] = lies_caught
        out["lies"] = {"told": dict(told), "kept_out": dict(caught)}
    return out


def summarise_questions(rows: list[dict[str, Any]], with_peer: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, ans in (("answerable", True), ("unanswerable", False)):
        sub = [r for r in rows if r["answerable"] is ans]
        k = sum(r["ok"] for r in sub)
        key = "accuracy" if ans else "declined"
        out[name] = {"questions": len(sub), key: round(k / max(1, len(sub)), 4), f"{key}_ci95": wilson(k, len(sub))}
        if with_peer:
            kp = sum(r["peer_ok"] for r in sub)
            out[name][f"peer_{key}"] = round(kp / max(1, len(sub)), 4)
            out[name][f"peer_{key}_ci95"] = wilson(kp, len(sub))
        by_kind: dict[str, Any] = {}
        for kind in sorted({r["kind"] for r in sub}):
            s2 = [r for r in sub if r["kind"] == kind]
            by_kind[kind] = {"n": len(s2), "assistant": round(sum(r["ok"] for r in s2) / len(s2), 4)}
            if with_peer:
                by_kind[kind]["peer"] = round(sum(r["peer_ok"] for r in s2) / len(s2), 4)
        out[name]["by_kind"] = by_kind
    return out


# -- multi-turn refinement -----------------------------------------------------------------
def colour_words(p: Any, colour_attrs: list[str]) -> set[str]:
    vals = [p.attributes[a] for a in colour_attrs if a in p.attributes]
    text = " ".join(vals) if vals else p.title
    return {w for w in re.findall(r"[a-z]+", text.lower())}


def meets(p: Any, cons: dict[str, Any], colour_attrs: list[str]) -> bool:
    if "brand" in cons and p.brand.lower() != cons["brand"].lower():
        return False
    if "price_max" in cons and (p.price is None or p.price > cons["price_max"]):
        return False
    if "colour" in cons and cons["colour"] not in colour_words(p, colour_attrs):
        return False
    for k, v in cons.get("attributes", {}).items():
        if p.attributes.get(k, "").lower() != v:
            return False
    return True


def script_sessions(products: list[Any], n_sessions: int, rng: random.Random,
                    colour_attrs: list[str]) -> list[dict[str, Any]]:
    """Sessions from real values: a category, then three refinements drawn from the facet
    counts of the products matching so far (each step keeps >= 2 products)."""
    values: dict[str, set[str]] = defaultdict(set)
    for p in products:
        for k, v in p.attributes.items():
            values[k].add(v.lower())
    booleans = {k for k, v in values.items() if is_bool(v)}
    cats = Counter(p.category[0] for p in products)
    seeds = [c for c, n in cats.most_common() if n >= 20]
    sessions = []
    attempts = 0
    while len(sessions) < n_sessions and attempts < n_sessions * 20:
        attempts += 1
        cat = seeds[attempts % len(seeds)]
        pool = [p for p in products if p.category[0] == cat]
        turns, cons = [f"I need a {cat}"], {}
        kinds = ["brand", "price", "colour", "attribute"]
        rng.shuffle(kinds)
        for kind in kinds:
            if len(turns) == 4:
                break
            if kind == "brand":
                c = Counter(p.brand for p in pool if p.brand)
                opts = [b for b, n in c.items() if n >= 2]
                if not opts:
                    continue
                b = rng.choice(sorted(opts))
                turns.append(f"only {b}")
                cons["brand"] = b
            elif kind == "price":
                prices = sorted(p.price for p in pool if p.price is not None)
                if len(prices) < 4:
                    continue
                cap = math.ceil(prices[len(prices) // 2])
                turns.append(f"under {cap} dollars")
                cons["price_max"] = float(cap)
            elif kind == "colour":
                c = Counter(w for p in pool for w in colour_words(p, colour_attrs) if w in COLOURS - {"gray"})
                opts = [w for w, n in c.items() if n >= 2]
                if not opts:
                    continue
                w = rng.choice(sorted(opts))
                turns.append(f"in {w}")
                cons["colour"] = w
            else:
                c = Counter((k, p.attributes[k].lower()) for p in pool for k in p.attributes if k in booleans)
                opts = [kv for kv, n in c.items() if n >= 2 and kv[0] not in cons.get("attributes", {})]
                if not opts:
                    continue
                k, v = rng.choice(sorted(opts))
                turns.append(f"{'with' if v == 'yes' else 'without'} {label(k)}")
                cons.setdefault("attributes", {})[k] = v
            pool = [p for p in pool if meets(p, cons, colour_attrs)]
            assert len(pool) >= 2, (turns, cons)
        if len(turns) == 4:
            steps = []
            acc: dict[str, Any] = {}
            for t in turns[1:]:  # the constraints stated after each turn, in the bench's own reading
                if t.startswith("only "):
                    acc = {**acc, "brand": t[5:]}
                elif t.startswith("under "):
                    acc = {**acc, "price_max": float(t.split()[1])}
                elif t.startswith("in "):
                    acc = {**acc, "colour": t[3:]}
                else:
                    k = next(k for k in cons["attributes"] if label(k) == t.split(" ", 1)[1])
                    acc = {**acc, "attributes": {**acc.get("attributes", {}), k: cons["attributes"][k]}}
                steps.append(dict(acc))
            sessions.append({"category": cat, "turns": turns, "constraints": [{}, *steps]})
    return sessions


def run_sessions(eng: Engine, sessions: list[dict[str, Any]], generator: Any, brands: set[str],
                 colour_attrs: list[str], with_peer: bool, tag: str, k: int = 8,
                 fake: FakeLLM | None = None) -> dict[str, Any]:
    a = Assistant(eng, sessions=SessionStore(CACHE / f"sessions-{tag}.sqlite3", ttl_s=3600), generator=generator,
                  k=k)
    n_turns = 4
    sat = np.zeros(n_turns)
    empty = np.zeros(n_turns)
    peer_sat = np.zeros(n_turns)
    on_topic = peer_on_topic = 0
    grounded = total = 0
    problems: Counter[str] = Counter()
    told: Counter[str] = Counter()
    caught: Counter[str] = Counter()
    rejected = 0
    for i, s in enumerate(sessions):
        for t, (text, cons) in enumerate(zip(s["turns"], s["constraints"])):
            before = len(fake.log) if fake else 0
            ans = a.ask(f"{tag}-s{i}", text)
            lie_outcome(fake, before, ans, told, caught)
            rejected += bool(generator) and bool(ans.verifier) and not ans.verifier[0].startswith("generator error")
            total += 1
            probs = grounding_problems(ans, eng, brands)
            grounded += not probs
            problems.update(p.split(" ")[0] for p in probs)
            ps = ans.products
            empty[t] += not ps
            sat[t] += bool(ps) and all(meets(p, cons, colour_attrs) for p in ps)
            if t == n_turns - 1:
                on_topic += bool(ps) and ps[0].category[:1] == [s["category"]]
            if with_peer:
                res = eng.search(text, k=k)
                pp = [h.product for h in res.hits]
                peer_sat[t] += bool(pp) and all(meets(p, cons, colour_attrs) for p in pp)
                if t == n_turns - 1:
                    peer_on_topic += bool(pp) and pp[0].category[:1] == [s["category"]]
    a.sessions.close()
    n = len(sessions)
    out: dict[str, Any] = {
        "sessions": n,
        "satisfied_after_turn": [round(x / n, 4) for x in sat],
        "after_three_refinements": round(sat[-1] / n, 4), "after_three_ci95": wilson(int(sat[-1]), n),
        "empty_lists_after_turn": [round(x / n, 4) for x in empty],
        "final_top1_in_seed_category": round(on_topic / n, 4),
        "grounded": {"answers": total, "fully_grounded": grounded, "share": round(grounded / max(1, total), 4),
                     "problems": dict(problems)},
    }
    if generator:
        out["verifier_rejections"] = rejected
        out["lies"] = {"told": dict(told), "kept_out": dict(caught)}
    if with_peer:
        out["peer_satisfied_after_turn"] = [round(x / n, 4) for x in peer_sat]
        out["peer_after_three_refinements"] = round(peer_sat[-1] / n, 4)
        out["peer_after_three_ci95"] = wilson(int(peer_sat[-1]), n)
        out["peer_final_top1_in_seed_category"] = round(peer_on_topic / n, 4)
    return out


def homedepot(n_queries: int, n_distractors: int, rng: random.Random) -> dict[str, Any]:
    j = load_homedepot_judgments()
    by_q = j.by_query()
    cands = [q for q, g in by_q.items() if len(q.split()) >= 3 and len(g) >= 4 and max(g.values()) >= 2.5
             and not re.search(r"\d", q.split()[0])]
    cands.sort()
    rng.shuffle(cands)
    queries = cands[:n_queries]
    judged = {pid for q in queries for pid in by_q[q]}
    products = load_homedepot_products()
    rest = [p for p in products if p.id not in judged]
    rng.shuffle(rest)
    shop = [p for p in products if p.id in judged] + rest[:n_distractors]
    return {"queries": queries, "judgments": {q: by_q[q] for q in queries}, "products": shop,
            "meta": {"queries": len(queries), "judged products": len(judged), "distractors": n_distractors,
                     "selection": ">= 3 words, >= 4 judged products, one judged >= 2.5; seeded shuffle"}}


def run_homedepot(eng: Engine, hd: dict[str, Any], brands: set[str]) -> dict[str, Any]:
    a = Assistant(eng, sessions=SessionStore(CACHE / "sessions-hd.sqlite3", ttl_s=3600), generator=False, k=10)
    cat = eng.catalog()
    ours, peer, full = [], [], []
    grounded = 0
    for i, q in enumerate(hd["queries"]):
        w = q.split()
        cut = math.ceil(len(w) / 2)
        head, tail = " ".join(w[:cut]), " ".join(w[cut:])
        gains = {cat.index[pid]: float(r) for pid, r in hd["judgments"][q].items() if pid in cat.index}
        a.ask(f"hd-{i}", f"I need {head}")
        ans = a.ask(f"hd-{i}", f"make it {tail}")
        grounded += not grounding_problems(ans, eng, brands)
        ours.append(ndcg_at_k([cat.index[p.id] for p in ans.products], gains, 10))
        peer.append(ndcg_at_k([cat.index[h.id] for h in eng.search(f"make it {tail}", k=10).hits], gains, 10))
        full.append(ndcg_at_k([cat.index[h.id] for h in eng.search(q, k=10).hits], gains, 10))
    return {"sessions": len(ours), "ndcg@10": round(float(np.mean(ours)), 4),
            "peer_ndcg@10 (second turn alone)": round(float(np.mean(peer)), 4),
            "reference_ndcg@10 (whole query, one search)": round(float(np.mean(full)), 4),
            "grounded_share": round(grounded / max(1, len(ours)), 4)}


# -- latency on the demo home --------------------------------------------------------------
def demo_home(path: Path | None) -> Path:
    if path is not None:
        return path
    home = CACHE / "demo_home"
    if not (home / "index" / "manifest.json").exists():
        with Engine(home) as eng:
            if eng.store.count_products() == 0:
                for p in demo_paths()["products"]:
                    eng.ingest_products(p)
                for p in demo_paths()["events"]:
                    eng.ingest_events(p)
            eng.build_index()
    return home


def run_latency(home: Path, rng: random.Random, n_sessions: int, n_questions: int) -> dict[str, Any]:
    with Engine(home) as eng:
        with_policy(eng)
        products = eng.catalog().products
        icecat = [p for p in products if not p.id.startswith("office-")]
        colour_attrs = sorted({k for p in icecat for k in p.attributes if "colour" in k and k != "colour"})
        brands = {p.brand for p in products if p.brand}
        sessions = script_sessions(icecat, n_sessions, rng, colour_attrs)
        qs = make_questions(icecat, n_questions, rng)
        policy_qs = ["What is your return policy?", "How long does shipping take?", "Can I pay by invoice?",
                     "Is there a warranty on electronics?", "Do you ship to Canada?", "hello", "thanks!",
                     "I want to talk to a human", "where is my order?"]
        office = ["I need a stapler", "cheaper", "show me the second one", "what goes with it?",
                  "compare the first two", "is it in stock?"]
        a = Assistant(eng, sessions=SessionStore(CACHE / "sessions-latency.sqlite3", ttl_s=3600), generator=False)
        warm = ["I need a toner cartridge", "only HP", "in black", "with ethernet lan", "under 100 dollars",
                "what is your return policy?", "what goes with it?", *office]
        for t in warm:  # first calls load the index, the encoder, the bundles model, the policy index
            a.ask("warm", t)
        times: dict[str, list[float]] = defaultdict(list)
        grounded = total = 0
        plan = [(f"lat-s{i}", t) for i, s in enumerate(sessions) for t in s["turns"]]
        plan += [(f"lat-q{i}", q["q"]) for i, q in enumerate(qs)]
        plan += [(f"lat-p{i}", t) for i, t in enumerate(policy_qs * 3)]
        plan += [(f"lat-o{i // len(office)}", t) for i, t in enumerate(office * 5)]
        for sid, text in plan:
            t0 = time.perf_counter()
            ans = a.ask(sid, text)
            dt = (time.perf_counter() - t0) * 1000.0
            times[ans.intent].append(dt)
            total += 1
            grounded += not grounding_problems(ans, eng, brands)
        a.sessions.close()
    allt = np.array([x for v in times.values() for x in v])
    return {"turns": int(allt.size), "p50_ms": round(float(np.percentile(allt, 50)), 1),
            "p95_ms": round(float(np.percentile(allt, 95)), 1), "p99_ms": round(float(np.percentile(allt, 99)), 1),
            "max_ms": round(float(allt.max()), 1),
            "by_intent": {k: {"n": len(v), "p50_ms": round(float(np.percentile(v, 50)), 1),
                              "p95_ms": round(float(np.percentile(v, 95)), 1)} for k, v in sorted(times.items())},
            "grounded_share": round(grounded / max(1, total), 4)}


# -- output --------------------------------------------------------------------------------
def plot(out: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    qa = out["product_questions"]
    ax = axes[0]
    xs = np.arange(2)
    ax.bar(xs - 0.2, [qa["answerable"]["accuracy"], qa["unanswerable"]["declined"]], 0.4, label="assistant")
    ax.bar(xs + 0.2, [qa["answerable"]["peer_accuracy"], qa["unanswerable"]["peer_declined"]], 0.4,
           label="peer: top hit's text")
    ax.set_xticks(xs, ["answerable:\naccuracy", "unanswerable:\ndeclined"])
    ax.set_ylim(0, 1.05)
    ax.axhline(0.9, ls=":", c="grey")
    ax.set_title("Product questions (Icecat test half)")
    ax.legend(loc="lower left")
    mt = out["multi_turn_icecat"]
    ax = axes[1]
    turns = np.arange(1, 5)
    ax.plot(turns, mt["satisfied_after_turn"], "o-", label="assistant (state)")
    ax.plot(turns, mt["peer_satisfied_after_turn"], "s--", label="peer: each turn alone")
    ax.set_xticks(turns, ["search", "+1", "+2", "+3 refinements"])
    ax.set_ylim(0, 1.05)
    ax.axhline(0.95, ls=":", c="grey")
    ax.set_title("Lists meeting every constraint so far")
    ax.legend(loc="lower left")
    lat = out["latency_demo_home"]["by_intent"]
    ax = axes[2]
    names = list(lat)
    ax.barh(names, [lat[n]["p95_ms"] for n in names])
    ax.axvline(150, ls=":", c="grey")
    ax.set_title(f"p95 ms per turn, demo home (all: {out['latency_demo_home']['p95_ms']} ms)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller samples (smoke run)")
    ap.add_argument("--demo-home", type=Path, default=None, help="an already built demo home (else built in the cache)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=RESULTS / "assistant.json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    random.Random(args.seed)
    CACHE.mkdir(parents=True, exist_ok=True)
    for f in CACHE.glob("sessions-*.sqlite3*"):
        f.unlink()
    # the shops are the same in both runs (built once, cached); --quick asks fewer questions
    n_shop, n_hd = 3000, 150
    n_qa, n_sess, n_hd_sessions = (50, 30, 40) if args.quick else (220, 120, 150)
    t_start = time.time()

    products, split_meta = icecat_test_products(n_shop)
    ice_home = build_home(CACHE / f"icecat_test_{n_shop}", products)
    hd = homedepot(n_hd, 3000, random.Random(args.seed))
    hd_home = build_home(CACHE / f"homedepot_{n_hd}", hd["products"])
    out: dict[str, Any] = {}
    with Engine(ice_home) as eng:
        with_policy(eng)
        shop = eng.catalog().products
        brands = {p.brand for p in shop if p.brand}
        colour_attrs = sorted({k for p in shop for k in p.attributes if "colour" in k and k != "colour"})
        qs = make_questions(shop, n_qa, random.Random(args.seed), skip=INSPECTED)
        sessions = script_sessions(shop, n_sess, random.Random(args.seed), colour_attrs)
        log.info("%d questions, %d sessions", len(qs), len(sessions))
        out["product_questions"] = run_questions(eng, qs, False, brands, True, "qa")
        out["multi_turn_icecat"] = run_sessions(eng, sessions, False, brands, colour_attrs, True, "mt")
        llm = FakeLLM("lying")
        try:
            gen = OpenAIGenerator(llm.url, timeout=10)
            g_qa = run_questions(eng, qs, gen, brands, False, "qa-llm", fake=llm)
            g_mt = run_sessions(eng, sessions, gen, brands, colour_attrs, False, "mt-llm", fake=llm)
        finally:
            llm.close()
        lie_kinds = Counter(llm.lies.values())
        out["with_generative_backend"] = {
            "endpoint": "local fake OpenAI-compatible server: rewords every answer; every other call invents a "
                        "price (7.77 USD), a colour, a brand, or flips yes/no",
            "calls": llm.calls, "lies_told": dict(lie_kinds), "lies_total": sum(lie_kinds.values()),
            "answers_rejected_by_verifier": g_qa.get("verifier_rejections", 0) + g_mt.get("verifier_rejections", 0),
            "lies_kept_out_by_kind": {k: f"{g_qa['lies']['kept_out'].get(k, 0) + g_mt['lies']['kept_out'].get(k, 0)}"
                                         f"/{g_qa['lies']['told'].get(k, 0) + g_mt['lies']['told'].get(k, 0)}"
                                      for k in FakeLLM.KINDS},
            "product_questions": {"accuracy": g_qa["answerable"]["accuracy"],
                                  "declined": g_qa["unanswerable"]["declined"], "grounded": g_qa["grounded"]},
            "multi_turn": {"after_three_refinements": g_mt["after_three_refinements"], "grounded": g_mt["grounded"]},
        }
    with Engine(hd_home) as eng:
        hbrands: set[str] = set()
        out["multi_turn_homedepot"] = run_homedepot(eng, {**hd, "queries": hd["queries"][:n_hd_sessions]}, hbrands)
    out["latency_demo_home"] = run_latency(demo_home(args.demo_home), random.Random(args.seed),
                                           10 if args.quick else 25, 20 if args.quick else 40)

    qa, mt, gen_out, lat = (out["product_questions"], out["multi_turn_icecat"], out["with_generative_backend"],
                            out["latency_demo_home"])
    grounded_all = min(qa["grounded"]["share"], mt["grounded"]["share"], gen_out["product_questions"]["grounded"]["share"],
                       gen_out["multi_turn"]["grounded"]["share"], out["multi_turn_homedepot"]["grounded_share"],
                       lat["grounded_share"])
    out["must_show"] = {
        "product questions accuracy >= 0.90": [qa["answerable"]["accuracy"], qa["answerable"]["accuracy"] >= 0.90,
                                              f"peer {qa['answerable']['peer_accuracy']}"],
        "unanswerable declined >= 0.95": [qa["unanswerable"]["declined"], qa["unanswerable"]["declined"] >= 0.95,
                                          f"peer {qa['unanswerable']['peer_declined']}"],
        "constraints met after three refinements >= 0.95, well above the stateless peer": [
            mt["after_three_refinements"],
            mt["after_three_refinements"] >= 0.95 and mt["after_three_refinements"] >= mt["peer_after_three_refinements"]
            + 0.3, f"peer {mt['peer_after_three_refinements']}"],
        "grounding 100% without and with the generative back-end (every lie kept out)": [
            grounded_all, grounded_all == 1.0 and all(v.split("/")[0] == v.split("/")[1]
                                                      for v in gen_out["lies_kept_out_by_kind"].values()),
            f"lies kept out / told: {gen_out['lies_kept_out_by_kind']}"],
        "p95 per turn < 150 ms (demo home, no language model)": [lat["p95_ms"], lat["p95_ms"] < 150, ""],
    }
    out["_meta"] = {
        "command": "python bench/assistant.py" + (" --quick" if args.quick else ""),
        "seed": args.seed, "icecat_split": split_meta,
        "questions_from": f"named test-shop products {INSPECTED}..{INSPECTED + n_qa} (the first {INSPECTED} were "
                          "inspected during development and are never scored)",
        "development_notes": "an earlier run's one failing multi-turn session was inspected ('with numeric keypad' "
                             "was taken for the Targus model 'Numeric Keypad') and the routing fixed; its sessions "
                             "are the same seeded script", "questions": len(qs), "icecat_sessions": len(sessions),
        "homedepot": hd["meta"], "seconds": round(time.time() - t_start, 1),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
        "peers": {"product questions": "top search hit's line sharing most words with the question",
                  "multi-turn": "each turn searched on its own (engine.search with its own query understanding)",
                  "homedepot": "the second turn searched alone; reference: the whole query in one search"},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2, default=lambda o: o.item() if hasattr(o, "item") else str(o)))
    plot(out, args.out.with_suffix(".png"))
    print_table(out)


def print_table(out: dict[str, Any]) -> None:
    qa, mt, hd, lat, g = (out["product_questions"], out["multi_turn_icecat"], out["multi_turn_homedepot"],
                          out["latency_demo_home"], out["with_generative_backend"])
    print("\nshopping assistant benchmark")
    print(f"{'':54s}{'assistant':>11s}{'peer':>9s}{'ratio':>8s}")
    rows = [("product questions: accuracy (answerable)", qa["answerable"]["accuracy"], qa["answerable"]["peer_accuracy"]),
            ("product questions: declined (unanswerable)", qa["unanswerable"]["declined"],
             qa["unanswerable"]["peer_declined"]),
            ("multi-turn: constraints met after 3 refinements", mt["after_three_refinements"],
             mt["peer_after_three_refinements"]),
            ("multi-turn: final top-1 in the seed category", mt["final_top1_in_seed_category"],
             mt["peer_final_top1_in_seed_category"]),
            ("Home Depot 2 turns: NDCG@10", hd["ndcg@10"], hd["peer_ndcg@10 (second turn alone)"])]
    for name, a, p in rows:
        print(f"{name:54s}{a:11.3f}{p:9.3f}{(a / p if p else float('inf')):8.2f}")
    print(f"{'Home Depot reference (whole query, one search)':54s}{hd['reference_ndcg@10 (whole query, one search)']:11.3f}")
    print(f"constraints met after each turn: assistant {[float(x) for x in mt['satisfied_after_turn']]}, "
          f"peer {[float(x) for x in mt['peer_satisfied_after_turn']]}")
    print(f"grounding: {qa['grounded']['share']:.3f} (questions), {mt['grounded']['share']:.3f} (sessions); with the "
          f"lying back-end {g['product_questions']['grounded']['share']:.3f} / {g['multi_turn']['grounded']['share']:.3f} "
          f"(lies kept out / told by kind: {g['lies_kept_out_by_kind']})")
    print(f"latency on the demo home: p50 {lat['p50_ms']} ms, p95 {lat['p95_ms']} ms over {lat['turns']} turns")
    print("\nmust show:")
    for k, v in out["must_show"].items():
        print(f"  [{'x' if v[1] else ' '}] {k}: {v[0]} {v[2]}")


if __name__ == "__main__":
    main()
