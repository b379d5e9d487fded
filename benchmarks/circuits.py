"""How long the exact code graph takes, against the naive way, and how well the gradient estimate agrees.

For the shipped TokFSM model (a 128-token walk, its 20 codebooks) and the storyteller (64 tokens of a
held-out story, its 16 head codebooks, k = 8), with the model's own top prediction at the last
token as the target (log-probability):
- exact: ``ablation_effects``, every code that fired and can reach the target;
- naive: the same numbers by one batched forward of the whole prompt per ablated code (64 rows a
  forward); checked equal to the exact ones;
- gradient: ``attribution``, and its Spearman rank correlation with the exact effects, over every
  node and over the 50 strongest.
Targets on 2 cores: exact <= 2 s (TokFSM) and <= 15 s (storyteller), and <= 0.5x the naive way.

    python benchmarks/circuits.py [--mode substitute] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import torch

from cbwidgets import AblateEach, CodebookModel, storyteller
from cbwidgets.circuits import NextToken, ablation_effects, attribution
from cbwidgets.stories import load_stories, split_stories
from cbwidgets.tokfsm import TokFSM, load_default


def _naive(
    model: CodebookModel, prompt: torch.Tensor, target: NextToken, codes: list[str], positions: list[int], mode: str
) -> torch.Tensor:
    """log p(target) with each code removed, one whole-prompt forward per code, 64 to a batch."""
    values = []
    with torch.no_grad():
        for start in range(0, len(codes), 64):
            rows = slice(start, start + 64)
            n = len(codes[rows])
            with model.intervene(AblateEach(codes[rows], positions[rows], mode=mode)):
                logits = model(prompt.expand(n, -1)).logits[:, -1].float()
            values.append(logits.log_softmax(-1)[:, int(target.token)])
    return torch.cat(values)


def run(name: str, model: CodebookModel, prompt: torch.Tensor, mode: str, limit: float) -> None:
    predicted = int(model(prompt).logits[0, -1].argmax())
    target = NextToken(predicted, measure="logprob")
    ablation_effects(model, prompt[:, :16], target, mode=mode)  # warm up
    start = time.perf_counter()
    exact = ablation_effects(model, prompt, target, mode=mode)
    exact_s = time.perf_counter() - start
    start = time.perf_counter()
    naive = exact.attrs["clean"] - _naive(model, prompt, target, list(exact.code), list(exact.position), mode)
    naive_s = time.perf_counter() - start
    differ = float((naive - torch.tensor(exact.effect.to_numpy())).abs().max())
    start = time.perf_counter()
    estimate = attribution(model, prompt, target, mode=mode)
    grad_s = time.perf_counter() - start
    both = exact.merge(estimate, on=["position", "code", "slot"], suffixes=("", "_grad"))
    every = both[["effect", "effect_grad"]].corr(method="spearman").iloc[0, 1]
    top = both.head(50)[["effect", "effect_grad"]].corr(method="spearman").iloc[0, 1]
    codebooks = len(model.names)
    print(f"\n{name}: {prompt.shape[1]} tokens x {codebooks} codebooks, {len(exact)} codes tried, mode {mode}")
    print(f"  exact      {exact_s:7.2f} s   (target <= {limit:g} s: {'met' if exact_s <= limit else 'MISSED'})")
    ratio = exact_s / naive_s
    verdict = "met" if ratio <= 0.5 else "MISSED"
    print(f"  naive      {naive_s:7.2f} s   exact / naive {ratio:.3f} (target <= 0.5: {verdict})")
    print(f"  largest |exact - naive| {differ:.1e}")
    print(f"  gradient   {grad_s:7.2f} s   Spearman with exact: {every:.3f} over all, {top:.3f} over the 50 strongest")
    print("  strongest:", ", ".join(f"{r.code}@{r.position} {r.effect:+.3f}" for r in exact.head(5).itertuples()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", default="substitute", choices=["substitute", "drop"])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    fsm = TokFSM()
    run("TokFSM default model", load_default(), fsm.sample(1, 128, seed=3), args.mode, 2.0)
    model = storyteller()
    _, held_out = split_stories(load_stories())
    text = next(story.text for story in held_out if model.tokenize(story.text).shape[1] >= 65)
    run("storyteller", model, model.tokenize(text)[:, :64], args.mode, 15.0)


if __name__ == "__main__":
    main()
