"""Codes: which codes fired, per token, per codebook, per slot; the model's main readable output."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from .errors import CodebookError
from .names import CodebookNames

if TYPE_CHECKING:
    from .labels import CodeLabels

__all__ = ["Codes"]


@dataclass(frozen=True)
class Codes:
    """Code ids of shape (batch, tokens, codebooks, k); ``EMPTY`` (-1) marks an empty slot.

    ``codebooks`` names the third axis; any code of it can be named as ``model.ablate`` takes it.
    ``values`` (the same shape, float) is there when some dictionary's units have sizes (an SAE's
    latents); a codebook's active codes are 1 in it, empty slots 0.
    """

    ids: Tensor
    codebooks: CodebookNames
    values: Tensor | None = None

    def __post_init__(self) -> None:
        if self.ids.dim() != 4 or self.ids.shape[2] != len(self.codebooks):
            raise CodebookError(
                f"Codes ids must be (batch, tokens, {len(self.codebooks)} codebooks, k); got shape "
                f"{tuple(self.ids.shape)}."
            )
        if self.values is not None and self.values.shape != self.ids.shape:
            raise CodebookError(
                f"Codes values must have the ids' shape {tuple(self.ids.shape)}; got {tuple(self.values.shape)}."
            )

    @property
    def names(self) -> tuple[str, ...]:
        """The codebooks' full names, in the order of the third axis."""
        return self.codebooks.names

    @property
    def labels(self) -> tuple[str, ...]:
        """The codebooks' short labels, in the order of the third axis."""
        return self.codebooks.labels

    @property
    def shape(self) -> tuple[int, int, int, int]:
        b, t, n, k = self.ids.shape
        return (b, t, n, k)

    def __len__(self) -> int:
        return len(self.codebooks)

    def index(self, codebook: str) -> int:
        """The position on the third axis of a codebook, by full name or label."""
        return self.codebooks.index_of(codebook)

    def __getitem__(self, codebook: str) -> Tensor:
        """The ids (batch, tokens, k) of one codebook, by full name or label."""
        return self.ids[:, :, self.index(codebook)]

    def numpy(self) -> np.ndarray:
        return self.ids.detach().cpu().numpy()

    def to_frame(self, tokens: Sequence[Sequence[str]] | None = None, labels: CodeLabels | None = None) -> pd.DataFrame:
        """One row per (batch, position, codebook, slot): ``id`` and the code's paste-able name ``code``
        (and its ``value``, where the codes have values).

        ``tokens`` (per batch row, per position) adds a column of token strings; ``labels`` (a
        model's ``labels``) a column of what each code means ("(stale) ..." where its label no longer
        fits the code, "" where it has none).
        """
        b, t, n, k = self.shape
        ids = self.numpy()
        grid = np.indices((b, t, n, k)).reshape(4, -1)
        flat = ids.reshape(-1)
        frame = pd.DataFrame(
            {
                "batch": grid[0],
                "position": grid[1],
                "codebook": np.asarray(self.labels, dtype=object)[grid[2]],
                "slot": grid[3],
                "id": flat,
                "code": [self.codebooks.code_name(i, c) for i, c in zip(grid[2].tolist(), flat.tolist(), strict=True)],
            }
        )
        if self.values is not None:
            frame["value"] = self.values.detach().cpu().numpy().reshape(-1)
        if tokens is not None:
            if len(tokens) != b or any(len(row) != t for row in tokens):
                raise CodebookError(f"tokens must be {b} rows of {t} strings to match these codes.")
            frame.insert(2, "token", [tokens[i][j] for i, j in zip(grid[0], grid[1], strict=True)])
        if labels is not None:
            shown = {code: labels.shown(code) for code in set(frame.code) if code in labels}
            frame["label"] = [shown.get(code, "") for code in frame.code]
        return frame

    def to(self, device: torch.device | str) -> Codes:
        return Codes(self.ids.to(device), self.codebooks, None if self.values is None else self.values.to(device))

    def __repr__(self) -> str:
        b, t, n, k = self.shape
        more = "..." if n > 6 else ""
        return f"Codes(batch={b}, tokens={t}, codebooks={n}, k={k}: {', '.join(self.labels[:6])}{more})"
