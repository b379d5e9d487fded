"""The anchor for the dictionary comparison: this kit's TopK SAE against one trained by SAELens, on
the same cached activations, at the same size, L0, steps, batch size, learning rate and batches.

Each side keeps its own library's choices for the rest (ours: ``b_dec`` at the data's mean, unit
decoder rows whose gradient has no part along them, the auxiliary loss on latents idle 100 steps
with weight 1/32; SAELens's ``TopKTrainingSAE``: ``b_dec`` at 0, decoder rows of norm 0.1
rescaled, the auxiliary loss on latents idle ``dead_feature_window`` steps with weight 1).
SAELens trains with its own ``SAETrainer`` fed the batches ours draws; ours with
``fit_activations``. Both are then measured on held-out
activations of the same site: FVU (squared error over the variance about the mean), L0, dead
latents (never fired on the held-out set), and training time per step.

The learning rate is where the two parametrisations part: SAELens's decoder rows start at norm 0.1
and are free to grow, so one Adam step turns them about ten times as far as it turns our unit rows.
One nominal rate therefore favours whichever library it happens to suit. ``--lrs`` trains both
sides at each rate of a grid and prints every pair, then each library at its best rate of the grid.

Target: our FVU within 5 % of SAELens's (ratio <= 1.05), each at its best rate of the grid.

Needs sae-lens beside cbwidgets (``pip install 'cbwidgets[saelens]'``):

    python benchmarks/saelens_anchor.py [--steps 1000] [--threads 2] [--only tokfsm storyteller]
        [--sizes 1024:8,4096:32] [--lrs 1e-3,1e-2]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator

import pandas as pd
import torch
from torch import Tensor

from cbwidgets.cached_fit import fit_activations, site_inputs
from cbwidgets.model import CodebookModel
from cbwidgets.sae import SAESpec, TopKSAE

BATCH = 4096


def site_activations(
    model: CodebookModel, site: str, train: Tensor | list[Tensor], test: Tensor | list[Tensor]
) -> tuple[Tensor, Tensor]:
    """What enters ``site`` while every other codebook runs, on the training and held-out inputs."""
    with model.evaluating():
        return site_inputs(model, [site], train)[site], site_inputs(model, [site], test)[site]


def tokfsm_case() -> tuple[str, Tensor, Tensor]:
    from cbwidgets.tokfsm import TokFSM, load_default

    fsm = TokFSM()
    model = load_default()
    x, held = site_activations(model, "layers.1.mlp", fsm.sample(256, 128, seed=5), fsm.sample(64, 128, seed=3))
    return "TokFSM layers.1.mlp", x, held


def storyteller_case() -> tuple[str, Tensor, Tensor]:
    from cbwidgets.stories import load_stories, split_stories, storyteller

    model = storyteller()
    train, test = split_stories(load_stories())
    train_ids, test_ids = ([model.tokenize(s.text)[:, :256] for s in part] for part in (train[:400], test[:100]))
    x, held = site_activations(model, "layers.0.attn_preproj", train_ids, test_ids)
    return "storyteller layers.0.attn_preproj", x, held


def batches(x: Tensor, steps: int, seed: int) -> list[Tensor]:
    """The row indices of every training batch, drawn as ``fit_activations`` draws them."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, x.shape[0], (min(BATCH, x.shape[0]),), generator=g) for _ in range(steps)]


def fvu(reconstruct: object, x: Tensor) -> float:
    with torch.no_grad():
        out = reconstruct(x)  # type: ignore[operator]
    return float((out - x).pow(2).sum() / (x - x.mean(0)).pow(2).sum())


def ours(x: Tensor, held: Tensor, latents: int, k: int, steps: int, seed: int, lr: float) -> dict[str, float]:
    sae = TopKSAE(SAESpec(num_codes=latents, dim=x.shape[-1], k=k))
    g = torch.Generator().manual_seed(seed)
    sae.init_from(x, g)
    start = time.perf_counter()
    fit_activations(sae, x, steps=steps, batch_tokens=BATCH, lr=lr, generator=torch.Generator().manual_seed(seed))
    seconds = time.perf_counter() - start
    sae.eval()
    with torch.no_grad():
        ids = sae(held).ids
    return {
        "fvu": fvu(lambda v: sae(v).output, held),
        "l0": float((ids >= 0).sum(-1).float().mean()),
        "dead": 1 - float(torch.unique(ids[ids >= 0]).numel()) / latents,
        "ms_per_step": 1000 * seconds / steps,
    }


def theirs(x: Tensor, held: Tensor, latents: int, k: int, steps: int, seed: int, lr: float) -> dict[str, float]:
    from sae_lens import TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.config import SAETrainerConfig
    from sae_lens.training.sae_trainer import SAETrainer

    torch.manual_seed(seed)
    sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=x.shape[-1], d_sae=latents, k=k))
    rows = batches(x, steps, seed)

    def provider() -> Iterator[Tensor]:
        yield from (x[r] for r in rows)

    cfg = SAETrainerConfig(total_training_samples=steps * BATCH, train_batch_size_samples=BATCH, lr=lr, lr_end=lr)
    trainer = SAETrainer(cfg, sae, provider())
    start = time.perf_counter()
    trainer.fit()
    seconds = time.perf_counter() - start
    sae.eval()
    with torch.no_grad():
        acts = sae.encode(held)
    fired = (acts > 0).any(0)
    return {
        "fvu": fvu(sae, held),
        "l0": float((acts > 0).sum(-1).float().mean()),
        "dead": 1 - float(fired.float().mean()),
        "ms_per_step": 1000 * seconds / steps,
    }


def best_of_grid(table: pd.DataFrame) -> pd.DataFrame:
    """Per site and size, each library at the rate of the grid where its held-out FVU is lowest."""
    rows = []
    for (label, latents, k), runs in table.groupby(["activations", "latents", "k"], sort=False):
        a, b = runs.loc[runs.fvu_ours.idxmin()], runs.loc[runs.fvu_saelens.idxmin()]
        rows.append(
            {
                "activations": label,
                "latents": latents,
                "k": k,
                "lr_ours": a.lr,
                "fvu_ours": a.fvu_ours,
                "lr_saelens": b.lr,
                "fvu_saelens": b.fvu_saelens,
                "fvu_ratio": a.fvu_ours / b.fvu_saelens,
            }
        )
    return pd.DataFrame(rows)


def learning_rates(text: str) -> list[float]:
    """``--lrs``: positive rates, comma-separated (``1e-3,1e-2``)."""
    try:
        rates = [float(v) for v in text.split(",")]
    except ValueError:
        rates = []
    if not rates or not all(0 < r < float("inf") for r in rates):
        raise argparse.ArgumentTypeError(f"{text!r}: give positive learning rates, comma-separated, like 1e-3,1e-2")
    return rates


def sizes(text: str) -> list[tuple[int, int]]:
    """``--sizes``: latents:k pairs, comma-separated, k at most the latents (``1024:8,4096:32``)."""
    try:
        pairs = [tuple(int(v) for v in size.split(":")) for size in text.split(",")]
    except ValueError:
        pairs = []
    if not pairs or not all(len(p) == 2 and 0 < p[1] <= p[0] for p in pairs):
        raise argparse.ArgumentTypeError(
            f"{text!r}: give latents:k pairs with 0 < k <= latents, comma-separated, like 1024:8,4096:32"
        )
    return [(p[0], p[1]) for p in pairs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="+", default=["tokfsm", "storyteller"], choices=["tokfsm", "storyteller"])
    parser.add_argument("--sizes", type=sizes, default="1024:8,4096:32", help="latents:k pairs, comma-separated")
    parser.add_argument(
        "--lrs",
        type=learning_rates,
        default="1e-3,1e-2",
        help="Adam learning rates, comma-separated; both sides run each",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import sae_lens

    print(f"torch {torch.__version__}, sae-lens {sae_lens.__version__}, {torch.get_num_threads()} threads")
    cases = {"tokfsm": tokfsm_case, "storyteller": storyteller_case}
    lrs = args.lrs
    rows = []
    for name in args.only:
        label, x, held = cases[name]()
        print(f"{label}: {x.shape[0]:,} training and {held.shape[0]:,} held-out activations of width {x.shape[1]}")
        for latents, k in args.sizes:
            for lr in lrs:
                a = ours(x, held, latents, k, args.steps, args.seed, lr)
                b = theirs(x, held, latents, k, args.steps, args.seed, lr)
                rows.append(
                    {
                        "activations": label,
                        "latents": latents,
                        "k": k,
                        "lr": lr,
                        "fvu_ours": a["fvu"],
                        "fvu_saelens": b["fvu"],
                        "fvu_ratio": a["fvu"] / b["fvu"],
                        "dead_ours": a["dead"],
                        "dead_saelens": b["dead"],
                        "ms_step_ours": a["ms_per_step"],
                        "ms_step_saelens": b["ms_per_step"],
                        "time_ratio": a["ms_per_step"] / b["ms_per_step"],
                    }
                )
                print(pd.DataFrame(rows[-1:]).to_string(index=False, header=len(rows) == 1), flush=True)
    table = pd.DataFrame(rows)
    fmt = {"float_format": lambda v: f"{v:.4g}", "index": False}
    print(f"\n{args.steps} steps of {BATCH} activations, Adam, the same batches for both, at each rate\n")
    print(table.to_string(**fmt))
    best = best_of_grid(table)
    print(f"\neach library at its best rate of {', '.join(f'{lr:g}' for lr in lrs)}\n")
    print(best.to_string(**fmt))
    same = int((table.fvu_ratio <= 1.05).sum())
    print(f"\nat the same rate, our FVU within 5 % of SAELens's (or below): {same} of {len(table)}")
    print(f"each at its best rate: {int((best.fvu_ratio <= 1.05).sum())} of {len(best)}")


if __name__ == "__main__":
    main()
