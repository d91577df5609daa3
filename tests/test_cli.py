from typer.testing import CliRunner

from shopsense.cli import app

runner = CliRunner()


def test_ingest_and_stats(tmp_path):
    f = tmp_path / "p.csv"
    f.write_text("product_uid,product_title\n1,Drill\n2,\n")
    home = str(tmp_path / "h")
    res = runner.invoke(app, ["ingest", "products", str(f), "--map", "product_uid=id",
                              "--map", "product_title=title", "--home", home])
    assert res.exit_code == 0, res.output
    assert "line 3, field 'title'" in res.output
    res = runner.invoke(app, ["ingest", "products", str(f), "--map", "product_uid=id",
                              "--map", "product_title=title", "--home", home, "--strict"])
    assert res.exit_code == 3
    res = runner.invoke(app, ["stats", "--home", home, "--json"])
    assert res.exit_code == 0 and '"products": 1' in res.output


def test_clear_error_and_nonzero_exit(tmp_path):
    res = runner.invoke(app, ["ingest", "products", str(tmp_path / "nope.csv"), "--home", str(tmp_path)])
    assert res.exit_code == 2 and "No such file" in res.output
