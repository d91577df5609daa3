"""``shopsense ask`` (one question, or a conversation read from stdin) and
``shopsense policies add|list``."""

from __future__ import annotations

import json
import shutil

from typer.testing import CliRunner

from .conftest import POLICY


def test_ask_one_question_and_a_conversation(shop_home, tmp_path):  # type: ignore[no-untyped-def]
    from shopsense.cli import app

    home = tmp_path / "home"
    shutil.copytree(shop_home, home)
    runner = CliRunner()
    r = runner.invoke(app, ["ask", "how long does shipping take?", "--home", str(home)])
    assert r.exit_code == 0, r.output
    assert "Shipping and delivery" in r.output and "/assistant/policies/shop_policies.md#" in r.output
    r = runner.invoke(app, ["ask", "--home", str(home), "--session", "cli-test"],
                      input="I need a toner cartridge\ncompare the first two\n\n")
    assert r.exit_code == 0, r.output
    assert "(search," in r.output and "(compare," in r.output and "price" in r.output
    r = runner.invoke(app, ["ask", "cheaper", "--home", str(home), "--session", "cli-test", "--json"])
    body = json.loads(r.stdout)
    assert body["intent"] == "refine" and body["state"]["query"] == "toner cartridge"
    assert "price_max" in body["state"]["constraints"]


def test_policies_add_and_list(tmp_path):  # type: ignore[no-untyped-def]
    from shopsense.cli import app

    runner = CliRunner()
    home = tmp_path / "home"
    r = runner.invoke(app, ["policies", "list", "--home", str(home)])
    assert "no policy files" in r.output
    r = runner.invoke(app, ["policies", "add", str(POLICY), "--home", str(home)])
    assert r.exit_code == 0, r.output
    assert (home / "policies" / POLICY.name).exists() and (home / "assistant" / "policy_index").is_dir()
    r = runner.invoke(app, ["policies", "list", "--home", str(home)])
    assert "Returns and refunds" in r.output
    bad = tmp_path / "x.pdf"
    bad.write_text("x")
    r = runner.invoke(app, ["policies", "add", str(bad), "--home", str(home)])
    assert r.exit_code == 2 and ".md" in r.output
