"""Re-ranking: explanations, diversity, exposure fairness and business rules.

Every function returns new objects and never changes its inputs.
"""

from shopsense.rerank._explain import (
    FALLBACK_REASONS,
    OpenAIRephraser,
    Rephraser,
    explain,
    reason_for,
)

__all__ = ["FALLBACK_REASONS", "OpenAIRephraser", "Rephraser", "explain", "reason_for"]
