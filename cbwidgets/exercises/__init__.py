"""Checks for the tutorial notebooks' exercises.

A check answers "correct" or "not yet" with feedback a participant can act on: what is off about
this answer and where to look. It never prints the answer, and it accepts every correct answer in
every form the library takes (a code as "1.mlp.5", ("1.mlp", 5) or a torch integer read off
``out.codes``). An exercise left as ``...`` says "not yet" and what to fill in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Feedback", "unanswered"]


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
