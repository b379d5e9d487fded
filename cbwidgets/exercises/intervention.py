"""The checks of ``02_code_intervention.ipynb``: the busiest code of a codebook, and the MLP code
whose removal costs the top prediction most."""

from __future__ import annotations

from typing import Any

from . import Feedback, PromptChecks

__all__ = ["BUSY_BOOK", "InterventionChecks"]

BUSY_BOOK = "0.mlp"  # exercise 1: the codebook whose most frequent code is asked for


class InterventionChecks(PromptChecks):
    """The two exercises, checked against the participant's own model and prompt."""

    def _fires_on(self, book: int, code: int) -> int:
        return len(self.fires_at(book, code))

    def exercise_1(self, answer: Any) -> Feedback:
        """Which code of codebook 0.mlp fires on the most tokens of this prompt?"""
        exercise = "Exercise 1"
        read = self.read_code(exercise, answer, BUSY_BOOK)
        if isinstance(read, Feedback):
            return read
        book, code, name = read
        count = self._fires_on(book, code)
        most = max(self._fires_on(book, int(c)) for c in self.codes[:, book, :].unique().tolist() if c >= 0)
        if count == most:
            return Feedback(exercise, True, f"{name} fires on {count} tokens; no other {BUSY_BOOK} code fires on more.")
        hint = "click it in the heatmap: the status line counts its tokens" if count else "it does not fire here"
        return Feedback(exercise, False, f"{name} fires on {count} token(s) ({hint}); another code fires on more.")

    def exercise_2(self, answer: Any) -> Feedback:
        """Which MLP code at the last token, switched off alone (drop), lowers the top prediction most?"""
        exercise = "Exercise 2"
        read = self.read_code(exercise, answer)
        if isinstance(read, Feedback):
            return read
        book, code, name = read
        names = self.model.names
        if names.codebooks[book].kind != "mlp":
            return Feedback(exercise, False, f"{name} is an attention code; the exercise asks about MLP codes.")
        if not bool((self.codes[-1, book] == code).any()):
            return Feedback(exercise, False, f"{name} does not fire at the last token; use the panel's code list.")
        top = int(self.probs.argmax())  # the prediction before any edit
        drops = {}
        for other, book_name in enumerate(names.codebooks):
            if book_name.kind == "mlp":
                candidate = names.code_name(other, int(self.codes[-1, other, 0]))
                drops[candidate] = float(self.probs[top] - self.after_drop(candidate)[top])
        if drops.get(name, float("-inf")) >= max(drops.values()) - 1e-6:
            return Feedback(exercise, True, f"switching {name} off lowers the top prediction by {drops[name]:.1%}.")
        return Feedback(
            exercise,
            False,
            f"switching {name} off changes the top prediction by {-drops[name]:+.1%}; another MLP code lowers it more. "
            "Tick one code at a time in the panel (mode drop) and compare.",
        )
