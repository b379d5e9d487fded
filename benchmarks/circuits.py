"""How long the exact code graph takes, against the naive way, and how well the gradient estimate agrees.

For the shipped TokFSM model (a 128-token walk, its 20 codebooks) and the storyteller (64 tokens of a
held-out story, its 16 head codebooks, k = 8), with the model's own top prediction at the last
token as the target (log-probability):
- exact: ``ablation_effects``, every code that fired and can reach the target (best of 3 runs);
- naive: the same numbers by one batched forward of the whole prompt per ablated code (64 rows a
  forward, best of 2 runs); checked equal to the exact ones;
- gradient: ``attribution``, and its Spearman rank correlation with the exact effects, over every
  node and over the 50 strongest.
Targets on 2 cores: exact <= 2 s (TokFSM) and <= 15 s (storyteller), and <= 0.5x the naive way.

Then the storyteller's known answer: for held-out stories about a topic, the prediction of the topic
word at its last mention within 128 tokens (past token 40); how common the topic codes
(``topic_codes`` from an index of the training stories, 16 from layer 0) are among the 20 strongest
codes, against how common they are among all codes tried.

About 3 minutes, and 10 more for the topics (an index of the training stories, then up to 6 stories
of up to 128 tokens per topic).

    python benchmarks/circuits.py [--mode substitute] [--threads 2] [--no-topics]
"""

from __future__ import annotations

import argparse
import time

import torch

from cbwidgets import AblateEach, CodebookModel, storyteller
from cbwidgets.circuits import NextToken, ablation_effects, attribution
from cbwidgets.index import CodeIndex
from cbwidgets.steering import topic_codes
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
    exact_s = naive_s = float("inf")
    for _ in range(3):  # the best of three: this machine's timings jump by a third from run to run
        start = time.perf_counter()
        exact = ablation_effects(model, prompt, target, mode=mode)
        exact_s = min(exact_s, time.perf_counter() - start)
    for _ in range(2):
        start = time.perf_counter()
        naive = exact.attrs["clean"] - _naive(model, prompt, target, list(exact.code), list(exact.position), mode)
        naive_s = min(naive_s, time.perf_counter() - start)
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


def topics(model: CodebookModel, mode: str) -> None:
    """Topic codes among the strongest codes for the topic word's prediction, against their base rate."""
    train, held_out = split_stories(load_stories())
    start = time.perf_counter()
    index = CodeIndex.build(model, [story.text for story in train], batch_size=16, progress=False)
    print(
        f"\nstoryteller topic codes (index of {index.num_tokens:,} tokens built in {time.perf_counter() - start:.0f} s)"
    )
    print("  topic    story  target  topic codes among the 20 strongest / among all codes tried")
    pooled_top, pooled_all = [], []
    for topic in ("dragon", "flower", "baby", "fire", "slide", "friend", "king"):
        (word,) = model.tokenizer.encode(" " + topic, add_special_tokens=False)
        chosen = set(topic_codes(index, topic, "0.", per_codebook=8, limit=16).code)
        for number, story in enumerate(s for s in held_out if topic in s.text.lower()):
            if number == 6:
                break
            ids = model.tokenize(story.text)[0]
            mentions = [i for i in range(40, min(len(ids), 128)) if int(ids[i]) == word]
            if not mentions:
                continue
            found = ablation_effects(model, ids[None, : mentions[-1]], NextToken(word, measure="logprob"), mode=mode)
            top, every = found.head(20).code.isin(chosen).mean(), found.code.isin(chosen).mean()
            pooled_top.append(top)
            pooled_all.append(every)
            print(f"  {topic:8} {number:5} {mentions[-1]:7}  {top:.2f} / {every:.3f}")
    mean_top, mean_all = sum(pooled_top) / len(pooled_top), sum(pooled_all) / len(pooled_all)
    print(f"  pooled over {len(pooled_top)} stories: {mean_top:.3f} / {mean_all:.3f} ({mean_top / mean_all:.1f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", default="substitute", choices=["substitute", "drop"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-topics", action="store_true", help="skip the storyteller's topic-code check")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    fsm = TokFSM()
    run("TokFSM default model", load_default(), fsm.sample(1, 128, seed=3), args.mode, 2.0)
    model = storyteller()
    _, held_out = split_stories(load_stories())
    text = next(story.text for story in held_out if model.tokenize(story.text).shape[1] >= 65)
    run("storyteller", model, model.tokenize(text)[:, :64], args.mode, 15.0)
    if not args.no_topics:
        topics(model, args.mode)


if __name__ == "__main__":
    main()
