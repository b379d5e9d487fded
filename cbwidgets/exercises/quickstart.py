"""The checks of ``00_quickstart.ipynb``: read a code, switch it off, find one that matters."""

from __future__ import annotations

from typing import Any

from ..model import CodebookModel
from . import Feedback, PromptChecks, unanswered

__all__ = ["BOOK", "MIN_SHIFT", "QuickstartChecks"]

BOOK = "1.mlp"  # the codebook the exercises are about
MIN_SHIFT = 0.1  # exercise 3: total variation the ablation must move the last prediction by


class QuickstartChecks(PromptChecks):
    """The three exercises, checked against the participant's own model and prompt."""

    def __init__(self, model: CodebookModel, prompt: Any) -> None:
        super().__init__(model, prompt)
        self.book = model.names.index_of(BOOK)

    def _code(self, exercise: str, answer: Any) -> tuple[str, Feedback | None]:
        """The answer as a code name of codebook 1.mlp that fires in the prompt, or why it is not one."""
        read = self.read_code(exercise, answer)
        if isinstance(read, Feedback):
            return "", read
        book, code, name = read
        if book != self.book:
            label = self.model.names.codebooks[book].label
            return name, Feedback(
                exercise, False, f"{name} is a code of codebook {label}; this exercise is about codebook {BOOK}."
            )
        if not self.fires_at(book, code):
            return name, Feedback(
                exercise, False, f"{name} does not fire anywhere in this prompt; read an id off the heatmap."
            )
        return name, None

    def _digit(self, answer: Any) -> int | None:
        text = str(answer.item() if hasattr(answer, "item") else answer).strip()
        ids = self.model.tokenizer(text, add_special_tokens=False)["input_ids"]
        return ids[0] if len(ids) == 1 else None

    # ---------------------------------------------------------- exercises
    def exercise_1(self, answer: Any) -> Feedback:
        """Which code of codebook 1.mlp fires on the last token?"""
        exercise = "Exercise 1"
        name, problem = self._code(exercise, answer)
        if problem is not None:
            return problem
        code = self.model.names.parse_code(name)[1]
        last = self.codes.shape[0] - 1
        if not bool((self.codes[last, self.book] == code).any()):
            where = self.fires_at(self.book, code)
            return Feedback(
                exercise,
                False,
                f"{name} fires at token(s) {where}, not at the last token ({last}); look at the heatmap's last row.",
            )
        return Feedback(exercise, True, f"{name} is the layer-1 MLP code at the last token.")

    def exercise_2(self, answer: Any) -> Feedback:
        """With that code switched off (mode "drop"), which digit is the most likely next token?"""
        exercise = "Exercise 2"
        if (missing := unanswered(exercise, answer)) is not None:
            return missing
        token = self._digit(answer)
        if token is None:
            return Feedback(exercise, False, f"{answer!r} is not one token; give one digit, like 3 or '3'.")
        code = self.model.names.code_name(self.book, int(self.codes[-1, self.book, 0]))
        after = self.after_drop(code)
        if token == int(after.argmax()):
            return Feedback(exercise, True, f"with {code} off, that digit is the most likely ({after[token]:.0%}).")
        if token == int(self.probs.argmax()):
            return Feedback(
                exercise,
                False,
                "that is the most likely digit before the ablation. Switch the code off (tick it in the panel "
                "with mode drop, or model.ablate(code, mode='drop')) and read the 'after' column.",
            )
        return Feedback(
            exercise, False, f"with {code} off that digit has p = {after[token]:.1%}; another digit is more likely."
        )

    def exercise_3(self, answer: Any) -> Feedback:
        """A code of 1.mlp in this prompt whose ablation moves the last prediction by at least MIN_SHIFT (0.1)."""
        exercise = "Exercise 3"
        name, problem = self._code(exercise, answer)
        if problem is not None:
            return problem
        shift = float((self.probs - self.after_drop(name)).abs().sum() / 2)
        if shift >= MIN_SHIFT:
            return Feedback(exercise, True, f"switching {name} off moves the prediction by {shift:.2f}.")
        return Feedback(
            exercise,
            False,
            f"switching {name} off moves the prediction by {shift:.3f} (total variation); it needs {MIN_SHIFT} or "
            f"more. Codes that fire near the end of the prompt tend to matter most.",
        )
