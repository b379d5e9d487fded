"""Codebooks against TopK SAEs at the same sites, on the same activations (part 1: TokFSM).

For each MLP site of the shipped TokFSM model, its codebook (1,000 codes, k = 1, trained with the
model by the recipe) is compared with a TopK SAE of the same size and L0 (1,000 latents, k = 1)
fitted to the activations that enter that site while every other codebook runs, and reading the
codebook's own LayerNorm of them (``layer_norm=True``, its gain and bias copied and kept: the later
layers were trained on that LayerNorm's output). Each is measured spliced in alone, the others
applying only their LayerNorm (``reference="normalized"``), as ``dictionary_metrics`` does:
fraction of variance unexplained, CE loss recovered, KL; and as the TokFSM metrics do: the paper's
purity (codes that fire on one state / one state and next digit) and, per state, the best
feature's precision (``codes_vs_neurons``), averaged over states.

    python benchmarks/dictionaries.py [--threads 2] [--steps 1000] [--layers 0 1 2 3]
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

from cbwidgets.cached_fit import fit_cached
from cbwidgets.dictionary_metrics import dictionary_metrics
from cbwidgets.model import CodebookModel
from cbwidgets.sae import SAESpec, TopKSAE
from cbwidgets.tokfsm import TokFSM, load_default
from cbwidgets.tokfsm.metrics import code_purity, codes_vs_neurons


def with_sae(site: str, walks: torch.Tensor, steps: int) -> tuple[CodebookModel, float]:
    """The shipped model with its codebook at ``site`` replaced by a fitted TopK SAE; seconds fitting."""
    model = load_default()
    book = model.attached[site]
    model.detach(site)
    model.attach(site, SAESpec(num_codes=book.num_codes, k=book.k, layer_norm=True))
    sae = model.attached[site]
    assert isinstance(sae, TopKSAE)
    with torch.no_grad():
        sae.ln_weight.copy_(book.ln_weight)
        sae.ln_bias.copy_(book.ln_bias)
    start = time.perf_counter()
    with model.only([s for s in model.attached if s != site]):
        x = model.record([site], walks)[site]
    sae.init_from(x, torch.Generator().manual_seed(0), match_scale=False)
    fit_cached(model, walks, steps=steps, batch_tokens=4096, lr=1e-3, sites=site, init=False)
    return model, time.perf_counter() - start


def measure(model: CodebookModel, fsm: TokFSM, site: str, layer: int, walks: torch.Tensor) -> dict[str, float]:
    table = dictionary_metrics(model, list(walks.split(16)), reference="normalized", sites=site)
    row = table.set_index("site").loc[site]
    with model.evaluating(), model.only(site, others="normalized"):
        purity = code_purity(model, fsm).set_index("codebook").loc[f"{layer}.mlp"]
        best = codes_vs_neurons(model, fsm, layer=layer)
    return {
        "l0": row.l0,
        "fvu": row.fvu,
        "ce_recovered": row.ce_recovered,
        "kl": row.kl,
        "bigram_purity": purity.bigram_purity,
        "trigram_purity": purity.trigram_purity,
        "best_precision": best.code_precision.mean(),
        "dead": row.dead,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=1000, help="the SAE's fitting steps (4,096 tokens each)")
    parser.add_argument("--layers", type=int, nargs="+", default=[0, 1, 2, 3])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    fsm = TokFSM()
    train_walks = fsm.sample(256, 128, seed=5)  # what the SAE is fitted on (32,768 tokens)
    test_walks = fsm.sample(64, 128, seed=3)  # what both are measured on
    shipped = load_default()
    rows = []
    for layer in args.layers:
        site = f"layers.{layer}.mlp"
        rows.append({"site": site, "dictionary": "codebook", **measure(shipped, fsm, site, layer, test_walks)})
        model, seconds = with_sae(site, train_walks, args.steps)
        rows.append(
            {"site": site, "dictionary": f"TopK SAE ({seconds:.0f} s)", **measure(model, fsm, site, layer, test_walks)}
        )
    table = pd.DataFrame(rows)
    print("\nTokFSM MLP sites: the shipped codebooks (1,000 codes, k = 1) and TopK SAEs (1,000 latents, k = 1)")
    print(f"fitted for {args.steps} steps on 256 walks, each measured alone on 64 other walks\n")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    main()
