"""``shopsense users delete`` and ``shopsense models prune`` (hostile-input issue, family 4:
the CLI had no command to delete a user, and old model versions were never removed)."""

from __future__ import annotations

import json
import sqlite3

from typer.testing import CliRunner

from shopsense.cli import app
from shopsense.home import Home

runner = CliRunner()


def test_users_delete_erases_any_stored_id(tmp_path):
    from shopsense import Engine

    home = tmp_path / "h"
    with Engine(home) as eng:
        eng.add_events([{"user_id": "alice", "item_id": "1", "type": "view"},
                        {"user_id": "bob", "item_id": "1", "type": "view"}])
        # an id stored before ingestion refused ids that cannot appear in a URL
        con = sqlite3.connect(eng.paths.sqlite)
        con.execute("INSERT INTO events(user_id, item_id, type, ts, quantity) "
                    "VALUES ('a/b', '1', 'view', 1.7e9, 1)")
        con.commit()
        con.close()
    res = runner.invoke(app, ["users", "delete", "a/b", "--home", str(home)])
    assert res.exit_code == 0, res.output
    assert "1 events erased" in res.output
    res = runner.invoke(app, ["users", "delete", "alice", "--home", str(home), "--json"])
    assert res.exit_code == 0 and json.loads(res.output)["removed"]["events"] == 1
    with Engine(home) as eng:
        assert eng.store.count_events() == 1 and eng.store.count_events("bob") == 1


def _version(home: Home, name: str, built_at: str) -> None:
    d = home.model_version(name)
    d.mkdir(parents=True)
    (d / "manifest.json").write_text(json.dumps({"version": name, "built_at": built_at,
                                                 "format": "shopsense.recommend"}))


def test_models_prune_keeps_the_newest_and_always_current(tmp_path):
    home = Home(tmp_path)
    for i in range(5):
        _version(home, f"2025010{i}-000000-0001", f"2025-01-0{i + 1}T00:00:00Z")
    home.models_current.write_text("20250101-000000-0001")  # an old version made current again
    (home.encoders / "v1").mkdir(parents=True)  # not recommendation versions: never touched
    (home.onnx / "slug").mkdir(parents=True)
    (home.models / ".tmp-20250109-000000-0001").mkdir()

    res = runner.invoke(app, ["models", "prune", "--keep", "2", "--dry-run", "--home", str(tmp_path)])
    assert res.exit_code == 0 and "would delete 3" in res.output
    assert len(list(home.models.glob("2025*"))) == 5

    res = runner.invoke(app, ["models", "prune", "--keep", "2", "--home", str(tmp_path)])
    assert res.exit_code == 0, res.output
    left = sorted(p.name for p in home.models.iterdir())
    assert left == [".tmp-20250109-000000-0001", "20250101-000000-0001", "20250104-000000-0001",
                    "CURRENT", "encoder", "onnx"]

    res = runner.invoke(app, ["models", "list", "--home", str(tmp_path)])
    assert res.exit_code == 0 and "20250104-000000-0001" in res.output

    res = runner.invoke(app, ["models", "prune", "--keep", "0", "--home", str(tmp_path)])
    assert res.exit_code == 2
