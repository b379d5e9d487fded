"""Fitting a model's codebooks to what flows through it: k-means codes (an SAE: its data init),
usage counters, revival (an SAE: its decoder rows back to unit norm after each step).

These are the model-wide halves of what each ``Codebook`` does for itself: read the activations
at every site, hand each codebook its own, and fold each training step's code hits into the
counters (across processes when there are several) so dead codes are revived alike everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import pandas as pd
import torch
from torch import Tensor

from .dictionary import init_from_data
from .errors import CodebookError, check_flag
from .sae import TopKSAE

if TYPE_CHECKING:
    from .model import CodebookModel

__all__ = ["end_training_step", "kmeans_init", "usage"]


def kmeans_init(
    model: CodebookModel,
    batches: Tensor | Iterable[Tensor],
    iters: int = 10,
    seed: int = 0,
    match_scale: bool = True,
) -> None:
    """Initialise every codebook with k-means on the base model's activations at its site.

    ``match_scale`` also sets each codebook's LayerNorm gain and bias to the activations' typical
    scale, so inserting the codebooks into a trained model disturbs it as little as possible;
    the activations are then read from the base model alone. With ``match_scale=False`` the
    LayerNorms keep their weights and each codebook's input is read under ``normalize_only()``,
    as a model trained in that mode computes it.
    """
    if not model.attached:
        raise CodebookError("no codebooks attached; attach(...) before kmeans_init.")
    if check_flag("match_scale", match_scale):
        with model.codebooks_disabled():
            inputs = model.record(list(model.attached), batches)
    else:
        inputs = model.codebook_inputs(batches)
    generator = torch.Generator().manual_seed(seed)
    for site, codebook in model.attached.items():
        init_from_data(codebook, inputs[site], iters=iters, generator=generator, match_scale=match_scale)


def end_training_step(
    model: CodebookModel,
    all_reduce: Callable[[Tensor], Tensor] | None = None,
    gather: Callable[[Tensor], Tensor] | None = None,
) -> int:
    """Fold this step's code hits into the counters and revive dead codes; returns codes revived.

    Under several processes ``all_reduce`` (sum) and ``gather`` (concatenate in rank order) let
    every process see the whole batch's hits and inputs, and so revive the same codes to the same
    vectors as a single process would.
    """
    revived = 0
    for codebook in model.attached.values():
        if isinstance(codebook, TopKSAE):
            codebook.constrain()  # the optimiser step moved its decoder rows off unit norm
        hits = codebook.take_step_hits()
        if all_reduce is not None:
            hits = all_reduce(hits)
        dead = codebook.update_usage(hits)
        inputs = codebook.take_last_inputs()
        if codebook.spec.revive_after is not None and inputs is not None and bool(dead.any()):
            if gather is not None:
                inputs = gather(inputs.contiguous())
            revived += codebook.revive(dead, inputs)
    return revived


def usage(model: CodebookModel) -> pd.DataFrame:
    """Per codebook: codes used at least once, dead codes, and codes revived so far."""
    rows = []
    books = iter(model.names.codebooks)
    for codebook in model.attached.values():
        hits, dead = codebook.hits, codebook.dead_codes()
        for g in range(codebook.groups):
            rows.append(
                {
                    "codebook": next(books).label,
                    "num_codes": codebook.num_codes,
                    "used": int((hits[g] > 0).sum()),
                    "used_share": float((hits[g] > 0).float().mean()),
                    "dead": int(dead[g].sum()),
                    "revived": int(codebook.revived[g]),
                }
            )
    return pd.DataFrame(rows)
