"""The checks of ``03_code_search.ipynb``: a code that stands for a pattern, found by search, and a
code found by what it writes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import Feedback, read_code

if TYPE_CHECKING:
    from ..index import CodeIndex
    from ..model import CodebookModel

__all__ = ["PATTERN", "PROMOTED", "SearchChecks"]

PATTERN = "1(7)"  # exercise 1: the digits of state 17; group 1 picks the token 7
MIN_PRECISION = 0.9
MIN_MATCHES = 10
PROMOTED = "7"  # exercise 2: the token the code must push up most
LAST_MLP = "3.mlp"
_WRITES = "{name} is not in {label}; the last layer's MLP writes to the logits."


class SearchChecks:
    """Checked against the participant's own index and model."""

    def __init__(self, index: CodeIndex, model: CodebookModel) -> None:
        self.index, self.model = index, model

    def exercise_1(self, answer: Any) -> Feedback:
        """A code with precision >= 0.9 on the pattern 1(7), over at least 10 matched tokens."""
        exercise = "Exercise 1"
        read = read_code(self.model, exercise, answer)
        if isinstance(read, Feedback):
            return read
        name = read[2]
        table = self.index.search(PATTERN).set_index("code")
        if name not in table.index:
            return Feedback(exercise, False, f"{name} never fires on a match of {PATTERN}; search for that pattern.")
        row = table.loc[name].to_dict()
        matches, precision = int(row["matches"]), float(row["precision"])
        if matches < MIN_MATCHES:
            return Feedback(
                exercise,
                False,
                f"{name} fires on only {matches} match(es) of {PATTERN}; take one with at least "
                f"{MIN_MATCHES} (search's min_matches does that).",
            )
        if precision >= MIN_PRECISION:
            return Feedback(exercise, True, f"{precision:.0%} of {name}'s firings are on a match of {PATTERN}.")
        return Feedback(
            exercise,
            False,
            f"only {precision:.0%} of {name}'s firings are on a match of {PATTERN} (it also fires elsewhere); "
            f"the table is sorted by precision: look at its top.",
        )

    def exercise_2(self, answer: Any) -> Feedback:
        """A code of 3.mlp whose strongest promoted token is the digit 7."""
        from ..code_effects import code_logit_effect

        exercise = "Exercise 2"
        read = read_code(self.model, exercise, answer, LAST_MLP, _WRITES)
        if isinstance(read, Feedback):
            return read
        name = read[2]
        effect = code_logit_effect(self.model, name, top=1)
        promoted = effect[effect["direction"] == "promotes"]["token"].tolist()
        if promoted and promoted[0] == PROMOTED:
            return Feedback(exercise, True, f"{name} pushes {PROMOTED!r} up more than any other token.")
        said = f"pushes {promoted[0]!r} up most" if promoted else "pushes no token up"
        return Feedback(
            exercise,
            False,
            f"{name} {said}. Read code_logit_effect(model, code) for codes of {LAST_MLP}, or search for a pattern "
            f"that comes just before a 7.",
        )
