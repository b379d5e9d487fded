"""Views that show codes show their labels: the model's ``labels`` for the codes on screen, kept current."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import traitlets

from ..labels import CodeLabels
from ..names import EMPTY, CodebookNames
from .base import WidgetBase

__all__ = ["LabelledCodes", "codes_in_grid"]


def codes_in_grid(codebooks: CodebookNames, ids: np.ndarray) -> list[str]:
    """The names of the codes in a (tokens, ``codebooks``, k) grid of ids."""
    return [codebooks.code_name(n, int(c)) for n in range(ids.shape[1]) for c in np.unique(ids[:, n]) if c != EMPTY]


class LabelledCodes(WidgetBase):
    """A view that shows codes; ``code_labels`` ({code: label as shown, "(stale) ..." where stale})
    holds the labels of the codes it shows, and follows every change of the model's labels."""

    code_labels = traitlets.Dict().tag(sync=True)
    _label_source: CodeLabels | None = None

    def follow_labels(self, labels: CodeLabels | None) -> None:
        """Show ``labels`` (a model's ``labels``; None: none) beside the codes, from now on."""
        if labels is not None and labels is not self._label_source:
            labels.follow(self.refresh_labels)
        self._label_source = labels
        self.refresh_labels()

    def refresh_labels(self) -> None:
        """Bring ``code_labels`` up to date (after the view shows other codes, say)."""
        labels = self._label_source
        self.code_labels = {} if labels is None or not len(labels) else labels.shown_for(self._codes_shown())

    def _codes_shown(self) -> Iterable[str] | None:
        """The names of the codes on screen (None: whichever are labelled)."""
        return None
