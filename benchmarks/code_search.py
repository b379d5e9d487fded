"""What the clustered code search (``cbwidgets.code_index``) saves when a model is read: per TokFSM
MLP codebook (10,000 codes), the dense search and the clustered one on the same 2,048 tokens, with
the share of codes the clustered one scored, then a whole forward each way, and whether the codes
and logits agree exactly. ``--state kmeans`` does the same for the codes as the recipe's finetune
phase starts from (k-means centroids on the shipped base model), which is why training keeps the
dense search. Rounds alternate between the two ways; the medians are printed.

    python benchmarks/code_search.py [--state shipped|kmeans] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

import cbwidgets.codebook as codebook_module
from cbwidgets.codebook import Codebook
from cbwidgets.model import CodebookOutput
from cbwidgets.tokfsm import TokFSM, load_default


def timed(fn: Callable[[], object], rounds: int) -> float:
    fn()  # warm: the clusters are made on the first indexed search
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--state", choices=["shipped", "kmeans"], default="shipped")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    fsm, model = TokFSM(), load_default()
    if args.state == "kmeans":
        model.kmeans_init(fsm.sample(128, 128, seed=1), iters=20, seed=0, match_scale=False)
    ids = fsm.batches(128, seed=5)(0, 16)
    with torch.no_grad():
        out = model(ids, capture=True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {ids.numel()} tokens, codes: {args.state}")
    dense_min = codebook_module._INDEX_MIN_CODES
    for i in range(4):
        cb = model.codebooks[f"layers_{i}_mlp"]
        assert isinstance(cb, Codebook)
        xn = cb.normalize(out.inputs[f"layers.{i}.mlp"].reshape(-1, cb.dim))
        with torch.no_grad():
            indexed = timed(lambda cb=cb, xn=xn: cb.select(xn), args.rounds)
            share = cb._index[0].search(xn[:, 0], cb.vectors[0].detach(), -0.5 * cb.vectors[0].detach().pow(2).sum(-1))
            codebook_module._INDEX_MIN_CODES = 10**9
            dense = timed(lambda cb=cb, xn=xn: cb.select(xn), args.rounds)
            codebook_module._INDEX_MIN_CODES = dense_min
        print(
            f"  layers.{i}.mlp  dense {dense:6.1f} ms  clustered {indexed:6.1f} ms  ({indexed / dense:.2f}x)"
            f"  scored {100 * share.scored:5.1f} % of the codes"
        )

    def forward() -> CodebookOutput:
        with torch.no_grad():
            return model(ids)

    indexed_forward, indexed_out = timed(forward, args.rounds), forward()
    codebook_module._INDEX_MIN_CODES = 10**9
    dense_forward, dense_out = timed(forward, args.rounds), forward()
    codebook_module._INDEX_MIN_CODES = dense_min
    same = torch.equal(indexed_out.codes.ids, dense_out.codes.ids) and torch.equal(indexed_out.logits, dense_out.logits)
    print(
        f"  whole forward  dense {dense_forward:6.1f} ms  clustered {indexed_forward:6.1f} ms"
        f"  ({indexed_forward / dense_forward:.2f}x); same codes and logits: {same}"
    )


if __name__ == "__main__":
    main()
