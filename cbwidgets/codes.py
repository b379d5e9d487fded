"""Codes: which codes fired, per token, per codebook, per slot; the model's main readable output."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from .errors import CodebookError, choices

__all__ = ["Codes"]


@dataclass(frozen=True)
class Codes:
    """Code ids of shape (batch, tokens, codebooks, k); -1 marks a slot dropped by an ablation.

    ``names`` are the codebooks' full names and ``labels`` their short labels, in the order of the
    third axis; a code reads ``f"{label}.{id}"``.
    """

    ids: Tensor
    names: tuple[str, ...]
    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.ids.dim() != 4 or self.ids.shape[2] != len(self.names):
            raise CodebookError(
                f"Codes ids must be (batch, tokens, {len(self.names)} codebooks, k); got shape {tuple(self.ids.shape)}."
            )

    @property
    def shape(self) -> tuple[int, int, int, int]:
        b, t, n, k = self.ids.shape
        return (b, t, n, k)

    def __len__(self) -> int:
        return len(self.names)

    def index(self, codebook: str) -> int:
        for i, (name, label) in enumerate(zip(self.names, self.labels, strict=True)):
            if codebook in (name, label):
                return i
        raise CodebookError(f"unknown codebook {codebook!r}; these codes cover {choices(self.labels)}.")

    def __getitem__(self, codebook: str) -> Tensor:
        """The ids (batch, tokens, k) of one codebook, by full name or label."""
        return self.ids[:, :, self.index(codebook)]

    def numpy(self) -> np.ndarray:
        return self.ids.detach().cpu().numpy()

    def to_frame(self, tokens: Sequence[Sequence[str]] | None = None) -> pd.DataFrame:
        """One row per (batch, position, codebook, slot) with the code's paste-able name.

        ``tokens`` (per batch row, per position) adds a column of token strings.
        """
        b, t, n, k = self.shape
        ids = self.numpy()
        grid = np.indices((b, t, n, k)).reshape(4, -1)
        flat = ids.reshape(-1)
        labels = np.asarray(self.labels, dtype=object)[grid[2]]
        frame = pd.DataFrame(
            {
                "batch": grid[0],
                "position": grid[1],
                "codebook": labels,
                "slot": grid[3],
                "code": flat,
                "code_name": [f"{lab}.{c}" if c >= 0 else "" for lab, c in zip(labels, flat, strict=True)],
            }
        )
        if tokens is not None:
            if len(tokens) != b or any(len(row) != t for row in tokens):
                raise CodebookError(f"tokens must be {b} rows of {t} strings to match these codes.")
            frame.insert(2, "token", [tokens[i][j] for i, j in zip(grid[0], grid[1], strict=True)])
        return frame

    def to(self, device: torch.device | str) -> Codes:
        return Codes(self.ids.to(device), self.names, self.labels)

    def __repr__(self) -> str:
        b, t, n, k = self.shape
        return (
            f"Codes(batch={b}, tokens={t}, codebooks={n}, k={k}: {', '.join(self.labels[:6])}{'...' if n > 6 else ''})"
        )
