"""Fit the shipped SmolLM2 codebooks: per-head codebooks at a few layers, from cached activations.

    python tools/make_smollm_codebooks.py

Writes cbwidgets/smollm_codebooks/ (float16 safetensors + JSON, and metrics.json: held-out loss and
accuracy with and without the codebooks, and the time each part took).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from cbwidgets.cached_fit import fit_cached
from cbwidgets.lm_metrics import lm_metrics
from cbwidgets.smollm import SMOLLM_CODEBOOKS_DIR, load_smollm2
from cbwidgets.stories import load_stories, split_stories


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(SMOLLM_CODEBOOKS_DIR))
    parser.add_argument("--layers", default="3,9,15")
    parser.add_argument("--num-codes", type=int, default=1024)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--stories", type=int, default=240, help="training stories whose activations are cached")
    parser.add_argument("--held-out", type=int, default=40, help="held-out stories for the loss")
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    seconds: dict[str, float] = {}
    clock = time.perf_counter()
    model = load_smollm2(codebooks=False)
    seconds["load"] = time.perf_counter() - clock
    train, held = split_stories(load_stories())
    tok = model.tokenizer
    stream: list[int] = []
    for story in train[: args.stories]:
        stream += tok(story.text)["input_ids"] + [tok.eos_token_id]
    window = 256
    usable = len(stream) // window * window
    windows = torch.tensor(stream[:usable]).reshape(-1, window)
    batches = list(windows.split(8))
    model.attach(
        [f"layers.{layer}.attn_preproj" for layer in args.layers.split(",")], num_codes=args.num_codes, k=args.k
    )
    clock = time.perf_counter()
    history = fit_cached(model, batches, steps=args.steps)
    seconds["fit"] = time.perf_counter() - clock
    print(history.groupby("site").tail(1).to_string(index=False))
    clock = time.perf_counter()
    metrics = lm_metrics(model, [s.text for s in held[: args.held_out]], modes=("codebooks", "disabled"), batch_size=4)
    seconds["metrics"] = time.perf_counter() - clock
    print(metrics.to_string(index=False))
    for cb in model.attached.values():
        cb.half()
    folder = model.save_codebooks(args.out)
    info = {
        "cached_tokens": usable,
        "steps": args.steps,
        "held_out": metrics.to_dict("records"),
        "seconds": seconds,
        "final_reconstruction": history.groupby("site").tail(1).to_dict("records"),
    }
    (folder / "metrics.json").write_text(json.dumps(info, indent=2))
    print(f"saved to {folder}; {json.dumps(seconds)}")


if __name__ == "__main__":
    main()
