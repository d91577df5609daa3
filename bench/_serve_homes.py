"""The engine homes ``bench/serve.py`` serves, built once and cached (under /tmp by default).

- ``homedepot``: the whole Home Depot catalogue (54,667 products, titles only), lexical +
  dense index (all-MiniLM-L6-v2 item vectors; queries through its int8 ONNX export, as
  ``shopsense export-onnx`` sets a shop up for CPU serving).
- ``beauty``: Amazon Beauty 5-core (22,363 users, 12,101 items, 198,502 interactions as
  purchases; the items have no text, so they are titled by ASIN), recommendation models
  trained as ``bench/recommend_serving.py`` trains them (no SASRec, no ranker, no
  content model: the items have no text).
- ``shop``: one shop holding both (66,768 products, Beauty's events), for the mixed run:
  searches go to the Home Depot titles, recommendations to Beauty's users.

Each home is written by the engine's own APIs (``add_products``, ``add_events``,
``build_index``, ``train``); a ``bench-built.json`` marks a finished build.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

#: train options: the 2-core budget of bench/recommend_serving.py
TRAIN = {"sasrec": False, "ranker": False, "content": False}

#: what a trained home must hold to be served as the code serves a fresh one: a home cached
#: by an older version is retrained (the Beauty home of 29 Nov lacked the saved evidence of
#: its lists, so every served recommendation asked EASE and ALS why: 8% of a worker's CPU)
MODEL_FILES = ("candidates.npy", "candidate_evidence.npy")


def _current_model(home: Path) -> Path | None:
    cur = home / "models" / "CURRENT"
    return home / "models" / cur.read_text().strip() if cur.exists() else None


def _say(msg: str) -> None:
    print(msg, flush=True)


def _beauty_products() -> list[Any]:
    from shopsense.catalog import Product
    from shopsense.datasets import load_amazon_sequences

    return [Product(id=a, title=f"Beauty product {a}") for a in load_amazon_sequences("beauty").item_ids()]


def _beauty_events(batch: int = 20000) -> Iterator[list[Any]]:
    from shopsense.catalog import Event
    from shopsense.datasets import SEQUENCE_EPOCH, load_amazon_sequences

    out: list[Any] = []
    n = 0
    for uid, seq in load_amazon_sequences("beauty"):
        for a in seq:
            out.append(Event(user_id=str(uid), item_id=a, type="purchase",
                             timestamp=datetime.fromtimestamp(SEQUENCE_EPOCH + n, tz=UTC)))
            n += 1
        if len(out) >= batch:
            yield out
            out = []
    if out:
        yield out


def _seed_embeddings(home: Path, donors: list[Path]) -> None:
    """Copy an embedding cache (keyed by text hash) another home already computed, so the
    54,667 titles are encoded once per machine, not once per home."""
    for donor in donors:
        src = donor / "embeddings"
        if src.is_dir() and not (home / "embeddings").exists():
            shutil.copytree(src, home / "embeddings")
            _say(f"  embedding cache copied from {donor}")
            return


def _export_onnx(home: Path) -> None:
    from shopsense.engine import Engine
    from shopsense.text import encoder_model_for, export_onnx, onnx_dir_for

    with Engine(home) as eng:
        name = encoder_model_for(eng.settings, eng.paths)
        out = onnx_dir_for(name, eng.paths)
        if not out.exists():
            export_onnx(name, out, quantize=True)


def build(root: Path, name: str, say: Callable[[str], None] = _say,
          donors: list[Path] | None = None) -> Path:
    """Build (or reuse) ``root/name``; returns the home."""
    from shopsense.datasets import load_homedepot_products
    from shopsense.engine import Engine

    home = root / name
    done = home / "bench-built.json"
    if done.exists():
        model = _current_model(home) if name in ("beauty", "shop") else None
        if model is None or all((model / f).exists() for f in MODEL_FILES):
            return home
        say(f"  {name}: cached models lack {[f for f in MODEL_FILES if not (model / f).exists()]}; retraining")
    home.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    info: dict[str, Any] = json.loads(done.read_text()) if done.exists() else {}
    if name in ("homedepot", "shop"):
        _seed_embeddings(home, [root / "homedepot", *(donors or [])])
    with Engine(home) as eng:
        if eng.store.count_products() == 0:
            if name in ("homedepot", "shop"):
                eng.add_products(load_homedepot_products())
            if name in ("beauty", "shop"):
                products = _beauty_products()
                for s in range(0, len(products), 20000):
                    eng.add_products(products[s:s + 20000])
        if name in ("beauty", "shop") and eng.store.count_events() == 0:
            for batch in _beauty_events():
                eng.add_events(batch)
        say(f"  {name}: {eng.store.count_products():,} products, {eng.store.count_events():,} events "
            f"({time.perf_counter() - t0:.0f}s)")
        if name in ("homedepot", "shop") and not (home / "index" / "manifest.json").exists():
            t = time.perf_counter()
            eng.build_index(progress=False)
            info["index_s"] = time.perf_counter() - t
            say(f"  {name}: index built in {info['index_s']:.0f}s")
        if name in ("beauty", "shop"):
            t = time.perf_counter()
            manifest = eng.train(**TRAIN)
            info["train_s"] = time.perf_counter() - t
            info["primary"] = manifest.get("primary")
            say(f"  {name}: trained ({manifest.get('primary')}) in {info['train_s']:.0f}s")
    if name in ("homedepot", "shop"):
        _export_onnx(home)
    info["build_s"] = time.perf_counter() - t0
    done.write_text(json.dumps(info))
    return home


def server_copy(home: Path, dst: Path) -> Path:
    """A copy of ``home`` a server may write to: the store is copied, the (read-only,
    replaced-not-edited) index, model and embedding files are hard links."""
    if dst.exists():
        shutil.rmtree(dst)

    def copy(src: str, out: str) -> None:
        if Path(src).name.startswith("store.sqlite3"):
            shutil.copy2(src, out)
        else:
            try:
                os.link(src, out)
            except OSError:
                shutil.copy2(src, out)

    shutil.copytree(home, dst, copy_function=copy,
                    ignore=shutil.ignore_patterns("serve_state.sqlite3*", "api_keys.json"))
    return dst


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("names", nargs="+", choices=["homedepot", "beauty", "shop"])
    ap.add_argument("--root", type=Path, default=Path("/tmp/shopsense-serve-bench"))
    ap.add_argument("--donor", type=Path, action="append", default=[])
    a = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_v, "1")
    for n in a.names:
        build(a.root, n, donors=a.donor)
