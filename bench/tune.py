"""Benchmark: adapting the sentence encoder to the shop (issue 8).

Protocol (shared with bench/search.py through ``shopsense.eval``): queries are
split dev/test by a stable hash of the query string (``query_split``, 50/50); tuning
and every choice (early stopping, fusion weight) use dev queries only (dev is split
again by query into train / val); figures are on test queries, never seen in tuning.
NDCG@10 with gains = relevance - 1, unjudged = 0, retrieval over every product.

Systems: bm25s (the peer, default parameters, English stopwords + stemmer), the
off-the-shelf encoder, full fine-tune, LoRA, the full fine-tune in ONNX int8, and a
hybrid of bm25s with each (weighted fusion of min-max scores, weight picked on val), and
shopsense's own hybrid search (field BM25 + query understanding + dense, the code of
``shopsense eval search``) on each encoder beside the plain bm25s-defaults peer (the
issue's 0.320 baseline; needs the engine home that bench/search.py builds).
Speed: query latency (batch 1, cache off) and documents/second for the tuned model in
PyTorch fp32, ONNX fp32 and ONNX int8, in the same run, each timing in its own fresh
process, interleaved, median of 3 rounds; wall and CPU seconds are both recorded.

Run:  python bench/tune.py [--datasets homedepot,crowdflower] [--tune-seconds 600]
      python bench/tune.py --speed-only    (re-measure speed only, with the cached tuned model)
Writes bench/results/tune.json and bench/results/tune.png; caches under bench/.cache/.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Self

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache" / "tune"
RESULTS = HERE / "results"
log = logging.getLogger("bench.tune")


def cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


class Timer:
    def __enter__(self) -> Self:
        self.w, self.c = time.perf_counter(), cpu_s()
        return self

    def __exit__(self, *a: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.w, cpu_s() - self.c


def encode_docs(enc, texts: list[str], path: Path) -> np.ndarray:
    """Document vectors, cached as .npy (the corpus encode is the slow part)."""
    if path.exists():
        return np.load(path)
    with Timer() as t:
        v = enc.encode_documents(texts, progress=False)
    log.info("encoded %d docs with %s in %.0f s wall / %.0f s CPU", len(texts), enc.model_name, t.wall, t.cpu)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, v)
    return v


def seed_from_engine_cache(model: str, docs: list[str], home: Path, path: Path, info: dict) -> None:
    """Fill ``path`` (the off-the-shelf document vectors) from the embedding cache of the
    engine home bench/search.py builds, when it holds every text: same model, same texts
    (``Product.text()``), same PyTorch encoder, so the slowest corpus encode is not redone."""
    if path.exists() or not (home / "embeddings").exists():
        return
    from shopsense.text import EmbeddingCache, text_hash

    vecs, found = EmbeddingCache(home / "embeddings", model).get([text_hash(t) for t in docs])
    if vecs is None or not found.all():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, vecs)
    info["off_the_shelf_vectors"] = f"from the embedding cache of {home} (same model, same texts)"
    log.info("off-the-shelf document vectors taken from %s", home / "embeddings")


def topk(qv: np.ndarray, dv: np.ndarray, k: int = 100) -> tuple[np.ndarray, np.ndarray]:
    idx = np.zeros((len(qv), k), dtype=np.int64)
    sc = np.zeros((len(qv), k), dtype=np.float32)
    for s in range(0, len(qv), 256):
        sims = qv[s : s + 256] @ dv.T
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        ps = np.take_along_axis(sims, part, 1)
        o = np.argsort(-ps, axis=1)
        idx[s : s + 256] = np.take_along_axis(part, o, 1)
        sc[s : s + 256] = np.take_along_axis(ps, o, 1)
    return idx, sc


def fuse(a_idx, a_sc, b_idx, b_sc, w: float, k: int = 100) -> np.ndarray:
    """Weighted fusion of per-query min-max normalised scores over the union of both lists
    (a product missing from one list scores 0 there). Returns new arrays."""
    out = np.full((len(a_idx), k), -1, dtype=np.int64)
    for i in range(len(a_idx)):
        s: dict[int, float] = {}
        for idx, sc, wt in ((a_idx[i], a_sc[i], 1 - w), (b_idx[i], b_sc[i], w)):
            ok = idx >= 0
            if not ok.any():
                continue
            x = sc[ok].astype(np.float64)
            x = (x - x.min()) / (x.max() - x.min() + 1e-9)
            for j, v in zip(idx[ok].tolist(), x.tolist()):
                s[j] = s.get(j, 0.0) + wt * v
        best = sorted(s.items(), key=lambda t: -t[1])[:k]
        out[i, : len(best)] = [j for j, _ in best]
    return out


def run_dataset(name: str, args, report: dict, meta: dict) -> None:
    import torch

    torch.set_num_threads(2)
    from shopsense.eval import (
        evaluate_rerank,
        evaluate_retrieval,
        load_crowdflower,
        load_homedepot,
        query_split,
    )
    from shopsense.text import OnnxTextEncoder, TextEncoder, export_onnx
    from shopsense.tune import (
        EncoderTuner,
        mine_hard_negatives,
        pairs_from_judgments,
        split_pairs_by_query,
    )

    mp = args.max_products or None
    bench = load_homedepot(max_products=mp) if name == "homedepot" else load_crowdflower()
    cache = CACHE / (name + (f"-{mp}" if mp and name == "homedepot" else "")
                     + ("-title" if name == "crowdflower" and args.cf_text == "title" else ""))
    cache.mkdir(parents=True, exist_ok=True)
    # Crowdflower products carry long descriptions: each full-text pass over them costs ~20 CPU
    # minutes here, so --cf-text title embeds titles only (Home Depot products are titles anyway)
    title_only = name == "crowdflower" and args.cf_text == "title"
    docs = [p.title if title_only else p.text() for p in bench.products]
    dev, test = query_split(bench.queries)
    pairs = pairs_from_judgments([bench.queries[i] for i in dev], [bench.gains[i] for i in dev],
                                 min_gain=args.min_gain, negative_max_gain=args.neg_max_gain)
    train, val = split_pairs_by_query(pairs, 0.1)
    valq = sorted(set(val.anchors))
    qpos = {q: i for i, q in enumerate(bench.queries)}
    val_gains = [bench.gains[qpos[q]] for q in valq]
    test_q = [bench.queries[i] for i in test]
    test_g = [bench.gains[i] for i in test]
    assert not set(test_q) & set(pairs.anchors), "a test query leaked into tuning"
    res: dict = report.setdefault(name, {})
    info = meta.setdefault(name, {})
    info.update({"embedded_text": "title" if title_only else "Product.text()", "products": len(docs), "queries": len(bench.queries), "dev_queries": len(dev),
                 "test_queries": len(test), "train_pairs": len(train), "val_queries": len(valq)})
    log.info("%s: %s", name, info)

    # -- bm25s peer ----------------------------------------------------------------
    import bm25s
    import Stemmer

    stem = Stemmer.Stemmer("english")
    with Timer():
        retr = bm25s.BM25()
        retr.index(bm25s.tokenize([p.text() for p in bench.products], stopwords="en", stemmer=stem,
                                  show_progress=False), show_progress=False)  # words: always the full text

    def bm25(qs: list[str]) -> tuple[np.ndarray, np.ndarray]:
        r, s = retr.retrieve(bm25s.tokenize(qs, stopwords="en", stemmer=stem, show_progress=False), k=100,
                             show_progress=False, n_threads=1)
        r = np.asarray(r, dtype=np.int64)
        s = np.asarray(s, dtype=np.float32)
        r[s <= 0] = -1  # bm25s pads with zero-score rows when few documents match
        return r, s

    b_test, b_val = bm25(test_q), bm25(valq)
    res["bm25s"] = evaluate_retrieval(b_test[0], test_g)

    def bm25_score(q: str, rows: np.ndarray) -> np.ndarray:
        toks = bm25s.tokenize([q], stopwords="en", stemmer=stem, show_progress=False, return_ids=False)[0]
        if not toks:
            return np.zeros(len(rows))
        try:
            return retr.get_scores(toks)[rows]
        except (KeyError, ValueError):  # no query term in the vocabulary
            return np.zeros(len(rows))

    res["bm25s"].update(evaluate_rerank(bm25_score, test_q, test_g))
    log.info("bm25s: %s", res["bm25s"])

    def evaluate(system: str, enc, dv: np.ndarray, tuning: dict | None = None) -> None:
        qv_test = enc.encode_queries(test_q)
        qv_val = enc.encode_queries(valq)
        pos = {q: i for i, q in enumerate(test_q)}
        d_test, d_val = topk(qv_test, dv), topk(qv_val, dv)
        r = evaluate_retrieval(d_test[0], test_g)
        r.update(evaluate_rerank(lambda q, rows: dv[rows] @ qv_test[pos[q]], test_q, test_g))
        if tuning:
            r.update(tuning)
        res[system] = r
        # fusion weight chosen on val queries (dev side), then applied to test
        grid = [round(x, 2) for x in np.linspace(0.1, 0.9, 9)]
        val_nd = {w: evaluate_retrieval(fuse(b_val[0], b_val[1], d_val[0], d_val[1], w), val_gains)["ndcg@10"]
                  for w in grid}
        w = max(val_nd, key=lambda x: val_nd[x])
        h = evaluate_retrieval(fuse(b_test[0], b_test[1], d_test[0], d_test[1], w), test_g)
        h["dense_weight"] = w
        res[f"hybrid({system})"] = h
        log.info("%s: %s | hybrid %s", system, {k: round(v, 4) for k, v in r.items() if isinstance(v, float)},
                 round(h["ndcg@10"], 4))
        save(report, meta, args)

    # -- off-the-shelf ---------------------------------------------------------------
    base = TextEncoder(args.model, batch_size=64, threads=2, query_cache_size=0)
    seed_from_engine_cache(args.model, docs, HERE / ".cache" / f"{name}_home", cache / "base_docs.npy", info)
    dv_base = encode_docs(base, docs, cache / "base_docs.npy")
    evaluate("off-the-shelf", base, dv_base)

    # hard negatives mined with the off-the-shelf encoder for pairs with no judged negative
    if args.methods:
        qv_tr = base.encode_queries(train.queries())
        train_m = mine_hard_negatives(train, qv_tr, dv_base, rank_range=(10, 50))
        info["pairs_with_judged_negative"] = float((train.negatives >= 0).mean())
        info["pairs_with_negative_after_mining"] = float((train_m.negatives >= 0).mean())

    models: dict[str, Path] = {}
    for method in args.methods:
        mdir = cache / "models" / method
        mf = mdir / "shopsense_manifest.json"
        if not mf.exists() or args.retune:
            tuner = EncoderTuner(args.model, method=method, epochs=args.epochs, batch_size=args.batch_size,
                                 lr=args.lr_full if method == "full" else args.lr_lora,
                                 max_seconds=(args.lora_seconds or args.tune_seconds) if method == "lora"
                                 else args.tune_seconds, eval_every=args.eval_every,
                                 patience=args.patience, threads=2, val_pool=300)
            last = [0.0]

            def prog(d: dict, last=last, method=method) -> None:
                if time.time() - last[0] > 30 or "val_mrr@10" in d:
                    last[0] = time.time()
                    log.info("%s step %d/%d loss %.3f %s", method, d["step"], d["total"], d["loss"],
                             f"val {d['val_mrr@10']:.4f}" if "val_mrr@10" in d else "")

            tuner.fit(train_m, docs, val, progress=prog)
            tuner.save(mdir)
        man = json.loads(mf.read_text())
        tuning = {"tune_wall_s": man["wall_seconds"], "tune_cpu_s": man["cpu_seconds"], "tune_steps": man["steps"],
                  "tune_epochs_done": man["steps"] * args.batch_size / max(1, len(train_m)),
                  "stop_reason": man["stop_reason"], "best_val_mrr@10": man["best_val_mrr@10"]}
        models[method] = mdir
        enc = TextEncoder(str(mdir), batch_size=64, threads=2, query_cache_size=0)
        dv = encode_docs(enc, docs, cache / f"{method}_docs.npy")
        evaluate(f"tuned-{method}", enc, dv, tuning)

    # -- ONNX int8 of the full fine-tune (or the base model if not tuned) -------------------
    src = str(models.get("full", models.get("lora", args.model)))
    odir = cache / "onnx" / Path(src).name
    if not (odir / "model_int8.onnx").exists():
        export_onnx(src, odir, quantize=True)
    label = "full" if "full" in models else ("lora" if "lora" in models else "base")
    int8 = OnnxTextEncoder(src, odir, int8=True, batch_size=64, threads=2, query_cache_size=0)
    dv8 = None
    if not args.skip_teacher_int8:
        dv8 = encode_docs(int8, docs, cache / f"{label}_int8_docs.npy")
        evaluate(f"tuned-{label}-onnx-int8" if label != "base" else "onnx-int8", int8, dv8)

    # -- distilled student (issue 21): teacher layers pruned, trained on titles + dev queries --------
    students: dict[str, tuple] = {}
    if args.distil_layers:
        if args.distil_from != "base" and args.distil_from not in models:
            raise SystemExit(f"--distil-from {args.distil_from}: that model was not tuned in this run "
                             f"(--methods {','.join(args.methods) or 'none'})")
        t_src = args.model if args.distil_from == "base" else str(models[args.distil_from])
        t_dv = dv_base if args.distil_from == "base" else np.load(cache / f"{args.distil_from}_docs.npy")
        t_enc = base if args.distil_from == "base" else TextEncoder(t_src, batch_size=64, threads=2, query_cache_size=0)
        dev_q = sorted({bench.queries[i] for i in dev})  # every dev query; never a test query
        assert not set(dev_q) & set(test_q), "a test query leaked into distillation"
        sname = f"distil-L{args.distil_layers}-from-{args.distil_from}"
        sdir = cache / "models" / sname
        if not (sdir / "shopsense_manifest.json").exists() or args.retune:
            from shopsense.tune import EncoderDistiller

            dist = EncoderDistiller(t_src, layers=args.distil_layers, epochs=args.distil_epochs,
                                    batch_size=args.distil_batch, lr=args.distil_lr, max_seconds=args.distil_seconds,
                                    eval_every=args.distil_eval_every, threads=2)
            last_d = [0.0]

            def dprog(d: dict, last=last_d) -> None:
                if d.get("phase") == "train" and (time.time() - last[0] > 30 or "val_cosine" in d):
                    last[0] = time.time()
                    log.info("distil step %d/%d loss %.4f %s", d["step"], d["total"], d["loss"],
                             f"held-out cosine {d['val_cosine']:.4f}" if "val_cosine" in d else "")

            # the teacher's document vectors are the ones evaluated above (same model, same texts)
            dist.fit(docs + dev_q, np.concatenate([t_dv, t_enc.encode_queries(dev_q)]), progress=dprog)
            dist.save(sdir, extra={"source": f"bench/tune.py {name}: product texts + dev queries"})
            import shutil

            shutil.rmtree(cache / "onnx" / sname, ignore_errors=True)  # a new student: its export and vectors are stale
            for f in (cache / f"{sname}_docs.npy", cache / f"{sname}_int8_docs.npy"):
                f.unlink(missing_ok=True)
        man = json.loads((sdir / "shopsense_manifest.json").read_text())
        dinfo = {"distil_wall_s": man["wall_seconds"], "distil_cpu_s": man["cpu_seconds"], "distil_steps": man["steps"],
                 "distil_epochs_done": man["steps"] * man["batch_size"] / max(1, man["train_texts"]),
                 "stop_reason": man["stop_reason"], "layers_kept": man["layers_kept"], "teacher": args.distil_from,
                 "heldout_cosine_to_teacher_before": man["val_cosine_before"],
                 "heldout_cosine_to_teacher": man["val_cosine"]}
        lab = student_label(args)
        sodir = cache / "onnx" / sname
        if not (sodir / "model_int8.onnx").exists():
            export_onnx(str(sdir), sodir, quantize=True)
        # int8 first: it is the back-end the bar is about (and the cheaper corpus encode)
        s8 = OnnxTextEncoder(str(sdir), sodir, int8=True, batch_size=64, threads=2, query_cache_size=0)
        sdv8 = encode_docs(s8, docs, cache / f"{sname}_int8_docs.npy")
        evaluate(f"{lab}-onnx-int8", s8, sdv8, {**dinfo, "teacher": args.distil_from})
        students = {f"{lab}-onnx-int8": (s8, sdv8)}
        if not args.skip_student_torch:
            senc = TextEncoder(str(sdir), batch_size=64, threads=2, query_cache_size=0)
            sdv = encode_docs(senc, docs, cache / f"{sname}_docs.npy")
            evaluate(lab, senc, sdv, dinfo)
            students[lab] = (senc, sdv)
        t_lab = "off-the-shelf" if args.distil_from == "base" else f"tuned-{args.distil_from}"
        for k in students:  # the bar: lose <= 1 point of NDCG@10 against the teacher, dense and hybrid
            res[k]["ndcg@10_minus_teacher_points"] = 100 * (res[k]["ndcg@10"] - res[t_lab]["ndcg@10"])
            res[f"hybrid({k})"]["ndcg@10_minus_teacher_points"] = 100 * (
                res[f"hybrid({k})"]["ndcg@10"] - res[f"hybrid({t_lab})"]["ndcg@10"])
        info["distillation"] = {"teacher": t_lab, "teacher_path": t_src, "student": str(sdir),
                                "texts": f"{len(docs)} product texts + {len(dev_q)} dev queries",
                                "budget_s": args.distil_seconds, "lr": args.distil_lr, "batch_size": args.distil_batch}

    # -- the product's own hybrid search (field BM25 + query understanding + dense) on each encoder --
    engine_home = HERE / ".cache" / f"{name}_home"
    if not args.no_shopsense and (name == "crowdflower" or not mp):
        encs = {"off-the-shelf": (base, dv_base),
                **{f"tuned-{m}": (TextEncoder(str(d), batch_size=64, threads=2, query_cache_size=0),
                                  np.load(cache / f"{m}_docs.npy")) for m, d in models.items()},
                **({f"tuned-{label}-onnx-int8" if label != "base" else "onnx-int8": (int8, dv8)} if dv8 is not None
                   else {}), **students}
        if args.shopsense_systems:
            encs = {k: v for k, v in encs.items() if k in args.shopsense_systems.split(",")}
        product_search(name, bench, engine_home, encs, [qpos[q] for q in valq], list(test), res, info)

    # -- speed: same model, three back-ends (and the student's), same run ---------------------
    if name == "homedepot" and not args.no_speed:
        sp_students = {lab: (str(sdir), sodir)} if args.distil_layers else {}
        res["_speed"] = measure_speed(src, odir, docs[: args.speed_docs], test_q[: args.speed_queries], args,
                                      sp_students)
        a = TextEncoder(src, batch_size=64, threads=2, query_cache_size=0).encode_documents(docs[:500])
        b = OnnxTextEncoder(src, odir, int8=False, batch_size=64, threads=2, query_cache_size=0).encode_documents(docs[:500])
        c = int8.encode_documents(docs[:500])  # parity on real titles: torch vs ONNX fp32 / int8, same model
        info["cosine_torch_vs_onnx_fp32_min"] = float((a * b).sum(1).min())
        info["cosine_torch_vs_onnx_int8_mean"] = float((a * c).sum(1).mean())
    bm = res["bm25s"]["ndcg@10"]
    for k, r in res.items():
        if not k.startswith("_") and "ndcg@10" in r:
            r["ndcg@10_vs_bm25s"] = r["ndcg@10"] / bm
            if "bm25s defaults (peer)" in res:  # the baseline: bm25s with its default tokenizer
                r["ndcg@10_vs_bm25s_defaults"] = r["ndcg@10"] / res["bm25s defaults (peer)"]["ndcg@10"]
    save(report, meta, args)


BACKENDS = ("torch-fp32", "onnx-fp32", "onnx-int8")


def speed_worker(backend: str, job: Path) -> None:
    """``--speed-worker``: time one back-end in this fresh process, print one JSON line.

    A fresh process per back-end and repeat: in one long process the torch figure
    drifted between runs (allocator and thread-pool state left by earlier work), which
    once made int8 look 2.8x faster when separate processes measure ~1.7x."""
    import torch

    from shopsense.text import OnnxTextEncoder, TextEncoder

    torch.set_num_threads(2)
    j = json.loads(job.read_text())
    docs, queries, bs = j["docs"], j["queries"], j["batch_size"]
    spec = j["backends"][backend]  # {"kind": torch-fp32 | onnx-fp32 | onnx-int8, "src", "odir"}
    e = TextEncoder(spec["src"], batch_size=bs, threads=2, query_cache_size=0) if spec["kind"] == "torch-fp32" else \
        OnnxTextEncoder(spec["src"], spec["odir"], int8=spec["kind"] == "onnx-int8", batch_size=bs, threads=2,
                        query_cache_size=0)
    e.encode_documents(docs[:128])  # warm-up: load, first allocations
    for q in queries[:10]:
        e.encode_queries([q])
    with Timer() as t:
        e.encode_documents(docs)
    lat = []
    with Timer() as tq:
        for q in queries:
            t0 = time.perf_counter()
            e.encode_queries([q])
            lat.append((time.perf_counter() - t0) * 1000)
    print(json.dumps({"docs_per_s_wall": len(docs) / t.wall, "docs_per_cpu_s": len(docs) / t.cpu,
                      "query_p50_ms": float(np.percentile(lat, 50)), "query_p95_ms": float(np.percentile(lat, 95)),
                      "query_cpu_ms": tq.cpu * 1000 / len(queries)}))


def measure_speed(src: str, odir: Path, docs: list[str], queries: list[str], args,
                  students: dict[str, tuple[str, Path]] | None = None) -> dict:
    """Documents/s and query latency of the three back-ends of one model (and of each
    distilled student in PyTorch fp32 and ONNX int8): each timing in its own process,
    back-ends interleaved, ``--speed-repeats`` rounds, median kept (and every round
    recorded). Encoder batch size ``--speed-batch`` for all. Ratios are to the first
    model's PyTorch fp32."""
    import subprocess
    import tempfile

    backends = {b: {"kind": b, "src": str(src), "odir": str(odir)} for b in BACKENDS}
    for lab, (s_src, s_odir) in (students or {}).items():
        for kind in ("torch-fp32", "onnx-int8"):
            backends[f"{lab} {kind}"] = {"kind": kind, "src": str(s_src), "odir": str(s_odir)}
    names = list(backends)
    with tempfile.TemporaryDirectory() as tmp:
        job = Path(tmp) / "job.json"
        job.write_text(json.dumps({"backends": backends, "docs": docs, "queries": queries,
                                   "batch_size": args.speed_batch}))
        runs: dict[str, list[dict]] = {b: [] for b in names}
        for r in range(args.speed_repeats):
            k = r % len(names)
            for b in names[k:] + names[:k]:  # rotate the order each round
                out = subprocess.run([sys.executable, __file__, "--speed-worker", b, "--speed-job", str(job)],
                                     check=True, capture_output=True, text=True).stdout
                runs[b].append(json.loads(out.strip().splitlines()[-1]))
                log.info("speed round %d %s: %s", r, b, runs[b][-1])
    speed: dict = {}
    for b, rs in runs.items():
        speed[b] = {k: float(np.median([x[k] for x in rs])) for k in rs[0]}
        speed[b]["rounds"] = rs
        speed[b]["model"] = backends[b]["src"]
    t = speed["torch-fp32"]
    for b in names[1:]:
        v = speed[b]
        v["docs_speedup_vs_torch_wall"] = v["docs_per_s_wall"] / t["docs_per_s_wall"]
        v["docs_speedup_vs_torch_cpu"] = v["docs_per_cpu_s"] / t["docs_per_cpu_s"]
        v["query_speedup_vs_torch_p50"] = t["query_p50_ms"] / v["query_p50_ms"]
        v["query_speedup_vs_torch_cpu"] = t["query_cpu_ms"] / v["query_cpu_ms"]
    speed["_protocol"] = (f"{len(docs)} Home Depot titles, {len(queries)} test queries one at a time (cache off); "
                          f"encoder batch {args.speed_batch}, 2 threads; each back-end timed in a fresh process, "
                          f"{args.speed_repeats} interleaved rounds, median; x = ratio to torch-fp32 of {src}")
    speed["_load_avg_before"] = list(os.getloadavg())
    return speed


def speed_only(args) -> None:
    """``--speed-only``: re-measure the speed section of the committed tune.json with the
    cached tuned Home Depot model (no tuning, no quality runs)."""
    from shopsense.eval import load_homedepot, query_split

    report = json.loads((RESULTS / "tune.json").read_text())
    meta = report.pop("_meta")
    bench = load_homedepot()
    _, test = query_split(bench.queries)
    cache = CACHE / "homedepot"
    src, odir = cache / "models" / "full", cache / "onnx" / "full"
    if not (src / "shopsense_manifest.json").exists():
        # no tuned model cached: the 6-layer model the student was distilled from (same architecture)
        src, odir = args.model, cache / "onnx" / args.model
        if not (odir / "model_int8.onnx").exists():
            raise SystemExit(f"no tuned model at {cache / 'models' / 'full'} and no ONNX export at {odir}: "
                             "run bench/tune.py --datasets homedepot first")
    students = {}
    if args.distil_layers:
        sname = f"distil-L{args.distil_layers}-from-{args.distil_from}"
        if not (cache / "onnx" / sname / "model_int8.onnx").exists():
            raise SystemExit(f"no distilled student {sname} in {cache}: run bench/tune.py --distil-layers first")
        students[student_label(args)] = (str(cache / "models" / sname), cache / "onnx" / sname)
    load_before = os.getloadavg()
    docs = [p.title for p in bench.products][: args.speed_docs]
    queries = [bench.queries[i] for i in test][: args.speed_queries]
    report["homedepot"]["_speed"] = measure_speed(str(src), odir, docs, queries, args, students)
    meta["speed_load_avg"] = {"before": list(load_before), "after": list(os.getloadavg())}
    meta["speed_command"] = "python " + " ".join(sys.argv)
    meta["speed_date"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    report["_meta"] = meta
    (RESULTS / "tune.json").write_text(json.dumps(report, indent=2))
    table(report)
    plot(report)


def product_search(name: str, bench, home: Path, encoders: dict, val_idx: list[int], test_idx: list[int],
                   res: dict, info: dict) -> None:
    """shopsense's hybrid search (field-weighted BM25 + query understanding + dense, weighted
    fusion) built on each encoder, beside the plain bm25s peer of ``bench/search.py`` (default
    tokenizer, no stemmer: the issue's 0.320 baseline). The lexical index and query parser
    come from the engine home ``bench/search.py`` builds; only the dense part changes. Fusion
    weights are picked per encoder on the val queries (dev side, not used to train the encoder
    when it was tuned), figures on the test queries, with the same code as ``shopsense eval search``."""
    from shopsense.engine import Engine
    from shopsense.eval import SEARCH_PEER as PEER
    from shopsense.eval import SearchPeer as Peer
    from shopsense.eval import SearchSystem as System
    from shopsense.eval import evaluate_search as evaluate
    from shopsense.eval import open_search, warm_queries
    from shopsense.eval import tune_search as tune
    from shopsense.search import DenseIndex, HybridSearcher, SearchOptions

    if not (home / "store.sqlite3").exists():
        log.warning("%s: no engine home at %s (run bench/search.py first); skipping shopsense hybrid", name, home)
        return
    eng = Engine(home)
    svc = open_search(eng, dense=False)
    main = svc.searcher
    if main.catalog.ids != [p.id for p in bench.products]:
        log.warning("%s: engine home at %s holds other products; skipping shopsense hybrid", name, home)
        return
    val, test = bench.subset(val_idx), bench.subset(test_idx)
    base = SearchOptions()
    out, _ = evaluate(main, Peer(bench.products), test, [System("peer", PEER)])
    res[PEER] = out[PEER]
    chosen_weights = {}
    for system, (enc, dv) in encoders.items():
        s = HybridSearcher(main.catalog, main.lexical, DenseIndex().fit(dv), main.parser, enc, base)
        warm_queries(s, val.queries + test.queries)
        opts, _grid = tune(s, val, base)
        key = f"shopsense hybrid+QU ({system})"
        out, _ = evaluate(s, None, test, [System("hybrid-qu", key, opts)])
        out[key]["dense_weight"] = opts.dense_weight
        res[key] = out[key]
        chosen_weights[system] = {"dense_weight": opts.dense_weight, "dense_norm": opts.dense_norm, "boost": opts.boost}
        log.info("%s: %s ndcg@10 %.4f (peer %.4f)", name, key, out[key]["ndcg@10"], res[PEER]["ndcg@10"])
    info["shopsense_hybrid_fusion_from_val"] = chosen_weights
    eng.close()


def student_label(args) -> str:
    """The distilled student's row: ``distilled-L3`` from the tuned model (what issue 21 asks
    for), ``distilled-L3-from-base`` from the off-the-shelf one, so both can stand in one file."""
    return f"distilled-L{args.distil_layers}" + ("" if args.distil_from == "full" else f"-from-{args.distil_from}")


def save(report: dict, meta: dict, args) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = dict(report)
    out["_meta"] = {
        "command": "python " + " ".join(sys.argv), "machine": f"{platform.machine()} {os.cpu_count()} cores (shared "
        "with other jobs: wall times inflated; CPU seconds from getrusage also given)",
        "python": platform.python_version(), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "protocol": "query-level hash split (shopsense.eval.query_split, 50/50 dev/test); tuning on dev "
        "(train + 10% val by query for early stopping and fusion weight); NDCG@10 gains = relevance - 1, unjudged 0; "
        "retrieval over all products; re-ranking of judged products; speed on the tuned model",
        "tune_seconds_budget": args.tune_seconds, "lora_seconds_budget": args.lora_seconds or args.tune_seconds,
        "max_products": args.max_products or "all", "lr_full": args.lr_full, "lr_lora": args.lr_lora, "batch_size": args.batch_size,
        "load_avg_at_save": list(os.getloadavg()), **meta,
    }
    (RESULTS / "tune.json").write_text(json.dumps(out, indent=2))


def plot(report: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [d for d in report if not d.startswith("_")]
    fig, axes = plt.subplots(1, len(names) + 1, figsize=(6 * (len(names) + 1), 4.5))
    axes = np.atleast_1d(axes)
    for ax, d in zip(axes, names):
        systems = [s for s in report[d] if not s.startswith("_")]
        vals = [report[d][s]["ndcg@10"] for s in systems]
        ax.barh(systems, vals, color=["grey" if s.startswith("bm25s") else "tab:blue" if "hybrid" not in s else "tab:green"
                                      for s in systems])
        ax.axvline(report[d]["bm25s"]["ndcg@10"], color="k", ls="--", lw=1)
        ax.set_title(f"{d}: retrieval NDCG@10 (test queries)")
        ax.invert_yaxis()
    sp = report.get("homedepot", {}).get("_speed")
    if sp:
        ax = axes[-1]
        ks = [k for k in sp if not k.startswith("_")]
        ax.bar(ks, [sp[k]["docs_per_s_wall"] for k in ks],
               color=["tab:purple" if k.startswith("distilled") else "tab:orange" for k in ks])
        ax.tick_params(axis="x", labelrotation=20, labelsize=8)
        for i, k in enumerate(ks):
            ax.text(i, sp[k]["docs_per_s_wall"], f"{sp[k].get('docs_speedup_vs_torch_wall', 1):.2f}x",
                    ha="center", va="bottom")
        ax.set_title("documents/s, 2 threads\n(x = vs the 6-layer model in torch fp32)", fontsize=10)
    fig.tight_layout()
    fig.savefig(RESULTS / "tune.png", dpi=110)


def table(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    for d in (k for k in report if not k.startswith("_")):
        t = Table(title=f"{d}: held-out queries")
        for c in ("system", "NDCG@10", "x bm25s", "Recall@100", "rerank NDCG@10", "tune|distil wall/CPU s"):
            t.add_column(c)
        for s, r in report[d].items():
            if s.startswith("_"):
                continue
            tw = f"{r['tune_wall_s']:.0f}/{r['tune_cpu_s']:.0f}" if "tune_wall_s" in r else \
                f"{r['distil_wall_s']:.0f}/{r['distil_cpu_s']:.0f}" if "distil_wall_s" in r else ""
            if "ndcg@10_minus_teacher_points" in r:
                tw += f" ({r['ndcg@10_minus_teacher_points']:+.2f} pts vs teacher)"
            t.add_row(s, f"{r['ndcg@10']:.4f}", f"{r.get('ndcg@10_vs_bm25s', 0):.2f}", f"{r['recall@100']:.4f}",
                      f"{r['rerank_ndcg@10']:.4f}" if "rerank_ndcg@10" in r else "", tw)
        Console().print(t)
        if "_speed" in report[d]:
            t = Table(title="encoding speed (x = vs the 6-layer model in torch fp32)")
            for c in ("backend", "docs/s wall", "docs/CPU-s", "x torch (docs)", "query p50 ms", "query CPU ms",
                      "x torch (query p50)"):
                t.add_column(c)
            for k, v in report[d]["_speed"].items():
                if k.startswith("_"):
                    continue
                t.add_row(k, f"{v['docs_per_s_wall']:.0f}", f"{v['docs_per_cpu_s']:.0f}",
                          f"{v.get('docs_speedup_vs_torch_wall', 1):.2f}", f"{v['query_p50_ms']:.1f}",
                          f"{v['query_cpu_ms']:.1f}", f"{v.get('query_speedup_vs_torch_p50', 1):.2f}")
            Console().print(t)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", default="homedepot,crowdflower")
    p.add_argument("--model", default="all-MiniLM-L6-v2")
    p.add_argument("--methods", default="full,lora")
    p.add_argument("--tune-seconds", type=float, default=600)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--eval-every", type=int, default=50)
    p.add_argument("--patience", type=int, default=3)
    p.add_argument("--min-gain", type=float, default=1.0, help="judged gain (relevance - 1) that makes a positive")
    p.add_argument("--neg-max-gain", type=float, default=0.34, help="judged gain at or below which a row is a negative")
    p.add_argument("--speed-docs", type=int, default=2000)
    p.add_argument("--speed-queries", type=int, default=200)
    p.add_argument("--speed-batch", type=int, default=32, help="encoder batch size for the speed runs")
    p.add_argument("--speed-repeats", type=int, default=3)
    p.add_argument("--speed-only", action="store_true", help="only re-measure speed with the cached tuned model")
    p.add_argument("--speed-worker", help=argparse.SUPPRESS)
    p.add_argument("--no-speed", action="store_true", help="skip the speed table (measure it with --speed-only, "
                   "without nice, on a quiet machine)")
    p.add_argument("--distil-layers", type=int, default=0, help="also distil a student with this many layers "
                   "(issue 21; 0 = off)")
    p.add_argument("--distil-from", default="full", help="teacher of the student: a tuned method (full, lora) or "
                   "'base' (the off-the-shelf model)")
    p.add_argument("--distil-seconds", type=float, default=1200, help="wall-clock budget of the distillation")
    p.add_argument("--distil-epochs", type=int, default=1)
    p.add_argument("--skip-teacher-int8", action="store_true", help="do not evaluate the teacher's ONNX int8 "
                   "(it is still exported for the speed table)")
    p.add_argument("--skip-student-torch", action="store_true", help="evaluate the student in ONNX int8 only")
    p.add_argument("--distil-batch", type=int, default=64)
    p.add_argument("--distil-lr", type=float, default=1e-4)
    p.add_argument("--distil-eval-every", type=int, default=200)
    p.add_argument("--shopsense-systems", default="", help="comma list: run shopsense's own hybrid on these "
                   "encoders only (default: every encoder of the run)")
    p.add_argument("--speed-job", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--retune", action="store_true")
    p.add_argument("--lr-full", type=float, default=5e-5)
    p.add_argument("--lr-lora", type=float, default=5e-4)
    p.add_argument("--lora-seconds", type=float, default=None, help="LoRA budget (default: --tune-seconds)")
    p.add_argument("--max-products", type=int, default=0,
                   help="Home Depot: keep the first judged queries until this many products (0 = all 54,667)")
    p.add_argument("--cf-text", choices=["title", "full"], default="title",
                   help="what Crowdflower products are embedded from (full text is ~7x slower to encode)")
    p.add_argument("--no-shopsense", action="store_true",
                   help="skip shopsense's own hybrid search on each encoder (needs bench/search.py's engine home)")
    args = p.parse_args()
    if args.speed_worker:
        logging.basicConfig(level=logging.WARNING)
        return speed_worker(args.speed_worker, args.speed_job)
    args.methods = [m for m in args.methods.split(",") if m]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for n in ("httpx", "sentence_transformers", "transformers"):
        logging.getLogger(n).setLevel(logging.WARNING)
    if args.speed_only:
        return speed_only(args)
    report: dict = {}
    prev = RESULTS / "tune.json"
    meta: dict = {}
    old: dict = {}
    if prev.exists():  # keep finished datasets when re-running only one, and say where they came from
        old = json.loads(prev.read_text())
        report = {k: v for k, v in old.items() if not k.startswith("_")}
        kept = [d for d in report if d not in args.datasets.split(",")]
        if kept:
            om = old.get("_meta", {})
            meta["kept_from_previous_run"] = {d: {"command": om.get("command"), "date": om.get("date"),
                                                  **({"info": om[d]} if d in om else {})} for d in kept}
    for d in args.datasets.split(","):
        old_rows = report.pop(d, None) or {}
        run_dataset(d, args, report, meta)
        carried = [k for k in old_rows if k not in report[d]]
        for k in carried:  # rows this run did not re-measure (e.g. LoRA when --methods full): kept, and marked
            report[d][k] = {**old_rows[k], ("_" if k.startswith("_") else "") + "from_previous_run":
                            old.get("_meta", {}).get("date")}
        if carried:
            meta.setdefault("rows_kept_from_previous_run", {})[d] = carried
    save(report, meta, args)
    table(report)
    plot(report)


if __name__ == "__main__":
    main()
