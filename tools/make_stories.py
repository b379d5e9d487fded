"""Generate the story corpus: SmolLM2-135M-Instruct writes short children's stories on set topics.

Run once (it appends, so it can be resumed); the output is JSON lines {"topic", "seed", "story"},
gzip-compressed. Stories written by SmolLM2-135M-Instruct (Apache-2.0).

    python tools/make_stories.py --out data/stories.jsonl.gz --minutes 40

Batches of 48 sampled at temperature 0.9 (greedy decoding repeats itself); topics cycle so every
topic gets about the same number of stories. Each batch's seed is recorded.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path

import torch

from cbwidgets.smollm import load_smollm2

# The reference's steering topics first (prince|crown|king|castle becomes "a prince and his castle"),
# then everyday topics so the corpus is not only about them.
TOPICS = [
    "a dragon",
    "a slide at the playground",
    "a good friend",
    "a flower",
    "a fire",
    "a prince and his castle",
    "a baby",
    "a cat",
    "a dog",
    "the rain",
    "the sea",
    "a train",
    "a birthday party",
    "a big tree",
    "the moon",
    "school",
    "a ball",
    "a robot",
    "a garden",
    "a bird",
    "snow",
    "a boat",
    "a bear",
    "cookies",
]
ASK = "Write a short story for young children about {topic}. Use simple words."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="data/stories.jsonl.gz")
    parser.add_argument("--minutes", type=float, default=40.0)
    parser.add_argument("--batch", type=int, default=48)
    parser.add_argument("--new-tokens", type=int, default=300)
    args = parser.parse_args()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = 0
    if out.exists():
        with gzip.open(out, "rt", encoding="utf-8") as f:
            done = sum(1 for _ in f)
    model = load_smollm2()
    base, tok = model.model, model.tokenizer
    tok.padding_side = "left"
    deadline = time.monotonic() + 60 * args.minutes
    seed, written, tokens = done, 0, 0
    start = time.monotonic()
    while time.monotonic() < deadline:
        topics = [TOPICS[(seed * args.batch + i) % len(TOPICS)] for i in range(args.batch)]
        chats = [
            tok.apply_chat_template(
                [{"role": "user", "content": ASK.format(topic=t)}], tokenize=False, add_generation_prompt=True
            )
            for t in topics
        ]
        batch = tok(chats, return_tensors="pt", padding=True)
        torch.manual_seed(seed)
        with torch.no_grad():
            ids = base.generate(
                **batch,
                max_new_tokens=args.new_tokens,
                do_sample=True,
                temperature=0.9,
                top_p=0.95,
                pad_token_id=tok.pad_token_id,
            )
        new = ids[:, batch["input_ids"].shape[1] :]
        texts = tok.batch_decode(new, skip_special_tokens=True)
        with gzip.open(out, "at", encoding="utf-8") as f:
            for topic, text in zip(topics, texts, strict=True):
                f.write(json.dumps({"topic": topic, "seed": seed, "story": text.strip()}) + "\n")
        written += len(texts)
        tokens += int((new != tok.pad_token_id).sum())
        rate = tokens / (time.monotonic() - start)
        print(f"batch {seed}: {written} stories, {tokens:,} tokens, {rate:.0f} tokens/s", flush=True)
        seed += 1


if __name__ == "__main__":
    main()
