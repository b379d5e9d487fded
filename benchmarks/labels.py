"""How often the proposed labels get the known answer, and how long a proposal takes.

- TokFSM default model: the MLP codes of layers 1-3 that fire on one state (>= 90 % of their
  firings at states' ends are at one state's, 5 or more firings): the share whose first proposal is
  a rule ending in that state's digits, firing on its last, with held-out precision >= 0.9
  (target >= 80 %). Index: 400 walks of 128 tokens.
- storyteller: for each topic word, the codes ``topic_codes`` finds for it (layer 0, 16 per topic)
  over an index of the training stories; the share whose first proposal (and whose best three) is a
  rule about a text on that topic ("in a text about 'dragon'"; "friends" counts for "friend"); the
  same share among the codes with 70 % or more of their firings in that topic's stories.
- ``--lm``: the same for the first 3 topic codes of each topic with SmolLM2-135M-Instruct as the
  proposer (``LMProposer``), alone: how often one of its rules names the topic, how often that rule
  holds (held-out precision >= 0.9), how often the first proposal is its, and seconds a code.

    python benchmarks/labels.py [--threads 2] [--no-stories] [--lm]
"""

from __future__ import annotations

import argparse
import re
import time

import numpy as np
import pandas as pd
import torch

from cbwidgets import storyteller
from cbwidgets.index import CodeIndex
from cbwidgets.label_proposals import propose_labels
from cbwidgets.steering import topic_codes
from cbwidgets.stories import load_stories, split_stories
from cbwidgets.tokfsm import TokFSM, load_default
from cbwidgets.tokfsm.state_labels import state_labels

TOPICS = ("dragon", "flower", "baby", "fire", "slide", "friend", "king")


def tokfsm() -> None:
    model, fsm = load_default(), TokFSM()
    index = CodeIndex.build(model, fsm.sample(400, 128, seed=21), progress=False)
    start = time.perf_counter()
    table = state_labels(model, fsm, index)
    seconds = time.perf_counter() - start
    named, tried = int(table.named.sum()), len(table)
    verdict = "met" if named >= 0.8 * tried else "MISSED"
    print(f"\nTokFSM: {tried} MLP codes of layers 1-3 fire on one state (and 10+ times in the index)")
    print(f"  first proposal names the state, held-out precision >= 0.9: {named}/{tried} = {named / tried:.1%}")
    print(f"  (target >= 80 %: {verdict}); {1000 * seconds / tried:.0f} ms per code")
    print("  e.g.", "; ".join(f"{r.code} (state {r.state}): {r.label}" for r in table.head(3).itertuples()))


def story_index() -> CodeIndex:
    model = storyteller()
    train, _ = split_stories(load_stories())
    start = time.perf_counter()
    index = CodeIndex.build(model, [story.text for story in train], batch_size=16, progress=False)
    print(f"\nstoryteller: index of {index.num_tokens:,} tokens in {time.perf_counter() - start:.0f} s")
    return index


def names(topic: str, table: pd.DataFrame) -> list[bool]:
    """Which rows are rules about texts on the topic ("in a text about 'friends'" names "friend")."""
    return [
        bool(about and re.search(rf"\b{topic}", phrase))
        for phrase, about in zip(table.phrase, table.topic, strict=True)
    ]


def stories(index: CodeIndex) -> None:
    print("  topic    codes  first proposal about the topic  any of the best 3 | codes with >= 70 % of their")
    print("                                                                    | firings in its stories, first")
    totals = np.zeros(5, dtype=np.int64)
    for topic in TOPICS:
        found = topic_codes(index, topic, "0.", per_codebook=8, limit=16)
        counts = np.zeros(5, dtype=np.int64)
        for code, precision in zip(found.code, found.precision, strict=True):
            named = names(topic, propose_labels(index, code, top=3))
            first = bool(named and named[0])
            clear = precision >= 0.7  # mostly fires in the topic's stories: a topic code beyond doubt
            counts += (1, first, any(named), clear, clear and first)
        print(f"  {topic:8} {counts[0]:5}  {counts[1]:5}  {counts[2]:5}  | {counts[3]:5}  {counts[4]:5}")
        totals += counts
    print(
        f"  all      {totals[0]:5}  {totals[1] / totals[0]:.1%}  {totals[2] / totals[0]:.1%}  | {totals[3]:5}  "
        f"{totals[4] / max(totals[3], 1):.1%}"
    )


def with_lm(index: CodeIndex) -> None:
    from cbwidgets.lm_proposer import LMProposer
    from cbwidgets.smollm import load_smollm2

    proposer = LMProposer(load_smollm2(codebooks=False))
    print("\nSmolLM2-135M-Instruct as the proposer, the first 3 topic codes of each topic")
    print("  topic    codes  a rule of its names the topic  that rule holds (>= 0.9)  first proposal is its")
    totals = np.zeros(4, dtype=np.int64)
    start = time.perf_counter()
    for topic in TOPICS:
        counts = np.zeros(4, dtype=np.int64)
        for code in topic_codes(index, topic, "0.", per_codebook=8, limit=3).code:
            table = propose_labels(index, code, top=100, proposer=proposer)
            mine = table[table.source.str.contains("proposer")]
            named = mine[names(topic, mine)]
            counts += (1, len(named) > 0, bool((named.precision >= 0.9).any()), "proposer" in table.source[0])
        print(f"  {topic:8} {counts[0]:5}  {counts[1]:5}  {counts[2]:5}  {counts[3]:5}")
        totals += counts
    seconds = (time.perf_counter() - start) / totals[0]
    shares = "  ".join(f"{n / totals[0]:.1%}" for n in totals[1:])
    print(f"  all      {totals[0]:5}  {shares}")
    print(f"  {seconds:.1f} s a code; its last answers: {proposer.answers}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-stories", action="store_true", help="skip the storyteller's topics")
    parser.add_argument("--lm", action="store_true", help="also SmolLM2-135M-Instruct as the proposer")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    tokfsm()
    if not args.no_stories or args.lm:
        index = story_index()
        if not args.no_stories:
            stories(index)
        if args.lm:
            with_lm(index)


if __name__ == "__main__":
    main()
