"""Product combinations: co-purchase mining, complements versus substitutes, and
bundles under a budget."""

from __future__ import annotations

from shopsense.bundles._complement import ComplementModel, top_k_per_row
from shopsense.bundles._mining import (
    BASKET_EVENT_TYPES,
    Baskets,
    CoPurchase,
    basket_matrix,
    baskets_from_events,
    decay_weights,
)
from shopsense.bundles._neighbors import text_knn, top_k_dense
from shopsense.bundles._optimize import BundleSolution, bundle_objective, solve_bundle
from shopsense.bundles._service import BundleService

__all__ = [
    "BASKET_EVENT_TYPES",
    "Baskets",
    "BundleService",
    "BundleSolution",
    "CoPurchase",
    "ComplementModel",
    "basket_matrix",
    "baskets_from_events",
    "bundle_objective",
    "decay_weights",
    "solve_bundle",
    "text_knn",
    "top_k_dense",
    "top_k_per_row",
]
