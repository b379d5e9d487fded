"""Reading activations at any site of a model, with or without a codebook there.

Hooks of their own, removed in ``finally``, catch what a site's module takes in or gives out while
the model runs as it is (codebooks and interventions included), so this is also how k-means and
the neuron-vs-code comparisons see a site.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from .sites import parse_site

if TYPE_CHECKING:
    from .model import CodebookModel

__all__ = ["record"]


@torch.no_grad()
def record(model: CodebookModel, sites: str | Sequence[str], batches: Tensor | Iterable[Tensor]) -> dict[str, Tensor]:
    """Activations at sites (any, with or without a codebook), one row per token: {site: (tokens, dim)}.

    They are read as the model computes them now, codebooks and interventions included: the
    value leaving a codebook at output sites, the value entering it at input sites. Under
    ``codebooks_disabled()`` this is the base model's activations.
    """
    specs = [sites] if isinstance(sites, str) else list(sites)
    chosen = [site for spec in specs for site in parse_site(spec, model.available_sites)]
    captured: dict[str, list[Tensor]] = {site.name: [] for site in chosen}
    handles = []
    for site in chosen:
        module = model.model.get_submodule(site.module)
        store = captured[site.name]

        def keep(value: Any, store: list[Tensor] = store) -> None:
            tensor = value[0] if isinstance(value, tuple) else value
            store.append(tensor.detach().reshape(-1, tensor.shape[-1]))

        if site.hook == "output":
            handles.append(module.register_forward_hook(lambda _m, _a, out, keep=keep: keep(out)))
        else:
            handles.append(module.register_forward_pre_hook(lambda _m, args, keep=keep: keep(args[0])))
    try:
        for batch in [batches] if isinstance(batches, Tensor) else batches:
            model(batch)
    finally:
        for handle in handles:
            handle.remove()
    return {name: torch.cat(parts) for name, parts in captured.items()}
