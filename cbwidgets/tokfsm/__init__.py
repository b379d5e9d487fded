"""TokFSM: the controlled world (a random finite state machine written as digit tokens) and the
metrics that check what a model's codes mean in it."""

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
    "TokFSM",
    "code_purity",
    "codes_vs_neurons",
    "compare_to_reference",
    "first_transition_accuracy",
    "next_state_probs",
    "patching_divergence",
    "transition_accuracy",
]
