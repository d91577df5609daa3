"""Batch jobs on Apache Spark: ALS, popularity, co-occurrence, FP-Growth and catalogue
embeddings, written as the same model folders and caches that serving loads.

pyspark is an extra (``pip install 'shopsense[spark]'``) and needs a Java runtime; it is
imported only when a job runs. Spark runs on ``Settings.spark_master`` (``local[*]``: every
core of this machine) or any cluster master. What stays single-node: the store export
(one reader streams SQLite, or PostgreSQL without a JDBC driver, into Parquet) and the
catalogue-sized results read back on the driver (item factors, item counts, vectors).
"""

from __future__ import annotations

from shopsense.jobs._als import fit_als_spark, interactions_frame, popularity_spark
from shopsense.jobs._cooc import (
    CoOccurrence,
    FrequentItemsets,
    baskets_frame,
    cooccurrence_spark,
    fpgrowth_spark,
    load_copurchase,
    mine_cooccurrence,
)
from shopsense.jobs._embed import embed_catalog_spark
from shopsense.jobs._session import (
    SparkUnavailableError,
    java_home,
    postgres_jdbc_jar,
    require_spark,
    spark_progress,
    spark_session,
)
from shopsense.jobs._source import EVENT_COLUMNS, events_frame, export_events_parquet, jdbc_options
from shopsense.jobs._train import save_version, train_spark

__all__ = [
    "EVENT_COLUMNS",
    "CoOccurrence",
    "FrequentItemsets",
    "SparkUnavailableError",
    "baskets_frame",
    "cooccurrence_spark",
    "embed_catalog_spark",
    "events_frame",
    "export_events_parquet",
    "fit_als_spark",
    "fpgrowth_spark",
    "interactions_frame",
    "java_home",
    "jdbc_options",
    "load_copurchase",
    "mine_cooccurrence",
    "popularity_spark",
    "postgres_jdbc_jar",
    "require_spark",
    "save_version",
    "spark_progress",
    "spark_session",
    "train_spark",
]
