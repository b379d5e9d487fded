"""Fit codebooks to a frozen model from cached activations: no backward through the model.

For a large pretrained model, training codebooks inside it (a forward and backward through every
layer per step) is slow on a CPU. Codebooks that only need to reconstruct what enters them can
instead be fitted to activations recorded once: k-means, then Adam on the reconstruction loss
over minibatches of those activations. It is a few seconds a site instead of hours; the model
does not learn to rely on the codes, so this is for reading codes, not for steering.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
import torch
from torch import Tensor

from .errors import CodebookError, check_positive_int
from .model import CodebookModel

__all__ = ["fit_cached"]


def fit_cached(
    model: CodebookModel,
    batches: Tensor | Iterable[Tensor],
    steps: int = 300,
    batch_tokens: int = 4096,
    lr: float = 1e-3,
    kmeans_iters: int = 10,
    seed: int = 0,
) -> pd.DataFrame:
    """Fit every attached codebook to the base model's activations over ``batches`` (token ids).

    Returns the reconstruction loss per site at the first step, every 50 steps and at the last.
    """
    steps = check_positive_int("steps", steps)
    batch_tokens = check_positive_int("batch_tokens", batch_tokens)
    if not model.attached:
        raise CodebookError("no codebooks attached; attach(...) the sites to fit first.")
    with model.codebooks_disabled():
        inputs = model.record(list(model.attached), batches)
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for site, codebook in model.attached.items():
        x = inputs[site]
        codebook.kmeans_init(x, iters=kmeans_iters, generator=generator, match_scale=True)
        optimizer = torch.optim.Adam([codebook.vectors], lr=lr)
        for step in range(1, steps + 1):
            rows_at = torch.randint(0, x.shape[0], (min(batch_tokens, x.shape[0]),), generator=generator)
            loss = codebook(x[rows_at.to(x.device)]).loss  # eval mode: usage counters stay as they are
            assert loss is not None  # grad is enabled here
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if step == 1 or step % 50 == 0 or step == steps:
                rows.append({"site": site, "step": step, "reconstruction": float(loss.detach())})
    return pd.DataFrame(rows)
