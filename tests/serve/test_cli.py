"""``shopsense keys`` and the ``serve`` command's wiring."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from shopsense.cli import app


def test_keys_create_list_revoke(tmp_path):
    runner = CliRunner()
    home = str(tmp_path / "home")
    r = runner.invoke(app, ["keys", "create", "--role", "read", "--name", "ci", "--home", home])
    assert r.exit_code == 0, r.output
    key = r.output.strip()
    assert key.startswith("ss_")
    stored = json.loads((tmp_path / "home" / "api_keys.json").read_text())
    assert stored["keys"][0]["role"] == "read" and key.split("_", 2)[2] not in json.dumps(stored)
    kid = key.split("_")[1]
    r = runner.invoke(app, ["keys", "list", "--home", home])
    assert kid in r.output and "ci" in r.output and key.split("_", 2)[2] not in r.output
    r = runner.invoke(app, ["keys", "create", "--role", "admin", "--home", home])
    assert r.exit_code == 2 and "role" in r.output
    assert runner.invoke(app, ["keys", "revoke", kid, "--home", home]).exit_code == 0
    assert runner.invoke(app, ["keys", "revoke", kid, "--home", home]).exit_code == 1


def test_serve_help_lists_options():
    r = CliRunner().invoke(app, ["serve", "--help"])
    assert r.exit_code == 0
    for opt in ("--home", "--host", "--port", "--demo", "--private-reads", "--cors"):
        assert opt in r.output
