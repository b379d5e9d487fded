"""Where does a TokFSM model carry the state? Two measurements behind issue 15's diagnosis.

1. Patching site by site (the paper's protocol, ``patching_divergence`` with custom groups): each
   codebook site alone, everything but one site, and all of layers 0-1. A site whose codes the
   later layers rely on moves the prediction toward the patched state on its own; a site whose
   "all but" row is 0 is redundant: the rest carries the whole state without it.
2. Purity in walks split by token kind (a state's second digit, where a code can stand for the
   state, vs its first digit) and by place in the walk, for the MLP codebooks of layers 1-3.
3. Where each attention head looks from a state's second digit: its weight on that token, on the
   one, two and three before, and on BOS. A later layer that puts most of its weight one token
   back reads the state's first digit again instead of using what the earlier layers made of it.

    python benchmarks/tokfsm_diagnosis.py [--model FOLDER] [--pairs 500]
"""

from __future__ import annotations

import argparse

import torch

from cbwidgets.tokfsm import TokFSM, load_default, patching_divergence
from cbwidgets.tokfsm.metrics import _purity

PLACES = ((2, 16), (16, 64), (64, 128))


def patching_by_site(model: torch.nn.Module, fsm: TokFSM, pairs: int) -> str:
    sites = list(model.attached)
    groups: dict[str, object] = {"none": []}
    groups.update({site: [site] for site in sites})
    for left_out in ("layers.0.attn_preproj", "layers.1.attn_preproj", "layers.1.mlp"):
        groups[f"all but {left_out}"] = [s for s in sites if s != left_out]
    groups["layers 0-1, every site"] = [s for s in sites if s.startswith(("layers.0.", "layers.1."))]
    groups["all"] = None
    frame = patching_divergence(model, fsm, pairs=pairs, groups=groups)
    return frame.to_string(index=False, float_format="%.3f")


@torch.no_grad()
def purity_by_place(model: torch.nn.Module, fsm: TokFSM, sequences: int = 256, length: int = 128) -> str:
    ids = fsm.sample(sequences, length, seed=1)
    codes = model(ids).codes
    v, tokens = fsm.vocab_size, ids.numpy()
    lines = []
    for label in ("1.mlp", "2.mlp", "3.mlp"):
        book = codes.labels.index(label)
        parts = [label]
        for kind, parity in (("2nd digit", 0), ("1st digit", 1)):
            for lo, hi in PLACES:
                at = [p for p in range(lo, hi) if p % 2 == parity]
                fired = codes.ids[:, at, book].numpy().reshape(-1, codes.ids.shape[-1])
                before = [p - 1 for p in at]
                bigram = (tokens[:, before] * v + tokens[:, at]).reshape(-1)
                trigram = (tokens[:, [p - 2 for p in at]] * v * v + tokens[:, before] * v + tokens[:, at]).reshape(-1)
                active, bi = _purity(fired, bigram, 5)
                _, tri = _purity(fired, trigram, 5)
                parts.append(f"{kind} {lo}-{hi}: {active} codes, bigram {bi:.2f}, trigram {tri:.2f}")
        lines.append("\n    ".join(parts))
    return "\n".join(lines)


@torch.no_grad()
def attention_by_offset(model: torch.nn.Module, fsm: TokFSM, sequences: int = 64, length: int = 128) -> str:
    ids = fsm.sample(sequences, length, seed=5)
    hf = model.model
    previous = hf.config._attn_implementation
    hf.set_attn_implementation("eager")  # the fused kernels return no weights
    try:
        attentions = hf(ids, output_attentions=True).attentions  # per layer (B, H, T, T)
    finally:
        hf.set_attn_implementation(previous)
    at = torch.arange(10, length, 2)  # second digits after the first few states
    lines = []
    for layer, weights in enumerate(attentions):
        heads = []
        for head in range(weights.shape[1]):
            rows = weights[:, head, at]  # (B, P, T)
            back = [float(rows[:, torch.arange(len(at)), at - d].mean()) for d in range(4)]
            bos = float(rows[..., 0].mean())
            heads.append(f"h{head} " + " ".join(f"{w:.2f}" for w in (*back, bos)))
        lines.append(f"layer {layer}: " + " | ".join(heads))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="a folder `cbwidgets train-fsm --out` wrote (default: shipped)")
    parser.add_argument("--pairs", type=int, default=500)
    args = parser.parse_args()
    fsm, model = TokFSM(), load_default(args.model)
    print("Patching, site by site (normalised JSD to the patched state's prediction; none = 1):")
    print(patching_by_site(model, fsm, args.pairs))
    print("\nPurity in walks by token kind and place (256 walks of 128 tokens):")
    print(purity_by_place(model, fsm))
    print("\nAttention from a state's second digit: weight on itself, 1, 2, 3 tokens back, and BOS (64 walks):")
    print(attention_by_offset(model, fsm))


if __name__ == "__main__":
    main()
