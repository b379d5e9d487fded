"""TokFSM: the controlled world (a random finite state machine written as digit tokens) and the
metrics that check what a model's codes mean in it."""

from typing import Any

from .default import FSMRecipe, build_default_model, load_default, save_default, train_default
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
from .state_codes import state_codes, state_of
from .world import TokFSM

__all__ = [
    "REFERENCE",
    "FSMRecipe",
    "TokFSM",
    "build_default_model",
    "code_purity",
    "codes_vs_neurons",
    "compare_to_reference",
    "first_transition_accuracy",
    "load_default",
    "next_state_probs",
    "patching_divergence",
    "save_default",
    "state_codes",
    "state_of",
    "train_default",
    "transition_accuracy",
]


def __getattr__(name: str) -> Any:
    if name == "Recipe":  # deprecated: FSMRecipe
        import warnings

        warnings.warn("cbwidgets.tokfsm.Recipe is now cbwidgets.tokfsm.FSMRecipe", DeprecationWarning, stacklevel=2)
        return FSMRecipe
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
