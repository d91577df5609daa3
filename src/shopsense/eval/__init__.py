"""Evaluation: metrics, splits and protocol runners shared by tests, bench/ and ``shopsense eval``."""

from shopsense.eval._metrics import dcg, gini, hit_at_k, loo_metrics, mrr, ndcg_at_k, recall_at_k

__all__ = ["dcg", "gini", "hit_at_k", "loo_metrics", "mrr", "ndcg_at_k", "recall_at_k"]
