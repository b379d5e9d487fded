"""The field's standard measures of a dictionary (SAELens evals, SAEBench), for codebooks and SAEs alike.

Each site's dictionary is spliced in alone (``model.only``), the rest as in the reference model:
- ``l0``: active units per token (ids that fired, over every group of the site);
- ``fvu``: fraction of variance unexplained, sum |x - x_hat|^2 / sum |x - mean x|^2, where x is what
  the reference model passes on at the site (what enters it; with ``reference="normalized"``, a
  codebook's LayerNorm of that) and x_hat what the dictionary puts out in its place;
- ``cosine``: mean cosine similarity of x_hat to x, token by token;
- ``ce_clean`` / ``ce_dictionary`` / ``ce_ablated``: next-token cross-entropy of the reference model,
  with the dictionary, and with the site's activation zeroed; ``ce_recovered`` =
  (ce_ablated - ce_dictionary) / (ce_ablated - ce_clean): 1 is as good as no bottleneck, 0 as bad as
  deleting the site;
- ``kl``: mean KL divergence from the reference model's next-token distribution to the one with the
  dictionary, in nats per token;
- ``dead`` / ``dense``: the share of units that never fired / fired on more than ``dense_above`` of
  the tokens; ``density_histogram``: how many units fired on a share of the tokens in each of the
  log10 bins in ``attrs["density_bins"]`` (units that never fired are not in it).
A last row, "all", has the cross-entropy and KL with every dictionary on together (all attached
ones, also when ``sites`` names some).

The reference model is the stock one (``reference="off"``: dictionaries pass activations through);
a model whose base was trained with the codebooks' LayerNorms in place (this kit's recipes) is
better measured against ``reference="normalized"``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import CodebookError, check_choice
from .model import CodebookModel
from .names import EMPTY
from .sae import TopKSAE

__all__ = ["DENSITY_BINS", "METRIC_COLUMNS", "dictionary_metrics"]

METRIC_COLUMNS = (
    "site",
    "kind",
    "units",
    "l0",
    "fvu",
    "cosine",
    "ce_clean",
    "ce_dictionary",
    "ce_ablated",
    "ce_recovered",
    "kl",
    "dead",
    "dense",
    "density_histogram",
)
DENSITY_BINS = np.linspace(-6.0, 0.0, 13)  # log10 of the share of tokens a unit fires on


@dataclass
class _Sums:
    """What one site's rows add up over batches."""

    units: int
    tokens: int = 0
    active: float = 0.0
    sse: float = 0.0
    sum_x: Tensor | None = None
    sum_sq: float = 0.0
    cosine: float = 0.0
    ce_dictionary: float = 0.0
    ce_ablated: float = 0.0
    kl: float = 0.0
    fired: Tensor | None = None  # (units,) tokens each unit fired on


@torch.no_grad()
def dictionary_metrics(
    model: CodebookModel,
    batches: Tensor | Iterable[Tensor],
    reference: str = "off",
    dense_above: float = 0.1,
    sites: str | Sequence[str] | None = None,
) -> pd.DataFrame:
    """One row per site with a dictionary (or per one of ``sites``), and a row "all" (see the
    module's docstring); ``batches`` are token ids, (batch, tokens) each."""
    check_choice("reference", reference, ("off", "normalized"))
    if not model.attached:
        raise CodebookError("no dictionaries attached; attach(...) a codebook or an SAE first.")
    sites = list(model.attached) if sites is None else model.attached_sites(sites)
    sums = {site: _Sums(units=model.attached[site].groups * model.attached[site].num_codes) for site in sites}
    every = _Sums(units=0)
    ce_clean = 0.0
    tokens = 0
    with model.evaluating():
        for batch in [batches] if isinstance(batches, Tensor) else batches:
            ids = model.as_input_ids(batch)
            targets = ids[:, 1:]
            with model.only([], others=reference):
                clean = model(ids).logits[:, :-1].float()
            clean_logp = clean.log_softmax(-1)
            n = targets.numel()
            tokens += n
            ce_clean += _ce(clean_logp, targets)
            for site in sites:
                _add_site(model, site, ids, targets, clean_logp, reference, sums[site])
                with model.only([], others=reference), model.zeroed(site):
                    sums[site].ce_ablated += _ce(model(ids).logits[:, :-1].float().log_softmax(-1), targets)
            both = model(ids).logits[:, :-1].float().log_softmax(-1)
            every.ce_dictionary += _ce(both, targets)
            every.kl += _kl(clean_logp, both)
    rows = [_row(site, model, sums[site], ce_clean, tokens, dense_above) for site in sites]
    rows.append({"site": "all", "kind": "", "units": sum(s.units for s in sums.values())})
    rows[-1].update(ce_clean=ce_clean / tokens, ce_dictionary=every.ce_dictionary / tokens, kl=every.kl / tokens)
    frame = pd.DataFrame(rows, columns=list(METRIC_COLUMNS))
    # plain lists, so that tables from two runs concatenate (pandas compares attrs with ==)
    frame.attrs.update(density_bins=DENSITY_BINS.tolist(), reference=reference, tokens=tokens)
    return frame


def _add_site(
    model: CodebookModel, site: str, ids: Tensor, targets: Tensor, clean_logp: Tensor, reference: str, sums: _Sums
) -> None:
    """One batch's measures of ``site``'s dictionary spliced in alone."""
    with model.only(site, others=reference):
        out = model(ids, capture=True)
    book = model.attached[site]
    x = out.inputs[site].float()
    if reference == "normalized":  # what the reference model passes on there: a codebook's LayerNorm of it
        x = book.normalize(x).reshape(x.shape).float()
    x_hat = out.outputs[site].reshape(x.shape).float()
    sums.tokens += x.shape[0]
    sums.sse += float((x - x_hat).pow(2).sum())
    sums.sum_x = x.sum(0) if sums.sum_x is None else sums.sum_x + x.sum(0)
    sums.sum_sq += float(x.pow(2).sum())
    sums.cosine += float(F.cosine_similarity(x_hat, x, dim=-1).sum())
    logp = out.logits[:, :-1].float().log_softmax(-1)
    sums.ce_dictionary += _ce(logp, targets)
    sums.kl += _kl(clean_logp, logp)
    columns = [i for i, name in enumerate(out.codes.codebooks.codebooks) if (name.site or name.name) == site]
    codes = out.codes.ids[:, :, columns].reshape(-1, len(columns), out.codes.ids.shape[-1])  # (N, G, k)
    fired = codes != EMPTY
    if out.codes.values is not None:
        fired &= out.codes.values[:, :, columns].reshape(codes.shape) != 0
    sums.active += float(fired.sum())
    offsets = torch.arange(len(columns), device=codes.device)[None, :, None] * book.num_codes
    units = (codes + offsets)[fired]
    # a unit counts once per token it fires on, however many of the token's slots hold it
    token = torch.arange(codes.shape[0], device=codes.device)[:, None, None].expand_as(codes)[fired]
    once = torch.unique(token * sums.units + units)
    counts = torch.bincount(once % sums.units, minlength=sums.units)
    sums.fired = counts if sums.fired is None else sums.fired + counts


def _row(
    site: str, model: CodebookModel, sums: _Sums, ce_clean: float, tokens: int, dense_above: float
) -> dict[str, Any]:
    n = max(sums.tokens, 1)
    assert sums.sum_x is not None and sums.fired is not None
    sst = sums.sum_sq - float(sums.sum_x.pow(2).sum()) / n
    density = sums.fired.double().cpu().numpy() / n
    live = density[density > 0]
    histogram = np.histogram(np.log10(live), bins=DENSITY_BINS)[0] if len(live) else np.zeros(len(DENSITY_BINS) - 1)
    ce_dictionary, ce_ablated, clean = sums.ce_dictionary / tokens, sums.ce_ablated / tokens, ce_clean / tokens
    span = ce_ablated - clean
    return {
        "site": site,
        "kind": "topk_sae" if isinstance(model.attached[site], TopKSAE) else "codebook",
        "units": sums.units,
        "l0": sums.active / n,
        "fvu": sums.sse / sst if sst > 0 else float("nan"),
        "cosine": sums.cosine / n,
        "ce_clean": clean,
        "ce_dictionary": ce_dictionary,
        "ce_ablated": ce_ablated,
        "ce_recovered": (ce_ablated - ce_dictionary) / span if span != 0 else float("nan"),
        "kl": sums.kl / tokens,
        "dead": float((density == 0).mean()),
        "dense": float((density > dense_above).mean()),
        "density_histogram": histogram.astype(np.int64).tolist(),
    }


def _ce(logp: Tensor, targets: Tensor) -> float:
    """Summed next-token cross-entropy."""
    return float(F.nll_loss(logp.reshape(-1, logp.shape[-1]), targets.reshape(-1), reduction="sum"))


def _kl(reference: Tensor, other: Tensor) -> float:
    """Summed KL(reference || other) over tokens, from log-probabilities."""
    return float((reference.exp() * (reference - other)).sum())
