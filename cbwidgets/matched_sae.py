"""Put a TopK SAE where a codebook is, at the codebook's size and L0, to compare the two at one site.

A model trained with codebooks in place reads, after each site, what the codebook passes on: vectors
in the space of the codebook's own LayerNorm (per head at ``attn_preproj``). An SAE fitted to the raw
activations would hand the later layers something they never saw, and its CE loss would measure that
mismatch, not the SAE. So the SAE reads the same LayerNorm (``layer_norm=True``, ``norm_groups`` =
the codebook's groups) with the codebook's gain and bias copied and kept, and is fitted to the
activations that enter the site while every other dictionary runs, as they will when it is used.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from .cached_fit import fit_activations, site_inputs
from .codebook import Codebook
from .errors import CodebookError, check_flag, check_positive_int, check_positive_real
from .model import CodebookModel
from .sae import SAESpec, TopKSAE

__all__ = ["matched_sae"]


def matched_sae(
    model: CodebookModel,
    site: str,
    batches: Tensor | Iterable[Tensor],
    steps: int = 300,
    seed: int = 0,
    lr: float = 1e-3,
    **settings: Any,
) -> TopKSAE:
    """Replace the codebook at ``site`` by a TopK SAE of as many latents as it has codes (over all its
    heads) and ``k`` = its active codes per token, reading its LayerNorm, fitted for ``steps`` to what
    enters the site over ``batches`` (token ids), as ``fit_cached`` fits. ``settings`` change the
    SAE's spec (``num_codes``, ``k``, ``aux_k``...; ``layer_norm=False`` reads the raw activations,
    as SAEs on a frozen pretrained model usually do, where no later layer learned the LayerNorm's
    output). ``lr`` is Adam's rate: 1e-2 fits this SAE better than 1e-3 on the sites
    ``benchmarks/saelens_anchor.py`` measures, at the risk of a rate too fast elsewhere. To go back,
    load the model again (the codebook is detached)."""
    names = model.attached_sites(site)
    if len(names) != 1:
        raise CodebookError(f"site={site!r} names {len(names)} sites ({names}); give one, like 'layers.1.mlp'.")
    name = names[0]
    book = model.attached[name]
    if not isinstance(book, Codebook):
        raise CodebookError(f"site {name!r} already holds a {type(book).__name__}; matched_sae replaces a codebook.")
    norm = check_flag("layer_norm", settings.get("layer_norm", True))
    lr = check_positive_real("lr", lr, "1e-3")
    steps = check_positive_int("steps", steps)  # all three before the codebook is detached
    matched = {
        "num_codes": book.groups * book.num_codes,
        "k": book.groups * book.k,
        "layer_norm": norm,
        "norm_groups": book.groups if norm else 1,
    }
    spec = SAESpec().with_settings(**{**matched, **settings})
    model.detach(name)
    model.attach(name, spec)
    sae = model.attached[name]
    assert isinstance(sae, TopKSAE)
    if sae.spec.layer_norm:
        with torch.no_grad():
            sae.ln_weight.copy_(book.ln_weight.reshape(1, -1))
            sae.ln_bias.copy_(book.ln_bias.reshape(1, -1))
    x = site_inputs(model, [name], batches)[name]
    generator = torch.Generator().manual_seed(seed)
    sae.init_from(x, generator, match_scale=False)
    fit_activations(sae, x, steps=steps, lr=lr, generator=generator)
    sae.train(model.training)  # in the mode of the model it went into, as the codebook was
    return sae
