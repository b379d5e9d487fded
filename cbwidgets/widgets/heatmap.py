"""CodeHeatmap: which code fired at each token in each codebook, clickable."""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import traitlets

from ..codes import Codes
from ..errors import CodebookError
from ..model import CodebookModel
from .base import STATIC, CodeGridWidget
from .export import export_html
from .text import token_strings

__all__ = ["CodeHeatmap", "heatmap"]

_FALLBACK_ROWS = 64


class CodeHeatmap(CodeGridWidget):
    """Tokens down, codebooks across; a cell shows the code that fired (its first slot when k > 1).

    Click a code to select it: every token where it fires lights up, and ``selected`` (a code name
    such as ``"1.mlp.173"``) changes, so Python code can react with ``on_select``.
    """

    _esm = STATIC / "heatmap.js"
    selected = traitlets.Unicode("").tag(sync=True)

    def __init__(
        self,
        tokens: Sequence[str],
        codes: Any,
        labels: Sequence[str],
        names: Sequence[str] | None = None,
        selected: str = "",
        **kwargs: Any,
    ) -> None:
        ids = np.asarray(codes.detach().cpu() if isinstance(codes, torch.Tensor) else codes)
        if ids.ndim == 2:
            ids = ids[..., None]
        if ids.ndim != 3 or not np.issubdtype(ids.dtype, np.integer):
            raise CodebookError(
                f"codes must be integer ids of shape (tokens, codebooks) or (tokens, codebooks, k); got "
                f"{ids.dtype} {tuple(ids.shape)}. From a model, use heatmap(model, text) or CodeHeatmap.from_codes."
            )
        tokens = [str(t) for t in tokens]
        labels = [str(label) for label in labels]
        if ids.shape[0] != len(tokens) or ids.shape[1] != len(labels):
            raise CodebookError(
                f"codes have shape {tuple(ids.shape)} but there are {len(tokens)} tokens and {len(labels)} codebook "
                f"labels; codes must be (tokens, codebooks[, k])."
            )
        names = list(names) if names is not None else labels
        if len(names) != len(labels):
            raise CodebookError(f"{len(names)} names for {len(labels)} codebooks; give one name per codebook.")
        super().__init__(
            tokens=tokens,
            labels=labels,
            names=[str(n) for n in names],
            **self.code_traits(ids),
            **kwargs,
        )
        if selected:
            self.select(selected)

    # ------------------------------------------------------------ builders
    @classmethod
    def from_codes(cls, codes: Codes, tokens: Sequence[str], batch: int = 0) -> CodeHeatmap:
        """From a forward's ``Codes`` and the token strings of one sequence of the batch."""
        if not 0 <= batch < codes.ids.shape[0]:
            raise CodebookError(f"batch={batch} is out of range; these codes hold {codes.ids.shape[0]} sequence(s).")
        return cls(tokens, codes.ids[batch], codes.labels, codes.names)

    @classmethod
    def from_model(cls, model: CodebookModel, prompt: Any) -> CodeHeatmap:
        """Run ``model`` on one prompt (text, or token ids) and show its codes."""
        ids = model.as_input_ids(prompt)
        if ids.shape[0] != 1:
            raise CodebookError(f"the heatmap shows one prompt; got a batch of {ids.shape[0]}. Pass one text.")
        with torch.no_grad():
            out = model(ids)
        return cls.from_codes(out.codes, token_strings(model.tokenizer, ids[0].tolist()))

    # -------------------------------------------------------------- reading
    def select(self, code: str) -> None:
        """Select a code by name (``"1.mlp.173"``), as a click would; ``""`` clears."""
        if code:
            label, _, number = code.rpartition(".")
            if label not in self.labels or not number.isdigit():
                raise CodebookError(
                    f"{code!r} is not a code of this heatmap; name it codebook.code with a codebook from "
                    f"{self.labels[:8]}{'...' if len(self.labels) > 8 else ''}, e.g. {self.labels[0]}.0."
                )
        self.selected = code

    def positions(self, code: str | None = None) -> list[int]:
        """Token positions where ``code`` (default: the selected one) fires."""
        code = self.selected if code is None else code
        if not code:
            return []
        label, _, number = code.rpartition(".")
        if label not in self.labels:
            raise CodebookError(f"{code!r} names no codebook of this heatmap; codebooks: {self.labels}.")
        column = self.ids[:, self.labels.index(label)]
        return [int(t) for t in np.nonzero((column == int(number)).any(-1))[0]]

    def on_select(self, callback: Callable[[str], Any]) -> None:
        """Call ``callback(code_name)`` on every selection; its errors show in the widget."""
        guarded = self.guarded(callback)
        self.observe(lambda change: guarded(change["new"]), names="selected")

    # ------------------------------------------------------------ rendering
    def __repr__(self) -> str:
        t, n, k = self.shape
        return f"CodeHeatmap(tokens={t}, codebooks={n}, k={k}, selected={self.selected or None!r})"

    def _fallback_html(self) -> str:
        ids = self.ids
        head = "".join(f"<th>{html.escape(label)}</th>" for label in self.labels)
        rows = []
        for t, token in enumerate(self.tokens[:_FALLBACK_ROWS]):
            cells = "".join(f"<td>{int(c) if c >= 0 else ''}</td>" for c in ids[t, :, 0])
            rows.append(f"<tr><td>{t}</td><td><code>{html.escape(token)}</code></td>{cells}</tr>")
        more = len(self.tokens) - _FALLBACK_ROWS
        tail = f"<p>... {more} more tokens (the interactive view shows all)</p>" if more > 0 else ""
        return (
            f'<table class="cbw-fallback"><thead><tr><th>#</th><th>token</th>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>{tail}"
        )

    def to_html(self, path: str | None = None) -> str:
        """A self-contained HTML page of this view (no kernel, no network); written to ``path`` if given."""
        return export_html(self, path, title="CodeHeatmap")


def heatmap(model: CodebookModel, prompt: Any) -> CodeHeatmap:
    """``cbwidgets.heatmap(model, "text")``: the codes of one prompt as a clickable heatmap."""
    return CodeHeatmap.from_model(model, prompt)
