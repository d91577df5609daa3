"""Evaluation: metrics, splits and protocol runners shared by tests, bench/ and ``shopsense eval``.

The ranking metrics live in the leaf module :mod:`shopsense.metrics` (models use them
too) and are re-exported here.
"""

from shopsense.eval._baskets import BasketData, read_baskets
from shopsense.eval._baskets_run import BasketRun, evaluate_baskets, run_baskets
from shopsense.eval._compare import MetricDiff, bootstrap_diff, compare, load_result
from shopsense.eval._inputs import (
    ItemData,
    SequenceData,
    Skips,
    read_events,
    read_items,
    read_sequences,
)
from shopsense.eval._progress import Phases, RichPhases
from shopsense.eval._recommend import (
    LOOSplit,
    evaluate_model,
    evaluate_ranked,
    loo_split,
    office_text,
    rank_all,
    rank_model,
    read_office,
    read_user_sequences,
)
from shopsense.eval._recommend_run import RecommendRun, evaluate_recommend, run_recommend
from shopsense.eval._report import bar_chart, meta, print_table, write_json
from shopsense.metrics import dcg, gini, hit_at_k, loo_metrics, mrr, ndcg_at_k, recall_at_k

__all__ = [
    "BasketData",
    "BasketRun",
    "ItemData",
    "LOOSplit",
    "MetricDiff",
    "Phases",
    "RecommendRun",
    "RichPhases",
    "SequenceData",
    "Skips",
    "bar_chart",
    "bootstrap_diff",
    "compare",
    "dcg",
    "evaluate_baskets",
    "evaluate_model",
    "evaluate_ranked",
    "evaluate_recommend",
    "gini",
    "hit_at_k",
    "load_result",
    "loo_metrics",
    "loo_split",
    "meta",
    "mrr",
    "ndcg_at_k",
    "office_text",
    "print_table",
    "rank_all",
    "rank_model",
    "read_baskets",
    "read_events",
    "read_items",
    "read_office",
    "read_sequences",
    "read_user_sequences",
    "recall_at_k",
    "run_baskets",
    "run_recommend",
    "write_json",
]
