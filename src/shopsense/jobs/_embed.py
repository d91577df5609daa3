"""Catalogue embeddings on Spark: product texts encoded in batches by a pandas UDF
(``mapInPandas``), the encoder loaded once per Python worker, the vectors written into the
home's embedding cache, where search, recommendations and bundles find them."""

from __future__ import annotations

import functools
import logging
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shopsense.config import Settings
from shopsense.home import Home
from shopsense.jobs._als import read_small
from shopsense.jobs._context import Say, job_context, job_session, sayer
from shopsense.jobs._session import spark_progress
from shopsense.text import EmbeddingCache, encoder_for, item_texts, text_hash

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import SparkSession

    from shopsense.text import TextEncoder

__all__ = ["embed_catalog_spark"]

log = logging.getLogger(__name__)

#: encoders loaded in this Python worker, by job key: Spark reuses its Python workers across
#: tasks (spark.python.worker.reuse, on by default), so each worker loads the model once
_WORKER_ENCODERS: dict[str, TextEncoder] = {}


def _build_encoder(spec: dict[str, Any] | Callable[[], TextEncoder]) -> TextEncoder:
    if callable(spec):
        return spec()
    settings = Settings(home=Path(spec["home"]), encoder_model=spec["encoder_model"],
                        encoder_backend=spec["encoder_backend"], encoder_batch_size=spec["encoder_batch_size"])
    return encoder_for(settings, Home(Path(spec["home"])))


def _encode_partition(batches: Iterator[pd.DataFrame], key: str,
                      spec: dict[str, Any] | Callable[[], TextEncoder]) -> Iterator[pd.DataFrame]:
    """mapInPandas body (runs on the executors): (key, text) batches -> (key, vector)."""
    import pandas as pd

    enc = _WORKER_ENCODERS.get(key)
    if enc is None:
        _WORKER_ENCODERS.clear()  # a new job: the previous job's model is dropped, not kept twice
        enc = _WORKER_ENCODERS[key] = _build_encoder(spec)
    for pdf in batches:
        if len(pdf) == 0:
            continue
        vecs = enc.encode_documents(pdf["text"].tolist())
        yield pd.DataFrame({"key": pdf["key"].to_numpy(), "vector": list(vecs.astype(np.float32))})


def embed_catalog_spark(target: Any, progress: bool | Say = False, *, spark: SparkSession | None = None,
                        master: str | None = None, model: str | None = None, partitions: int | None = None,
                        encoder_factory: Callable[[], TextEncoder] | None = None,
                        conf: dict[str, Any] | None = None) -> dict[str, Any]:
    """Encode the catalogue's product texts on Spark into the home's embedding cache.

    Only texts the cache lacks are encoded (the cache is keyed by model and text hash, as
    :func:`shopsense.text.encode_cached` keys it), in ``partitions`` tasks (default: Spark's
    parallelism); each Python worker loads the encoder once. The encoder is the home's
    (:func:`shopsense.text.encoder_for`: tuned model, ONNX back-end), or ``model``. The
    vectors come back through Parquet (a catalogue's worth), and the cache is rewritten
    atomically. Executors must reach the home's model files (a local path on one machine,
    a shared file system on a cluster). ``encoder_factory`` (a picklable callable returning
    an encoder that loads lazily, e.g. a custom back-end) replaces the home's encoder; it is
    also called once on the driver for the cache name (``model_name``). Returns counts and
    the cache folder.

    Example
    -------
    >>> embed_catalog_spark(engine, progress=print)   # doctest: +SKIP
    {'texts': 2420, 'encoded': 2420, 'cached': 0, 'dim': 384, ...}
    """
    say = sayer(progress)
    t0 = time.perf_counter()
    with job_context(target) as ctx:
        settings, paths = ctx.settings, Home(ctx.paths.root)
        spec: dict[str, Any] | Callable[[], TextEncoder] = {
            "home": str(paths.root), "encoder_model": model or settings.encoder_model,
            "encoder_backend": settings.encoder_backend, "encoder_batch_size": settings.encoder_batch_size}
        if encoder_factory is not None:
            spec = encoder_factory
        enc = _build_encoder(spec)  # encoders load on first use: nothing is loaded on the driver
        cache = EmbeddingCache(paths.embeddings, enc.model_name)
        texts = item_texts(ctx.catalog())
        keys = [text_hash(t) for t in texts]
        _, found = cache.get(keys)
        todo: dict[str, str] = {}
        for k, t, f in zip(keys, texts, found, strict=True):
            if not f:
                todo.setdefault(k, t)
        say(f"{len(texts):,} product texts, {int(found.sum()):,} cached, {len(todo):,} to encode with {enc.model_name}")
        out = {"texts": len(texts), "encoded": len(todo), "cached": int(found.sum()), "model": enc.model_name,
               "cache": str(cache.dir)}
        if todo:
            import pandas as pd

            with job_session(ctx, spark, master, "shopsense-embed", conf) as session, \
                    tempfile.TemporaryDirectory(prefix="shopsense-embed-") as work, spark_progress(session, say):
                n_parts = partitions or session.sparkContext.defaultParallelism
                frame = session.createDataFrame(pd.DataFrame({"key": list(todo), "text": list(todo.values())}),
                                                schema="key string, text string").repartition(n_parts)
                job_key = f"{enc.model_name}:{uuid.uuid4().hex}"  # one load per worker and job
                vectors = frame.mapInPandas(functools.partial(_encode_partition, key=job_key, spec=spec),
                                            schema="key string, vector array<float>")
                table = read_small(vectors, Path(work) / "vectors")
            new_keys = table.column("key").to_pylist()
            new_vecs = np.asarray(table.column("vector").to_pylist(), np.float32)
            cache.put(new_keys, new_vecs, keep=keys)
            out["dim"] = int(new_vecs.shape[1])
        else:
            vecs, _ = cache.get(keys[:1])
            out["dim"] = int(vecs.shape[1]) if vecs is not None else 0
    out["seconds"] = time.perf_counter() - t0
    say(f"embedded {out['encoded']:,} texts in {out['seconds']:.1f}s into {out['cache']}")
    return out
