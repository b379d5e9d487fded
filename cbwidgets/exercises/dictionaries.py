"""The checks of ``07_dictionaries.ipynb``: read an SAE latent's value, and read a dictionary's
fraction of variance unexplained off the metrics table."""

from __future__ import annotations

import math
from typing import Any

import torch

from ..dictionary_metrics import dictionary_metrics
from ..model import CodebookModel
from . import Feedback, PromptChecks, unanswered

__all__ = ["DictionaryChecks"]

_FVU_TOLERANCE = 5e-3


class DictionaryChecks(PromptChecks):
    """Checked against the participant's own model (an SAE at ``site``), prompt and measuring walks:
    the truth is recomputed here from the same calls the notebook makes."""

    def __init__(self, model: CodebookModel, prompt: Any, walks: Any, site: str) -> None:
        super().__init__(model, prompt)
        (self.site,) = model.attached_sites(site)
        book = model.names.index_of(self.site)
        self.label = model.names.labels[book]
        self.walks = walks
        with torch.no_grad():
            codes = model(self.ids).codes
        assert codes.values is not None  # an SAE is attached
        self.last_ids = codes.ids[0, -1, book].tolist()  # the SAE's latents at the last token
        self.last_values = codes.values[0, -1, book].tolist()

    def exercise_1(self, answer: Any) -> Feedback:
        """Which latent of the SAE has the largest value at the prompt's last token?"""
        exercise = "Exercise 1"
        read = self.read_code(exercise, answer, self.label)
        if isinstance(read, Feedback):
            return read
        _, latent, name = read
        if latent not in self.last_ids:
            return Feedback(exercise, False, f"{name} is not active at the last token; read that token's row.")
        value = self.last_values[self.last_ids.index(latent)]
        if value >= max(self.last_values) - 1e-6:
            return Feedback(exercise, True, f"{name} has the largest value there, {value:.3f}.")
        return Feedback(
            exercise, False, f"{name} is active there with value {value:.3f}, but another latent's is larger."
        )

    def exercise_2(self, answer: Any) -> Feedback:
        """The SAE's fraction of variance unexplained, from ``dictionary_metrics`` on the walks."""
        exercise = "Exercise 2"
        if (missing := unanswered(exercise, answer)) is not None:
            return missing
        try:
            given = float(answer)
        except (TypeError, ValueError):
            return Feedback(exercise, False, f"{answer!r} is not a number; give the fvu column's value.")
        table = dictionary_metrics(self.model, self.walks, reference="normalized", sites=self.site)
        truth = float(table[table.site == self.site].fvu.to_numpy(float)[0])
        if math.isfinite(given) and abs(given - truth) <= _FVU_TOLERANCE:
            return Feedback(exercise, True, f"the SAE leaves {truth:.1%} of the variance unexplained.")
        if math.isfinite(given) and abs(given - (1 - truth)) <= _FVU_TOLERANCE:
            return Feedback(exercise, False, "that is the variance explained; the question asks for the rest.")
        return Feedback(exercise, False, f"{given:.4f} is not the fvu of {self.site}; read that row's fvu column.")
