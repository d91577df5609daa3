"""Re-ranking: explanations, diversity, exposure fairness and business rules.

Every function returns new objects and never changes its inputs; the pipeline
entry point :func:`apply` (or :class:`Reranker`) also returns a
:class:`RerankReport` saying what moved and what was removed. :func:`finish` is
the one finishing stage the engine runs on every list (fill products, rules,
diversity, reasons, rephrasing).
"""

from shopsense.rerank._diversity import (
    category_cap,
    dpp_rerank,
    item_features,
    maxsum_rerank,
    mmr_rerank,
    similarity_matrix,
)
from shopsense.rerank._explain import (
    FALLBACK_REASONS,
    OpenAIRephraser,
    Rephraser,
    explain,
    reason_for,
    rephrase,
)
from shopsense.rerank._fairness import (
    ExposureBounds,
    FairResult,
    exposure_fair_rerank,
    exposure_shares,
    position_weights,
)
from shopsense.rerank._finish import finish, reorders
from shopsense.rerank._pipeline import DEFAULT_LAMBDA, DEFAULT_METHOD, Reranker, apply
from shopsense.rerank._report import RerankReport
from shopsense.rerank._rules import (
    RULES_FILE,
    Match,
    Rule,
    RuleSet,
    load_rules,
    rules_version,
    save_rules,
    validate_rules,
)

__all__ = [
    "DEFAULT_LAMBDA",
    "DEFAULT_METHOD",
    "FALLBACK_REASONS",
    "RULES_FILE",
    "ExposureBounds",
    "FairResult",
    "Match",
    "OpenAIRephraser",
    "Rephraser",
    "RerankReport",
    "Reranker",
    "Rule",
    "RuleSet",
    "apply",
    "category_cap",
    "dpp_rerank",
    "explain",
    "exposure_fair_rerank",
    "exposure_shares",
    "finish",
    "item_features",
    "load_rules",
    "maxsum_rerank",
    "mmr_rerank",
    "position_weights",
    "reason_for",
    "reorders",
    "rephrase",
    "rules_version",
    "save_rules",
    "similarity_matrix",
    "validate_rules",
]
