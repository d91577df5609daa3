"""Spark ALS through ``shopsense jobs train-als`` (``train_spark``): a model folder that
``Recommender.load`` reads, that the engine serves, and whose ALS ranks held-out purchases
as well as ``implicit``'s ALS."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from shopsense import Engine
from shopsense.recommend import ALS, Interactions, Popularity, Recommender, Trending
from tests.jobs.conftest import DEMO

RANK, ITERS = 16, 8


@pytest.fixture(scope="module")
def trained(spark, office):  # type: ignore[no-untyped-def]
    """``shopsense jobs train-als`` on the shop (it runs on the session's Spark, already up)."""
    from shopsense.cli import app

    res = CliRunner().invoke(app, ["jobs", "train-als", "--home", str(office.home), "--rank", str(RANK),
                                   "--iters", str(ITERS)])
    assert res.exit_code == 0, res.output
    version = (office.home / "models" / "CURRENT").read_text()
    manifest = json.loads((office.home / "models" / version / "manifest.json").read_text())
    return manifest, res.output


def _histories(office, ids):  # type: ignore[no-untyped-def]
    import pandas as pd

    index = {x: i for i, x in enumerate(ids)}
    ev = pd.read_parquet(office.events)
    by_user = ev.groupby("user_id", sort=False)["item_id"].apply(list)
    users = list(office.held_out)
    hist = [np.array([index[x] for x in by_user[u]], np.int64) for u in users]
    target = np.array([index[office.held_out[u]] for u in users], np.int64)
    return users, hist, target


def _hit_at_10(model, hist, target) -> float:  # type: ignore[no-untyped-def]
    top = model.recommend(hist, 10).indices
    return float(np.mean([t in row for t, row in zip(target, top, strict=True)]))


def test_train_spark_writes_a_current_model_folder(trained, office) -> None:  # type: ignore[no-untyped-def]
    manifest, output = trained
    assert manifest["engine"] == "spark" and manifest["primary"] == "als"
    assert manifest["models"] == ["als", "popularity", "trending"]
    models = office.home / "models"
    assert (models / "CURRENT").read_text() == manifest["version"]
    folder = models / manifest["version"]
    assert manifest["spark"]["master"] == "local[2]" and manifest["spark"]["params"]["rank"] == RANK
    assert not list(models.glob(".tmp-*"))
    ids = json.loads((folder / "item_ids.json").read_text())
    als = Recommender.load(folder / "als")
    assert isinstance(als, ALS) and als.item_factors_.shape == (len(ids), RANK) == (2420, RANK)
    assert isinstance(Recommender.load(folder / "popularity"), Popularity)
    assert isinstance(Recommender.load(folder / "trending"), Trending)
    text = " ".join(output.split())
    n = pq.read_metadata(office.events).num_rows
    assert f"events: {n:,} interactions, {len(office.held_out):,} users" in text
    assert f"model version {manifest['version']} (spark): als, popularity, trending" in text


def test_spark_als_ranks_held_out_items_like_implicit(trained, office) -> None:  # type: ignore[no-untyped-def]
    manifest, _ = trained
    folder = office.home / "models" / manifest["version"]
    ids = json.loads((folder / "item_ids.json").read_text())
    _, hist, target = _histories(office, ids)
    spark_als = Recommender.load(folder / "als")
    pop = Recommender.load(folder / "popularity")
    rows = np.repeat(np.arange(len(hist)), [len(h) for h in hist])
    data = Interactions.from_arrays(rows, np.concatenate(hist), n_users=len(hist), n_items=len(ids))
    peer = ALS(factors=RANK, iterations=ITERS, num_threads=1).fit(data)
    hit_spark, hit_peer, hit_pop = (_hit_at_10(m, hist, target) for m in (spark_als, peer, pop))
    # leave-one-out over ~1,200 users: both ALS find ~3% of the held-out purchases, popularity 0.2%
    assert hit_spark >= 0.75 * hit_peer and hit_spark > 5 * hit_pop, (hit_spark, hit_peer, hit_pop)
    # popularity from Spark SQL counts equals the in-process fit on the same interactions
    # (every demo event is a purchase: weight 5)
    inproc = Popularity().fit(Interactions.from_arrays(rows, np.concatenate(hist), n_users=len(hist),
                                                      n_items=len(ids), weight=np.full(len(rows), 5.0)))
    np.testing.assert_allclose(pop.item_scores_, inproc.item_scores_)


def test_engine_serves_the_spark_model(trained, office) -> None:  # type: ignore[no-untyped-def]
    manifest, _ = trained
    user = next(iter(office.held_out))
    with Engine(office.home) as eng:
        res = eng.recommend(user, k=10)
        bought = set(eng.store.events(user_id=user).item_id)
        assert res.info["model_version"] == manifest["version"] and res.info["model"] == "als"
        assert res.info["personalised"] and len(res.hits) == 10
        assert not bought & set(res.ids)
        assert {h.source for h in res.hits} == {"cf"}
        # a user without history gets the trending fallback of the same folder
        assert eng.recommend("nobody", k=5).info["personalised"] is False
    from shopsense.cli import app

    out = CliRunner().invoke(app, ["recommend", user, "-k", "10", "--json", "--home", str(office.home)])
    assert out.exit_code == 0, out.output
    assert [h["id"] for h in json.loads(out.output)["hits"]] == res.ids


def test_train_spark_reads_the_same_events_from_parquet(spark, office, trained, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Issue 16: a home holding the products only, trained on the events Parquet the store
    path would have exported, gives the store path's counts and popularity."""
    from shopsense.errors import ValidationError
    from shopsense.jobs import train_spark

    store_manifest, _ = trained
    home = tmp_path / "home"
    with Engine(home) as eng:
        eng.ingest_products(DEMO / "office_products.jsonl")
    said: list[str] = []
    manifest = train_spark(home, said.append, spark=spark, events=office.events, rank=RANK, iters=ITERS)
    assert manifest["spark"]["events"] == str(office.events)
    assert set(manifest["spark"]["seconds"]) == {"catalog_and_session", "export", "interactions", "als",
                                                 "popularity_trending"}
    assert (manifest["n_interactions"], manifest["n_users"]) == (store_manifest["n_interactions"],
                                                                 store_manifest["n_users"])
    # the ALS user index (assigned in the JVM) numbers every user once
    n_users = len(pq.read_table(office.events, columns=["user_id"]).column("user_id").unique())
    assert any(f"user-item pairs, {n_users:,} users" in m for m in said), said
    folder = home / "models" / manifest["version"]
    store_folder = office.home / "models" / store_manifest["version"]
    np.testing.assert_allclose(Recommender.load(folder / "popularity").item_scores_,
                               Recommender.load(store_folder / "popularity").item_scores_)
    assert Recommender.load(folder / "als").item_factors_.shape == (2420, RANK)
    with pytest.raises(ValidationError, match="'events' parameter of train_spark"):
        train_spark(home, spark=spark, events=tmp_path / "missing.parquet")
