"""Ingest throughput and peak memory: shopsense vs a plain pandas read_csv + to_sql peer.

    python bench/ingest.py            # full run (~500k events, Icecat 19,406, Home Depot 54,667)
    python bench/ingest.py --quick    # 120k events, for a smoke run
    python bench/ingest.py --hostile  # 1M events with 1% hostile rows vs the same file without them
    python bench/ingest.py --only events  # one dataset, no CLI checks; updates its entry only
    python bench/ingest.py --only events --baseline c4aa511  # also the code of a git revision, same run
    python bench/ingest.py --only events --repeat 3  # each system 3 times in turn; the median run

Each (dataset, system) runs in its own fresh subprocess, so peak RSS (ru_maxrss) is that
system's alone; ``rss_after_import_mb`` is the same process before it reads a row.
Files are built from real data with the shopsense.datasets loaders in a temp dir:
- ``events``: Amazon Beauty + Sports sequences as purchase events (CSV: user_id,
  item_id, type, timestamp), 494,839 rows (timestamps derived from sequence order).
- ``icecat_products``: the full Icecat catalogue exported to CSV (19,406 rows).
- ``homedepot_products``: the shared products.csv as is, mapped product_uid=id,
  product_title=title (54,667 rows).
shopsense validates every row (pydantic), reports rejects, dedupes, and commits batch by
batch with upserts and indexes; the peer does none of that (pandas.read_csv then
DataFrame.to_sql into SQLite), so the ratio is the price of those guarantees.

``--hostile`` (results in ``bench/results/ingest_hostile.json``) builds, under /tmp, a
synthetic events CSV of ``--rows`` rows in which ``--bad-rate`` of the rows carry one defect
each, every kind in turn (out-of-range prices, quantities and timestamps, ids that cannot
appear in a URL, unknown types, missing items, bytes that are not UTF-8, extra cells, stray
quotes), and the same file without those rows. It ingests both in fresh processes and checks
that every good row is stored and every bad row reported on its line with its field; with
``--baseline REV`` it also runs the code of git revision REV on both files (the peer).

The script also checks the CLI: ``shopsense ingest products`` of the full Icecat and
Home Depot files must end with read == stored + rejected (no silent drops), and a
deliberately broken file must produce a rejects report naming line and field.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "ingest.json"
HOSTILE_RESULTS = ROOT / "bench" / "results" / "ingest_hostile.json"
HD_MAP = {"product_uid": "id", "product_title": "title"}
#: --postgres: the URL of the fresh database a child ingests into
PG_URL_ENV = "SHOPSENSE_BENCH_PG_URL"


def _rss_mb() -> float:
    """Peak RSS of this process so far. VmHWM, not ru_maxrss: ru_maxrss survives exec, so
    a child would report the bench parent's (larger) size at fork time."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # non-Linux fallback


# -- child: one system on one file, in a fresh process -------------------------------------
def child(system: str, kind: str, path: str, home: str, mapping: str) -> None:
    mapping_d = json.loads(mapping)
    if system == "shopsense":
        # the libraries the ingest loads on first use (pyarrow, which imports pandas on its first
        # compute call: ~0.5-0.8 s), loaded before the clock starts as the peer's pandas is
        import pandas
        import pyarrow.compute
        import pyarrow.csv

        from shopsense import Engine

        base = _rss_mb()
        eng = Engine(home)
        t0 = time.perf_counter()
        fn = eng.ingest_products if kind == "products" else eng.ingest_events
        cpu0 = time.process_time()
        rep = fn(path, mapping=mapping_d)
        secs = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        stored = eng.store.count_products() if kind == "products" else eng.store.count_events()
        out = {"read": rep.read, "stored": stored, "rejected": rep.rejected, "seconds": secs, "cpu_s": cpu,
               "rejects_path": rep.rejects_path}
        eng.close()
    elif system == "shopsense_postgres":
        import pandas  # noqa: F401
        import pyarrow.compute
        import pyarrow.csv  # noqa: F401

        from shopsense import Engine

        base = _rss_mb()
        eng = Engine(home, store_url=os.environ[PG_URL_ENV])
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        rep = eng.ingest_events(path, mapping=mapping_d)
        secs = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        out = {"read": rep.read, "stored": eng.store.count_events(), "rejected": rep.rejected, "seconds": secs,
               "cpu_s": cpu}
        eng.close()
    elif system == "postgres_copy":
        # the physical limit of the server: the raw file COPYed into a table with no index,
        # no key and no check (what any loader into PostgreSQL pays at least)
        import psycopg

        base = _rss_mb()
        with psycopg.connect(os.environ[PG_URL_ENV], autocommit=True) as con:
            t0 = time.perf_counter()
            con.execute("CREATE TABLE raw_events (user_id text, item_id text, type text, timestamp bigint)")
            with con.cursor() as cur, cur.copy("COPY raw_events FROM STDIN WITH (FORMAT csv, HEADER true)") as cp, \
                    open(path, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    cp.write(chunk)
            secs = time.perf_counter() - t0
            stored = con.execute("SELECT count(*) FROM raw_events").fetchone()[0]
        out = {"read": stored, "stored": stored, "rejected": 0, "seconds": secs}
    else:
        import pandas as pd

        base = _rss_mb()
        Path(home).mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(Path(home) / "peer.sqlite3")
        t0 = time.perf_counter()
        df = pd.read_csv(path, dtype=str if kind == "products" else None)
        df = df.rename(columns=mapping_d)
        df.to_sql(kind, con, index=False, if_exists="append")
        con.commit()
        secs = time.perf_counter() - t0
        stored = con.execute(f"SELECT COUNT(*) FROM {kind}").fetchone()[0]
        out = {"read": len(df), "stored": stored, "rejected": 0, "seconds": secs}
        con.close()
    out.update(peak_rss_mb=_rss_mb(), rss_after_import_mb=base)
    print("RESULT " + json.dumps(out))


def run_child(system: str, kind: str, path: Path, home: Path, mapping: dict[str, str],
              src: Path | None = None, pg_url: str | None = None) -> dict[str, Any]:
    """One system on one file in a fresh process; ``src`` puts another source tree first;
    ``pg_url``: a server whose fresh database the child ingests into (dropped after)."""
    if home.exists():
        shutil.rmtree(home)
    env = {**os.environ, "PYTHONPATH": str(src)} if src else None
    if pg_url is not None:
        with _fresh_database(pg_url) as url:
            return _run_child_env(system, kind, path, home, mapping, {**(env or os.environ), PG_URL_ENV: url})
    return _run_child_env(system, kind, path, home, mapping, env)


@contextlib.contextmanager
def _fresh_database(server_url: str) -> Iterator[str]:
    import psycopg

    name = f"bench_{os.getpid()}_{time.monotonic_ns()}"
    with psycopg.connect(server_url, autocommit=True) as con:
        con.execute(f"CREATE DATABASE {name}")
    try:
        from urllib.parse import urlsplit, urlunsplit

        yield urlunsplit(urlsplit(server_url)._replace(path="/" + name))
    finally:
        with psycopg.connect(server_url, autocommit=True) as con:
            con.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _run_child_env(system: str, kind: str, path: Path, home: Path, mapping: dict[str, str],
                   env: dict[str, str] | None) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", system, kind, str(path), str(home), json.dumps(mapping)],
        capture_output=True, text=True, check=False, env=env,
    )
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"{system} on {path.name} failed:\n{proc.stderr[-2000:]}")
    r = json.loads(line[len("RESULT "):])
    r["rows_per_s"] = r["read"] / r["seconds"]
    r["ingest_rss_mb"] = r["peak_rss_mb"] - r["rss_after_import_mb"]
    return r


# -- data ------------------------------------------------------------------------------------
def build_files(tmp: Path, quick: bool, only: set[str] | None = None) -> dict[str, tuple[str, Path, dict[str, str]]]:
    import itertools

    from shopsense.datasets import (
        dataset_file,
        export_events,
        export_products,
        iter_amazon_events,
        load_icecat_products,
    )

    out: dict[str, tuple[str, Path, dict[str, str]]] = {}
    if only is None or "events" in only:
        events = itertools.chain(iter_amazon_events("beauty"), iter_amazon_events("sports"))
        if quick:
            events = itertools.islice(events, 120_000)
        n_ev = export_events(events, tmp / "events.csv", columns=["user_id", "item_id", "type", "timestamp"])
        print(f"built events.csv ({n_ev:,} rows)")
        out["events"] = ("events", tmp / "events.csv", {})
    if only is None or "icecat_products" in only:
        n_ic = export_products(load_icecat_products(), tmp / "icecat_products.csv")
        print(f"built icecat_products.csv ({n_ic:,} rows)")
        out["icecat_products"] = ("products", tmp / "icecat_products.csv", {})
    if only is None or "homedepot_products" in only:
        out["homedepot_products"] = ("products", dataset_file("search", "homedepot", "products.csv"), HD_MAP)
    return out


# -- CLI checks ------------------------------------------------------------------------------
def _csv_rows(path: Path) -> int:
    with path.open(newline="", encoding="utf-8") as fh:
        return sum(1 for _ in csv.reader(fh)) - 1


def _jsonl_rows(path: Path) -> int:
    with path.open(encoding="utf-8") as fh:
        return sum(1 for line in fh if line.strip())


def cli_ingest(path: Path, home: Path, mapping: dict[str, str], rejects: Path,
               extra: list[str] | None = None) -> tuple[int, str, int, int]:
    """Run ``shopsense ingest products``; returns (exit code, output, stored, rejected)."""
    if home.exists():
        shutil.rmtree(home)
    cmd = [str(Path(sys.executable).with_name("shopsense")), "ingest", "products", str(path),
           "--home", str(home), "--rejects", str(rejects)]
    for col, fld in mapping.items():
        cmd += ["--map", f"{col}={fld}"]
    proc = subprocess.run(cmd + (extra or []), capture_output=True, text=True, check=False,
                          env={**os.environ, "COLUMNS": "120"})
    con = sqlite3.connect(home / "store.sqlite3")
    stored = con.execute("SELECT COUNT(*) FROM products").fetchone()[0]
    con.close()
    rejected = _jsonl_rows(rejects) if rejects.exists() else 0
    return proc.returncode, proc.stdout + proc.stderr, stored, rejected


def cli_checks(tmp: Path) -> dict[str, dict[str, dict[str, float]]]:
    from shopsense.datasets import dataset_file, export_products, load_icecat_products

    out: dict[str, dict[str, dict[str, float]]] = {}
    ice = tmp / "icecat_full.jsonl"
    export_products(load_icecat_products(), ice)
    hd = dataset_file("search", "homedepot", "products.csv")
    for name, path, mapping, read in (
        ("cli_icecat_products", ice, {}, _jsonl_rows(ice)),
        ("cli_homedepot_products", hd, HD_MAP, _csv_rows(hd)),
    ):
        code, text, stored, rejected = cli_ingest(path, tmp / f"home_{name}", mapping, tmp / f"{name}.rej")
        print(text.strip())
        drops = read - stored - rejected
        print(f"{name}: exit {code}, read {read:,}, stored {stored:,}, rejected {rejected:,}, "
              f"silent drops {drops}")
        out[name] = {"shopsense_cli": {"exit_code": code, "read": read, "stored": stored,
                                       "rejected": rejected, "silent_drops": drops}}
    # a deliberately broken copy of the first 1,000 Home Depot rows, with a price column
    with hd.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))[1:1001]
    broken = [[uid, title, "9.99"] for uid, title in rows]
    broken[10][0] = ""                   # line 12: missing id
    broken[20][2] = "-4"                 # line 22: negative price
    broken[30][2] = "cheap"              # line 32: wrong type
    broken[40][0] = broken[0][0]         # line 42: duplicate id
    broken[50][1] = ""                   # line 52: missing title
    bad = tmp / "broken_products.csv"
    with bad.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["product_uid", "product_title", "price"])
        w.writerows(broken)
        fh.write("bad-extra,A row with one cell too many,1.5,surplus\n")  # line 1002
    rej = tmp / "broken.rej"
    code, text, stored, rejected = cli_ingest(bad, tmp / "home_broken", HD_MAP, rej, ["--strict"])
    print(text.strip())
    report = [json.loads(x) for x in rej.read_text().splitlines()] if rej.exists() else []
    named = sum(1 for r in report if r.get("line") and r.get("field"))
    print("rejects file:", *(f"  line {r['line']}, field {r['field']}: {r['reason']}" for r in report), sep="\n")
    out["cli_broken_file"] = {"shopsense_cli": {
        "exit_code_strict": code, "read": len(broken) + 1, "stored": stored, "rejected": rejected,
        "rejects_naming_line_and_field": named,
        "silent_drops": len(broken) + 1 - stored - rejected}}
    return out


# -- hostile rows -------------------------------------------------------------------------------
#: (kind, field the reject must name, how the row is broken); every kind in turn
HOSTILE: list[tuple[str, str, str]] = [
    ("price_inf", "price", "inf"), ("price_nan", "price", "nan"), ("price_negative", "price", "-1"),
    ("quantity_overflow", "quantity", "99999999999999999999"), ("quantity_zero", "quantity", "0"),
    ("timestamp_1e17", "timestamp", "1e17"), ("timestamp_overflow", "timestamp", "99999999999999999999"),
    ("timestamp_year1_plus14", "timestamp", "0001-01-01T00:00:00+14:00"),
    ("timestamp_year9999", "timestamp", "9999-12-31T00:00:00Z"),
    ("timestamp_milliseconds", "timestamp", "1700000000000"),
    ("user_id_slash", "user_id", "a/b"), ("user_id_dotdot", "user_id", ".."),
    ("user_id_control", "user_id", "u\x01x"), ("user_id_nul", "user_id", "u\x00x"),
    ("type_unknown", "type", "teleport"), ("item_id_missing", "item_id", ""),
    ("invalid_utf8", "user_id", "\udcff"), ("extra_cell", "(row)", ""), ("stray_quote", "(row)", ""),
]
HOSTILE_COLUMNS = ["user_id", "item_id", "type", "timestamp", "quantity", "price"]


def build_hostile(tmp: Path, rows: int, bad_rate: float) -> tuple[Path, Path, dict[int, tuple[str, str]]]:
    """(file with bad rows, the same file without them, {line: (kind, field)} of the bad rows)."""
    import random

    rng = random.Random(0)
    every = max(1, round(1 / bad_rate))
    bad: dict[int, tuple[str, str]] = {}
    hostile, clean = tmp / "events_hostile.csv", tmp / "events_clean.csv"
    types = ["view", "view", "view", "click", "add_to_cart", "purchase"]
    with hostile.open("wb") as fh, clean.open("wb") as fc:
        head = (",".join(HOSTILE_COLUMNS) + "\n").encode()
        fh.write(head)
        fc.write(head)
        k = 0
        for i in range(rows):
            cells = [f"u{rng.randrange(100_000)}", f"i{rng.randrange(50_000)}", rng.choice(types),
                     str(1_600_000_000 + i), str(rng.randint(1, 3)), f"{rng.uniform(0.5, 500):.2f}"]
            if i % every != every // 2:
                line = (",".join(cells) + "\n").encode()
                fh.write(line)
                fc.write(line)
                continue
            kind, fld, value = HOSTILE[k % len(HOSTILE)]
            k += 1
            if kind == "extra_cell":
                cells.append("surplus")
            elif kind == "stray_quote":
                cells[1] = '"' + cells[1]
            elif fld != "(row)":
                cells[HOSTILE_COLUMNS.index(fld)] = value
            fh.write((",".join(cells) + "\n").encode("utf-8", "surrogateescape"))
            bad[i + 2] = (kind, fld)  # line numbers: the header is line 1
    return hostile, clean, bad


def check_rejects(path: str | None, bad: dict[int, tuple[str, str]]) -> dict[str, Any]:
    """Compare a rejects file with the bad rows: each reported once, on its line, naming its field."""
    got: dict[int, str] = {}
    if path:
        with open(path, encoding="utf-8") as fh:
            for x in fh:
                r = json.loads(x)
                got[r["line"]] = r["field"]
    per_kind: dict[str, int] = {}
    wrong_field = 0
    for line, (kind, fld) in bad.items():
        if got.get(line) == fld:
            per_kind[kind] = per_kind.get(kind, 0) + 1
        elif line in got:
            wrong_field += 1
    return {"bad_rows": len(bad), "reported_on_their_line": sum(1 for line in bad if line in got),
            "reported_with_their_field": sum(per_kind.values()), "reported_with_another_field": wrong_field,
            "reports_of_good_rows": sum(1 for line in got if line not in bad), "per_kind": per_kind}


def _baseline_src(rev: str, tmp: Path) -> Path:
    """The ``src`` folder of git revision ``rev``, extracted under ``tmp``."""
    out = tmp / "baseline"
    out.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src"], capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out / "src"


def _count(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k"


def hostile_run(rows: int, bad_rate: float, baseline: str | None, out: Path) -> None:
    from shopsense.eval import meta, print_table, write_json

    load_before = os.getloadavg()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="shopsense-bench-hostile-", dir="/tmp") as td:
        tmp = Path(td)
        t0 = time.perf_counter()
        hostile, clean, bad = build_hostile(tmp, rows, bad_rate)
        n_good = rows - len(bad)
        print(f"built {hostile.name} ({rows:,} rows, {len(bad):,} bad) and {clean.name} ({n_good:,} rows) "
              f"in {time.perf_counter() - t0:.0f}s")
        src = _baseline_src(baseline, tmp) if baseline else None
        systems = [("shopsense", None)] + ([(f"shopsense_{baseline}", src)] if src else [])
        for name, tree in systems:
            for ds, path in ((f"events_{_count(rows)}_clean", clean),
                             (f"events_{_count(rows)}_hostile_{bad_rate:.0%}", hostile)):
                try:
                    r = run_child("shopsense", "events", path, tmp / f"home_{name}_{path.stem}", {}, tree)
                except RuntimeError as exc:  # the code before the fix crashed on hostile rows
                    err = str(exc).strip().splitlines()[-1]
                    print(f"{ds:28s} {name:24s} FAILED: {err}")
                    results.setdefault(ds, {})[name] = {"crashed": 1, "error": err[:200]}
                    continue
                good = n_good  # both files hold the same good rows
                row: dict[str, Any] = {k: round(float(r[k]), 3) for k in
                                       ("read", "stored", "rejected", "seconds", "cpu_s", "rows_per_s")}
                row["good_rows"] = good
                row["good_rows_all_stored"] = int(r["stored"] == good)
                if path == hostile:
                    chk = check_rejects(r.get("rejects_path"), bad)
                    row.update({k: v for k, v in chk.items() if k != "per_kind"})
                    row["bad_rows_all_reported"] = int(chk["reported_with_their_field"] == len(bad)
                                                       and chk["reports_of_good_rows"] == 0)
                    results.setdefault("hostile_kinds_reported", {})[name] = chk["per_kind"]
                print(f"{ds:28s} {name:24s} {r['read']:>9,} read {r['stored']:>9,} stored "
                      f"{r['rejected']:>7,} rejected {r['seconds']:7.1f}s ({r['cpu_s']:.1f}s CPU)")
                results.setdefault(ds, {})[name] = row
        for name, _ in systems:
            c = results[f"events_{_count(rows)}_clean"].get(name, {})
            h = results[f"events_{_count(rows)}_hostile_{bad_rate:.0%}"].get(name, {})
            if "seconds" in c and "seconds" in h:
                h["seconds_ratio_vs_clean"] = round(h["seconds"] / c["seconds"], 3)
                h["cpu_ratio_vs_clean"] = round(h["cpu_s"] / c["cpu_s"], 3)
    shown = ("read", "stored", "rejected", "seconds", "cpu_s", "rows_per_s")
    print_table({d: {s: {m: v[m] for m in shown if m in v} for s, v in sy.items()}
                 for d, sy in results.items() if d.startswith("events")}, title="hostile ingest")
    m = meta(
        "Synthetic events CSV (user_id,item_id,type,timestamp,quantity,price; unique timestamps, so no "
        f"duplicates); one row in {max(1, round(1 / bad_rate))} carries one defect, the "
        f"{len(HOSTILE)} kinds in turn ({', '.join(k for k, _, _ in HOSTILE)}); the clean file is the same "
        "file without those rows. Each (system, file) in a fresh subprocess ingesting into a fresh "
        "SQLite home through Engine.ingest_events; seconds = wall time of the call, cpu_s = process time "
        "of the call. Checks: stored == good rows; every bad row's line in the rejects file with the "
        "field of its defect, no good row reported. One run each; the 2-core machine was shared.",
        rows=rows, bad_rate=bad_rate, baseline=baseline,
        load_average_1m_before=round(load_before[0], 2), load_average_1m_after=round(os.getloadavg()[0], 2),
    )
    write_json(results, out, m)
    print(f"wrote {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="120k events instead of ~495k")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--hostile", action="store_true", help="1M events with 1%% hostile rows vs the same file "
                    "without them (bench/results/ingest_hostile.json)")
    ap.add_argument("--rows", type=int, default=1_000_000, help="--hostile: rows in the file")
    ap.add_argument("--bad-rate", type=float, default=0.01, help="--hostile: share of hostile rows")
    ap.add_argument("--baseline", default=None, help="also run the code of this git revision (as "
                    "shopsense_<REV>, in the same run: a before/after beside the peer)")
    ap.add_argument("--only", default=None, help="comma-separated datasets (events, icecat_products, "
                    "homedepot_products): run those alone, without the CLI checks, and replace only their "
                    "entries in --out (the others are kept as they were)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per system (in turn); the median run "
                    "is reported, every run's seconds in seconds_runs")
    ap.add_argument("--postgres", action="store_true", help="events: also shopsense into PostgreSQL (COPY "
                    "path) and the server's own COPY of the raw file (its limit), on a throwaway server "
                    "started as the tests start it (scripts/install-services.sh installs it)")
    ap.add_argument("--child", nargs=5, metavar=("SYSTEM", "KIND", "PATH", "HOME", "MAP"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    if args.hostile:
        hostile_run(args.rows, args.bad_rate, args.baseline, args.out or HOSTILE_RESULTS)
        return
    args.out = args.out or RESULTS

    from shopsense.eval import print_table

    only = set(args.only.split(",")) if args.only else None
    load_before = os.getloadavg()[0]
    results: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="shopsense-bench-ingest-") as td:
        tmp = Path(td)
        files = build_files(tmp, args.quick, only)
        base_src = _baseline_src(args.baseline, tmp) if args.baseline else None
        systems: list[tuple[str, str, Path | None]] = [("pandas_to_sql", "pandas_to_sql", None),
                                                       ("shopsense", "shopsense", None)]
        if base_src is not None:
            systems.append((f"shopsense_{args.baseline}", "shopsense", base_src))
        pg = contextlib.nullcontext(None)
        if args.postgres:
            sys.path.insert(0, str(ROOT))
            from tests.services import postgres_server

            pg = postgres_server()
        with pg as pg_url:
            _run_all(args, files, systems, pg_url, tmp, results)
        shown = ("rows_per_s", "seconds", "peak_rss_mb", "ingest_rss_mb", "stored", "rejected")
        print_table({d: {s: {m: v[m] for m in shown} for s, v in sy.items()} for d, sy in results.items()},
                    title="ingest", peer="pandas_to_sql")
        if only is None:
            results.update(cli_checks(tmp))
    _write(args, results, only, load_before)


def _run_all(args: argparse.Namespace, files: dict[str, tuple[str, Path, dict[str, str]]],
             systems: list[tuple[str, str, Path | None]], pg_url: str | None, tmp: Path,
             results: dict[str, dict[str, dict[str, float]]]) -> None:
    """Every system on every file, ``args.repeat`` times in turn; the median run of each."""
    for ds, (kind, path, mapping) in files.items():
        results[ds] = {}
        ds_systems = [(n, s, t, None) for n, s, t in systems]
        if pg_url is not None and kind == "events":
            ds_systems += [("shopsense_postgres", "shopsense_postgres", None, pg_url),
                           ("postgres_copy", "postgres_copy", None, pg_url)]
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _, _ in ds_systems}
        for _ in range(args.repeat):  # the systems in turn, so a change of load hits each alike
            for name, system, tree, url in ds_systems:
                r = run_child(system, kind, path, tmp / f"home_{ds}_{name}", mapping, tree, url)
                print(f"{ds:20s} {name:14s} {r['read']:>8,} rows  {r['rows_per_s']:>9,.0f} rows/s  "
                      f"peak RSS {r['peak_rss_mb']:.0f} MB  load {os.getloadavg()[0]:.1f}")
                runs[name].append(r)
        for name, rs in runs.items():
            r = sorted(rs, key=lambda x: x["seconds"])[len(rs) // 2]  # the median run
            results[ds][name] = {k: round(float(r[k]), 3) for k in (
                "read", "stored", "rejected", "seconds", "rows_per_s", "peak_rss_mb",
                "rss_after_import_mb", "ingest_rss_mb")}
            if len(rs) > 1:
                results[ds][name]["seconds_runs"] = [round(float(x["seconds"]), 3) for x in rs]
        p = results[ds]["pandas_to_sql"]
        for name, _, _, _ in ds_systems[1:]:
            s = results[ds][name]
            s["throughput_ratio_vs_peer"] = round(s["rows_per_s"] / p["rows_per_s"], 3)
            s["peak_rss_ratio_vs_peer"] = round(s["peak_rss_mb"] / p["peak_rss_mb"], 3)
        if "postgres_copy" in results[ds]:
            s = results[ds]["shopsense_postgres"]
            s["throughput_ratio_vs_postgres_copy"] = round(
                s["rows_per_s"] / results[ds]["postgres_copy"]["rows_per_s"], 3)


def _write(args: argparse.Namespace, results: dict[str, Any], only: set[str] | None, load_before: float) -> None:
    from shopsense.eval import bar_chart, meta, write_json

    m = meta(
        "Each system in a fresh subprocess on the same file; rows/s = rows read / wall seconds of "
        "the ingest call; peak RSS = VmHWM of that process (includes the interpreter and "
        "imports, see rss_after_import_mb). Libraries are imported before the clock starts in both "
        "(the peer's pandas; shopsense's pandas and pyarrow, which its ingest used to import inside "
        "the timed call: since 2026-11-30). Peer: pandas.read_csv + DataFrame.to_sql(sqlite3), "
        f"no validation, no dedupe, no batching. {args.repeat} run(s) each, the systems in turn; the median "
        "run is reported (seconds_runs: every run). With --baseline REV, shopsense_<REV> is "
        "the code of that git revision (src/ only; bench and datasets of this tree) on the same file. "
        "With --postgres (events): shopsense_postgres is the same ingest into PostgreSQL (store_url; "
        "batches COPYed into a staging table, then moved with the same de-duplication), postgres_copy "
        "the server's own COPY of the raw CSV into an unindexed table (its limit); a fresh database "
        "each run on a throwaway PostgreSQL 15 started as the tests start it (fsync off, as there).",
        postgres=args.postgres,
        quick=args.quick, baseline=args.baseline, load_average_1m=round(os.getloadavg()[0], 2),
        load_average_1m_before=round(load_before, 2),
    )
    if only is not None and args.out.exists():  # keep the other datasets' entries as they were
        old = json.loads(args.out.read_text())
        m["only"] = sorted(only)
        m["previous_meta"] = {k: v for k, v in old.pop("_meta", {}).items() if k != "previous_meta"}
        results = {**old, **results}
    write_json(results, args.out, m)
    bar_chart({k: v for k, v in results.items() if not k.startswith("cli_")}, "rows_per_s",
              args.out.with_suffix(".png"), title="ingest throughput (rows/s)")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
