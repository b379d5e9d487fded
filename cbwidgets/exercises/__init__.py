"""Checks for the tutorial notebooks' exercises.

A check answers "correct" or "not yet" with feedback a participant can act on: what is off about
this answer and where to look. It never prints the answer, and it accepts every correct answer in
every form the library takes (a code as "1.mlp.5", ("1.mlp", 5) or a torch integer read off
``out.codes``). An exercise left as ``...`` says "not yet" and what to fill in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from ..errors import CodebookError

if TYPE_CHECKING:
    from ..model import CodebookModel

__all__ = ["Feedback", "PromptChecks", "read_code", "unanswered"]

_IN_BOOK = "{name} is not in codebook {label}; look in that column."


@dataclass(frozen=True)
class Feedback:
    """One check's verdict; shows as a line of text in a notebook, and is truthy when correct."""

    exercise: str
    correct: bool
    message: str

    def __bool__(self) -> bool:
        return self.correct

    def __repr__(self) -> str:
        verdict = "correct" if self.correct else "not yet"
        return f"{self.exercise}: {verdict}. {self.message}"


def unanswered(exercise: str, answer: Any) -> Feedback | None:
    """The feedback for an answer still left as ``...`` (or None when there is an answer to check)."""
    if answer is ... or answer is None:
        return Feedback(exercise, False, "Replace the ... with your answer and run the cell again.")
    return None


def read_code(
    model: CodebookModel, exercise: str, answer: Any, label: str = "", elsewhere: str = _IN_BOOK
) -> tuple[int, int, str] | Feedback:
    """(codebook index, id, written name) of a code answer in any form, or the feedback on why not;
    with ``label``, a code of another codebook gets ``elsewhere`` (formatted with name and label)."""
    if (missing := unanswered(exercise, answer)) is not None:
        return missing
    try:
        book, code = model.names.parse_code(answer)
    except CodebookError as err:
        return Feedback(exercise, False, f"That is not a code: {err}")
    name = model.names.code_name(book, code)
    if label and model.names.codebooks[book].label != label:
        return Feedback(exercise, False, elsewhere.format(name=name, label=label))
    return book, code, name


class PromptChecks:
    """What every notebook's checks share: the participant's own model and prompt (so the truth is
    what they see), its codes and its next-token probabilities, and reading a code answer."""

    def __init__(self, model: CodebookModel, prompt: Any) -> None:
        self.model = model
        self.ids = model.as_input_ids(prompt)
        with torch.no_grad():
            out = model(self.ids)
        self.codes = out.codes.ids[0]  # (tokens, codebooks, k)
        self.probs = out.logits[0, -1].float().softmax(-1)  # the next token after the prompt

    def read_code(self, exercise: str, answer: Any, label: str = "") -> tuple[int, int, str] | Feedback:
        """``read_code`` on this model: the code answer read, or the feedback on why not."""
        return read_code(self.model, exercise, answer, label)

    def read_name(self, exercise: str, answer: Any) -> str | Feedback:
        """The written name of a code answer in any form, or the feedback on why it is not one."""
        read = self.read_code(exercise, answer)
        return read if isinstance(read, Feedback) else read[2]

    def fires_at(self, book: int, code: int) -> list[int]:
        """The prompt's token positions where the code fires."""
        return (self.codes[:, book, :] == code).any(-1).nonzero().flatten().tolist()

    def after_drop(self, name: str) -> torch.Tensor:
        """The next-token probabilities with one code dropped everywhere."""
        with torch.no_grad(), self.model.ablate(name, mode="drop"):
            return self.model(self.ids).logits[0, -1].float().softmax(-1)
