"""CodeIndex figures, measured in one run.

1. Bytes on disk per token x codebook x slot (target <= 2; the reference keeps int64 codes, 8 bytes,
   in memory), for the codes alone and with the inverted index.
2. A regex search over 1,000,000 tokens x 16 codebooks (synthetic corpus: 5,000 random words, codes
   drawn at random from 1,000 per codebook), the index reopened memory-mapped: median of 20 searches
   (target <= 100 ms), the first search (which decodes the corpus text once) reported apart; a
   per-code look-up, median of 1,000 (target <= 1 ms).
3. Index build throughput on the shipped TokFSM model as a ratio to its plain forward on the same
   batches.

    python benchmarks/index.py
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from cbwidgets.index import CodeIndex
from cbwidgets.names import CodebookNames
from cbwidgets.tokfsm import TokFSM, load_default

TOKENS, CODEBOOKS, CODES = 1_000_000, 16, 1000


def synthetic(rng: np.random.Generator) -> CodeIndex:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocab = [" " + "".join(rng.choice(letters, rng.integers(2, 8))) for _ in range(5000)]
    tokens = rng.integers(0, len(vocab), TOKENS).astype(np.int32)
    codes = rng.integers(0, CODES, (TOKENS, CODEBOOKS, 1)).astype(np.uint16)
    doc_starts = np.arange(0, TOKENS + 1, 1000, dtype=np.int64)
    labels = [f"{i // 4}.{i % 4}" for i in range(CODEBOOKS)]
    return CodeIndex(codes, tokens, doc_starts, vocab, CodebookNames.from_labels(labels, num_codes=[CODES] * CODEBOOKS))


def timed(fn, repeats: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def main() -> None:
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    built = synthetic(rng)
    print(
        f"synthetic index: {TOKENS:,} tokens x {CODEBOOKS} codebooks, inverted in {time.perf_counter() - start:.1f} s"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = built.save(Path(tmp) / "idx")
        slots = TOKENS * CODEBOOKS
        codes_bytes = (folder / "codes.npy").stat().st_size
        total = sum(f.stat().st_size for f in folder.iterdir())
        print(
            f"on disk: codes {codes_bytes / slots:.2f} B per token x codebook x slot (target <= 2: "
            f"{codes_bytes / slots / 2:.2f}x); everything incl. the inverted index, tokens and vocab "
            f"{total / slots:.2f} B"
        )
        index = CodeIndex.open(folder)
        patterns = [" ab", "qu", r" x\w*z", " (th)", "e e"]
        first = timed(lambda: index.search(patterns[0]), 1)[0]
        times = [t for p in patterns for t in timed(lambda p=p: index.search(p), 4)]
        median = statistics.median(times)
        print(
            f"search over 1M tokens x 16 codebooks (memory-mapped): median {median:.1f} ms over {len(times)} "
            f"searches = {median / 100:.2f}x the 100 ms target; first search {first:.0f} ms (decodes the text once)"
        )
        codes = [f"{rng.integers(0, 4)}.{rng.integers(0, 4)}.{rng.integers(0, CODES)}" for _ in range(1000)]
        lookups = [t for c in codes for t in timed(lambda c=c: index.positions(c), 1)]
        median_lookup = statistics.median(lookups)
        print(f"per-code look-up: median {median_lookup * 1000:.0f} us = {median_lookup:.3f}x the 1 ms target")

    model, fsm = load_default(), TokFSM()
    data = fsm.sample(256, 128, seed=0)
    with torch.no_grad():
        forward = statistics.median(timed(lambda: [model(data[i : i + 32]) for i in range(0, 256, 32)], 3))
    build = statistics.median(timed(lambda: CodeIndex.build(model, data, batch_size=32, progress=False), 3))
    print(
        f"build throughput on the TokFSM model ({data.numel():,} tokens, batches of 32): forward {forward:.0f} ms, "
        f"index build {build:.0f} ms; build/forward time = {build / forward:.2f}x "
        f"(throughput ratio {forward / build:.2f})"
    )


if __name__ == "__main__":
    main()
