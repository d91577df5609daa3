"""One setting chooses the back-end: ``store_url`` unset is SQLite under the home, a
``postgresql://`` URL is PostgreSQL; the engine works the same on both."""

from __future__ import annotations

from pathlib import Path

import pytest

from shopsense import Engine, Settings, ValidationError
from shopsense.store import PostgresStore, SQLiteStore, open_store
from tests.store.contract import DEMO


def test_unset_url_is_sqlite_under_the_home(tmp_path: Path) -> None:
    with Engine(tmp_path / "home") as eng:
        assert isinstance(eng.store, SQLiteStore)
        assert eng.store.path == tmp_path / "home" / "store.sqlite3"
    store = open_store(None, tmp_path / "other.sqlite3")
    assert isinstance(store, SQLiteStore)
    store.close()


def test_store_url_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SHOPSENSE_STORE_URL", "postgresql://shop@db.internal/shopsense")
    assert Settings.load(tmp_path).store_url == "postgresql://shop@db.internal/shopsense"


def test_an_unknown_scheme_is_refused_without_echoing_the_password(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="'store_url' parameter of open_store must be a postgresql://") as exc:
        open_store(Settings(home=tmp_path, store_url="mysql://shop:s3cret@db/shop"), tmp_path / "s.sqlite3")
    assert "s3cret" not in str(exc.value) and "mysql://shop:***@db/shop" in str(exc.value)


def test_the_engine_on_postgres_matches_the_engine_on_sqlite(tmp_path: Path, postgres_schema_url: str) -> None:
    """The demo's products and events through the engine's own ingest, on both back-ends:
    the same counts, the same de-duplication on re-ingest, the same erasure."""
    import pandas as pd

    # the demo's first 8,000 events (its first shoppers' whole histories): all 53k take
    # 4x longer and test nothing more
    sample = tmp_path / "office_events.parquet"
    pd.read_parquet(DEMO / "office_events.parquet").head(8000).to_parquet(sample)
    seen = {}
    for name, overrides in (("sqlite", {}), ("postgres", {"store_url": postgres_schema_url})):
        with Engine(tmp_path / name, **overrides) as eng:
            assert isinstance(eng.store, PostgresStore if overrides else SQLiteStore)
            products = eng.ingest_products(DEMO / "office_products.jsonl")
            events = eng.ingest_events(sample)
            again = eng.ingest_events(sample)
            assert (again.stored, again.duplicates) == (0, events.stored + events.duplicates)
            stats = eng.stats()
            assert stats["products"] == products.stored == 2420
            assert stats["events"] == events.stored
            user = "office-u0"
            own = eng.store.count_events(user)
            assert own > 0 and eng.delete_user(user)["events"] == own
            assert eng.store.count_events(user) == 0
            assert eng.stats()["events"] == events.stored - own
            assert eng.product("office-3").brand == "BIC"
            seen[name] = (stats["products"], stats["events"], stats["events_by_type"], own,
                          eng.store.product_ids()[:50], list(eng.store.events(user_id="office-u1").item_id))
    assert seen["postgres"] == seen["sqlite"]
    # the data live in the server, not the home: a second home on the same URL sees them
    with Engine(tmp_path / "another-machine", store_url=postgres_schema_url) as eng:
        assert eng.stats()["products"] == 2420 and eng.stats()["events"] == seen["sqlite"][1] - seen["sqlite"][3]
        assert not (tmp_path / "another-machine" / "store.sqlite3").exists()
