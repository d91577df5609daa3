from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from shopsense.cli import app

pytest.importorskip("sentence_transformers")


def test_index_and_search_commands(tmp_path, fixture_path) -> None:  # type: ignore[no-untyped-def]
    runner = CliRunner()
    home = str(tmp_path / "home")
    r = runner.invoke(app, ["ingest", "products", str(fixture_path), "--home", home])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["index", "--home", home])
    assert r.exit_code == 0, r.output
    assert "indexed 38 products" in r.output
    r = runner.invoke(app, ["search", "cordless drll", "--home", home, "-k", "3", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["query"]["corrections"] == {"drll": "drill"} and len(out["hits"]) == 3
    r = runner.invoke(app, ["search", "tv", "--home", home, "--filters", '{"brand": "Samsung"}'])
    assert r.exit_code == 0 and "Samsung" in r.output
    r = runner.invoke(app, ["search", "tv", "--home", home, "--filters", '{"nope": 1}'])
    assert r.exit_code == 2 and "Unknown filter" in r.output
