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


def test_show_hits_table_and_json(capsys, monkeypatch):
    """The one hits table behind search, recommend and the bundle commands."""
    from shopsense.catalog import Product
    from shopsense.cli import bundle_why, console, show_hits
    from shopsense.results import Hit, ResultList

    monkeypatch.setattr(console, "width", 300)  # one line per row
    res = ResultList([Hit("p1", 0.5, "copurchase", reason="Often bought with Drill Bits", evidence={"lift": 3.25},
                          product=Product(id="p1", title="Cordless Drill " + "x" * 80, price=99.0)),
                      Hit("p2", 0.25, "popular", evidence={"count": 7})])
    show_hits(res, bundle_why, title="goes with p0", title_width=50)
    out = capsys.readouterr().out
    assert "goes with p0" in out and "Often bought with Drill Bits (lift 3.2)" in out and '{"count": 7}' in out
    assert "Cordless Drill " + "x" * 35 + " " in out and "x" * 36 not in out  # the title is cut at 50 characters
    assert "99" in out and "0.500" in out and "copurchase" in out
    show_hits(res, bundle_why, as_json=True)
    assert '"id": "p1"' in capsys.readouterr().out
