"""What a code means, in the user's words: labels that travel with the model and know when they are stale.

A label is written against one code vector. Retraining moves the vector, and the label (written
for what the old vector did) may no longer hold; so each label keeps a sketch of the vector it was
written for (its projections on 16 fixed random directions), and a label whose code's vector has
moved by more than 1 % of its length, or whose code is no longer in the model, is reported as
stale: shown marked as such, never as true. (A copy of the model in half precision moves no vector
that far: its labels hold.) Labels are saved beside the codebooks (``labels.json``) and loaded with
them; none is ever dropped on load.
"""

from __future__ import annotations

import copy
import inspect
import json
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
import torch

from .atomic import atomic_file
from .errors import CodebookError

if TYPE_CHECKING:
    from .model import CodebookModel

__all__ = ["LABELS_JSON", "CodeLabel", "CodeLabels", "LabelStatus"]

LABELS_JSON = "labels.json"
_FORMAT = "cbwidgets-labels"
_MAX_TEXT = 200  # a label is a short phrase; the note holds the rest
_SKETCH = 16  # random projections kept of a labelled code's vector
_MOVED = 0.01  # a sketch that moved by more than this part of its length: the label is stale

LabelStatus = Literal["current", "stale", "none"]


@dataclass(frozen=True)
class CodeLabel:
    """One code's label: ``text`` (a short phrase), ``note`` (anything longer) and the sketch of the
    code vector it was written for."""

    code: str
    text: str
    note: str = ""
    sketch: tuple[float, ...] = ()


def _label(item: dict[str, Any]) -> CodeLabel:
    """One label as ``save`` wrote it (its sketch a JSON list)."""
    return CodeLabel(**{**item, "sketch": tuple(float(x) for x in item.get("sketch", ()))})


class CodeLabels:
    """The labels of one model's codes (``model.labels``), keyed by the code's name ("1.mlp.173").

    ``set`` writes one; ``status`` says whether it is current, stale or missing; ``shown`` is the text
    a view puts beside the code (stale labels marked). A model copies nothing global: each model
    holds its own labels.
    """

    def __init__(self, model: CodebookModel) -> None:
        self._model = model
        self._labels: dict[str, CodeLabel] = {}
        self._followers: list[weakref.ref[Callable[[], None]]] = []

    def __deepcopy__(self, memo: dict[int, Any]) -> CodeLabels:
        """A copied model's labels: the same labels, no followers (they follow the original)."""
        copied = CodeLabels(copy.deepcopy(self._model, memo))
        copied._labels = dict(self._labels)
        return copied

    def follow(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` after every change of these labels: how the views that show codes keep
        their labels current. Held weakly: a view that is gone is not kept alive by it."""
        self._followers.append(weakref.WeakMethod(callback) if inspect.ismethod(callback) else weakref.ref(callback))

    def _changed(self) -> None:
        alive = []
        for ref in self._followers:
            callback = ref()
            if callback is not None:
                alive.append(ref)
                callback()
        self._followers = alive

    # ------------------------------------------------------------ writing
    def set(self, code: Any, text: str, note: str = "") -> CodeLabel | None:
        """Label ``code`` (any form a code takes); an empty ``text`` removes its label (returns None)."""
        name = self._model.names.canonical(code)
        if not isinstance(text, str) or not isinstance(note, str):
            raise CodebookError(f"a label and its note are text; got {type(text).__name__} and {type(note).__name__}.")
        text = " ".join(text.split())
        if not text:
            if self._labels.pop(name, None) is not None:
                self._changed()
            return None
        if len(text) > _MAX_TEXT:
            raise CodebookError(
                f"a label is a short phrase (at most {_MAX_TEXT} characters, got {len(text)}); put the rest in note=."
            )
        label = CodeLabel(name, text, note.strip(), self._sketch(name) or ())
        self._labels[name] = label
        self._changed()
        return label

    def remove(self, code: Any) -> None:
        """Forget ``code``'s label (nothing happens where it has none)."""
        if self._labels.pop(self._key(code), None) is not None:
            self._changed()

    # ------------------------------------------------------------ reading
    def get(self, code: Any) -> CodeLabel | None:
        return self._labels.get(self._key(code))

    def status(self, code: Any) -> LabelStatus:
        """``current`` (written for the code vector the model has now), ``stale`` (the vector changed,
        or the code is gone) or ``none``."""
        label = self.get(code)
        if label is None:
            return "none"
        now = self._sketch(label.code)
        if now is None or len(now) != len(label.sketch):
            return "stale"
        then = torch.tensor(label.sketch)
        return "current" if float((torch.tensor(now) - then).norm()) <= _MOVED * float(then.norm()) else "stale"

    def shown(self, code: Any) -> str:
        """What a view shows beside the code: its label, "(stale) label", or "" where it has none."""
        label = self.get(code)
        if label is None:
            return ""
        return label.text if self.status(label.code) == "current" else f"(stale) {label.text}"

    def shown_for(self, codes: Iterable[str] | None = None) -> dict[str, str]:
        """``{code: shown}`` for the labelled codes among ``codes`` (names as written; None: all), what a
        view sends to the page."""
        wanted = None if codes is None else set(codes)
        return {code: self.shown(code) for code in self._labels if wanted is None or code in wanted}

    def stale(self) -> list[str]:
        """The codes whose labels no longer describe the model's code vectors."""
        return [code for code in self._labels if self.status(code) == "stale"]

    def to_frame(self) -> pd.DataFrame:
        """One row per labelled code: code, label, note, status."""
        rows = [(lab.code, lab.text, lab.note, self.status(lab.code)) for lab in self._labels.values()]
        return pd.DataFrame(rows, columns=["code", "label", "note", "status"])

    def __len__(self) -> int:
        return len(self._labels)

    def __iter__(self) -> Iterator[CodeLabel]:
        return iter(list(self._labels.values()))

    def __contains__(self, code: object) -> bool:
        try:
            return self._key(code) in self._labels
        except CodebookError:
            return False

    def __repr__(self) -> str:
        stale = len(self.stale())
        count = f"{len(self)} label{'' if len(self) == 1 else 's'}"
        return f"CodeLabels({count}{f', {stale} stale' if stale else ''})"

    # ------------------------------------------------------------ files
    def save(self, folder: str | Path) -> Path | None:
        """Write ``labels.json`` into ``folder`` (atomically); with no labels, remove an old one."""
        path = Path(folder) / LABELS_JSON
        if not self._labels:
            path.unlink(missing_ok=True)
            return None
        data = {"format": _FORMAT, "version": 1, "labels": [asdict(lab) for lab in self._labels.values()]}
        with atomic_file(path) as tmp:
            tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False))
        return path

    def load(self, folder: str | Path) -> int:
        """Read ``labels.json`` from ``folder`` if there is one, replacing the labels held; returns how
        many. Labels of codes this model lacks are kept, and reported stale."""
        path = Path(folder) / LABELS_JSON
        if not path.exists():
            self._labels = {}
            self._changed()
            return 0
        try:
            data = json.loads(path.read_text())
            items = data["labels"] if data.get("format") == _FORMAT else None
            labels = [_label(item) for item in items] if isinstance(items, list) else None
        except (json.JSONDecodeError, UnicodeDecodeError, TypeError, ValueError, KeyError, AttributeError) as err:
            raise CodebookError(f"{str(path)!r} is not a labels file cbwidgets wrote ({err}); move it aside.") from None
        if labels is None:
            raise CodebookError(f"{str(path)!r} is not a labels file cbwidgets wrote; move it aside.")
        self._labels = {label.code: label for label in labels}
        self._changed()
        return len(labels)

    # ------------------------------------------------------------ inside
    def _key(self, code: Any) -> str:
        """A code's name; for a code the model no longer has, the name as written (its label stays)."""
        if isinstance(code, str) and code in self._labels:
            return code
        return self._model.names.canonical(code)

    def _sketch(self, name: str) -> tuple[float, ...] | None:
        """The code vector ``name`` has now, projected on ``_SKETCH`` random directions fixed by its
        length (so a sketch's length is the vector's, up to a few percent); None where the model
        lacks the code."""
        names = self._model.names
        try:
            index, code = names.parse_code(name)
        except CodebookError:
            return None
        book = names.codebooks[index]
        codebook = self._model.attached.get(str(book.site))
        if codebook is None:
            return None
        vector = codebook.vectors.detach()[book.group, code].float().cpu()
        directions = torch.randn(len(vector), _SKETCH, generator=torch.Generator().manual_seed(len(vector)))
        return tuple(round(float(x), 7) for x in vector @ directions / _SKETCH**0.5)
