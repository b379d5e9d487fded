"""The checks of ``01_tokfsm.ipynb``: read the code a state gets, and what dropping a state's codes
costs the prediction."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from . import Feedback, read_code, unanswered

if TYPE_CHECKING:
    from ..model import CodebookModel
    from ..tokfsm import TokFSM

__all__ = ["STATE", "TokFSMChecks"]

STATE = 17  # the state both exercises ask about
BOOK = "2.mlp"


class TokFSMChecks:
    """Checked against the participant's own model, on the prompt ``<bos>`` + state 17's two digits."""

    def __init__(self, model: CodebookModel, fsm: TokFSM) -> None:
        self.model, self.fsm = model, fsm
        self.prompt = torch.tensor([[fsm.bos_id, *fsm.state_tokens(STATE)]])
        with torch.no_grad():
            self.codes = model(self.prompt).codes

    def exercise_1(self, answer: Any) -> Feedback:
        """The code of 2.mlp at the last digit of <bos> 1 7."""
        exercise = "Exercise 1"
        read = read_code(self.model, exercise, answer, BOOK)
        if isinstance(read, Feedback):
            return read
        book, code, name = read
        fired = self.codes.ids[0, :, book, 0].tolist()
        if fired[-1] == code:
            return Feedback(exercise, True, f"{name} fires at the 7 of <bos> 1 7.")
        where = f"fires at position {fired.index(code)}, not the last digit" if code in fired else "does not fire"
        return Feedback(exercise, False, f"{name} {where} in <bos> 1 7; read the row of the last token (position 2).")

    def true_neighbours_with_codes_dropped(self) -> int:
        from ..tokfsm import next_state_probs

        every_code = [(label, int(self.codes[label][0, -1, 0])) for label in self.codes.labels]
        with torch.no_grad(), self.model.ablate(every_code, positions=[2], mode="drop"):
            top = next_state_probs(self.model, self.fsm)[STATE].topk(10).indices.tolist()
        return sum(s in self.fsm.edges[STATE] for s in top)

    def exercise_2(self, answer: Any) -> Feedback:
        """How many of the top-10 predicted next states are true neighbours of 17, with every code at its
        last digit dropped?"""
        exercise = "Exercise 2"
        if (missing := unanswered(exercise, answer)) is not None:
            return missing
        try:
            given = int(answer)
        except (TypeError, ValueError):
            given = -1
        if given != answer or not 0 <= given <= 10:
            return Feedback(exercise, False, f"{answer!r} is not a count; give a whole number from 0 to 10.")
        truth = self.true_neighbours_with_codes_dropped()
        if given == truth:
            return Feedback(exercise, True, f"{given} of the top 10 are true neighbours with every code dropped.")
        side = "fewer" if given > truth else "more"
        return Feedback(
            exercise,
            False,
            f"with every code at the 7 dropped, {side} of the top 10 are true neighbours. Drop all 20 codebooks' "
            "codes at position 2, with mode='drop', as section 7 does for state 42.",
        )
