"""What every dictionary module shares, whatever it computes: its shape, read from its spec, and
the usage counters that training folds each step's hits into (and that dead units are read from)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from .errors import CodebookError

__all__ = ["DictionaryBase", "changed_spec", "spec_from"]

S = TypeVar("S")


def changed_spec(spec: S, what: str, settings: dict[str, Any]) -> S:
    """A copy of a spec (a dataclass) with some settings changed; unknown names are refused with the
    valid ones (``what``: "codebook" or "SAE", for the message)."""
    fields = set(spec.__dataclass_fields__)  # type: ignore[attr-defined]
    unknown = set(settings) - fields
    if unknown:
        raise CodebookError(f"unknown {what} settings {sorted(unknown)}; valid settings: {sorted(fields)}.")
    return replace(spec, **settings) if settings else spec  # type: ignore[type-var]


def spec_from(kind: type[S], spec: Any, dim: int | None, settings: dict[str, Any]) -> S:
    """What a module is built from: a spec of its ``kind`` with settings changed, or settings alone
    (``Codebook(1000, 128, k=8)``: the number of units, then the width)."""
    sized = {"dim": dim} if dim is not None else {}
    if isinstance(spec, kind):
        return spec.with_settings(**sized, **settings)  # type: ignore[attr-defined]
    given = {"num_codes": spec} if spec is not None else {}
    return kind().with_settings(**given, **sized, **settings)  # type: ignore[attr-defined]


class DictionaryBase(nn.Module):
    """A codebook's or an SAE's common part; subclasses build ``spec`` and register the ``hits``
    and ``steps_since_used`` buffers (groups x units), and say which units are dead."""

    spec: Any
    hits: Tensor
    steps_since_used: Tensor

    @property
    def num_codes(self) -> int:
        return int(self.spec.num_codes)

    @property
    def k(self) -> int:
        return int(self.spec.k)

    @property
    def groups(self) -> int:
        return int(self.spec.groups or 1)

    @property
    def dim(self) -> int:
        return int(self.spec.dim or 0)

    def dead_codes(self) -> Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def update_usage(self, hits: Tensor) -> Tensor:
        """Fold one step's hits into the counters; returns the dead mask (groups, units)."""
        hits = hits.to(self.hits.device)
        self.hits += hits
        self.steps_since_used.copy_(
            torch.where(hits > 0, torch.zeros_like(self.steps_since_used), self.steps_since_used + 1)
        )
        return self.dead_codes()

    def reset_usage(self) -> None:
        self.hits.zero_()
        self.steps_since_used.zero_()
