"""What codebooks cost a training step: tokens per second with codebooks, as a ratio to the same
model's step without them, at two sizes, all measured in one run.

- ``tokfsm``: the default TokFSM model (GPT-NeoX, 4 layers, d 128, codebooks at every attention
  head, 1,000 codes each, and every MLP, 10,000 codes each, k = 1), 16 walks of 128 tokens a step.
- ``gpt2``: a GPT-2-sized model (12 layers, d 768, 12 heads, vocabulary 50,257) with a
  10,000-code codebook at every MLP (k = 1), ``--gpt2-batch`` sequences of ``--gpt2-length`` tokens.

Each step is a whole joint training step (forward, backward, AdamW, the codebooks' usage counters
and dead-code revival), run through ``cbwidgets.train``. "plain" is the same model and step inside
``codebooks_disabled()``; "LayerNorm only" keeps each codebook's LayerNorm but snaps nothing, which
splits the codebooks' cost into their LayerNorm and the rest (choosing codes, the look-up, the
reconstruction loss). "lazy codes" is the codebook step with ``TrainConfig(lazy_codes=True)``:
AdamW moves only the code vectors the step chose. Rounds alternate so drift in the machine's speed
falls on all alike; the medians are printed. ``--profile`` adds a torch profile of codebook steps:
the ops where the time goes. Target: codebooks cost at most 1.3x a plain step.

    python benchmarks/train_throughput.py [--sizes tokfsm gpt2] [--steps 20] [--rounds 3] [--profile]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

import torch
from transformers import GPT2Config

from cbwidgets import CodebookModel
from cbwidgets.tokfsm import TokFSM, build_default_model
from cbwidgets.train import TrainConfig, train

TARGET = 1.3


def tokfsm_case(length: int) -> tuple[CodebookModel, Callable[[int, int], torch.Tensor]]:
    fsm = TokFSM()
    return build_default_model(fsm), fsm.batches(length, seed=0)


def gpt2_case(length: int) -> tuple[CodebookModel, Callable[[int, int], torch.Tensor]]:
    config = GPT2Config(n_layer=12, n_embd=768, n_head=12, n_positions=1024, vocab_size=50257)
    model = CodebookModel.from_config(config, seed=0)
    model.attach("mlp", num_codes=10_000, k=1)

    def batches(step: int, size: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(step)
        return torch.randint(0, config.vocab_size, (size, length), generator=generator)

    return model, batches


CASES = {"tokfsm": tokfsm_case, "gpt2": gpt2_case}


def seconds_per_step(
    model: CodebookModel, batches: Callable[[int, int], torch.Tensor], batch: int, steps: int, mode: str
) -> float:
    modes: dict[str, Callable[[], AbstractContextManager[object]]] = {
        "codebooks": nullcontext,
        "lazy codes": nullcontext,
        "LayerNorm only": model.normalize_only,
        "plain": model.codebooks_disabled,
    }
    lazy = mode == "lazy codes"
    config = TrainConfig(steps=steps + 1, batch_size=batch, lr=1e-4, log_every=1, progress=False, lazy_codes=lazy)
    clock = [0.0]

    def first_step_done(metrics: dict[str, float]) -> None:  # the first step warms up; time the rest
        if metrics["step"] == 1:
            clock[0] = time.perf_counter()

    with modes[mode]():
        train(model, batches, config, callbacks=[first_step_done])
    return (time.perf_counter() - clock[0]) / steps


def profile(model: CodebookModel, batches: Callable[[int, int], torch.Tensor], batch: int, steps: int) -> str:
    config = TrainConfig(steps=steps, batch_size=batch, lr=1e-4, log_every=10_000, progress=False)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        train(model, batches, config)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", choices=sorted(CASES), default=["tokfsm", "gpt2"])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per round (TokFSM)")
    parser.add_argument("--gpt2-steps", type=int, default=3, help="timed steps per round (GPT-2 size)")
    parser.add_argument("--gpt2-batch", type=int, default=4)
    parser.add_argument("--gpt2-length", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for size in args.sizes:
        batch, length, steps = (
            (16, 128, args.steps) if size == "tokfsm" else (args.gpt2_batch, args.gpt2_length, args.gpt2_steps)
        )
        model, batches = CASES[size](length)
        times: dict[str, list[float]] = {"plain": [], "LayerNorm only": [], "codebooks": [], "lazy codes": []}
        for _ in range(args.rounds):
            for mode in times:
                times[mode].append(seconds_per_step(model, batches, batch, steps, mode))
        print(f"\n{size}: {batch} x {length} tokens a step, {steps} timed steps x {args.rounds} rounds")
        median = {mode: statistics.median(values) for mode, values in times.items()}
        for mode, values in times.items():
            rounds = ", ".join(f"{1000 * v:.0f}" for v in values)
            print(
                f"  {mode:15s} {1000 * median[mode]:8.1f} ms/step  {batch * length / median[mode]:9.0f} tokens/s"
                f"  (rounds: {rounds})"
            )
        print(f"  LayerNorm only / plain: {median['LayerNorm only'] / median['plain']:.3f}")
        for mode in ("codebooks", "lazy codes"):
            ratio = median[mode] / median["plain"]
            verdict = "met" if ratio <= TARGET else "MISSED"
            print(f"  ratio {mode} / plain: {ratio:.3f}  (target <= {TARGET})  {verdict}")
        if args.profile:
            print(f"\n  profile of {steps} codebook steps ({size}):")
            print(profile(model, batches, batch, steps))


if __name__ == "__main__":
    main()
