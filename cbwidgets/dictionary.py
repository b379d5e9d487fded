"""What a dictionary at a site is, whichever kind: a codebook or a TopK SAE.

Both take an activation and an optional ``CodeEdit``, and return a ``Snap``: the output that
replaces the activation, the active ids per token (k slots per group), the training loss, and (for
an SAE) the active latents' values. Both keep the same usage counters, have decoder directions in
``vectors`` (G, C, d), and build from a spec that saves as a dict. ``CodebookModel.attach`` takes a
spec of either kind; everything downstream (codes, interventions, indexes, widgets) reads ids.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from .codebook import Codebook, CodebookSpec, CodeEdit, Snap
from .errors import CodebookError
from .sae import SAE_KIND, SAESpec, TopKSAE

__all__ = ["Dictionary", "DictionarySpec", "build_dictionary", "init_from_data", "spec_from_dict"]

DictionarySpec = CodebookSpec | SAESpec


@runtime_checkable
class Dictionary(Protocol):
    """The interface every dictionary at a site offers (``Codebook`` and ``TopKSAE`` do)."""

    spec: Any
    vectors: Tensor  # (G, C, d): what each code or latent writes
    hits: Tensor  # (G, C): times each fired in training
    steps_since_used: Tensor
    revived: Tensor

    @property
    def num_codes(self) -> int: ...
    @property
    def k(self) -> int: ...
    @property
    def groups(self) -> int: ...
    @property
    def dim(self) -> int: ...
    def __call__(self, x: Tensor, edit: CodeEdit | None = None) -> Snap: ...
    def normalize(self, x: Tensor) -> Tensor: ...
    def take_step_hits(self) -> Tensor: ...
    def take_last_inputs(self) -> Tensor | None: ...
    def update_usage(self, hits: Tensor) -> Tensor: ...
    def dead_codes(self) -> Tensor: ...
    def revive(self, dead: Tensor, inputs: Tensor) -> int: ...
    def reset_usage(self) -> None: ...


def build_dictionary(spec: DictionarySpec) -> Codebook | TopKSAE:
    """The module a spec describes."""
    if isinstance(spec, SAESpec):
        return TopKSAE(spec)
    if isinstance(spec, CodebookSpec):
        return Codebook(spec)
    raise CodebookError(f"a dictionary is built from a CodebookSpec or an SAESpec, got {type(spec).__name__}.")


def spec_from_dict(data: dict[str, Any]) -> DictionarySpec:
    """A saved spec back: an SAE's says its kind; one without a kind is a codebook's."""
    kind = data.get("kind")
    if kind == SAE_KIND:
        return SAESpec.from_dict(data)
    if kind not in (None, "codebook"):
        raise CodebookError(f"unknown dictionary kind {kind!r} in a saved spec; cbwidgets knows codebooks and SAEs.")
    return CodebookSpec.from_dict({key: value for key, value in data.items() if key != "kind"})


@torch.no_grad()
def init_from_data(
    dictionary: Codebook | TopKSAE,
    x: Tensor,
    iters: int = 10,
    generator: torch.Generator | None = None,
    match_scale: bool = True,
) -> None:
    """Start a dictionary where the activations ``x`` are: a codebook at their k-means centroids,
    an SAE at their mean with random directions."""
    if isinstance(dictionary, TopKSAE):
        dictionary.init_from(x, generator, match_scale)
    else:
        dictionary.kmeans_init(x, iters=iters, generator=generator, match_scale=match_scale)
