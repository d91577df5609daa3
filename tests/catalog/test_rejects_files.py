"""Reports are never lost (hostile-input issue, family 3): two ingests started in the same
second each write their own rejects file, and each summary points at its own."""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from pathlib import Path

from shopsense.home import Home

BAD = "user_id,item_id,type\nu1,i1,view\nu2,i2,teleport\nu3,i3,view\n"


def test_same_second_same_stem_two_files(engine, tmp_path, monkeypatch):
    """Failed before: events.csv and events.jsonl ingested in the same second shared one
    rejects file, opened for writing by each, so half the rejects were gone."""
    monkeypatch.setattr(time, "strftime", lambda *a: "20250101-120000")  # the same second, always
    csv_f = tmp_path / "events.csv"
    csv_f.write_text(BAD)
    jsonl_f = tmp_path / "events.jsonl"
    jsonl_f.write_text('{"user_id": "u9", "item_id": "i", "type": "nope"}\n')
    a = engine.ingest_events(csv_f)
    b = engine.ingest_events(jsonl_f)
    assert a.rejects_path and b.rejects_path and a.rejects_path != b.rejects_path
    got_a = [json.loads(x) for x in Path(a.rejects_path).read_text().splitlines()]
    got_b = [json.loads(x) for x in Path(b.rejects_path).read_text().splitlines()]
    assert [(r["line"], r["field"]) for r in got_a] == [(3, "type")]
    assert [(r["line"], r["field"]) for r in got_b] == [(1, "type")]
    assert "events.csv" in os.path.basename(a.rejects_path)
    assert "events.jsonl" in os.path.basename(b.rejects_path)


def test_concurrent_ingests_of_one_file_keep_every_report(engine, tmp_path, monkeypatch):
    monkeypatch.setattr(time, "strftime", lambda *a: "20250101-120000")
    f = tmp_path / "events.csv"
    f.write_text(BAD)
    reports = []

    def run() -> None:
        reports.append(engine.ingest_events(f))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    paths = {r.rejects_path for r in reports}
    assert len(paths) == 4
    for p in paths:
        assert len(Path(p).read_text().splitlines()) == 1


def test_rejects_file_names_are_unique(tmp_path):
    home = Home(tmp_path)
    names = {home.rejects_file("events", tmp_path / "events.csv") for _ in range(1000)}
    assert len(names) == 1000


def test_rejects_file_is_readable_by_its_owner_only(engine, tmp_path):
    f = tmp_path / "events.csv"
    f.write_text(BAD)
    rep = engine.ingest_events(f)
    assert stat.S_IMODE(os.stat(rep.rejects_path).st_mode) == 0o600
