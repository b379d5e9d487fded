"""The checks of ``05_train_codebooks.ipynb``: a code of the participant's freshly trained codebooks
that stands for one state, and the codebook whose codes are purest."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import torch

from . import Feedback, read_code, unanswered

if TYPE_CHECKING:
    from ..model import CodebookModel
    from ..tokfsm import TokFSM

__all__ = ["PURE_BOOK", "PURE_SHARE", "TrainingChecks"]

PURE_BOOK = "2.mlp"  # exercise 1: the codebook to find a state's code in
PURE_SHARE = 0.9  # exercise 1: the share of a code's firings that must fall on one state
_MIN_FIRINGS = 5


class TrainingChecks:
    """Checked against the participant's own trained model, on walks it has not seen (a fixed seed)."""

    def __init__(self, model: CodebookModel, fsm: TokFSM, sequences: int = 256, length: int = 64) -> None:
        self.model, self.fsm = model, fsm
        ids = fsm.sample(sequences, length, seed=12345)
        ends = fsm.state_ends(length)
        with torch.no_grad():
            self.codes = model(ids).codes.ids[:, ends, :, 0]  # (walks, states in a walk, codebooks)
        self.states = fsm.parse_states(ids[:, 1 : 1 + fsm.digits * len(ends)])  # (walks, states in a walk)

    def _states_of(self, book: int, code: int) -> Counter[int]:
        return Counter(self.states[self.codes[..., book] == code].tolist())

    def exercise_1(self, answer: Any) -> Feedback:
        """A code of codebook 2.mlp that stands for one state: at least 90 % of its firings on it."""
        exercise = "Exercise 1"
        read = read_code(self.model, exercise, answer, PURE_BOOK)
        if isinstance(read, Feedback):
            return read
        book, code, name = read
        states = self._states_of(book, code)
        fired = sum(states.values())
        if fired < _MIN_FIRINGS:
            return Feedback(
                exercise,
                False,
                f"{name} fired {fired} time(s) at a state's last digit in {self.codes.shape[0]} fresh walks: too rare "
                "to say what it stands for. Pick a code that fires often in the heatmap.",
            )
        share = states.most_common(1)[0][1] / fired
        if share >= PURE_SHARE:
            return Feedback(exercise, True, f"{share:.0%} of {name}'s {fired} firings fall on one state.")
        return Feedback(
            exercise,
            False,
            f"{name} fired on {len(states)} different states ({share:.0%} on its most frequent one); a code that "
            f"stands for a state fires on it at least {PURE_SHARE:.0%} of the time. Click codes in the heatmap's "
            f"{PURE_BOOK} column and compare the states under the lit tokens.",
        )

    def exercise_2(self, answer: Any) -> Feedback:
        """The MLP codebook with the largest share of codes that fire on a single state (bigram purity)."""
        from ..tokfsm import code_purity

        exercise = "Exercise 2"
        if (missing := unanswered(exercise, answer)) is not None:
            return missing
        table = code_purity(self.model, self.fsm).set_index("codebook")["bigram_purity"]
        mlp = table[[label.endswith("mlp") for label in table.index]]
        label = str(answer).strip()
        if label not in table.index:
            hint = "give a label such as '1.mlp'"
            return Feedback(exercise, False, f"{answer!r} is not a codebook of this model; {hint}.")
        if label not in mlp.index:
            return Feedback(exercise, False, f"{label} is not an MLP codebook; the exercise compares the MLP ones.")
        if mlp[label] >= mlp.max() - 1e-9:
            return Feedback(exercise, True, f"{mlp[label]:.0%} of {label}'s active codes fire on a single state.")
        return Feedback(
            exercise,
            False,
            f"{mlp[label]:.0%} of {label}'s active codes fire on a single state; another MLP codebook does better. "
            "Read the bigram_purity column of code_purity(model, fsm).",
        )
