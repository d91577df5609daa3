"""Scale curve: what each path costs as a shop's events and catalogue grow.

    python bench/scale.py                          # events x1, x4, x16, x64; items x1 and x4
    python bench/scale.py --factors 1,4 --quick    # a smoke run
    python bench/scale.py --merge --spark-only --factors 1,16,40,64 --item-factors 1 --spark-store-at 1
                                                   # the Spark path alone, into the existing results

A SCALE SIMULATION, stated as such: the real Amazon Sports 5-core interactions
(35,598 users, 18,357 items, 296,337 events) are replicated ``f`` times with remapped
user ids (copy ``j`` of user ``u`` is ``u~j``; same items, same time order), so x64 is
about 19M events from 2.3M users. Catalogue growth (items x``g``) maps copy ``j`` of
each user onto item copy ``j % g``, so the item count grows ``g`` times while every
copy keeps Sports' real co-occurrence structure. Nothing is synthesised beyond ids.

Each measurement runs in a fresh subprocess with a time limit, so its peak resident
memory (VmHWM) is its own and a path that runs out of time or memory is reported as
such instead of ending the run:
- ``ingest``: the events Parquet file through ``Engine.ingest_events`` (validation,
  de-duplication, batched SQLite commits), rows/s;
- ``load``: ``store.events()`` into the arrays models are handed (the in-process path
  reads every event into memory);
- one fit per model (popularity, ALS via implicit, item-kNN, EASE while the catalogue is
  under the bound ``EASE_MAX``), with recommend p50/p99 over 300 users' histories;
- ``spark_als``: the same events trained by Spark MLlib ALS (``shopsense.jobs.train_spark``,
  ``local[*]``, the JVM heap ``--spark-driver-memory``) with the in-process ALS's rank and
  iterations (64, 10), when pyspark is installed: its time by step, the peak resident memory
  of the Python driver (VmHWM) and of the JVM (its RSS sampled every 0.2 s, since rusage
  misses a child that is still alive), and a check that the saved model version is served.
  Where the home's events are ingested, the job reads the store (its SQLite -> Parquet export
  is timed apart); with ``--spark-only`` the home holds the products only and the job reads
  the same events from the Parquet file the store would have exported (an ingest of x64 took
  24 minutes and is measured in the ``ingest`` rows).
Search over the catalogue is measured at scale in ``bench/serve.py`` (Home Depot); Sports
has no item text to index.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Self

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "scale.json"
EASE_MAX = 30000  # items: EASE inverts an n x n Gram matrix (recommend/_training.py bounds it too)
ALS_RANK, ALS_ITERS = 64, 10  # the in-process ALS child's; the Spark path is given the same


def _peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# -- data ------------------------------------------------------------------------------------
def build_files(work: Path, factor: int, item_factor: int) -> tuple[Path, Path, int, int, int]:
    """Events Parquet and products JSONL for one size; cached in ``work``."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from shopsense.datasets import load_amazon_sequences

    ev_path = work / f"events_x{factor}_i{item_factor}.parquet"
    pr_path = work / f"products_i{item_factor}.jsonl"
    meta_path = work / f"events_x{factor}_i{item_factor}.json"
    if ev_path.exists() and pr_path.exists() and meta_path.exists():
        m = json.loads(meta_path.read_text())
        return ev_path, pr_path, m["events"], m["users"], m["items"]
    seqs = load_amazon_sequences("sports")
    users = [str(u) for u in seqs.keys]
    lists = seqs.as_lists()
    items = sorted({i for s in lists for i in s})
    with pr_path.open("w") as fh:
        for g in range(item_factor):
            for i in items:
                pid = i if g == 0 else f"{i}~{g}"
                fh.write(json.dumps({"id": pid, "title": pid}) + "\n")
    base_ts = 1_400_000_000.0
    writer = None
    n = 0
    for j in range(factor):
        g = j % item_factor
        u_col, i_col, t_col = [], [], []
        for u, s in zip(users, lists):
            uid = u if j == 0 else f"{u}~{j}"
            for pos, i in enumerate(s):
                u_col.append(uid)
                i_col.append(i if g == 0 else f"{i}~{g}")
                t_col.append(base_ts + pos * 86400.0 + j)  # distinct per copy: no de-duplication
        table = pa.table({"user_id": u_col, "item_id": i_col, "type": ["purchase"] * len(u_col),
                          "timestamp": np.asarray(t_col, np.float64)})
        if writer is None:
            writer = pq.ParquetWriter(ev_path, table.schema)
        writer.write_table(table)
        n += len(u_col)
    assert writer is not None
    writer.close()
    meta = {"events": n, "users": len(users) * factor, "items": len(items) * item_factor}
    meta_path.write_text(json.dumps(meta))
    return ev_path, pr_path, meta["events"], meta["users"], meta["items"]


# -- children --------------------------------------------------------------------------------
def child(task: str, home: str, events: str, products: str) -> dict:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from shopsense import Engine

    if task == "ingest":
        eng = Engine(home)
        t0 = time.perf_counter()
        eng.ingest_products(products)
        t1 = time.perf_counter()
        rep = eng.ingest_events(events)
        dt = time.perf_counter() - t1
        eng.close()
        return {"seconds": dt, "rows_per_s": rep.stored / dt, "stored": rep.stored, "rejected": rep.rejected,
                "products_seconds": t1 - t0, "peak_mb": _peak_mb()}
    if task == "products":
        eng = Engine(home)
        t0 = time.perf_counter()
        eng.ingest_products(products)
        eng.close()
        return {"seconds": time.perf_counter() - t0, "peak_mb": _peak_mb()}
    if task in ("spark_als", "spark_als_parquet"):
        return _spark_child(task, home, events, products)
    import numpy as np

    from shopsense.catalog import EVENT_WEIGHTS
    from shopsense.recommend import ALS, EASE, Interactions, ItemKNN, Popularity

    eng = Engine(home)
    t0 = time.perf_counter()
    catalog = eng.catalog()
    ev = eng.store.events()
    idx = np.fromiter((catalog.index.get(i, -1) for i in ev.item_id), np.int64, len(ev))
    _, uidx = np.unique(np.asarray(ev.user_id, dtype=str), return_inverse=True)
    w = np.fromiter((EVENT_WEIGHTS.get(str(t), 0.0) for t in ev.type), np.float32, len(ev))
    data = Interactions.from_arrays(uidx, idx, n_items=len(catalog), weight=w, timestamp=ev.timestamp)
    load_s = time.perf_counter() - t0
    del ev
    if task == "load":
        return {"seconds": load_s, "peak_mb": _peak_mb(), "events": len(data.user)}
    models = {"popularity": Popularity(), "als": ALS(factors=64, iterations=10, num_threads=2),
              "itemknn": ItemKNN(), "ease": EASE(l2=250.0)}
    model = models[task]
    base = _peak_mb()
    t0 = time.perf_counter()
    model.fit(data)
    fit_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    seqs_users = rng.choice(data.n_users, size=min(300, data.n_users), replace=False)
    order = np.argsort(data.user, kind="stable")
    bounds = np.searchsorted(data.user[order], np.arange(data.n_users + 1))
    lat = []
    for u in seqs_users:
        hist = data.item[order[bounds[u]:bounds[u + 1]]]
        s = time.perf_counter()
        model.recommend([hist], k=10)
        lat.append((time.perf_counter() - s) * 1000)
    return {"fit_seconds": fit_s, "load_seconds": load_s, "peak_mb": _peak_mb(), "peak_before_fit_mb": base,
            "recommend_p50_ms": float(np.percentile(lat, 50)), "recommend_p99_ms": float(np.percentile(lat, 99))}


class _JvmSampler:
    """Peak RSS of this process's descendants while a job runs: the JVM pyspark starts (and the
    Python workers it forks), sampled with psutil, since getrusage sees a child only once it
    has been reaped."""

    def __init__(self, every_s: float = 0.2) -> None:
        import threading

        self.jvm_mb = 0.0
        self.workers_mb = 0.0
        self._stop = threading.Event()
        self._every = every_s
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.wait(self._every):
            jvm = workers = 0
            for c in me.children(recursive=True):
                try:
                    rss = c.memory_info().rss
                    cmd = " ".join(c.cmdline())
                except psutil.Error:
                    continue
                # the JVM forks short-lived helpers (Hadoop's local file system runs shell
                # commands); until they exec, such a child reports the JVM's whole RSS, so
                # the JVM is the largest java process (one in local mode), not their sum, and
                # Python workers are counted by their pyspark command line only
                if c.name() == "java" and "org.apache.spark" in cmd:
                    jvm = max(jvm, rss)
                elif "pyspark" in cmd and "python" in c.name():
                    workers += rss
            self.jvm_mb = max(self.jvm_mb, jvm / 2**20)
            self.workers_mb = max(self.workers_mb, workers / 2**20)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _spark_child(task: str, home: str, events: str, products: str) -> dict:
    """train_spark on the store (``spark_als``) or on the events Parquet (``spark_als_parquet``,
    a home with the products only), then the saved version answered the way serving loads it."""
    import numpy as np

    from shopsense import Engine
    from shopsense.jobs import train_spark
    from shopsense.recommend import Recommender

    conf = {"spark.driver.memory": os.environ.get("SCALE_SPARK_DRIVER_MEMORY", "8g")}
    t0 = time.perf_counter()
    with _JvmSampler() as jvm:
        manifest = train_spark(home, rank=ALS_RANK, iters=ALS_ITERS, conf=conf,
                               events=events if task == "spark_als_parquet" else None)
    dt = time.perf_counter() - t0
    out: dict = {"seconds": dt, "peak_mb": _peak_mb(), "jvm_peak_mb": jvm.jvm_mb,
                 "python_workers_peak_mb": jvm.workers_mb, "driver_memory": conf["spark.driver.memory"],
                 "steps_seconds": manifest["spark"]["seconds"], "params": manifest["spark"]["params"],
                 "events_read": manifest["spark"]["events"], "n_interactions": manifest["n_interactions"],
                 "n_users": manifest["n_users"]}
    # served: the version folder the recommend service loads (CURRENT), asked for 300 users
    eng = Engine(home)
    folder = eng.paths.model_version(manifest["version"])
    current = eng.paths.models_current.read_text().strip()
    ids = json.loads((folder / "item_ids.json").read_text())
    model = Recommender.load(folder / "als")
    import pyarrow.parquet as pq

    first = next(pq.ParquetFile(events).iter_batches(batch_size=300_000, columns=["user_id", "item_id"]))
    index = {x: i for i, x in enumerate(ids)}
    users = np.asarray(first.column("user_id").to_pylist(), dtype=object)
    items = np.array([index[x] for x in first.column("item_id").to_pylist()], np.int64)
    rng = np.random.default_rng(0)
    picked = rng.choice(np.unique(users), size=300, replace=False)
    lat = []
    for u in picked:
        s = time.perf_counter()
        model.recommend([items[users == u]], k=10)
        lat.append((time.perf_counter() - s) * 1000)
    out.update({"served_version_is_current": current == manifest["version"],
                "recommend_p50_ms": float(np.percentile(lat, 50)), "recommend_p99_ms": float(np.percentile(lat, 99))})
    if task == "spark_als":  # the store holds the events: the engine answers a shopper end to end
        res = eng.recommend(str(picked[0]), k=10)
        out["engine_check"] = {"user": str(picked[0]), "model_version": res.info.get("model_version"),
                               "model": res.info.get("model"), "personalised": res.info.get("personalised"),
                               "hits": len(res.hits), "sources": sorted({h.source for h in res.hits})}
    eng.close()
    return out


def run_child(task: str, home: Path, ev: Path, pr: Path, timeout: float, mem_cap_gb: float | None) -> dict:
    """One measurement in a fresh process. ``mem_cap_gb`` caps its address space, so a model
    that would exhaust the machine fails with MemoryError (reported) instead of taking the
    machine down (not for the JVM, which reserves far more address space than it uses)."""
    cmd = [sys.executable, __file__, "--child", task, str(home), str(ev), str(pr)]
    cap = None if mem_cap_gb is None or task == "spark_als" else int(mem_cap_gb * 2**30)

    def limit() -> None:
        if cap is not None:
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    t0 = time.perf_counter()
    # a session of its own, so a timeout ends the JVM a Spark child started along with it
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=limit, start_new_session=True)  # noqa: PLW1509 - the parent runs no threads
    try:
        stdout, stderr = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        import signal

        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        return {"status": f"timeout after {timeout:.0f} s"}
    if p.returncode != 0:
        oom = "MemoryError" in stderr or "Unable to allocate" in stderr or "OutOfMemoryError" in stderr or p.returncode in (-9, 137)
        if task.startswith("spark") and oom:
            why = "out of memory"
        else:
            why = f"out of memory (address space capped at {mem_cap_gb:g} GB)" if oom else f"exit {p.returncode}"
        return {"status": why, "stderr": stderr[-300:], "seconds": time.perf_counter() - t0}
    out = json.loads(stdout.strip().splitlines()[-1])
    out["status"] = "ok"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--factors", default="1,4,16,64", help="event replication factors")
    ap.add_argument("--item-factors", default="1,4", help="catalogue replication factors")
    ap.add_argument("--item-growth-at", default="1,16",
                    help="event factors at which the larger catalogues are measured (each costs a full run)")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per measurement")
    ap.add_argument("--mem-cap-gb", type=float, default=12.0, help="address-space cap per measurement")
    ap.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "shopsense-scale"))
    ap.add_argument("--no-spark", action="store_true")
    ap.add_argument("--spark-at", default="1,4,16,64", help="event factors at which the Spark path is measured")
    ap.add_argument("--ease-at", default="1,4,16,64",
                    help="event factors at which EASE is fitted (its cost is set by the catalogue: n^3)")
    ap.add_argument("--spark-only", action="store_true",
                    help="only the Spark path, added to the sizes' existing rows (with --merge): the job reads the "
                         "events Parquet, the home holds the products (except at --spark-store-at)")
    ap.add_argument("--spark-store-at", default="1",
                    help="with --spark-only: factors whose events are ingested first, so the job reads the store "
                         "(its SQLite -> Parquet export timed) and the engine serves the model")
    ap.add_argument("--spark-driver-memory", default="8g",
                    help="JVM heap of the local Spark driver (its executors run inside it)")
    ap.add_argument("--merge", action="store_true", help="keep the sizes already in the results file")
    ap.add_argument("--quick", action="store_true", help="x1 and x4 only, items x1")
    ap.add_argument("--child", nargs=4, metavar=("TASK", "HOME", "EVENTS", "PRODUCTS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    from shopsense.eval import meta, print_table, write_json

    factors = [1, 4] if args.quick else [int(x) for x in args.factors.split(",")]
    item_factors = [1] if args.quick else [int(x) for x in args.item_factors.split(",")]
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    try:
        import pyspark  # noqa: F401

        spark = not args.no_spark
    except ImportError:
        spark = False
    results: dict[str, dict[str, dict]] = {}
    earlier: dict = {}  # with --merge: the commands and notes of the runs whose sizes are kept
    if args.merge and RESULTS.exists():
        old = json.loads(RESULTS.read_text())
        results = {k: v for k, v in old.items() if not k.startswith("_")}
        earlier = old.get("_meta", {})
    spark_at = {int(x) for x in args.spark_at.split(",")}
    ease_at = {int(x) for x in args.ease_at.split(",")}

    def save() -> None:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        write_json(results, RESULTS, meta(
            "scale simulation: Amazon Sports 5-core events replicated with remapped user ids "
            "(items replicated for catalogue growth); each measurement a fresh subprocess with a "
            f"{args.timeout:.0f} s limit and a {args.mem_cap_gb:g} GB address-space cap (not for Spark: the JVM "
            "reserves far more address space than it uses); peak memory = VmHWM of that process; Spark: "
            f"local[*], rank {ALS_RANK} / {ALS_ITERS} iterations as the in-process ALS, JVM heap "
            f"{args.spark_driver_memory}, the JVM's RSS sampled every 0.2 s (jvm_peak_mb)", load_average=os.getloadavg(),
            note="sizes may come from several runs (--merge); each size's load average is in its _load "
                 "(_load_spark for a --spark-only run)",
            commands=[*earlier.get("commands", []),
                      *([earlier["command"]] if earlier.get("command") and earlier["command"] not in
                        earlier.get("commands", []) else []),
                      " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])] if earlier else None,
            **{k: v for k, v in earlier.items() if k.startswith("spark_")}))
    growth_at = {int(x) for x in args.item_growth_at.split(",")}
    os.environ["SCALE_SPARK_DRIVER_MEMORY"] = args.spark_driver_memory  # read by the Spark child
    if args.spark_only:
        if not spark:
            sys.exit("--spark-only needs pyspark (pip install 'shopsense[spark]') and a Java runtime")
        _spark_only(args, results, factors, item_factors, work, save)
        factors, item_factors = [], []
    for g in item_factors:
        for f in factors:
            if g > 1 and f not in growth_at:
                continue
            ev, pr, n_ev, n_users, n_items = build_files(work, f, g)
            name = f"sports events x{f} items x{g} ({n_ev:,} events, {n_users:,} users, {n_items:,} items)"
            print(f"== {name}", flush=True)
            home = work / f"home_x{f}_i{g}"
            if home.exists():
                import shutil

                shutil.rmtree(home)
            row: dict[str, dict] = {"_size": {"events": n_ev, "users": n_users, "items": n_items},
                                    "_load": {"load_average_at_start": list(os.getloadavg())}}
            results[name] = row
            row["ingest"] = run_child("ingest", home, ev, pr, args.timeout, args.mem_cap_gb)
            print("  ingest", row["ingest"], flush=True)
            if row["ingest"]["status"] != "ok":
                results[name] = row
                continue
            row["load"] = run_child("load", home, ev, pr, args.timeout, args.mem_cap_gb)
            for task in ("popularity", "als", "itemknn", "ease"):
                if task == "ease" and n_items > EASE_MAX:
                    row[task] = {"status": f"skipped: {n_items:,} items > bound {EASE_MAX:,} (falls back to item-kNN)"}
                elif task == "ease" and f not in ease_at:
                    row[task] = {"status": "not run at this size (--ease-at): its cost is set by the catalogue"}
                else:
                    row[task] = run_child(task, home, ev, pr, args.timeout, args.mem_cap_gb)
                print(f"  {task}", row[task], flush=True)
                save()
            if spark and f in spark_at:
                row["spark_als"] = run_child("spark_als", home, ev, pr, args.timeout, args.mem_cap_gb)
                print("  spark_als", row["spark_als"], flush=True)
            import shutil

            shutil.rmtree(home, ignore_errors=True)  # a x64 home is several GB
            save()
    flat = {name: {task: {k: v for k, v in m.items() if isinstance(v, (int, float))}
                   for task, m in row.items() if not task.startswith("_")} for name, row in results.items()}
    print_table({name: {t: {k: v for k, v in m.items() if k in ("seconds", "fit_seconds", "rows_per_s", "peak_mb",
                                                                   "recommend_p99_ms")}
                        for t, m in row.items()} for name, row in flat.items()}, title="scale")
    _plot(results, RESULTS.with_suffix(".png"))
    print(f"wrote {RESULTS}")


def _spark_only(args: argparse.Namespace, results: dict, factors: list[int], item_factors: list[int], work: Path,
                save: Any) -> None:
    """The Spark path at each size, into that size's row (the in-process rows are kept)."""
    import shutil

    store_at = {int(x) for x in args.spark_store_at.split(",") if x}
    for g in item_factors:
        for f in factors:
            ev, pr, n_ev, n_users, n_items = build_files(work, f, g)
            name = f"sports events x{f} items x{g} ({n_ev:,} events, {n_users:,} users, {n_items:,} items)"
            print(f"== {name} (spark only)", flush=True)
            home = work / f"home_spark_x{f}_i{g}"
            shutil.rmtree(home, ignore_errors=True)
            row = results.setdefault(name, {"_size": {"events": n_ev, "users": n_users, "items": n_items}})
            row["_load_spark"] = {"load_average_at_start": list(os.getloadavg())}
            if f in store_at:
                ing = run_child("ingest", home, ev, pr, args.timeout, args.mem_cap_gb)
                print("  ingest (for the store path)", {k: v for k, v in ing.items() if k != "stderr"}, flush=True)
                task = "spark_als"
                if ing["status"] != "ok":
                    row[task] = {"status": f"not run: ingest {ing['status']}"}
                    continue
            else:
                prod = run_child("products", home, ev, pr, args.timeout, args.mem_cap_gb)
                task = "spark_als_parquet"
                if prod["status"] != "ok":
                    row[task] = {"status": f"not run: products {prod['status']}"}
                    continue
            row[task] = run_child(task, home, ev, pr, args.timeout, args.mem_cap_gb)
            row["_load_spark"]["load_average_at_end"] = list(os.getloadavg())
            print(f"  {task}", row[task], flush=True)
            shutil.rmtree(home, ignore_errors=True)
            save()


def _plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    series: dict[str, list[tuple[float, float, float]]] = {}
    stopped: set[float] = set()
    for row in results.values():
        if "_size" not in row:
            continue
        n = row["_size"]["events"]
        items = row["_size"]["items"]
        for task, m in row.items():
            if task.startswith("_"):
                continue
            if str(m.get("status", "")).startswith("out of memory") and not task.startswith("spark"):
                stopped.add(n)
            # Spark runs without "params" are the earlier protocol (rank 128, 15 iterations, 1 GB heap)
            if m.get("status") != "ok" or (task.startswith("spark") and "params" not in m):
                continue
            secs = m.get("fit_seconds", m.get("seconds"))
            if secs is None:
                continue
            label = "spark_als, whole job" if task.startswith("spark_als") else task
            series.setdefault(f"{label} (items {items:,})", []).append((n, secs, m.get("peak_mb", float("nan"))))
            if "jvm_peak_mb" in m:
                series.setdefault(f"spark_als JVM RSS (items {items:,})", []).append((n, float("nan"), m["jvm_peak_mb"]))
    for label, pts in series.items():
        pts.sort()
        xs = [p[0] for p in pts]
        axes[0].plot(xs, [p[1] for p in pts], marker="o", label=label)
        axes[1].plot(xs, [p[2] for p in pts], marker="o", label=label)
    for n in sorted(stopped):
        for ax in axes:
            ax.axvline(n, color="red", linestyle="--", alpha=0.6)
            ax.annotate("in-process: out of memory", (n, 0.97), xycoords=("data", "axes fraction"), rotation=90,
                        ha="right", va="top", fontsize=7, color="red")
    for ax, ylabel in zip(axes, ("seconds (in-process: fit only)", "peak resident memory (MB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("events (log)")
        ax.set_ylabel(ylabel + " (log)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_title("time against size")
    axes[1].set_title("peak memory against size")
    axes[1].legend(fontsize=7, loc="upper left")
    fig.suptitle("shopsense scale simulation (Amazon Sports replicated; see JSON _meta)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
