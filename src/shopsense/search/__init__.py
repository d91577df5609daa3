"""Hybrid product search: field-weighted BM25, dense ANN, fusion, query
understanding, facets and filters; optional re-ranking stages (LambdaMART, cross-encoder)."""

from __future__ import annotations

from shopsense.search._analysis import Analyzer
from shopsense.search._cross import (
    CrossEncoderReranker,
    PairGroups,
    blend_scores,
    choose_blend,
    cross_groups,
    pair_text,
    query_text,
)
from shopsense.search._dense import DenseIndex
from shopsense.search._facets import IDENTIFIER_ATTRIBUTES, facet_counts, filter_mask
from shopsense.search._fusion import normalise, rrf, weighted_fusion
from shopsense.search._hybrid import HybridSearcher, SearchOptions
from shopsense.search._learned import (
    RERANK_FEATURES,
    LearnedReranker,
    judged_features,
    rerank_features,
)
from shopsense.search._lexical import LexicalIndex, import_bm25s, product_fields
from shopsense.search._query import ParsedQuery, QueryParser, load_synonyms
from shopsense.search._service import SearchService, catalog_fingerprint, user_profile

__all__ = [
    "IDENTIFIER_ATTRIBUTES",
    "RERANK_FEATURES",
    "Analyzer",
    "CrossEncoderReranker",
    "DenseIndex",
    "HybridSearcher",
    "LearnedReranker",
    "LexicalIndex",
    "PairGroups",
    "ParsedQuery",
    "QueryParser",
    "SearchOptions",
    "SearchService",
    "blend_scores",
    "catalog_fingerprint",
    "choose_blend",
    "cross_groups",
    "facet_counts",
    "filter_mask",
    "import_bm25s",
    "judged_features",
    "load_synonyms",
    "normalise",
    "pair_text",
    "product_fields",
    "query_text",
    "rerank_features",
    "rrf",
    "user_profile",
    "weighted_fusion",
]
