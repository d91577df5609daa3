"""A demo home (the bundled demo catalogue and events) with simulated storefront
traffic recorded through the exposure log: searches with real product words and a
few that find nothing, recommendation lists, clicks, carts and purchases."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from shopsense.catalog import Event, EventType
from shopsense.store import Exposure

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "data" / "demo"
T0 = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)

WORDS = ["stapler", "pen", "ink", "paper", "laptop", "monitor", "cable", "tape", "notebook", "label"]
NOTHING = ["qzxv widget", "unicorn saddle"]  # no demo product has these words


def demo_products() -> list[dict]:
    rows = []
    for name in ("office_products.jsonl", "icecat_products.jsonl"):
        with (DEMO / name).open(encoding="utf-8") as fh:
            rows += [json.loads(line) for line in fh if line.strip()]
    return rows


def simulate(products: list[dict], days: int = 3, sessions_per_day: int = 40, seed: int = 7,
             t0: datetime = T0) -> tuple[list[Exposure], list[Event]]:
    """Deterministic traffic: per session one or two searches (and a recommendation
    list), clicks that favour the top positions, some carts and purchases."""
    rng = np.random.default_rng(seed)
    by_word = {w: [p["id"] for p in products if w in p["title"].lower().split()] for w in WORDS}
    price = {p["id"]: p.get("price") for p in products}
    ids = [p["id"] for p in products]
    exp: list[Exposure] = []
    events: list[Event] = []
    n = 0
    for d in range(days):
        for s in range(sessions_per_day):
            user = f"shopper-{int(rng.integers(60))}"
            sid = f"sess-{d}-{s}"
            t = t0 + timedelta(days=d, minutes=10 * s)
            queries = [str(rng.choice(WORDS)) if rng.random() > 0.12 else str(rng.choice(NOTHING))
                       for _ in range(int(rng.integers(1, 3)))]
            lists = [("search", q, (by_word.get(q) or [])[:10]) for q in queries]
            if rng.random() < 0.5:
                lists.append(("recommend", None, [str(x) for x in rng.choice(ids, 8, replace=False)]))
            for surface, q, items in lists:
                n += 1
                lid = f"list-{n}"
                t += timedelta(seconds=20)
                exp.append(Exposure(kind="impression", list_id=lid, user_id=user, surface=surface, session_id=sid,
                                    query=q, items=items, n_results=len(items), timestamp=t))
                for pos, item in enumerate(items, 1):
                    if rng.random() < 0.35 / pos:
                        t += timedelta(seconds=5)
                        exp.append(Exposure(kind="click", list_id=lid, user_id=user, surface=surface,
                                            session_id=sid, query=q, item_id=item, position=pos, timestamp=t))
                        if rng.random() < 0.4:
                            exp.append(Exposure(kind="add_to_cart", list_id=lid, user_id=user, surface=surface,
                                                session_id=sid, item_id=item, position=pos,
                                                timestamp=t + timedelta(seconds=1)))
                            if rng.random() < 0.6:
                                ts = t + timedelta(seconds=30)
                                p = price.get(item)
                                exp.append(Exposure(kind="purchase", list_id=lid, user_id=user, surface=surface,
                                                    session_id=sid, item_id=item, position=pos, price=p,
                                                    timestamp=ts))
                                events.append(Event(user_id=user, item_id=item, type=EventType.PURCHASE,
                                                    session_id=sid, timestamp=ts, price=p, quantity=1))
            if rng.random() < 0.2:  # a purchase that no list led to
                item = str(rng.choice(ids))
                events.append(Event(user_id=user, item_id=item, type=EventType.PURCHASE, session_id=sid,
                                    timestamp=t + timedelta(minutes=2), price=price.get(item)))
    return exp, events


@pytest.fixture(scope="session")
def demo_home(tmp_path_factory):  # type: ignore[no-untyped-def]
    """(home path, exposures, events): demo products and the first 5,000 demo events in
    the store, then the simulated traffic."""
    import pandas as pd

    from shopsense.engine import Engine

    home = tmp_path_factory.mktemp("insights_home")
    products = demo_products()
    exposures, events = simulate(products)
    with Engine(home) as eng:
        eng.add_products(products)
        demo = pd.read_parquet(DEMO / "office_events.parquet").head(5000)
        eng.store.add_events(Event.model_validate(r) for r in demo.to_dict("records"))
        eng.store.add_events(events)
        eng.store.add_exposures(exposures)
    return home, exposures, events
