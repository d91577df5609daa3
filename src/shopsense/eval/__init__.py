"""Evaluation: metrics, splits and protocol runners shared by tests, bench/ and ``shopsense eval``."""

from shopsense.eval._compare import MetricDiff, bootstrap_diff, compare, load_result
from shopsense.eval._metrics import dcg, gini, hit_at_k, loo_metrics, mrr, ndcg_at_k, recall_at_k
from shopsense.eval._recommend import (
    LOOSplit,
    evaluate_model,
    evaluate_ranked,
    loo_split,
    office_text,
    rank_all,
    read_office,
    read_user_sequences,
)
from shopsense.eval._report import bar_chart, meta, print_table, write_json

__all__ = [
    "MetricDiff", "bar_chart", "bootstrap_diff", "compare", "dcg", "gini", "hit_at_k", "load_result",
    "loo_metrics", "meta", "mrr", "ndcg_at_k", "print_table", "recall_at_k", "write_json",
    "LOOSplit", "evaluate_model", "evaluate_ranked", "loo_split", "office_text", "rank_all", "read_office",
    "read_user_sequences",
]
