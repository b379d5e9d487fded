"""The checks of ``06_code_circuits.ipynb``: the code at an earlier token that holds a prediction up
most, and the code that takes over when the strongest one is removed."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..circuits import NextToken, ablation_effects
from ..model import CodebookModel
from . import Feedback, PromptChecks

__all__ = ["READ_AT", "CircuitChecks"]

READ_AT = -2  # exercise 1: the token (from the end) whose codes are asked about: the last state's first digit
_TIE = 1e-6


class CircuitChecks(PromptChecks):
    """The two exercises, checked against the participant's own model, prompt and target; the truth
    is recomputed here from ``ablation_effects`` in drop mode, as the notebook's tables are."""

    def __init__(self, model: CodebookModel, prompt: Any, target: NextToken) -> None:
        super().__init__(model, prompt)
        self.target = target
        self.effects = ablation_effects(model, self.ids, target, mode="drop")
        self.read_at = self.ids.shape[1] + READ_AT

    def _effect(self, table: pd.DataFrame, name: str, position: int | None = None) -> float | None:
        rows = table[table.code == name]
        if position is not None:
            rows = rows[rows.position == position]
        return float(rows.effect.max()) if len(rows) else None

    def exercise_1(self, answer: Any) -> Feedback:
        """Which code at the last state's first digit, removed (drop), lowers the prediction most?"""
        exercise = "Exercise 1"
        name = self.read_name(exercise, answer)
        if isinstance(name, Feedback):
            return name
        at = self.read_at
        effect = self._effect(self.effects, name, at)
        if effect is None:
            where = sorted(set(self.effects[self.effects.code == name].position.tolist()))
            said = f"at token(s) {where}" if where else "nowhere it could reach the prediction"
            return Feedback(exercise, False, f"{name} fires {said}, not at token {at}; filter the table by position.")
        best = float(self.effects[self.effects.position == at].effect.max())
        if effect >= best - _TIE:
            return Feedback(exercise, True, f"removing {name} at token {at} lowers the target by {effect:.3f}.")
        return Feedback(
            exercise,
            False,
            f"removing {name} at token {at} changes the target by {-effect:+.3f}; another code there lowers it more "
            "(sort the rows at that position by effect).",
        )

    def exercise_2(self, answer: Any) -> Feedback:
        """With the strongest code removed at its token, which code now holds the prediction up most?"""
        exercise = "Exercise 2"
        name = self.read_name(exercise, answer)
        if isinstance(name, Feedback):
            return name
        strongest = self.effects.iloc[0]
        if name == strongest.code:
            return Feedback(
                exercise, False, f"{name} is the code that was removed; look at the graph recomputed without it."
            )
        with self.model.ablate(strongest.code, [int(strongest.position)], mode="drop"):
            after = ablation_effects(self.model, self.ids, self.target, mode="drop")
        effect = self._effect(after, name)
        if effect is None:
            return Feedback(exercise, False, f"{name} does not fire where it could reach the prediction.")
        if effect >= float(after.effect.max()) - _TIE:
            return Feedback(exercise, True, f"with the strongest code gone, removing {name} too costs {effect:.3f}.")
        before = self._effect(self.effects, name)
        was = "" if before is None else f" (it was {before:+.3f} before)"
        return Feedback(
            exercise,
            False,
            f"{name} now has an effect of {effect:+.3f}{was}; another code holds the prediction up more. "
            "Read the largest effect after the removal, not before it (a negative effect means removing the "
            "code helps the prediction).",
        )
