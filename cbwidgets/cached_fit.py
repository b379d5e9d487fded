"""Fit codebooks (or TopK SAEs) to a frozen model from cached activations: no backward through the model.

For a large pretrained model, training codebooks inside it (a forward and backward through every
layer per step) is slow on a CPU. Codebooks that only need to reconstruct what enters them can
instead be fitted to activations recorded once: k-means, then Adam on the reconstruction loss
over minibatches of those activations. It is a few seconds a site instead of hours; the model
does not learn to rely on the codes, so this is for reading codes, not for steering.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd
import torch
from torch import Tensor

from .codebook import Codebook
from .dictionary import init_from_data
from .errors import CodebookError, check_flag, check_positive_int, check_positive_real
from .model import CodebookModel
from .sae import TopKSAE

__all__ = ["fit_activations", "fit_cached", "site_inputs"]


def site_inputs(model: CodebookModel, sites: Sequence[str], batches: Tensor | Iterable[Tensor]) -> dict[str, Tensor]:
    """What enters each of the attached ``sites`` over ``batches`` (token ids), one row per token,
    while every other dictionary runs, as it will when a dictionary fitted to these is used (the
    dictionaries at ``sites`` pass their input on)."""
    with torch.no_grad(), model.only([site for site in model.attached if site not in sites]):
        return model.record(list(sites), batches)


def fit_cached(
    model: CodebookModel,
    batches: Tensor | Iterable[Tensor],
    steps: int = 300,
    batch_tokens: int = 4096,
    lr: float = 1e-3,
    kmeans_iters: int = 10,
    seed: int = 0,
    sites: str | Sequence[str] | None = None,
    init: bool = True,
) -> pd.DataFrame:
    """Fit every attached codebook (or SAE; only those at ``sites``, if given: the others keep
    what they learned, and run while the activations are read, as they will when these are used)
    to the model's activations over ``batches`` (token ids).

    ``init=False`` starts from each one's current state (a warm start, or a LayerNorm copied from
    the codebook an SAE replaces) instead of k-means or an SAE's data init.
    Returns the reconstruction loss per site at the first step, every 50 steps and at the last.
    """
    steps = check_positive_int("steps", steps)
    batch_tokens = check_positive_int("batch_tokens", batch_tokens)
    lr = check_positive_real("lr", lr, "1e-3")  # before the recording, which takes a while
    init = check_flag("init", init)
    if not model.attached:
        raise CodebookError("no codebooks attached; attach(...) the sites to fit first.")
    chosen = list(model.attached) if sites is None else model.attached_sites(sites)
    inputs = site_inputs(model, chosen, batches)
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for site in chosen:
        codebook = model.attached[site]
        x = inputs[site]
        if init:
            init_from_data(codebook, x, iters=kmeans_iters, generator=generator, match_scale=True)
        losses = fit_activations(codebook, x, steps=steps, batch_tokens=batch_tokens, lr=lr, generator=generator)
        rows += [{"site": site, "step": step, "reconstruction": loss} for step, loss in losses.items()]
    return pd.DataFrame(rows)


def fit_activations(
    dictionary: Codebook | TopKSAE,
    x: Tensor,
    steps: int = 300,
    batch_tokens: int = 4096,
    lr: float = 1e-3,
    generator: torch.Generator | None = None,
) -> dict[int, float]:
    """Adam on one codebook's (or SAE's) reconstruction loss over minibatches of ``x`` (N, dim), the
    activations it reads, drawn with replacement by ``generator``: ``fit_cached``'s loop, for
    activations you already hold (recorded once and kept, or read by another library). Starts from
    the dictionary's current state (``init_from_data`` first for a data init). Returns the loss at the
    first step, every 50 steps and at the last."""
    steps = check_positive_int("steps", steps)
    batch_tokens = check_positive_int("batch_tokens", batch_tokens)
    lr = check_positive_real("lr", lr, "1e-3")
    if x.ndim != 2 or x.shape[-1] != dictionary.dim:
        raise CodebookError(
            f"activations of shape {tuple(x.shape)} do not fit a dictionary of dim={dictionary.dim}; "
            f"give (tokens, {dictionary.dim})."
        )
    sae = isinstance(dictionary, TopKSAE)
    # a codebook fits its vectors in eval mode (its usage counters stay as they are); an SAE fits
    # all of itself in training mode, where it counts which latents are dead for its auxiliary loss
    # (a LayerNorm stays as its init left it, as a codebook's does: the model reads what it puts out)
    fitted = [p for name, p in dictionary.named_parameters() if not name.startswith("ln_")]
    optimizer = torch.optim.Adam(fitted if sae else [dictionary.vectors], lr=lr)
    was_training = dictionary.training
    dictionary.train(sae)
    losses = {}
    try:
        for step in range(1, steps + 1):
            rows_at = torch.randint(0, x.shape[0], (min(batch_tokens, x.shape[0]),), generator=generator)
            loss = dictionary(x[rows_at.to(x.device)]).loss
            assert loss is not None  # grad is enabled here
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if isinstance(dictionary, TopKSAE):
                dictionary.constrain()
                dictionary.update_usage(dictionary.take_step_hits())
            if step == 1 or step % 50 == 0 or step == steps:
                losses[step] = float(loss.detach())
    finally:
        dictionary.train(was_training)
    return losses
