"""Ingest throughput and peak memory: shopsense vs a plain pandas read_csv + to_sql peer.

    python bench/ingest.py            # full run (~500k events, Icecat 19,406, Home Depot 54,667)
    python bench/ingest.py --quick    # 120k events, for a smoke run

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

The script also checks the CLI: ``shopsense ingest products`` of the full Icecat and
Home Depot files must end with read == stored + rejected (no silent drops), and a
deliberately broken file must produce a rejects report naming line and field.
"""

from __future__ import annotations

import argparse
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "ingest.json"
HD_MAP = {"product_uid": "id", "product_title": "title"}


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
        from shopsense import Engine

        base = _rss_mb()
        eng = Engine(home)
        t0 = time.perf_counter()
        fn = eng.ingest_products if kind == "products" else eng.ingest_events
        rep = fn(path, mapping=mapping_d)
        secs = time.perf_counter() - t0
        stored = eng.store.count_products() if kind == "products" else eng.store.count_events()
        out = {"read": rep.read, "stored": stored, "rejected": rep.rejected, "seconds": secs}
        eng.close()
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


def run_child(system: str, kind: str, path: Path, home: Path, mapping: dict[str, str]) -> dict[str, float]:
    if home.exists():
        shutil.rmtree(home)
    proc = subprocess.run(
        [sys.executable, __file__, "--child", system, kind, str(path), str(home), json.dumps(mapping)],
        capture_output=True, text=True, check=False,
    )
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"{system} on {path.name} failed:\n{proc.stderr[-2000:]}")
    r = json.loads(line[len("RESULT "):])
    r["rows_per_s"] = r["read"] / r["seconds"]
    r["ingest_rss_mb"] = r["peak_rss_mb"] - r["rss_after_import_mb"]
    return r


# -- data ------------------------------------------------------------------------------------
def build_files(tmp: Path, quick: bool) -> dict[str, tuple[str, Path, dict[str, str]]]:
    import itertools

    from shopsense.datasets import (
        dataset_file,
        export_events,
        export_products,
        iter_amazon_events,
        load_icecat_products,
    )

    events = itertools.chain(iter_amazon_events("beauty"), iter_amazon_events("sports"))
    if quick:
        events = itertools.islice(events, 120_000)
    n_ev = export_events(events, tmp / "events.csv", columns=["user_id", "item_id", "type", "timestamp"])
    n_ic = export_products(load_icecat_products(), tmp / "icecat_products.csv")
    print(f"built events.csv ({n_ev:,} rows), icecat_products.csv ({n_ic:,} rows)")
    return {
        "events": ("events", tmp / "events.csv", {}),
        "icecat_products": ("products", tmp / "icecat_products.csv", {}),
        "homedepot_products": ("products", dataset_file("search", "homedepot", "products.csv"), HD_MAP),
    }


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="120k events instead of ~495k")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--child", nargs=5, metavar=("SYSTEM", "KIND", "PATH", "HOME", "MAP"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return

    from shopsense.eval import bar_chart, meta, print_table, write_json

    results: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="shopsense-bench-ingest-") as td:
        tmp = Path(td)
        files = build_files(tmp, args.quick)
        for ds, (kind, path, mapping) in files.items():
            results[ds] = {}
            for system in ("pandas_to_sql", "shopsense"):
                r = run_child(system, kind, path, tmp / f"home_{ds}_{system}", mapping)
                print(f"{ds:20s} {system:14s} {r['read']:>8,} rows  {r['rows_per_s']:>9,.0f} rows/s  "
                      f"peak RSS {r['peak_rss_mb']:.0f} MB")
                results[ds][system] = {k: round(float(r[k]), 3) for k in (
                    "read", "stored", "rejected", "seconds", "rows_per_s", "peak_rss_mb",
                    "rss_after_import_mb", "ingest_rss_mb")}
            s, p = results[ds]["shopsense"], results[ds]["pandas_to_sql"]
            s["throughput_ratio_vs_peer"] = round(s["rows_per_s"] / p["rows_per_s"], 3)
            s["peak_rss_ratio_vs_peer"] = round(s["peak_rss_mb"] / p["peak_rss_mb"], 3)
        shown = ("rows_per_s", "seconds", "peak_rss_mb", "ingest_rss_mb", "stored", "rejected")
        print_table({d: {s: {m: v[m] for m in shown} for s, v in sy.items()} for d, sy in results.items()},
                    title="ingest", peer="pandas_to_sql")
        results.update(cli_checks(tmp))
    m = meta(
        "Each system in a fresh subprocess on the same file; rows/s = rows read / wall seconds of "
        "the ingest call; peak RSS = VmHWM of that process (includes the interpreter and "
        "imports, see rss_after_import_mb). Peer: pandas.read_csv + DataFrame.to_sql(sqlite3), "
        "no validation, no dedupe, no batching. One run each.",
        quick=args.quick, load_average_1m=round(os.getloadavg()[0], 2),
    )
    write_json(results, args.out, m)
    bar_chart({k: v for k, v in results.items() if not k.startswith("cli_")}, "rows_per_s",
              args.out.with_suffix(".png"), title="ingest throughput (rows/s)")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
