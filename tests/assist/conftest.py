"""A small real shop for the assistant: demo Icecat products (printers, toner, notebooks,
mice, with their real attributes and prices), an Amazon Office slice with real purchase
histories (complements), and the demo's policy file."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "data" / "demo"
POLICY = DEMO / "policies" / "shop_policies.md"
OFFICE = REPO.parent / "shared" / "datasets" / "rec" / "amazon-office"

#: Icecat categories of the test shop and how many products of each (file order)
CATEGORIES = {"inkjet printer": 12, "large format printer": 13, "photo printer": 8, "label printer": 9,
              "toner cartridge": 60, "notebook": 40, "mouse": 34, "keyboard": 20, "networking cable": 30}


def icecat_sample() -> list:
    from shopsense.catalog import Product

    left = dict(CATEGORIES)
    out = []
    for line in (DEMO / "icecat_products.jsonl").read_text().splitlines():
        p = Product.model_validate(json.loads(line))
        cat = p.category[0] if p.category else ""
        if left.get(cat, 0) > 0:
            left[cat] -= 1
            out.append(p)
    return out


@pytest.fixture(scope="session")
def icecat_products() -> list:
    return icecat_sample()


@pytest.fixture(scope="session")
def lexicon(icecat_products):  # type: ignore[no-untyped-def]
    from shopsense.assist import CatalogueLexicon

    return CatalogueLexicon.build(icecat_products)


@pytest.fixture(scope="session")
def shop_home(tmp_path_factory, icecat_products) -> Path:  # type: ignore[no-untyped-def]
    """Built once: products stored, search index built, the policy file in place."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from shopsense.engine import Engine

    home = tmp_path_factory.mktemp("assist") / "home"
    # item vectors are cached by model and text hash: a second run reuses them (the same
    # vectors the encoder gives; encoding ~600 products is most of this fixture's time)
    cache = Path(os.environ.get("SHOPSENSE_TEST_CACHE", Path.home() / ".cache" / "shopsense" / "test-embeddings"))
    if (cache / "assist").is_dir():
        shutil.copytree(cache / "assist", home / "embeddings")
    with Engine(home) as eng:
        eng.add_products(icecat_products)
        if OFFICE.exists():
            from shopsense.datasets import load_office_events, load_office_products

            events = load_office_events("purchase", limit_users=40)
            used = {e.item_id for e in events}
            eng.add_products([p for p in load_office_products() if p.id in used])
            eng.add_events(events)
        eng.build_index()
        eng.paths.policies.mkdir(parents=True, exist_ok=True)
        shutil.copy(POLICY, eng.paths.policies / POLICY.name)
    try:
        shutil.copytree(home / "embeddings", cache / "assist", dirs_exist_ok=True)
    except OSError:  # a read-only cache only costs time
        pass
    return home


@pytest.fixture(scope="session")
def shop(shop_home):  # type: ignore[no-untyped-def]
    """One engine over the shared home for the whole session (tests use their own session ids)."""
    from shopsense.engine import Engine

    eng = Engine(shop_home)
    yield eng
    eng.close()


@pytest.fixture()
def assistant(shop, tmp_path):  # type: ignore[no-untyped-def]
    """An assistant over the shared engine with its own session file and no generator."""
    from shopsense.assist import Assistant, SessionStore

    a = Assistant(shop, sessions=SessionStore(tmp_path / "sessions.sqlite3"), generator=False)
    yield a
    a.sessions.close()


def check_grounded(answer, engine) -> list[str]:  # type: ignore[no-untyped-def]
    """Every product and fact of ``answer`` against the store: [] when all hold."""
    from shopsense.assist import numbers_in
    from shopsense.errors import NotFoundError

    problems = []
    for p in answer.products:
        try:
            stored = engine.product(p.id)
        except NotFoundError:
            problems.append(f"product {p.id} not in the store")
            continue
        if stored.title != p.title or stored.price != p.price:
            problems.append(f"product {p.id} differs from the store")
    for f in answer.facts:
        if f.kind == "policy":
            name = (f.source or "").split("#")[0]
            text = (engine.paths.policies / name).read_text()
            if " ".join(f.value.split()) not in " ".join(text.split()):
                problems.append(f"policy quote not in {name}: {f.value[:60]}")
            continue
        if not f.product_id:
            continue
        p = engine.product(f.product_id)
        fld = f.field or ""
        if f.kind == "absent":
            if fld.startswith("attributes.") and fld.split(".", 1)[1] in p.attributes:
                problems.append(f"{f.product_id} does list {fld}")
            if fld == "price" and p.price is not None:
                problems.append(f"{f.product_id} does list a price")
            continue
        if fld == "title":
            ok = f.value == p.title or f.value in p.title
        elif fld == "price":
            ok = p.price is not None and f"{p.price:.2f}" == f.value
        elif fld == "in_stock":
            ok = f.value == ("yes" if p.in_stock else "no")
        elif fld == "brand":
            ok = f.value == p.brand
        elif fld == "category":
            ok = f.value == " > ".join(p.category)
        elif fld == "rating":
            ok = p.rating is not None and f"{p.rating:g}" == f.value
        elif fld.startswith("attributes."):
            ok = p.attributes.get(fld.split(".", 1)[1]) == f.value
        elif fld in ("description", "title"):
            ok = f.value in (p.description if fld == "description" else p.title)
        else:
            ok = False
        if not ok:
            problems.append(f"fact {fld}={f.value!r} of {f.product_id} does not match the store")
    allowed = set()
    for f in answer.facts:
        allowed |= numbers_in(f.value) | numbers_in(f.product_id or "")
    grounded_numbers = numbers_in(answer.text) - allowed - numbers_in(answer.grounded_text)
    if answer.generated and grounded_numbers:
        problems.append(f"numbers {sorted(grounded_numbers)} of the generated text are not grounded")
    return problems
