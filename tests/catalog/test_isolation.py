"""One bad spot never aborts a file (hostile-input issue, family 2): a decoding error, a
damaged Parquet row group, a malformed cell or a row the store refuses is that row's
reject; every other row is stored."""

from __future__ import annotations

import json

import pytest


def _events_csv(n: int) -> bytes:
    lines = ["user_id,item_id,type,timestamp"]
    lines += [f"u{i % 97},i{i % 31},view,{1_700_000_000 + i}" for i in range(n)]
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_invalid_utf8_rejects_its_line_only(engine, tmp_path, fmt):
    """Failed before: a UnicodeDecodeError naming a byte position in a read chunk stopped the
    ingest; the good rows after it were lost. Now the line is rejected (not repaired)."""
    if fmt == "csv":
        lines = _events_csv(5000).split(b"\n")
        lines[3001] = lines[3001].replace(b",view,", b",vi\xffew,")  # data row 3,001 = line 3,002
        bad_line, field = 3002, "type"
    else:
        lines = [json.dumps({"user_id": f"u{i}", "item_id": "i", "type": "view",
                             "timestamp": 1_700_000_000 + i}).encode() for i in range(5000)]
        lines[3000] = lines[3000].replace(b'"view"', b'"vi\xc3ew"')  # line 3,001
        bad_line, field = 3001, "type"
    f = tmp_path / f"e.{fmt}"
    f.write_bytes(b"\n".join(lines) + b"\n")
    rep = engine.ingest_events(f, rejects_path=tmp_path / "rej.jsonl")
    assert (rep.read, rep.stored, rep.rejected) == (5000, 4999, 1)
    (r,) = rep.rejects
    assert (r.line, r.field) == (bad_line, field) and "invalid UTF-8" in r.reason and "byte 0x" in r.reason
    assert "\ufffd" in r.value  # the line as text, the bad byte shown as U+FFFD
    assert json.loads((tmp_path / "rej.jsonl").read_text())["line"] == bad_line


def test_invalid_utf8_in_the_header_refuses_the_file_before_writing(engine, tmp_path):
    from shopsense import ValidationError

    f = tmp_path / "e.csv"
    f.write_bytes(b"user_id,item\xff_id,type\nu,i,view\n")
    with pytest.raises(ValidationError, match="line 1 .*not valid UTF-8"):
        engine.ingest_events(f)
    assert engine.store.count_events() == 0


def _damaged_parquet(path, groups: int = 4, rows: int = 1000, damaged: int = 1):  # type: ignore[no-untyped-def]
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = groups * rows
    table = pa.table({"user_id": [f"u{i}" for i in range(n)], "item_id": [f"i{i % 50}" for i in range(n)],
                      "type": ["view"] * n, "timestamp": [1_700_000_000.0 + i for i in range(n)]})
    pq.write_table(table, path, row_group_size=rows)
    col = pq.ParquetFile(path).metadata.row_group(damaged).column(0)
    start = col.dictionary_page_offset or col.data_page_offset
    raw = bytearray(path.read_bytes())
    raw[start:start + 64] = b"\xff" * 64  # the page header of one column chunk
    path.write_bytes(bytes(raw))
    return path


def test_damaged_parquet_row_group_is_reported_with_its_range(engine, tmp_path):
    """Failed before: the file was half committed and the ingest ended with a traceback."""
    f = _damaged_parquet(tmp_path / "e.parquet")
    rep = engine.ingest_events(f, rejects_path=tmp_path / "rej.jsonl")
    assert (rep.read, rep.stored, rep.rejected) == (4000, 3000, 1000)
    (r,) = rep.rejects
    assert r.line == 1001 and r.value == "1001-2000" and "row group 1 is damaged" in r.reason
    assert engine.store.count_events() == 3000
    assert len((tmp_path / "rej.jsonl").read_text().splitlines()) == 1


def test_unreadable_parquet_footer_refuses_the_file_before_writing(engine, tmp_path):
    from shopsense import ValidationError

    f = _damaged_parquet(tmp_path / "e.parquet")
    f.write_bytes(f.read_bytes()[:-20])  # the footer is gone
    with pytest.raises(ValidationError, match="not a readable Parquet file"):
        engine.ingest_events(f)
    assert engine.store.count_events() == 0


def test_parquet_value_python_cannot_hold_is_that_rows_reject(engine, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    ts = pa.array([1_700_000_000, 10**15, 1_700_000_002], pa.timestamp("s"))  # year ~31 million
    pq.write_table(pa.table({"user_id": ["a", "b", "c"], "item_id": ["i"] * 3, "type": ["view"] * 3,
                             "timestamp": ts}), tmp_path / "e.parquet")
    rep = engine.ingest_events(tmp_path / "e.parquet")
    assert (rep.stored, rep.rejected) == (2, 1)
    assert (rep.rejects[0].line, rep.rejects[0].field) == (2, "timestamp")


@pytest.mark.parametrize("cell", ['"{bad"', '"[1,2]"', '"[[[[[[[[[[[[[[[[[[[["'])
@pytest.mark.parametrize("extra_column", [False, True])
def test_malformed_attributes_cell_is_that_rows_reject(engine, tmp_path, cell, extra_column):
    """Failed before: with an extra column, '{bad' stopped the file (JSONDecodeError) and
    '[1,2]' gave a TypeError traceback; without one they were rejected properly."""
    head = "id,title,attributes" + (",colour" if extra_column else "")
    tail = ",red" if extra_column else ""
    f = tmp_path / "p.csv"
    f.write_text(f"{head}\na,A,{{}}{tail}\nb,B,{cell}{tail}\nc,C,{tail}\n")
    rep = engine.ingest_products(f)
    assert (rep.read, rep.stored, rep.rejected) == (3, 2, 1), rep.rejects
    assert (rep.rejects[0].line, rep.rejects[0].field) == (3, "attributes")
    if extra_column:
        assert engine.product("a").attributes == {"colour": "red"}


def test_deeply_nested_jsonl_line_is_a_reject(engine, tmp_path):
    f = tmp_path / "e.jsonl"
    f.write_text('{"user_id": "u", "item_id": "i", "type": "view"}\n' + "[" * 200_000 + "\n"
                 + '{"user_id": "v", "item_id": "i", "type": "view", "quantity": ' + "9" * 5000 + "}\n")
    rep = engine.ingest_events(f)
    assert (rep.read, rep.stored, rep.rejected) == (3, 1, 2)
    assert [r.line for r in rep.rejects] == [2, 3]


def test_a_row_the_store_refuses_costs_that_row_only(tmp_path):
    """A value the schema let through but the store cannot hold (here: the store refuses
    user 'u3') is retried row by row: the other rows of its batch are stored."""
    from shopsense.catalog import ingest

    stored: list[str] = []

    def write(batch):  # type: ignore[no-untyped-def]
        if any(e.user_id == "u3" for e in batch):
            raise OverflowError("Python int too large to convert to SQLite INTEGER")
        stored.extend(e.user_id for e in batch)
        return len(batch)

    f = tmp_path / "e.csv"
    f.write_text("user_id,item_id,type\n" + "".join(f"u{i},i,view\n" for i in range(10)))
    rep = ingest(f, "events", write, batch_size=4)
    assert (rep.read, rep.stored, rep.rejected, rep.duplicates) == (10, 9, 1, 0)
    assert (rep.rejects[0].line, rep.rejects[0].field) == (5, "(row)") and "OverflowError" in rep.rejects[0].reason
    assert "u3" not in stored and len(stored) == 9


def test_an_unavailable_store_still_stops_the_ingest(tmp_path):
    """Only errors about a row's data are isolated; a store that is down is not 'every row bad'."""
    import sqlite3

    from shopsense.catalog import ingest

    def write(batch):  # type: ignore[no-untyped-def]
        raise sqlite3.OperationalError("database is locked")

    f = tmp_path / "e.csv"
    f.write_text("user_id,item_id,type\nu,i,view\n")
    with pytest.raises(sqlite3.OperationalError):
        ingest(f, "events", write)


def _lines(n: int) -> list[str]:
    return ["user_id,item_id,type,timestamp"] + [f"u{i},i{i},view,{1_700_000_000 + i}" for i in range(n)]


@pytest.mark.parametrize("column", [0, 1, 2, 3])
def test_stray_quotes_cost_their_own_lines_only(engine, tmp_path, column):
    """A quote opening a cell that never closes swallowed the lines after it into one cell
    (up to the csv field limit, or to the next stray quote): those good rows were lost."""
    lines = _lines(3000)
    for k in (100, 1500, 2999):  # the last one runs to the end of the file
        cells = lines[k].split(",")
        cells[column] = '"' + cells[column]
        lines[k] = ",".join(cells)
    f = tmp_path / "e.csv"
    f.write_text("\n".join(lines) + "\n")
    rep = engine.ingest_events(f)
    assert (rep.read, rep.stored, rep.rejected) == (3000, 2997, 3)
    assert [r.line for r in rep.rejects] == [101, 1501, 3000]
    assert all("quote" in r.reason for r in rep.rejects)


def test_quoted_cells_over_several_lines_are_kept(engine, tmp_path):
    f = tmp_path / "p.csv"
    f.write_text('id,title,description\na,Pipe 12" long,"one\ntwo, ""three""\nfour"\nb,B,x\n')
    rep = engine.ingest_products(f)
    assert (rep.stored, rep.rejected) == (2, 0)
    assert engine.product("a").description == 'one\ntwo, "three"\nfour' and engine.product("a").title == 'Pipe 12" long'


def test_an_oversized_cell_is_reported_on_its_own_line(engine, tmp_path):
    lines = _lines(10)
    lines[3] = "u2," + "x" * 200_000 + ",view,1"
    f = tmp_path / "e.csv"
    f.write_text("\n".join(lines) + "\n")
    rep = engine.ingest_events(f)
    assert (rep.read, rep.stored, rep.rejected) == (10, 9, 1)
    assert rep.rejects[0].line == 4 and "field larger than field limit" in rep.rejects[0].reason
