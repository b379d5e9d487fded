"""CodeHeatmap: which code fired at each token in each codebook, clickable."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
import traitlets

from ..codes import Codes
from ..errors import CodebookError
from ..model import CodebookModel
from ..names import EMPTY, CodebookNames
from .base import STATIC, Array, CodeGridWidget, as_array
from .labelled import LabelledCodes, codes_in_grid
from .selection import CodeSelecting
from .text import token_strings

__all__ = ["CodeHeatmap", "heatmap"]

_FALLBACK_ROWS = 64


class CodeHeatmap(CodeGridWidget, CodeSelecting, LabelledCodes):
    """Tokens down, codebooks across; a cell shows the code that fired (its first slot when k > 1).

    Click a code to select it: every token where it fires lights up, and ``selected`` (a code name
    such as ``"1.mlp.173"``) changes, so Python code can react with ``on_select``. ``select`` takes
    a code in any form ``model.ablate`` takes.

    ``show_effects(cbwidgets.circuits.ablation_effects(...))`` colours each cell by how much its
    code matters to a target (blue holds it up, red pushes it down), instead of a pale colour per id.
    A heatmap of a model (``heatmap(model, text)``) shows its codes' labels in the tooltip. Where
    codes have values (a TopK SAE's latents), a column whose values vary shades each cell by its
    value (full colour at the column's largest), and the tooltip gives it.
    """

    _esm = STATIC / "heatmap.js"
    _called = "heatmap"
    effects = Array("<f4", ndim=3)  # (tokens, codebooks, k) like ids; NaN = not measured; empty = colour by id
    effect_title = traitlets.Unicode("").tag(sync=True)  # what the effects are effects on
    values = Array("<f4", ndim=3)  # (tokens, codebooks, k) like ids: an SAE latent's value; empty = none

    def __init__(
        self,
        tokens: Sequence[str],
        codes: Any,
        labels: Sequence[str] | CodebookNames,
        names: Sequence[str] | None = None,
        selected: Any = "",
        **kwargs: Any,
    ) -> None:
        codebooks = labels if isinstance(labels, CodebookNames) else CodebookNames.from_labels(labels, names)
        super().__init__(**kwargs)
        self.show(tokens, codes, codebooks, selected)

    # ------------------------------------------------------------ builders
    @classmethod
    def from_codes(cls, codes: Codes, tokens: Sequence[str], batch: int = 0) -> CodeHeatmap:
        """From a forward's ``Codes`` and the token strings of one sequence of the batch."""
        if not 0 <= batch < codes.ids.shape[0]:
            raise CodebookError(f"batch={batch} is out of range; these codes hold {codes.ids.shape[0]} sequence(s).")
        view = cls(tokens, codes.ids[batch], codes.codebooks)
        if codes.values is not None:
            view.values = as_array(codes.values[batch].detach().cpu().numpy(), "<f4")
        return view

    @classmethod
    def from_model(cls, model: CodebookModel, prompt: Any) -> CodeHeatmap:
        """Run ``model`` on one prompt (text, or token ids) and show its codes."""
        ids = model.as_input_ids(prompt)
        if ids.shape[0] != 1:
            raise CodebookError(f"the heatmap shows one prompt; got a batch of {ids.shape[0]}. Pass one text.")
        with torch.no_grad():
            out = model(ids)
        view = cls.from_codes(out.codes, token_strings(model.tokenizer, ids[0].tolist()))
        view.follow_labels(model.labels)
        return view

    def show(self, tokens: Sequence[str], codes: Any, codebooks: CodebookNames, selected: Any = "") -> None:
        """Show other tokens and codes (ids (tokens, codebooks[, k]), -1 for an empty slot), and select
        ``selected``: how another widget (a dashboard's example) puts a view in this one."""
        ids = codes.detach().cpu().numpy() if isinstance(codes, torch.Tensor) else np.asarray(codes)
        if ids.ndim == 2:
            ids = ids[..., None]
        if ids.ndim != 3 or not np.issubdtype(ids.dtype, np.integer):
            raise CodebookError(
                f"codes must be integer ids of shape (tokens, codebooks) or (tokens, codebooks, k); got "
                f"{ids.dtype} {tuple(ids.shape)}. From a model, use heatmap(model, text) or CodeHeatmap.from_codes."
            )
        tokens = [str(t) for t in tokens]
        if ids.shape[0] != len(tokens) or ids.shape[1] != len(codebooks):
            raise CodebookError(
                f"codes have shape {tuple(ids.shape)} but there are {len(tokens)} tokens and {len(codebooks)} codebook "
                f"labels; codes must be (tokens, codebooks[, k])."
            )
        self.codebooks = codebooks
        with self.hold_sync():
            self.clear_effects()  # they were measured on the codes shown before
            self.values = np.zeros((0, 0, 0), dtype="<f4")  # they belonged to the codes shown before
            self.tokens = tokens
            self.labels = list(codebooks.labels)
            self.names = list(codebooks.names)
            self.ids = as_array(ids, "<i4")
            self.select(selected)
            self.refresh_labels()

    # -------------------------------------------------------------- effects
    def show_effects(self, effects: pd.DataFrame, title: str | None = None) -> None:
        """Colour each cell by its code's effect on a target: a table as ``ablation_effects`` or
        ``attribution`` returns (position, codebook, slot, effect). Cells without a row stay grey.
        ``title`` says what the effects are on (default: the table's target and mode)."""
        needed = {"position", "codebook", "slot", "effect"}
        if not isinstance(effects, pd.DataFrame) or not needed <= set(effects.columns):
            raise CodebookError(
                "show_effects takes the table cbwidgets.circuits.ablation_effects (or attribution) returns, with "
                f"columns {sorted(needed)}."
            )
        t, n, k = self.shape
        grid = np.full((t, n, k), np.nan, dtype="<f4")
        column = {label: i for i, label in enumerate(self.labels)}
        unknown = sorted(set(effects.codebook) - set(column))
        if unknown:
            raise CodebookError(
                f"the effects name codebooks {unknown[:3]} that this heatmap does not show; compute them on the same "
                f"model and prompt."
            )
        positions, slots = effects.position.to_numpy(), effects.slot.to_numpy()
        if len(effects) and (positions.min() < 0 or positions.max() >= t or slots.min() < 0 or slots.max() >= k):
            raise CodebookError(
                f"the effects reach position {positions.max()} or slot {slots.max()}, outside this heatmap's {t} "
                f"tokens and k={k}; compute them on the prompt it shows."
            )
        grid[positions, effects.codebook.map(column).to_numpy(), slots] = effects.effect.to_numpy()
        if title is None:
            attrs = effects.attrs
            title = f"effect on {attrs.get('target', 'the target')}" + (
                f" ({attrs['mode']})" if "mode" in attrs else ""
            )
        with self.hold_sync():
            self.effects = grid
            self.effect_title = title

    def clear_effects(self) -> None:
        """Back to a pale colour per code id."""
        with self.hold_sync():
            self.effects = np.zeros((0, 0, 0), dtype="<f4")
            self.effect_title = ""

    def _codes_shown(self) -> list[str]:
        return codes_in_grid(self.codebooks, self.ids)

    # -------------------------------------------------------------- reading
    def positions(self, code: Any = None) -> list[int]:
        """Token positions where ``code`` (default: the selected one) fires."""
        if code is None:
            where = self.selected_at
            if not where:
                return []
            book, value = where
        else:
            book, value = self.codebooks.parse_code(code)
        column = self.ids[:, book]
        return [int(t) for t in np.nonzero((column == value).any(-1))[0]]

    def code_at(self, token: int, codebook: int | str, slot: int = 0) -> str:
        """The name of the code in a cell ('' when empty): ``heatmap.code_at(8, "2.mlp")``."""
        book = codebook if isinstance(codebook, int) else self.codebooks.index_of(codebook)
        return self.codebooks.code_name(book, int(self.ids[token, book, slot]))

    # ------------------------------------------------------------ rendering
    def __repr__(self) -> str:
        t, n, k = self.shape
        return f"CodeHeatmap(tokens={t}, codebooks={n}, k={k}, selected={self.selected or None!r})"

    def _fallback_html(self) -> str:
        ids = self.ids
        head = "".join(f"<th>{html.escape(label)}</th>" for label in self.labels)
        rows = []
        for t, token in enumerate(self.tokens[:_FALLBACK_ROWS]):
            cells = "".join(f"<td>{int(c) if c != EMPTY else ''}</td>" for c in ids[t, :, 0])
            rows.append(f"<tr><td>{t}</td><td><code>{html.escape(token)}</code></td>{cells}</tr>")
        more = len(self.tokens) - _FALLBACK_ROWS
        tail = f"<p>... {more} more tokens (the interactive view shows all)</p>" if more > 0 else ""
        return (
            f'<table class="cbw-fallback"><thead><tr><th>#</th><th>token</th>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>{tail}"
        )


def heatmap(model: CodebookModel, prompt: Any) -> CodeHeatmap:
    """``cbwidgets.heatmap(model, "text")``: the codes of one prompt as a clickable heatmap."""
    return CodeHeatmap.from_model(model, prompt)
