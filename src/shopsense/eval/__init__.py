"""Evaluation: metrics, splits and protocol runners shared by tests, bench/ and ``shopsense eval``.

The ranking metrics live in the leaf module :mod:`shopsense.metrics` (models use them
too) and the file readers in :mod:`shopsense.datasets` (eval reads data only through
it); both are re-exported here.
"""

from shopsense.datasets import (
    BasketData,
    ItemData,
    JudgedQueries,
    Judgments,
    SequenceData,
    Skips,
    product_mapping,
    read_basket_file,
    read_baskets,
    read_events,
    read_items,
    read_judgments,
    read_sequences,
)
from shopsense.eval._baskets import (
    BasketSplit,
    HiddenItems,
    evaluate_completion,
    hide_each,
    hide_one,
    split_baskets,
)
from shopsense.eval._baskets_run import TABLE_METRICS as BASKET_TABLE_METRICS
from shopsense.eval._baskets_run import BasketRun, evaluate_baskets, run_baskets
from shopsense.eval._compare import MetricDiff, bootstrap_diff, compare, load_result
from shopsense.eval._output import save_report
from shopsense.eval._progress import Phases, RichPhases
from shopsense.eval._recommend import (
    LOOSplit,
    evaluate_model,
    evaluate_ranked,
    item_categories,
    item_text,
    loo_split,
    office_text,
    rank_all,
    rank_model,
    read_office,
    read_user_sequences,
)
from shopsense.eval._recommend_run import SYSTEMS as RECOMMEND_SYSTEMS
from shopsense.eval._recommend_run import TABLE_METRICS as RECOMMEND_TABLE_METRICS
from shopsense.eval._recommend_run import (
    RecommendRun,
    encode_item_texts,
    evaluate_recommend,
    item_vectors,
    run_recommend,
)
from shopsense.eval._report import bar_chart, meta, print_table, write_json
from shopsense.eval._search import (
    SearchBenchmark,
    evaluate_rerank,
    evaluate_retrieval,
    latency_percentiles,
    load_crowdflower,
    load_homedepot,
    query_split,
    rerank_scores,
    retrieval_scores,
)
from shopsense.eval._search_run import PEER as SEARCH_PEER
from shopsense.eval._search_run import SYSTEM_KEYS as SEARCH_SYSTEM_KEYS
from shopsense.eval._search_run import Peer as SearchPeer
from shopsense.eval._search_run import (
    SearchRun,
    eval_search_files,
    open_search,
    print_search_table,
    warm_queries,
)
from shopsense.eval._search_run import System as SearchSystem
from shopsense.eval._search_run import evaluate as evaluate_search
from shopsense.eval._search_run import plot as plot_search
from shopsense.eval._search_run import run_protocol as run_search
from shopsense.eval._search_run import tune as tune_search
from shopsense.metrics import dcg, gini, hit_at_k, loo_metrics, mrr, ndcg_at_k, recall_at_k

__all__ = [
    "BASKET_TABLE_METRICS",
    "RECOMMEND_SYSTEMS",
    "RECOMMEND_TABLE_METRICS",
    "SEARCH_PEER",
    "SEARCH_SYSTEM_KEYS",
    "BasketData",
    "BasketRun",
    "BasketSplit",
    "HiddenItems",
    "ItemData",
    "JudgedQueries",
    "Judgments",
    "LOOSplit",
    "MetricDiff",
    "Phases",
    "RecommendRun",
    "RichPhases",
    "SearchBenchmark",
    "SearchPeer",
    "SearchRun",
    "SearchSystem",
    "SequenceData",
    "Skips",
    "bar_chart",
    "bootstrap_diff",
    "compare",
    "dcg",
    "encode_item_texts",
    "eval_search_files",
    "evaluate_baskets",
    "evaluate_completion",
    "evaluate_model",
    "evaluate_ranked",
    "evaluate_recommend",
    "evaluate_rerank",
    "evaluate_retrieval",
    "evaluate_search",
    "gini",
    "hide_each",
    "hide_one",
    "hit_at_k",
    "item_categories",
    "item_text",
    "item_vectors",
    "latency_percentiles",
    "load_crowdflower",
    "load_homedepot",
    "load_result",
    "loo_metrics",
    "loo_split",
    "meta",
    "mrr",
    "ndcg_at_k",
    "office_text",
    "open_search",
    "plot_search",
    "print_search_table",
    "print_table",
    "product_mapping",
    "query_split",
    "rank_all",
    "rank_model",
    "read_basket_file",
    "read_baskets",
    "read_events",
    "read_items",
    "read_judgments",
    "read_office",
    "read_sequences",
    "read_user_sequences",
    "recall_at_k",
    "rerank_scores",
    "retrieval_scores",
    "run_baskets",
    "run_recommend",
    "run_search",
    "save_report",
    "split_baskets",
    "tune_search",
    "warm_queries",
    "write_json",
]
