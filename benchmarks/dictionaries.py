"""Codebooks against TopK SAEs at the same sites, on the same activations, at the same size and L0.

Part 1, TokFSM: for each MLP site of the shipped TokFSM model, its codebook (1,000 codes, k = 1,
trained with the model by the recipe) against a TopK SAE of 1,000 latents, k = 1. Part 2, the
storyteller: its attention heads (a codebook of 1,024 codes, k = 8, per head, 8 heads at each of
2 layers) against an SAE per layer of 8,192 latents, k = 64, reading the whole site.

Each SAE is made by ``matched_sae``: fitted to the activations that enter its site while every
other dictionary runs, reading the codebook's own LayerNorm of them (per head where the codebook
normalises per head; its gain and bias copied and kept: the later layers were trained on that
LayerNorm's output). Each is measured spliced in alone, the others applying only
their LayerNorm (``reference="normalized"``), as ``dictionary_metrics`` does: fraction of variance
unexplained, CE loss recovered, KL. TokFSM adds the paper's purity (codes that fire on one state /
one state and next digit) and, per state, the best feature's precision (``codes_vs_neurons``),
averaged over states. The storyteller adds steering by the reference protocol (``benchmarks/
steering.py``): the layer-0 features most exclusive to each topic's stories, held on while sampling,
with the storyteller's attention sites all codebooks or all SAEs.

    python benchmarks/dictionaries.py [--threads 2] [--steps 1000] [--layers 0 1 2 3] [--parts tokfsm storyteller]
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

from cbwidgets.dictionary_metrics import dictionary_metrics
from cbwidgets.matched_sae import matched_sae
from cbwidgets.model import CodebookModel
from cbwidgets.tokfsm import TokFSM, load_default
from cbwidgets.tokfsm.metrics import code_purity, codes_vs_neurons


def with_sae(model: CodebookModel, site: str, batches: torch.Tensor | list[torch.Tensor], steps: int) -> float:
    """Replace ``model``'s codebook at ``site`` by a matched TopK SAE; returns the seconds it took."""
    start = time.perf_counter()
    matched_sae(model, site, batches, steps=steps)
    return time.perf_counter() - start


def site_metrics(model: CodebookModel, site: str, batches: torch.Tensor | list[torch.Tensor]) -> dict[str, float]:
    table = dictionary_metrics(model, batches, reference="normalized", sites=site)
    names = ["l0", "fvu", "ce_clean", "ce_dictionary", "ce_recovered", "kl", "dead"]
    return dict(zip(names, table.set_index("site").loc[site, names].to_numpy(float).tolist(), strict=True))


def tokfsm_row(model: CodebookModel, fsm: TokFSM, site: str, layer: int, walks: torch.Tensor) -> dict[str, float]:
    row = site_metrics(model, site, list(walks.split(16)))
    with model.evaluating(), model.only(site, others="normalized"):
        purity = (
            code_purity(model, fsm)
            .set_index("codebook")
            .loc[f"{layer}.mlp", ["bigram_purity", "trigram_purity"]]
            .to_numpy(float)
        )
        best = codes_vs_neurons(model, fsm, layer=layer)
    return {
        **row,
        "bigram_purity": float(purity[0]),
        "trigram_purity": float(purity[1]),
        "best_precision": float(best.code_precision.mean()),
    }


def tokfsm_part(steps: int, layers: list[int]) -> pd.DataFrame:
    fsm = TokFSM()
    train_walks = fsm.sample(256, 128, seed=5)  # what the SAE is fitted on (32,768 tokens)
    test_walks = fsm.sample(64, 128, seed=3)  # what both are measured on
    shipped = load_default()
    rows = []
    for layer in layers:
        site = f"layers.{layer}.mlp"
        rows.append({"site": site, "dictionary": "codebook", **tokfsm_row(shipped, fsm, site, layer, test_walks)})
        model = load_default()
        seconds = with_sae(model, site, train_walks, steps)
        name = f"TopK SAE ({seconds:.0f} s)"
        rows.append({"site": site, "dictionary": name, **tokfsm_row(model, fsm, site, layer, test_walks)})
    return pd.DataFrame(rows)


def storyteller_part(steps: int, samples: int, new_tokens: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    from cbwidgets.index import CodeIndex
    from cbwidgets.steering import REFERENCE_TOPICS, evaluate_steering, topic_codes
    from cbwidgets.stories import load_stories, split_stories, storyteller

    train, test = split_stories(load_stories())
    rows, steered = [], []
    for kind in ("codebook", "TopK SAE"):
        model = storyteller()
        fit_ids = [model.tokenize(s.text)[:, :256] for s in train[:400]]
        test_ids = [model.tokenize(s.text)[:, :256] for s in test[:100]]
        sites = list(model.attached)
        seconds = sum(with_sae(model, site, fit_ids, steps) for site in sites) if kind != "codebook" else 0.0
        name = kind if kind == "codebook" else f"{kind} ({seconds:.0f} s)"
        rows += [{"site": site, "dictionary": name, **site_metrics(model, site, test_ids)} for site in sites]
        index = CodeIndex.build(model, [s.text for s in train], batch_size=16, progress=False)
        layer0 = [label for label in index.labels if label.startswith("0.")]
        codes = {t: topic_codes(index, t, layer0, per_codebook=8, limit=8)["code"].tolist() for t in REFERENCE_TOPICS}
        table = evaluate_steering(
            model, codes, samples=samples, new_tokens=new_tokens, strength=1.25, seed=0, progress=False
        )
        met = (table.steered >= 0.5) & (table.steered >= 3 * table.baseline) & (table.ppl_ratio <= 2)
        print(f"\n{name}: steering by topic")
        print(table.assign(target_met=met).drop(columns="codes").to_string(index=False, float_format="%.3f"))
        steered.append(
            {
                "dictionary": name,
                "topics_met": f"{int(met.sum())} of {len(table)}",
                "steered": table.steered.mean(),
                "baseline": table.baseline.mean(),
                "ppl_ratio": table.ppl_ratio.mean(),
                "codes_per_topic": sum(map(len, codes.values())) / len(codes),
            }
        )
    return pd.DataFrame(rows), pd.DataFrame(steered)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=1000, help="the SAE's fitting steps (4,096 tokens each)")
    parser.add_argument("--layers", type=int, nargs="+", default=[0, 1, 2, 3], help="TokFSM layers")
    parser.add_argument("--parts", nargs="+", default=["tokfsm", "storyteller"], choices=["tokfsm", "storyteller"])
    parser.add_argument("--samples", type=int, default=10, help="steering samples per prompt and topic")
    parser.add_argument("--new-tokens", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")

    def show(table: pd.DataFrame) -> None:
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))

    if "tokfsm" in args.parts:
        table = tokfsm_part(args.steps, args.layers)
        print("\nTokFSM MLP sites: the shipped codebooks (1,000 codes, k = 1) and TopK SAEs (1,000 latents, k = 1)")
        print(f"fitted for {args.steps} steps on 256 walks, each measured alone on 64 other walks\n")
        show(table)
    if "storyteller" in args.parts:
        table, steered = storyteller_part(args.steps, args.samples, args.new_tokens)
        print("\nStoryteller attention sites: codebooks (8 heads x 1,024 codes, k = 8 each) and TopK SAEs")
        print(f"(8,192 latents, k = 64), fitted for {args.steps} steps on 400 stories, measured alone on 100 others\n")
        show(table)
        print(f"\nSteering by layer-0 features (8 per topic, held on; {args.samples} samples x 4 prompts, ")
        print(f"{args.new_tokens} new tokens; target per topic: >= 50 %, >= 3x baseline, perplexity <= 2x)\n")
        show(steered)


if __name__ == "__main__":
    main()
