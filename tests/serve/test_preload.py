"""``shopsense serve --workers N`` loads the engine once in the supervisor and forks the workers
from it (issue 15: the workers' memory). What a worker must get from a preloaded engine: its
own store connection, the change feed's position from before the load (so a write another
worker made in between is replayed, not missed), and the engine only once."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from shopsense.config import Settings
from shopsense.serve import create_app
from shopsense.serve.main import preload_engine


def test_a_worker_serves_the_preloaded_engine_with_its_own_store(home):  # type: ignore[no-untyped-def]
    settings = Settings.load(home)
    with TestClient(create_app(settings, warm=False)) as other:  # a worker already serving
        write = other.app.state.shopsense.keys.create("write", name="preload-test")
        n0 = len(other.app.state.shopsense.engine.catalog())
        assert preload_engine(settings)  # the supervisor (re)starting a worker loads the engine
        # the other worker adds a product after that load, before the new worker starts: the
        # catalogue the new worker inherits is stale until it replays the feed from there
        r = other.post("/products", headers={"X-API-Key": write},
                       json=[{"id": "NEW-1", "title": "Walnut desk organiser", "price": 24.5}])
        assert r.status_code == 200, r.text
    with TestClient(create_app(Settings.load(home), warm=False)) as worker:
        engine = worker.app.state.shopsense.engine
        assert engine.store.count_products() == n0 + 1  # a live connection of this worker
        deadline = time.time() + 10
        while len(engine.catalog()) != n0 + 1 and time.time() < deadline:
            worker.get("/health")  # a request checks the feed
            time.sleep(0.05)
        assert len(engine.catalog()) == n0 + 1
        assert worker.get("/items/NEW-1").json()["title"] == "Walnut desk organiser"
    # the preloaded engine is handed out once; the next app loads its own
    with TestClient(create_app(settings, warm=False)) as later:
        assert later.app.state.shopsense.engine is not engine
