"""Benchmark: the complement model (bought-together, bundles) at catalogue scale.

The issue: `shopsense eval baskets` on a 49,688-item grocery catalogue was still inside
`ComplementModel.fit` (exact all-pairs text neighbours, then a 15,000-item EASE inverse)
after 12 CPU-minutes, and the tuning grid repeats the fit for every point.

Data: a scale simulation, stated as such. The shared datasets hold no basket set with
tens of thousands of items (Groceries has 169, Online Retail 4,070 stock codes), so:

- ``online_retail_x12`` (48,840 items): Online Retail's 25,900 invoices over 12
  disjoint copies of its items, every invoice in every copy (each copy keeps the real
  purchase counts; 310,800 baskets);
- ``online_retail_x48`` (195,360 items): that catalogue in 4 more disjoint copies, each
  of its baskets assigned at random to one copy (310,800 baskets; a quarter of the
  counts per item).

Item vectors: MiniLM vectors of the descriptions (the engine's encoder, cached), each
copy turned by its own random rotation, so that neighbourhoods inside a copy are the
real ones and the copies are unrelated, as distinct products would be.

Protocol: random 80/20 split of the baskets, one hidden item per test basket (2,000
cases); ``ComplementModel()`` with its defaults fitted on the training baskets with the
item vectors. Timed: the first fit (empty memo), a refit with other signal weights and
one with another ``l2`` (what the tuning grid of ``eval baskets`` does), the parts of the
first fit (text neighbours, k-means pseudo-categories, EASE), and ranking (ms per cart,
batches of 512). Hit@10 is printed as a sanity check, not as a quality figure (the
copies are a simulation). At 50k the HNSW graph is also timed against the exact one
(recall@20). Peer: the former implementation (``--old-src``, a checkout of the source
before this change) fitting the 50k catalogue in a subprocess, stopped at
``--old-timeout`` seconds.

Run:
    git worktree add /tmp/bundles-base <commit before the change>
    python bench/baskets_scale.py --old-src /tmp/bundles-base/src [--write-cli /tmp/or_x12]

``--write-cli DIR`` also writes the 50k catalogue as files for ``shopsense eval
baskets`` (``baskets.txt``: one basket a line; ``items.csv``: id, title with the copy
named in the title, so the CLI's encoder gives each copy its own vectors).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SHOPSENSE_DATASETS", ROOT.parent / "shared" / "datasets")) / "baskets"
OUT = ROOT / "bench" / "results"
CACHE = Path.home() / ".cache" / "shopsense" / "eval-embeddings"
K = 10
N_CASES = 2000

log = logging.getLogger("bench.baskets_scale")

PROTOCOL = ("scale simulation from Online Retail: x12 = 12 disjoint item copies, every invoice in every copy; "
            "x48 = x12 in 4 more copies, each basket assigned to one at random; item vectors = MiniLM vectors of "
            "the descriptions, one random rotation per copy; random 80/20 basket split, one hidden item per test "
            f"basket ({N_CASES} cases), ComplementModel() defaults; first fit with an empty memo, refits with "
            "other signal weights / l2; ranking in batches of 512")


# -- data ------------------------------------------------------------------------------------
def load_base() -> tuple[list[np.ndarray], list[str], np.ndarray]:
    from shopsense.eval import item_vectors, read_basket_file
    from shopsense.text import TextEncoder

    d = DATA / "online-retail"
    baskets, codes = read_basket_file(str(d / "online_retail_invoice_baskets_stockcodes.csv"))
    with (d / "DERIVED_stockcode_description_lookup.csv").open(encoding="utf-8") as fh:
        desc = {r["StockCode"].strip(): r["Description"].strip() for r in csv.DictReader(fh)}
    titles = [desc.get(c) or f"item {c}" for c in codes]
    emb = item_vectors([t.lower() for t in titles], CACHE, TextEncoder(threads=2))
    return baskets, titles, np.asarray(emb, dtype=np.float32)


def rotations(n: int, d: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = [np.eye(d, dtype=np.float32)]
    for _ in range(n - 1):
        q, r = np.linalg.qr(rng.normal(size=(d, d)))
        out.append((q * np.sign(np.diag(r))).astype(np.float32))
    return out


def replicate(X: sparse.csr_matrix, emb: np.ndarray, copies: int, assign: bool, seed: int,
              ) -> tuple[sparse.csr_matrix, np.ndarray]:
    """Items in ``copies`` disjoint copies; every basket in every copy, or (``assign``) each in one."""
    n_b, n = X.shape
    if assign:
        copy = np.random.default_rng(seed).integers(copies, size=n_b)
        coo = X.tocoo()
        Y = sparse.csr_matrix((coo.data, (coo.row, coo.col + n * copy[coo.row])), shape=(n_b, n * copies))
    else:
        Y = sparse.block_diag([X] * copies, format="csr")
    E = np.vstack([emb @ q for q in rotations(copies, emb.shape[1], seed)])
    E /= np.linalg.norm(E, axis=1, keepdims=True)
    Y.data[:] = 1.0
    return Y.astype(np.float32), E.astype(np.float32)


def split(X: sparse.csr_matrix, seed: int = 0) -> tuple[sparse.csr_matrix, list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    test = rng.random(X.shape[0]) < 0.2
    X_tr = X[~test]
    rows = np.flatnonzero(test & (np.diff(X.indptr) >= 2))
    rows = np.sort(rng.choice(rows, min(N_CASES, len(rows)), replace=False))
    ctx, target = [], []
    for r in rows:
        items = X.indices[X.indptr[r]:X.indptr[r + 1]]
        h = int(rng.integers(len(items)))
        ctx.append(np.delete(items, h))
        target.append(items[h])
    return X_tr, ctx, np.array(target)


# -- timing ----------------------------------------------------------------------------------
class Parts:
    """Seconds spent in the expensive parts of a fit (wrapping the module's functions)."""

    def __init__(self) -> None:
        from shopsense.bundles import _complement

        self.mod, self.seconds = _complement, {}
        self.saved = {name: getattr(_complement, name) for name in ("text_knn", "kmeans_codes", "_ease_weights")}
        for name, fn in self.saved.items():
            setattr(_complement, name, self._wrap(name, fn))

    def _wrap(self, name: str, fn: Any) -> Any:
        def timed(*a: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t
        return timed

    def restore(self) -> None:
        for name, fn in self.saved.items():
            setattr(self.mod, name, fn)


def run_new(X_tr: sparse.csr_matrix, emb: np.ndarray, ctx: list[np.ndarray], target: np.ndarray) -> dict[str, Any]:
    from shopsense.bundles import ComplementModel
    from shopsense.bundles._neighbors import MEMO

    MEMO.clear()
    parts = Parts()
    try:
        t = time.perf_counter()
        m = ComplementModel().fit(X_tr, embeddings=emb)
        cold = time.perf_counter() - t
    finally:
        parts.restore()
    t = time.perf_counter()
    ComplementModel(text_weight=0.0, category_weight=0.0, prior_weight=0.02).fit(X_tr, embeddings=emb)
    warm = time.perf_counter() - t
    t = time.perf_counter()
    ComplementModel(l2=200.0).fit(X_tr, embeddings=emb)
    other_l2 = time.perf_counter() - t
    t = time.perf_counter()
    ranked = np.vstack([m.rank(ctx[s:s + 512], k=K).indices for s in range(0, len(ctx), 512)])
    rank_s = time.perf_counter() - t
    hit = float((ranked == target[:, None]).any(axis=1).mean())
    bought = int((np.asarray(X_tr.sum(axis=0)).ravel() > 0).sum())
    return {"fit_first_s": cold, "fit_refit_signals_s": warm, "fit_refit_l2_s": other_l2,
            "text_knn_s": parts.seconds.get("text_knn", 0.0), "kmeans_s": parts.seconds.get("kmeans_codes", 0.0),
            "ease_s": parts.seconds.get("_ease_weights", 0.0), "ms_per_cart": 1000 * rank_s / len(ctx),
            "hit@10": hit, "items": X_tr.shape[1], "items_bought": bought, "train_baskets": X_tr.shape[0],
            "ease_items": min(bought, m.ease_max_items), "pair_counts_nnz": int(m.copurchase_.pair_counts_.nnz),
            "neighbours": "exact" if X_tr.shape[1] <= m.exact_neighbors_max_items else "hnsw"}


def run_knn_peer(emb: np.ndarray, k: int = 20) -> dict[str, Any]:
    """Exact blocked neighbours against the HNSW graph on the same vectors."""
    from shopsense.bundles import text_knn

    t = time.perf_counter()
    exact = text_knn(emb, k, exact_max_items=len(emb))
    exact_s = time.perf_counter() - t
    t = time.perf_counter()
    ann = text_knn(emb, k, exact_max_items=0)
    ann_s = time.perf_counter() - t
    same = _overlap(exact, ann)
    return {"exact_s": exact_s, "hnsw_s": ann_s, "hnsw_recall@20": same / (k * len(emb))}


def _overlap(a: sparse.csr_matrix, b: sparse.csr_matrix) -> int:
    pa = sparse.csr_matrix((np.ones(a.nnz), a.indices, a.indptr), shape=a.shape)
    pb = sparse.csr_matrix((np.ones(b.nnz), b.indices, b.indptr), shape=b.shape)
    return int(pa.multiply(pb).sum())


OLD_FIT = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    from scipy import sparse
    from shopsense.bundles import ComplementModel
    X = sparse.load_npz(sys.argv[1]); emb = np.load(sys.argv[2])
    t = time.perf_counter(); ComplementModel().fit(X, embeddings=emb)
    print(json.dumps({"fit_first_s": time.perf_counter() - t}))
""")


def run_old(old_src: Path, X_tr: sparse.csr_matrix, emb: np.ndarray, timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        sparse.save_npz(Path(tmp) / "X.npz", X_tr)
        np.save(Path(tmp) / "emb.npy", emb)
        env = {**os.environ, "PYTHONPATH": str(old_src)}
        t = time.perf_counter()
        try:
            out = subprocess.run([sys.executable, "-c", OLD_FIT, str(Path(tmp) / "X.npz"), str(Path(tmp) / "emb.npy")],
                                 env=env, capture_output=True, text=True, timeout=timeout, check=True)
        except subprocess.TimeoutExpired:
            return {"fit_first_s": None, "timed_out_after_s": round(time.perf_counter() - t, 1)}
        return json.loads(out.stdout.strip().splitlines()[-1])


def write_cli_files(folder: Path, base: list[np.ndarray], codes: list[str], titles: list[str], copies: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "baskets.txt").open("w", encoding="utf-8") as fh:
        for c in range(copies):
            for b in base:
                fh.write(",".join(f"{codes[i]}~{c}" for i in b) + "\n")
    with (folder / "items.csv").open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "title"])
        for c in range(copies):
            w.writerows([f"{code}~{c}", f"{t} (shop {c + 1})"] for code, t in zip(codes, titles))


# -- report ----------------------------------------------------------------------------------
def plot(results: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    rows = [(ds, sysname, v) for ds, systems in results.items() if not ds.startswith("_")
            for sysname, v in systems.items() if "fit_first_s" in v]
    labels = [f"{ds.replace('online_retail_', '')}\n{s}" for ds, s, _ in rows]
    for ax, keys, title in ((axes[0], ("fit_first_s", "fit_refit_signals_s", "fit_refit_l2_s"), "fit (s)"),
                            (axes[1], ("ms_per_cart",), "ranking (ms per cart)")):
        x = np.arange(len(rows))
        w = 0.8 / len(keys)
        for j, key in enumerate(keys):
            vals = [v.get(key) for _, _, v in rows]
            # a run stopped at its limit is a lower bound: drawn hatched up to the limit
            stopped = [val is None and key == "fit_first_s" and bool(v.get("timed_out_after_s")) for val, (_, _, v)
                       in zip(vals, rows)]
            heights = [v["timed_out_after_s"] if st else (val or 0) for val, st, (_, _, v) in zip(vals, stopped, rows)]
            bars = ax.bar(x + j * w, heights, w, label=key, color=f"C{j}")
            for bar, st, hgt in zip(bars, stopped, heights):
                if st:
                    bar.set_hatch("//")
                    bar.set_alpha(0.5)
                    ax.text(bar.get_x() + w / 2, hgt, f"> {hgt:.0f} s\n(stopped)", ha="center", va="bottom", fontsize=7)
        ax.set_ylim(0, 1.25 * max([b.get_height() for b in ax.patches] + [1e-9]))
        ax.set_xticks(x + w * (len(keys) - 1) / 2, labels, fontsize=8)
        ax.set_title(title)
        ax.legend(fontsize=7)
    fig.suptitle("ComplementModel at scale (Online Retail copied: a simulation)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


COLUMNS = (("fit_first_s", "first fit s"), ("fit_refit_signals_s", "refit weights s"), ("fit_refit_l2_s", "refit l2 s"),
           ("text_knn_s", "neighbours s"), ("kmeans_s", "k-means s"), ("ease_s", "EASE s"),
           ("ms_per_cart", "ms/cart"), ("hit@10", "hit@10"), ("peak_rss_gb", "peak GB"))


def print_summary(results: dict[str, Any]) -> None:
    """One line per dataset and system (the ratio is to the former implementation where it finished)."""
    head = f"{'dataset':18s} {'system':26s}" + "".join(f"{label:>16s}" for _, label in COLUMNS)
    print(head)
    print("-" * len(head))
    for ds, systems in results.items():
        if ds.startswith("_"):
            continue
        for name, v in systems.items():
            if "fit_first_s" not in v:
                continue
            cells = []
            for key, _ in COLUMNS:
                x = v.get(key)
                if x is None and key == "fit_first_s" and v.get("timed_out_after_s"):
                    cells.append(f"> {v['timed_out_after_s']:.0f} (stop)")
                else:
                    cells.append("" if x is None else f"{x:.4f}" if key == "hit@10" else f"{x:,.1f}")
            print(f"{ds:18s} {name:26s}" + "".join(f"{c:>16s}" for c in cells))
        knn = systems.get("text neighbours (k=20)")
        if knn:
            print(f"{ds:18s} {'neighbours k=20: exact':26s}{knn['exact_s']:>16,.1f} s; HNSW {knn['hnsw_s']:,.1f} s, "
                  f"recall@20 {knn['hnsw_recall@20']:.4f}")
    meta_ = results.get("_meta", {})
    print(f"load average start {meta_.get('load_average_start')}, end {meta_.get('load_average_end')}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--old-src", type=Path, help="source folder of the former implementation (the peer)")
    ap.add_argument("--old-timeout", type=float, default=600.0)
    ap.add_argument("--write-cli", type=Path, help="also write the 50k catalogue as files for eval baskets")
    ap.add_argument("--skip-200k", action="store_true")
    ap.add_argument("--report", action="store_true", help="only print the table and redraw the PNG of the last run")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.report:
        results = json.loads((OUT / "baskets_scale.json").read_text())
        print_summary(results)
        plot(results, OUT / "baskets_scale.png")
        return
    from shopsense.bundles import basket_matrix
    from shopsense.eval import meta

    load0 = os.getloadavg()
    base, titles, emb0 = load_base()
    from shopsense.eval import read_basket_file

    _, codes = read_basket_file(str(DATA / "online-retail" / "online_retail_invoice_baskets_stockcodes.csv"))
    X0 = basket_matrix(base, len(codes))
    if args.write_cli:
        write_cli_files(args.write_cli, base, codes, titles, 12)
        log.info("wrote %s", args.write_cli)
    results: dict[str, Any] = {}
    X12, E12 = replicate(X0, emb0, 12, assign=False, seed=1)
    sets = [("online_retail_x12", X12, E12)]
    if not args.skip_200k:
        X48, E48 = replicate(X12, E12, 4, assign=True, seed=2)
        sets.append(("online_retail_x48", X48, E48))
    for name, X, E in sets:
        X_tr, ctx, target = split(X)
        log.info("%s: %d items, %d training baskets, %d cases", name, X.shape[1], X_tr.shape[0], len(ctx))
        res = {"complement (this change)": run_new(X_tr, E, ctx, target)}
        if name == "online_retail_x12":
            res["text neighbours (k=20)"] = run_knn_peer(E)
            if args.old_src:
                res["complement (former)"] = run_old(args.old_src, X_tr, E, args.old_timeout)
        # the process's peak so far (the 200k catalogue runs second, so its figure is its own)
        res["complement (this change)"]["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        results[name] = res
        log.info("%s: %s", name, json.dumps(res))
    results["_meta"] = meta(PROTOCOL, load_average_start=load0, load_average_end=os.getloadavg(),
                            old_src=str(args.old_src) if args.old_src else None, old_timeout_s=args.old_timeout)
    print_summary(results)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "baskets_scale.json").write_text(json.dumps(results, indent=2))
    plot(results, OUT / "baskets_scale.png")
    print(f"wrote {OUT / 'baskets_scale.json'} and {OUT / 'baskets_scale.png'}")


if __name__ == "__main__":
    main()
