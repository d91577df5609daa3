"""What shoppers were shown and what came of it: the exposure log, analytics for the
shop owner, experiments (A/B with sticky hashed assignment, SRM check, intervals and
CUPED; team-draft interleaving), and the privacy duties around them (aggregates only,
differentially private exports, retention, a user's data export).

The statistics are plain functions over arrays; only :class:`Analytics`, the exposure
helpers and :func:`experiment_report`'s callers read the store.
"""

from shopsense.insights._analytics import (
    COUNT_COLUMNS,
    Analytics,
    normalise_query,
    private_table,
    to_csv,
)
from shopsense.insights._experiments import (
    EXPERIMENTS_FILE,
    HOLDOUT,
    SEARCH_OPTIONS,
    SETTING_OVERRIDES,
    Experiment,
    ExperimentBook,
    Variant,
    assign,
    experiment_report,
)
from shopsense.insights._exposure import action_of, apply_retention, export_user, impression_of
from shopsense.insights._interleave import (
    TEAM_A,
    TEAM_B,
    Interleaved,
    credit,
    decode_teams,
    encode_teams,
    preference,
    team_draft,
)
from shopsense.insights._stats import (
    SRM_P_THRESHOLD,
    Interval,
    SRMResult,
    bootstrap_diff,
    cuped,
    delta_ratio_diff,
    mean_interval,
    noisy_counts,
    srm_check,
)
from shopsense.store import Exposure

__all__ = [
    "COUNT_COLUMNS",
    "EXPERIMENTS_FILE",
    "HOLDOUT",
    "SEARCH_OPTIONS",
    "SETTING_OVERRIDES",
    "SRM_P_THRESHOLD",
    "TEAM_A",
    "TEAM_B",
    "Analytics",
    "Experiment",
    "ExperimentBook",
    "Exposure",
    "Interleaved",
    "Interval",
    "SRMResult",
    "Variant",
    "action_of",
    "apply_retention",
    "assign",
    "bootstrap_diff",
    "credit",
    "cuped",
    "decode_teams",
    "delta_ratio_diff",
    "encode_teams",
    "experiment_report",
    "export_user",
    "impression_of",
    "mean_interval",
    "noisy_counts",
    "normalise_query",
    "preference",
    "private_table",
    "srm_check",
    "team_draft",
    "to_csv",
]
