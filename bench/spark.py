"""Spark jobs against their in-process peers, in one run.

1. Amazon Beauty, leave-one-out (S3-Rec/P5/TIGER: last item test, second-to-last validation,
   ALL items ranked, history excluded, Recall@10 / NDCG@10 averaged over every user):
   Spark MLlib ALS (``shopsense.jobs.fit_als_spark``) against shopsense's in-process ALS
   (the ``implicit`` library), same rank, iterations and alpha, both fitted on s[:-1]. Both
   are scored the way serving scores them: users folded in from their history against the
   item factors (``shopsense.recommend.ALS.recommend``). MLlib scales its ridge by each
   user's and item's interaction count (ALS-WR) and ``implicit`` does not, so each system
   keeps its own regularisation: implicit's 0.05 from bench/recommend.py; Spark's regParam
   0.01, set beforehand as 0.05 / ~8 interactions per user (rounded), not tuned; with several
   ``--spark-reg`` values it is picked on the validation target.
2. UCI Online Retail, all 25,900 invoices: Spark SQL co-occurrence counts
   (``shopsense.jobs.cooccurrence_spark``) against the in-process miner
   (``shopsense.bundles.CoPurchase``), pair by pair.

    python bench/spark.py                                  # both parts, Spark on local[2]
    python bench/spark.py --spark-reg 0.005 0.01 0.02       # Spark's regParam on validation
    python bench/spark.py --master spark://host:7077 --threads 8

Writes bench/results/spark.json and spark.png (NDCG@10 on Beauty).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "datasets"
OUT = ROOT / "bench" / "results" / "spark.json"
IMPLICIT = "implicit ALS (in-process)"
SPARK = "Spark MLlib ALS"


def write_events(histories: list[np.ndarray], ids: list[str], path: Path) -> Path:
    """Histories as an events Parquet file (one purchase per item, time = position)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    lens = np.array([len(h) for h in histories])
    users = np.repeat(np.arange(len(histories)), lens)
    items = np.concatenate(histories)
    pq.write_table(pa.table({
        "user_id": pa.array([f"u{u}" for u in users]),
        "item_id": pa.array(np.asarray(ids, dtype=object)[items]),
        "type": pa.array(["purchase"] * len(users)),
        "timestamp": pa.array(np.concatenate([np.arange(n) for n in lens]).astype(np.float64)),
    }), path)
    return path


def spark_als(spark: Any, histories: list[np.ndarray], ids: list[str], work: Path, args: argparse.Namespace,
              reg: float) -> tuple[Any, float]:
    from shopsense.jobs import events_frame, fit_als_spark

    path = write_events(histories, ids, work / f"events-{len(histories)}-{sum(map(len, histories))}.parquet")
    t0 = time.perf_counter()
    model = fit_als_spark(events_frame(spark, path), ids, rank=args.rank, reg=reg, iters=args.iters,
                          alpha=args.alpha, seed=0)
    return model, time.perf_counter() - t0


def implicit_als(histories: list[np.ndarray], n_items: int, args: argparse.Namespace) -> tuple[Any, float]:
    from shopsense.recommend import ALS, Interactions

    t0 = time.perf_counter()
    model = ALS(factors=args.rank, regularization=args.implicit_reg, alpha=args.alpha, iterations=args.iters,
                num_threads=args.threads, random_state=0).fit(Interactions.from_sequences(histories, n_items))
    return model, time.perf_counter() - t0


def beauty(spark: Any, work: Path, args: argparse.Namespace, say: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    from shopsense.eval import evaluate_model, loo_split, read_user_sequences
    from shopsense.recommend import Interactions, Popularity

    seqs, ids = read_user_sequences(DATA / "rec" / "amazon-beauty" / "user_sequence.txt")
    split = loo_split(seqs[: args.max_users or None], len(ids))
    say(f"beauty: {len(split.test_hist):,} users, {len(ids):,} items, "
        f"{sum(map(len, split.test_hist)):,} training interactions")
    info: dict[str, Any] = {"validation": {}}
    reg = args.spark_reg[0]
    if len(args.spark_reg) > 1:  # Spark's regParam on the validation target (s[:-2] -> s[-2])
        best = -1.0
        for r in args.spark_reg:
            model, secs = spark_als(spark, split.train, ids, work, args, r)
            nd = evaluate_model(model, split.valid_hist, split.valid_target)["ndcg@10"]
            info["validation"][f"spark reg {r:g}"] = nd
            say(f"  validation: spark regParam {r:g}: NDCG@10 {nd:.4f} (fit {secs:.0f}s)")
            if nd > best:
                best, reg = nd, r
    info["spark_reg"] = reg
    res: dict[str, dict[str, float]] = {}
    model, secs = implicit_als(split.test_hist, len(ids), args)
    res[IMPLICIT] = {**evaluate_model(model, split.test_hist, split.test_target), "train_seconds": secs}
    say(f"  {IMPLICIT}: NDCG@10 {res[IMPLICIT]['ndcg@10']:.4f} (fit {secs:.0f}s)")
    model, secs = spark_als(spark, split.test_hist, ids, work, args, reg)
    res[SPARK] = {**evaluate_model(model, split.test_hist, split.test_target), "train_seconds": secs}
    say(f"  {SPARK}: NDCG@10 {res[SPARK]['ndcg@10']:.4f} (fit {secs:.0f}s, fold-in ridge {model.regularization:.3f})")
    pop = Popularity().fit(Interactions.from_sequences(split.test_hist, len(ids)))
    res["popularity"] = evaluate_model(pop, split.test_hist, split.test_target)
    for m in ("ndcg@10", "recall@10"):
        info[f"ratio_{m}"] = res[SPARK][m] / res[IMPLICIT][m]
    info["within_5pct_ndcg@10"] = bool(info["ratio_ndcg@10"] >= 0.95)
    return res, info


def online_retail(spark: Any, work: Path, say: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from shopsense.bundles import CoPurchase, basket_matrix
    from shopsense.datasets import load_online_retail_baskets
    from shopsense.jobs import cooccurrence_spark, events_frame, load_copurchase

    b = load_online_retail_baskets()
    ids = b.item_ids()
    index = {x: i for i, x in enumerate(ids)}
    lists = [np.array([index[x] for x in b[k]], np.int64) for k in range(len(b))]
    t0 = time.perf_counter()
    ref = CoPurchase(min_support=2).fit(basket_matrix(lists, len(ids)))
    t_ref = time.perf_counter() - t0
    keys = np.repeat(np.asarray(b.keys, dtype=object), np.diff(b.indptr))
    path = work / "retail.parquet"
    pq.write_table(pa.table({"user_id": pa.array(keys), "item_id": pa.array(np.asarray(b.items, dtype=object)),
                             "type": pa.array(["purchase"] * len(keys)), "timestamp": pa.array(np.zeros(len(keys))),
                             "session_id": pa.array(keys)}), path)
    t0 = time.perf_counter()
    cooc = cooccurrence_spark(events_frame(spark, path), ids, min_support=2)
    got = load_copurchase(cooc.write(work / "retail-cooc"))
    t_spark = time.perf_counter() - t0
    diff = abs(got.pair_counts_ - ref.pair_counts_)
    equal = diff.nnz == 0 and bool(np.array_equal(got.item_counts_, ref.item_counts_)) \
        and got.n_baskets_ == ref.n_baskets_
    lift_err = abs(got.lift_matrix() - ref.lift_matrix()).max() if ref.pair_counts_.nnz else 0.0
    say(f"online retail: {len(b):,} baskets, {ref.pair_counts_.nnz // 2:,} pairs >= 2; "
        f"Spark equal to in-process: {equal} (in-process {t_ref:.1f}s, Spark {t_spark:.1f}s)")
    res = {"in-process CoPurchase": {"pairs": ref.pair_counts_.nnz // 2, "baskets": ref.n_baskets_,
                                     "seconds": t_ref},
           "Spark SQL co-occurrence": {"pairs": got.pair_counts_.nnz // 2, "baskets": got.n_baskets_,
                                       "seconds": t_spark, "pairs_equal": float(equal),
                                       "max_lift_abs_diff": float(lift_err)}}
    return res, {"counts_equal": equal}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--master", default=None, help="Spark master (default local[THREADS])")
    ap.add_argument("--threads", type=int, default=2, help="cores for Spark (local) and implicit")
    ap.add_argument("--rank", type=int, default=128)
    ap.add_argument("--iters", type=int, default=15)
    ap.add_argument("--alpha", type=float, default=40.0)
    ap.add_argument("--implicit-reg", type=float, default=0.05, help="implicit's ridge (bench/recommend.py's)")
    ap.add_argument("--spark-reg", type=float, nargs="+", default=[0.01],
                    help="MLlib regParam; several: picked on the validation target")
    ap.add_argument("--driver-memory", default="4g")
    ap.add_argument("--max-users", type=int, default=0, help="only the first N users (smoke runs)")
    ap.add_argument("--no-cooc", action="store_true", help="skip the Online Retail co-occurrence part")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import warnings

    # pyspark warns on each pandas conversion that pandas 3 is not fully supported yet
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")
    from shopsense.eval import bar_chart, meta, print_table, write_json
    from shopsense.jobs import spark_session

    if not DATA.exists():
        sys.exit(f"datasets not found at {DATA}")

    def say(msg: str) -> None:
        print(msg, flush=True)

    load_start = os.getloadavg()
    master = args.master or f"local[{args.threads}]"
    # one BLAS thread: Spark's tasks and implicit parallelise themselves, and the fold-in's many
    # small solves ran ~10x slower with OpenBLAS threads fighting for a shared CPU (the local
    # Spark JVM inherits this too; executors elsewhere get it from shopsense.jobs' defaults)
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, "blas")
    t0 = time.perf_counter()
    spark = spark_session(master, "shopsense-bench", **{
        "spark.driver.memory": args.driver_memory, "spark.sql.shuffle.partitions": str(2 * args.threads),
        "spark.ui.enabled": "false"})
    spark.sparkContext.setLogLevel("ERROR")
    startup = time.perf_counter() - t0
    say(f"spark {spark.version} on {master} up in {startup:.0f}s")
    results: dict[str, Any] = {}
    info: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="shopsense-bench-spark-") as tmp:
        results["beauty"], info["beauty"] = beauty(spark, Path(tmp), args, say)
        if not args.no_cooc:
            results["online-retail"], info["online-retail"] = online_retail(spark, Path(tmp), say)
    spark.stop()
    write_json(results, args.out, meta(
        "beauty: leave-one-out, ALL items ranked, history excluded, Recall@10/NDCG@10 per user, mean; both ALS "
        "fitted on s[:-1] with the same rank/iterations/alpha and scored by the same fold-in "
        "(shopsense.recommend.ALS); Spark's regParam picked on s[-2] when several are given. online-retail: "
        "all invoices as baskets, pairs with count >= 2, Spark vs in-process pair by pair",
        load_average_start=load_start, load_average_end=os.getloadavg(), spark_version=spark.version,
        master=master, threads=args.threads, spark_startup_seconds=startup,
        hyperparameters={"rank": args.rank, "iterations": args.iters, "alpha": args.alpha,
                         "implicit_regularization": args.implicit_reg, "spark_reg_grid": args.spark_reg},
        findings=info,
        note="CPU shared with other jobs: seconds are wall time under that load; the metrics do not depend on it"))
    shown = ("recall@10", "ndcg@10", "train_seconds")
    print_table({"beauty": {s: {m: v for m, v in r.items() if m in shown} for s, r in results["beauty"].items()}},
                title="spark vs in-process ALS", peer=IMPLICIT)
    if "online-retail" in results:
        print_table({"online-retail": results["online-retail"]}, title="co-occurrence",
                    peer="in-process CoPurchase")
    b = info["beauty"]
    say(f"Spark/implicit NDCG@10 ratio {b['ratio_ndcg@10']:.3f} (within 5%: {b['within_5pct_ndcg@10']}), "
        f"Recall@10 ratio {b['ratio_recall@10']:.3f}")
    bar_chart({"beauty": results["beauty"]}, "ndcg@10", args.out.with_suffix(".png"),
              title="Amazon Beauty NDCG@10, leave-one-out, all items ranked")
    say(f"wrote {args.out}")


if __name__ == "__main__":
    main()
