"""The checks of ``02_code_intervention.ipynb``: the busiest code of a codebook, and the MLP code
whose removal costs the top prediction most."""

from __future__ import annotations

from typing import Any

import torch

from ..errors import CodebookError
from ..model import CodebookModel
from . import Feedback, unanswered

__all__ = ["BUSY_BOOK", "InterventionChecks"]

BUSY_BOOK = "0.mlp"  # exercise 1: the codebook whose most frequent code is asked for


class InterventionChecks:
    """Checks against the participant's own model and prompt."""

    def __init__(self, model: CodebookModel, prompt: Any) -> None:
        self.model = model
        self.ids = model.as_input_ids(prompt)
        with torch.no_grad():
            out = model(self.ids)
        self.codes = out.codes.ids[0]  # (tokens, codebooks, k)
        self.before = out.logits[0, -1].float().softmax(-1)
        self.top = int(self.before.argmax())

    def _parse(self, exercise: str, answer: Any) -> tuple[int, int] | Feedback:
        try:
            return self.model.names.parse_code(answer)
        except CodebookError as err:
            return Feedback(exercise, False, f"That is not a code: {err}")

    def _fires_on(self, book: int, code: int) -> int:
        return int((self.codes[:, book, :] == code).any(-1).sum())

    def exercise_1(self, answer: Any) -> Feedback:
        """Which code of codebook 0.mlp fires on the most tokens of this prompt?"""
        exercise = "Exercise 1"
        if (missing := unanswered(exercise, answer)) is not None:
            return missing
        parsed = self._parse(exercise, answer)
        if isinstance(parsed, Feedback):
            return parsed
        book, code = parsed
        names = self.model.names
        name = names.code_name(book, code)
        if names.codebooks[book].label != BUSY_BOOK:
            return Feedback(exercise, False, f"{name} is not in codebook {BUSY_BOOK}; look at that column.")
        count = self._fires_on(book, code)
        most = max(self._fires_on(book, int(c)) for c in self.codes[:, book, :].unique().tolist() if c >= 0)
        if count == most:
            return Feedback(exercise, True, f"{name} fires on {count} tokens; no other {BUSY_BOOK} code fires on more.")
        hint = "click it in the heatmap: the status line counts its tokens" if count else "it does not fire here"
        return Feedback(exercise, False, f"{name} fires on {count} token(s) ({hint}); another code fires on more.")

    def exercise_2(self, answer: Any) -> Feedback:
        """Which MLP code at the last token, switched off alone (drop), lowers the top prediction most?"""
        exercise = "Exercise 2"
        if (missing := unanswered(exercise, answer)) is not None:
            return missing
        parsed = self._parse(exercise, answer)
        if isinstance(parsed, Feedback):
            return parsed
        book, code = parsed
        names = self.model.names
        name = names.code_name(book, code)
        if names.codebooks[book].kind != "mlp":
            return Feedback(exercise, False, f"{name} is an attention code; the exercise asks about MLP codes.")
        if not bool((self.codes[-1, book] == code).any()):
            return Feedback(exercise, False, f"{name} does not fire at the last token; use the panel's code list.")
        drops = {}
        for other, book_name in enumerate(names.codebooks):
            if book_name.kind == "mlp":
                candidate = names.code_name(other, int(self.codes[-1, other, 0]))
                with torch.no_grad(), self.model.ablate(candidate, mode="drop"):
                    after = self.model(self.ids).logits[0, -1].float().softmax(-1)
                drops[candidate] = float(self.before[self.top] - after[self.top])
        if drops.get(name, float("-inf")) >= max(drops.values()) - 1e-6:
            return Feedback(exercise, True, f"switching {name} off lowers the top prediction by {drops[name]:.1%}.")
        return Feedback(
            exercise,
            False,
            f"switching {name} off changes the top prediction by {-drops[name]:+.1%}; another MLP code lowers it more. "
            "Tick one code at a time in the panel (mode drop) and compare.",
        )
