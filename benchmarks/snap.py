"""How close is the codebook forward to the cost of a bare ``matmul + topk``?

Prints, for each shape, the median time of the codebook (inference mode) over the median time of
``topk(x @ codes.T)`` on the same inputs, measured interleaved in one run with 2 threads. The
target is <= 1.10x on every row. Also prints forward + backward against the floor's
forward + backward (the floor back-propagates through its matmul; the codebook does not need to).

    python benchmarks/snap.py [--repeats 15] [--similarity cosine]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from cbwidgets.codebook import SIMILARITIES, Codebook

ROWS = [
    # T, d, C, k, groups
    (4096, 128, 1_000, 1, 1),
    (4096, 128, 10_000, 1, 1),
    (4096, 128, 10_000, 8, 1),
    (2048, 768, 10_000, 8, 1),
    (4096, 128, 1_000, 1, 4),
    (4096, 128, 10_000, 8, 4),
]


def _median_pair(a: Callable[[], object], b: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median seconds of a and b, alternating so drift on a noisy machine hits both alike."""
    for _ in range(2):
        a()
        b()
    ta, tb = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a()
        ta.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        b()
        tb.append(time.perf_counter() - t0)
    return statistics.median(ta), statistics.median(tb)


def measure(t: int, d: int, c: int, k: int, g: int, similarity: str, repeats: int) -> tuple[float, float, float, float]:
    torch.manual_seed(0)
    cb = Codebook(c, d, k=k, groups=g, similarity=similarity)
    x = torch.randn(t, d)
    dg = d // g
    # The floor gets its inputs already in the layout it wants.
    xf = x.reshape(t, g, dg).transpose(0, 1).contiguous() if g > 1 else x
    codes_t = cb.vectors.detach().transpose(1, 2).contiguous() if g > 1 else cb.vectors.detach()[0].T.contiguous()

    def floor() -> object:
        with torch.inference_mode():
            scores = torch.bmm(xf, codes_t) if g > 1 else xf @ codes_t
            return scores.topk(k, dim=-1)

    def codebook() -> object:
        with torch.inference_mode():
            return cb(x)

    floor_s, cb_s = _median_pair(floor, codebook, repeats)

    xg = x.clone().requires_grad_(True)
    xfg = xf.clone().requires_grad_(True)
    cfg = codes_t.clone().requires_grad_(True)

    def floor_fb() -> None:
        scores = torch.bmm(xfg, cfg) if g > 1 else xfg @ cfg
        scores.topk(k, dim=-1).values.sum().backward()

    def codebook_fb() -> None:
        snap = cb(xg)
        assert snap.loss is not None
        (snap.output.sum() + snap.loss).backward()

    floor_fb_s, cb_fb_s = _median_pair(floor_fb, codebook_fb, max(5, repeats // 2))
    return floor_s, cb_s, floor_fb_s, cb_fb_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--similarity", choices=SIMILARITIES, default="cosine")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, similarity={args.similarity}")
    header = (
        f"{'T':>5} {'d':>4} {'C':>6} {'k':>2} {'G':>2} | {'floor ms':>8} {'cb ms':>8} {'fwd x':>6} | "
        f"{'floor f+b':>9} {'cb f+b':>8} {'f+b x':>6}"
    )
    print(header)
    print("-" * len(header))
    worst = 0.0
    for t, d, c, k, g in ROWS:
        f, cb, ffb, cbfb = measure(t, d, c, k, g, args.similarity, args.repeats)
        worst = max(worst, cb / f)
        print(
            f"{t:>5} {d:>4} {c:>6} {k:>2} {g:>2} | {f * 1e3:8.1f} {cb * 1e3:8.1f} {cb / f:6.2f} | "
            f"{ffb * 1e3:9.1f} {cbfb * 1e3:8.1f} {cbfb / ffb:6.2f}"
        )
    print(f"worst forward ratio: {worst:.2f}x (target <= 1.10x)")


if __name__ == "__main__":
    main()
