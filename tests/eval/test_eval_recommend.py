"""``shopsense eval recommend`` (issue 9) on small real slices of Amazon Beauty and
Office: the figures equal a direct computation with the library, the result file
feeds ``eval compare``, and malformed input gives a clear error or a reported skip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.conftest import DATASETS

BEAUTY = DATASETS / "rec" / "amazon-beauty" / "user_sequence.txt"
OFFICE = DATASETS / "rec" / "amazon-office"
runner = CliRunner()


def _app():  # type: ignore[no-untyped-def]
    from shopsense.cli import app

    return app


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(_app(), ["eval", "recommend", *args])


@pytest.fixture(scope="module")
def beauty_slice(tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    """The first 400 users of Amazon Beauty, in the file's own format."""
    if not BEAUTY.exists():
        pytest.skip(f"Amazon Beauty not found at {BEAUTY} (../shared/datasets beside the repo)")
    lines = BEAUTY.read_text().splitlines()[:400]
    path = tmp_path_factory.mktemp("beauty") / "beauty400.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def beauty_run(beauty_slice, tmp_path_factory):  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("run") / "r.json"
    res = invoke("--sequences", str(beauty_slice), "--systems", "popularity,ease", "--out", str(out))
    assert res.exit_code == 0, res.output
    return out, res.output


def test_figures_equal_the_library(beauty_slice, beauty_run) -> None:  # type: ignore[no-untyped-def]
    from threadpoolctl import threadpool_limits

    from shopsense.eval import evaluate_model, loo_split, read_user_sequences
    from shopsense.recommend import EASE, Interactions, Popularity

    out, output = beauty_run
    doc = json.loads(out.read_text())
    ds = doc["beauty400"]
    assert set(ds) == {"popularity", "ease"}
    seqs, ids = read_user_sequences(beauty_slice)
    split = loo_split(seqs, len(ids))
    full = Interactions.from_sequences(split.test_hist, len(ids))
    for name, model in (("ease", EASE(l2=250.0)), ("popularity", Popularity())):
        # the CLI bounds BLAS to --threads (1): multi-threaded LAPACK rounds differently, and
        # a last-bit change flips near-ties in a 400-user slice, so compute under the same bound
        with threadpool_limits(1):
            direct = evaluate_model(model.fit(full), split.test_hist, split.test_target)
        for m in ("recall@10", "ndcg@10", "coverage@10"):
            assert ds[name][m] == pytest.approx(direct[m], abs=1e-12), (name, m)
        assert {"train_seconds", "latency_p50_ms", "latency_p99_ms"} <= set(ds[name])
    # one per-user score for every user, named by the user id, and the mean is the figure
    per = doc["_per_unit"]["beauty400"]["ease"]["ndcg@10"]
    assert len(per) == len(split.test_target) == doc["_meta"]["users"]
    first_user = beauty_slice.read_text().split()[0]
    assert first_user in per
    assert np.mean(list(per.values())) == pytest.approx(ds["ease"]["ndcg@10"])
    assert doc["_meta"]["seed"] == 0 and "leave-one-out" in doc["_meta"]["protocol"]
    assert out.with_suffix(".png").stat().st_size > 1000
    assert "ease" in output and "(" in output  # the table shows ratios to the EASE peer


def test_compare_accepts_the_result(beauty_run) -> None:  # type: ignore[no-untyped-def]
    out, _ = beauty_run
    res = runner.invoke(_app(), ["eval", "compare", str(out), str(out), "--system-a", "popularity",
                                 "--system-b", "ease", "--n-boot", "200"])
    assert res.exit_code == 0, res.output
    from shopsense.eval import compare, load_result

    diffs = {d.metric: d for d in compare(load_result(out), load_result(out), "popularity", "ease", n_boot=200)}
    assert diffs["ndcg@10"].n_units == json.loads(out.read_text())["_meta"]["users"]
    assert diffs["ndcg@10"].ci_low <= diffs["ndcg@10"].diff <= diffs["ndcg@10"].ci_high


def test_events_file_gives_the_same_figures(beauty_slice, beauty_run, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The same interactions as an events CSV in the store's schema (times per user)."""
    rows = ["user_id,item_id,timestamp,type"]
    for line in beauty_slice.read_text().splitlines():
        user, *items = line.split()
        rows += [f"{user},{it},{1_600_000_000 + 3600 * n},purchase" for n, it in enumerate(items)]
    ev = tmp_path / "events.csv"
    ev.write_text("\n".join(rows) + "\n")
    out = tmp_path / "ev.json"
    res = invoke("--sequences", str(ev), "--systems", "popularity,ease", "--out", str(out), "--name", "beauty400")
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    assert doc["_meta"]["format"] == "events"
    ref = json.loads(beauty_run[0].read_text())["beauty400"]
    for s in ("popularity", "ease"):
        assert doc["beauty400"][s]["ndcg@10"] == pytest.approx(ref[s]["ndcg@10"], abs=1e-12)


def test_events_are_sorted_by_time_within_users(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from shopsense.eval import read_sequences

    ev = tmp_path / "e.jsonl"
    ev.write_text("\n".join(json.dumps(r) for r in [
        {"user_id": "u1", "item_id": "c", "timestamp": "2024-01-03T00:00:00"},
        {"user_id": "u2", "item_id": "a", "timestamp": 5},
        {"user_id": "u1", "item_id": "a", "timestamp": "2024-01-01T00:00:00"},
        {"user_id": "u1", "item_id": "b", "timestamp": "2024-01-02T00:00:00", "type": "view"},
        {"user_id": "u1", "item_id": "b", "timestamp": "2024-01-04T00:00:00", "type": "purchase"},
        {"user_id": "u2", "type": "search", "timestamp": 6},
    ]) + "\n")
    data = read_sequences(ev)
    ids = data.item_ids
    assert data.user_ids == ["u1", "u2"]
    assert [ids[i] for i in data.sequences[0]] == ["a", "b", "c"]  # the repeat of b counts once
    assert data.skips.counts == {"search_events": 1, "repeat_interactions": 1}


# -- malformed input: a clear error naming file, line and column, or a reported skip ------------
def _error(res) -> str:  # type: ignore[no-untyped-def]
    assert res.exit_code == 2, res.output
    return " ".join(res.output.split())


def test_skips_are_reported_and_change_no_figure(beauty_slice, beauty_run, tmp_path) -> None:  # type: ignore[no-untyped-def]
    lines = beauty_slice.read_text().splitlines()
    dirty = tmp_path / "dirty.txt"
    # empty lines, a user without items and users with 1-2 items are left out and counted
    known = lines[0].split()[1:3]
    dirty.write_text("\n".join(lines[:10] + ["", "   ", "lonely_user", f"short1 {known[0]} {known[1]}"] + lines[10:])
                     + "\n")
    out = tmp_path / "d.json"
    res = invoke("--sequences", str(dirty), "--systems", "popularity,ease", "--out", str(out), "--name", "beauty400")
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    counts = doc["_meta"]["skips"]["sequences"]["counts"]
    assert counts == {"empty_lines": 2, "users_without_items": 1}
    assert doc["_meta"]["users_too_short"] >= 1
    assert "skipped: 2 empty lines, 1 users without items" in " ".join(res.output.split())
    assert "dirty.txt:11" in doc["_meta"]["skips"]["sequences"]["examples"][0]
    # the users scored and the catalogue are the same, so are the figures
    ref = json.loads(beauty_run[0].read_text())
    assert doc["beauty400"]["ease"]["ndcg@10"] == pytest.approx(ref["beauty400"]["ease"]["ndcg@10"], abs=1e-12)


def test_duplicate_user_is_an_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "dup.txt"
    f.write_text("u1 a b c\nu2 a b c\nu1 d e f\n")
    msg = _error(invoke("--sequences", str(f), "--out", str(tmp_path / "x.json")))
    assert "dup.txt: line 3, column 1" in msg and "'u1'" in msg and "line 1" in msg


def test_events_missing_column_and_bad_time(tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "ev.csv"
    f.write_text("user_id,item_id,time\nu1,a,1\n")
    msg = _error(invoke("--sequences", str(f), "--format", "events", "--out", str(tmp_path / "x.json")))
    assert "ev.csv" in msg and "missing column(s) ['timestamp']" in msg
    f.write_text("user_id,item_id,timestamp\nu1,a,1\nu1,b,yesterday\n")
    msg = _error(invoke("--sequences", str(f), "--out", str(tmp_path / "x.json")))
    assert "ev.csv: line 3, column 'timestamp'" in msg and "'yesterday'" in msg


def test_events_missing_ids_are_skipped(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from shopsense.eval import read_sequences

    f = tmp_path / "ev.csv"
    f.write_text("user_id,item_id,timestamp\nu1,a,1\nu1,,2\n,b,3\nu1,b,4\n")
    data = read_sequences(f)
    assert data.skips.counts == {"rows_without_item_id": 1, "rows_without_user_id": 1}
    assert "ev.csv:3, column 'item_id'" in data.skips.examples[0]


def test_unknown_items_with_an_item_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from shopsense.eval import read_items, read_sequences

    items = tmp_path / "items.csv"
    items.write_text("item_id,title,brand,categories\na,Red pen,Acme,Office > Pens\nb,Blue pen,Acme,Office > Pens\n"
                     "c,Stapler,Bost,Office > Staplers\n")
    seq = tmp_path / "s.txt"
    seq.write_text("u1 a b zz c\nu2 yy\n")
    data = read_sequences(seq, item_ids=read_items(items).ids)
    assert data.item_ids == ["a", "b", "c"] and [list(s) for s in data.sequences] == [[0, 1, 2]]
    assert data.skips.counts == {"unknown_items": 2, "users_without_known_items": 1}
    assert data.skips.examples[0] == "s.txt:1, column 4: item 'zz': unknown items"
    bad = tmp_path / "noid.csv"
    bad.write_text("name,brand\nRed pen,Acme\n")
    msg = _error(invoke("--sequences", str(seq), "--items", str(bad), "--out", str(tmp_path / "x.json")))
    assert "noid.csv: no item id column" in msg and "['name', 'brand']" in msg


def test_bad_options_and_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    msg = _error(invoke("--sequences", str(tmp_path / "nope.txt")))
    assert "No such sequences file" in msg
    f = tmp_path / "s.txt"
    f.write_text("u1 a b\nu2 c\n")
    assert "3 items leave-one-out needs" in _error(invoke("--sequences", str(f), "--systems", "popularity",
                                                           "--out", str(tmp_path / "x.json")))
    assert "subset of popularity" in _error(invoke("--sequences", str(f), "--systems", "popularity,bogus"))


# -- item text, content and cold start (Amazon Office) ------------------------------------------
@pytest.fixture(scope="module")
def office_files(tmp_path_factory):  # type: ignore[no-untyped-def]
    """The first 300 Office users as a {user: [items]} JSON, and the items they touched
    in the Office.item.json form."""
    if not (OFFICE / "Office.inter.json").exists():
        pytest.skip(f"Amazon Office not found at {OFFICE} (../shared/datasets beside the repo)")
    inter = json.loads((OFFICE / "Office.inter.json").read_text())
    items = json.loads((OFFICE / "Office.item.json").read_text())
    users = dict(list(inter.items())[:300])
    used = sorted({i for s in users.values() for i in s})
    d = tmp_path_factory.mktemp("office")
    (d / "inter.json").write_text(json.dumps(users))
    (d / "items.json").write_text(json.dumps({str(i): items[str(i)] for i in used}))
    return d / "inter.json", d / "items.json"


def _tfidf_vectors(texts, cache, encoder=None):  # type: ignore[no-untyped-def]
    """A cheap stand-in for the sentence encoder (real text, no model download)."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    x = TfidfVectorizer(min_df=1, sublinear_tf=True).fit_transform(texts)
    v = TruncatedSVD(32, random_state=0).fit_transform(x).astype(np.float32)
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-9)


def test_items_content_and_cold_start(office_files, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from shopsense.eval import evaluate_ranked, item_text, rank_model, read_items, read_sequences
    from shopsense.recommend import ContentRecommender, Interactions

    # the eval encodes item texts through the public shopsense.text.encode_cached
    monkeypatch.setattr("shopsense.text.encode_cached", lambda enc, texts, cache, **kw: (_tfidf_vectors(texts, cache),
                                                                                          len(texts)))
    inter, items = office_files
    out = tmp_path / "o.json"
    res = invoke("--sequences", str(inter), "--items", str(items), "--systems", "popularity,content,als",
                 "--cold-start-fraction", "0.2", "--seed", "3", "--out", str(out), "--cache", str(tmp_path / "c"))
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    ds, meta = doc["inter"], doc["_meta"]
    assert set(ds) == {"popularity", "content", "als"}
    assert meta["cold_users"] > 0 and meta["cold_items"] == int(np.floor(meta["items"] * 0.2 + 1e-9))
    # the cold-start figure equals a direct computation with the same hidden items
    data = read_sequences(inter, item_ids=read_items(items).ids)
    recs = read_items(items).records
    vecs = _tfidf_vectors([item_text(r) for r in recs], None)
    n = data.n_items
    hidden = np.zeros(n, bool)
    hidden[np.random.default_rng(3).choice(n, size=int(np.floor(n * 0.2 + 1e-9)), replace=False)] = True
    seqs = [s for s in data.sequences if len(s) >= 3]
    hist = [s[:-1][~hidden[s[:-1]]] for s in seqs]
    tgt = np.array([s[-1] for s in seqs])
    m = ContentRecommender(recency_half_life=3.0).fit(Interactions.from_sequences(hist, n), item_vectors=vecs)
    direct = evaluate_ranked(rank_model(m, hist), tgt, n, mask=hidden[tgt])
    assert ds["content"]["cold_recall@10"] == pytest.approx(direct["recall@10"])
    assert ds["content"]["cold_recall@10"] > ds["popularity"]["cold_recall@10"] == 0.0
    cold_units = doc["_per_unit"]["inter"]["content"]["cold_recall@10"]
    assert len(cold_units) == meta["cold_users"]


def test_content_needs_items(beauty_slice, tmp_path) -> None:  # type: ignore[no-untyped-def]
    res = invoke("--sequences", str(beauty_slice), "--systems", "popularity,content", "--out",
                 str(tmp_path / "x.json"))
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "x.json").read_text())
    assert list(doc["beauty400"]) == ["popularity"]
    assert doc["_meta"]["skipped_systems"] == {"content": "needs item text (--items)"}
    assert "content left out" in res.output


def test_sasrec_with_esasrec_loss_from_the_cli(beauty_slice, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """--sasrec-negatives reaches the model: the result says which loss trained it and why it stopped."""
    out = tmp_path / "s.json"
    res = invoke("--sequences", str(beauty_slice), "--systems", "popularity,sasrec", "--sasrec-seconds", "3",
                 "--sasrec-negatives", "32", "--sasrec-patience", "1", "--out", str(out))
    assert res.exit_code == 0, res.output
    sas = json.loads(out.read_text())["beauty400"]["sasrec"]
    assert sas["loss"] == "sampled softmax, 32 negatives"
    assert sas["stopped"] in ("time budget", "validation stopped improving", "epochs") and sas["epochs"] >= 1
    assert sas["best_epoch"] is None or 1 <= sas["best_epoch"] <= sas["epochs"]


@pytest.mark.slow
def test_full_stack_with_sasrec_and_the_real_encoder(office_files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    inter, items = office_files
    out = tmp_path / "s.json"
    res = invoke("--sequences", str(inter), "--items", str(items), "--sasrec-seconds", "5",
                 "--cold-start-fraction", "0.1", "--out", str(out), "--cache", str(tmp_path / "c"))
    assert res.exit_code == 0, res.output
    ds = json.loads(out.read_text())["inter"]
    assert {"popularity", "ease", "itemknn", "als", "content", "sasrec", "full stack (LambdaMART)"} == set(ds)
    assert ds["full stack (LambdaMART)"]["ranker_trees"] >= 1


def test_parquet_events_and_item_csv_forms(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pandas as pd

    from shopsense.eval import read_items, read_sequences

    pd.DataFrame({"user_id": [1, 1, 2, 1], "item_id": ["a", "b", "a", "c"],
                  "timestamp": pd.to_datetime(["2024-01-02", "2024-01-01", "2024-01-01", "2024-01-03"]),
                  "type": ["view", "purchase", "view", "view"]}).to_parquet(tmp_path / "e.parquet")
    data = read_sequences(tmp_path / "e.parquet")
    assert data.format == "events" and data.user_ids == ["1", "2"]
    assert [[data.item_ids[i] for i in s] for s in data.sequences] == [["b", "a", "c"], ["a"]]
    # several columns mapped to categories form a path; the leaf is the category code
    f = tmp_path / "items.csv"
    f.write_text("sku,name,level1,level2\n1,Milk,dairy,milk\n2,Cheese,dairy,cheese\n2,Dup,x,y\n,NoId,x,y\n")
    items = read_items(f, {"level1": "categories", "level2": "categories"})
    assert items.ids == ["1", "2"] and items.records[0]["categories"] == "dairy, milk"
    assert items.skips.counts == {"duplicate_item_ids": 1, "items_without_id": 1}
    from shopsense.eval import item_categories, item_text

    assert item_text(items.records[0]) == "Milk. dairy > milk"
    assert item_categories(items.records).tolist() == [1, 0]


def test_cli_default_runs_every_system() -> None:
    """`shopsense eval recommend` without --systems runs every system the evaluator knows
    (the transition generator was missing from the CLI's default)."""
    import typer

    from shopsense.cli import app
    from shopsense.eval import RECOMMEND_SYSTEMS

    cmd = typer.main.get_command(app).commands["eval"].commands["recommend"]  # type: ignore[attr-defined]
    default = next(p.default for p in cmd.params if p.name == "systems")
    assert default.split(",") == list(RECOMMEND_SYSTEMS)
