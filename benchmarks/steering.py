"""Topic steering on the shipped storyteller, by the codebook-features paper's protocol, beside its table.

For each topic, the codes that fire most exclusively in the corpus stories about it (a CodeIndex of
the storyteller over its training stories, ``topic_codes``) are held on while sampling 10
continuations of each of the 4 prompts, 200 new tokens, temperature 1. Success: a topic word in the
lowercased sample. Perplexity: of the samples under the storyteller with nothing held on.
Target: on >= 5 topics the steered rate is >= 50 % and >= 3x the baseline, with steered perplexity
within 2x of the baseline's.

    python benchmarks/steering.py [--codebooks 0.] [--codes 8] [--rule replace] [--strength 1.25] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from cbwidgets import storyteller
from cbwidgets.index import CodeIndex
from cbwidgets.steering import REFERENCE_RESULTS, REFERENCE_TOPICS, evaluate_steering, topic_codes
from cbwidgets.stories import load_stories, split_stories


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--codebooks", default="0.", help="where topic codes are taken from (a label prefix)")
    parser.add_argument("--codes", type=int, default=8, help="topic codes per topic")
    parser.add_argument("--per-codebook", type=int, default=8)
    parser.add_argument("--rule", default="replace", choices=["replace", "add"])
    parser.add_argument("--strength", type=float, default=1.25)
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--new-tokens", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--topics", default=",".join(REFERENCE_TOPICS), help="comma-separated topic regexes")
    args = parser.parse_args()
    start = time.perf_counter()
    model = storyteller()
    train, _ = split_stories(load_stories())
    index = CodeIndex.build(model, [s.text for s in train], batch_size=16, progress=False)
    built = time.perf_counter() - start
    topics = args.topics.split(",")
    codes = {
        t: topic_codes(index, t, args.codebooks, per_codebook=args.per_codebook, limit=args.codes)["code"].tolist()
        for t in topics
    }
    start = time.perf_counter()
    table = evaluate_steering(
        model,
        codes,
        samples=args.samples,
        new_tokens=args.new_tokens,
        rule=args.rule,
        strength=args.strength,
        seed=args.seed,
        progress=False,
    )
    ran = time.perf_counter() - start
    reference = pd.DataFrame(
        [(t, b / 100, s / 100) for t, (b, s) in REFERENCE_RESULTS.items()],
        columns=["topic", "ref_baseline", "ref_steered"],
    )
    shown = table.merge(reference, on="topic", how="left")
    ok = (shown["steered"] >= 0.5) & (shown["steered"] >= 3 * shown["baseline"]) & (shown["ppl_ratio"] <= 2)
    shown["target_met"] = ok
    print(
        f"storyteller, codes from {args.codebooks!r} ({args.codes} per topic, at most {args.per_codebook} per "
        f"codebook), rule {args.rule} x{args.strength:g}; {args.samples} samples x 4 prompts, {args.new_tokens} "
        f"new tokens, temperature 1; index over {index.num_tokens:,} tokens built in {built:.0f} s; "
        f"sampling took {ran:.0f} s"
    )
    print(shown.to_string(index=False, float_format="%.3f"))
    print(f"topics meeting the target (>= 50 %, >= 3x baseline, perplexity <= 2x): {int(ok.sum())} of {len(shown)}")
    for topic in topics[:2]:
        print(f"\nA steered sample for {topic!r}:\n{table.attrs['samples'][topic][0][:400]}")


if __name__ == "__main__":
    main()
