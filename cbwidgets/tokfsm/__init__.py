"""TokFSM: the controlled world (a random finite state machine written as digit tokens) and the
metrics that check what a model's codes mean in it."""

from .default import Recipe, build_default_model, load_default, train_default
from .metrics import (
    REFERENCE,
    code_purity,
    codes_vs_neurons,
    compare_to_reference,
    first_transition_accuracy,
    next_state_probs,
    patching_divergence,
    transition_accuracy,
)
from .world import TokFSM

__all__ = [
    "REFERENCE",
    "Recipe",
    "TokFSM",
    "build_default_model",
    "code_purity",
    "codes_vs_neurons",
    "compare_to_reference",
    "first_transition_accuracy",
    "load_default",
    "next_state_probs",
    "patching_divergence",
    "train_default",
    "transition_accuracy",
]
