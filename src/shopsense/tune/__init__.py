"""Adapting the sentence encoder to the shop: pair mining, contrastive tuning, a smaller
student by layer pruning plus distillation, saving into the engine home (the engine's
encoder then picks the tuned or distilled model up)."""

from __future__ import annotations

from shopsense.text import activate_encoder, active_encoder_path  # re-exported for compatibility
from shopsense.tune._distil import (
    EncoderDistiller,
    prune_layers,
    save_distilled_encoder,
    spread_layers,
)
from shopsense.tune._pairs import (
    PairSet,
    item_pairs_from_events,
    mine_hard_negatives,
    pairs_from_events,
    pairs_from_judgments,
    split_pairs_by_query,
)
from shopsense.tune._train import EncoderTuner, save_tuned_encoder

__all__ = [
    "EncoderDistiller",
    "EncoderTuner",
    "PairSet",
    "activate_encoder",
    "active_encoder_path",
    "item_pairs_from_events",
    "mine_hard_negatives",
    "pairs_from_events",
    "pairs_from_judgments",
    "prune_layers",
    "save_distilled_encoder",
    "save_tuned_encoder",
    "split_pairs_by_query",
    "spread_layers",
]
