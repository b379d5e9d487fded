"""Exact nearest-code search that scores only the clusters of codes a token could be nearest to.

Choosing among 10,000 codes is a tokens x codes matmul at every site, most of a small model's
forward on a CPU. Trained codes lie in clusters, and most clusters are provably too far from a
token to hold its nearest code: every code of a cluster with centre m and radius R (its farthest
code from m) lies at least |q - m| - R from the token q (the triangle inequality), so a cluster
whose bound exceeds the distance to a code already scored is skipped. The answer is the dense
search's; only the work shrinks. Codes that do not cluster leave nothing to skip, and the search
then scores every code, as the dense one does (``Codebook`` then rests from it for a while).

Why the pieces are as they are:
- The clusters (centres, and which code belongs to which) are fixed between rebuilds, but the
  radii are measured on the current vectors at every search, so codes that moved since (an edit, a
  load) never make the answer wrong, only the pruning weaker.
- k-means runs on the distinct vectors: retired codes (``Codebook.retire_twins``) share one far
  value, which then makes one cluster of its own, never scored.
- Tokens are sorted by their nearest centre and searched in blocks of 128: each block first scores
  the clusters its tokens are nearest to (the best of those bounds how far the nearest code can
  be), then the union of the clusters its tokens can still reach, one matmul each. A matmul over a
  few hundred codes is far faster than a gather per token, and Python's cost per block (about 25
  tensor operations) is why blocks are not smaller.
- Bounds are compared with a slack above float32 rounding, so a near-tie is never cut: the answer
  differs from the dense search's only where two codes' scores are within rounding of each other,
  where the dense search's own answer depends on how its matmul is blocked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .scores import argmax_last, kmeans_centroids, nearest_centroids

__all__ = ["CodeIndex", "IndexedChoice", "default_clusters"]

# How much nearer than a skipped code the chosen one must be, relative to the vectors' sizes: well
# above float32 rounding in a distance computed from a score or from the expanded |q - m|^2.
_SLACK = 3e-3


@dataclass(frozen=True)
class IndexedChoice:
    """The chosen code per token and how much of the dense work it took."""

    ids: Tensor  # (N,) code ids
    scored: float  # codes scored per token, as a share of the codebook's size


@dataclass(frozen=True)
class CodeIndex:
    """Clusters of one codebook's code vectors, for ``search``."""

    centres: Tensor  # (K, d)
    assign: Tensor  # (C,) the cluster of each code

    @classmethod
    @torch.no_grad()
    def build(cls, points: Tensor, clusters: int, iters: int = 4) -> CodeIndex:
        """Cluster the code vectors ``points`` (C, d) by k-means on their distinct values (seeded
        alike every time, so the same codes make the same clusters). Clusters left empty are dropped."""
        points = points.detach().float()
        distinct = torch.unique(points, dim=0)
        generator = torch.Generator().manual_seed(0)
        centres = kmeans_centroids(distinct[None], min(clusters, len(distinct)), iters, generator)[0]
        assign = nearest_centroids(points[None], centres[None])[0]
        used = torch.bincount(assign, minlength=len(centres)) > 0
        renumber = torch.cumsum(used, 0) - 1
        return cls(centres[used], renumber[assign])

    @property
    def clusters(self) -> int:
        return len(self.centres)

    @torch.no_grad()
    def search(
        self,
        queries: Tensor,
        points: Tensor,
        bias: Tensor | None,
        scoring: Tensor | None = None,
        block: int = 128,
        slack: float = _SLACK,
    ) -> IndexedChoice:
        """The code maximising ``scoring @ points.T + bias`` for each token, which must be the code
        nearest each of ``queries`` (N, d) among ``points`` (C, d): ``scoring`` is the queries
        themselves (the default) with ``bias = -|c|^2 / 2``, or for cosine similarity the raw inputs
        whose normalised rows are ``queries``, against unit ``points`` and no bias.

        Each block of tokens first scores the clusters its tokens are nearest to; the best of those
        bounds how far the nearest code can be, and only the clusters within reach are scored next.
        """
        scoring = queries if scoring is None else scoring
        n, c, k = len(queries), len(points), self.clusters
        offset = self.centres.median(0).values  # not pulled away by a far cluster of retired codes
        q, anchors = queries - offset, self.centres - offset
        spread = (points - self.centres[self.assign]).norm(dim=-1)
        longest = torch.zeros(k, device=points.device).scatter_reduce(0, self.assign, points.norm(dim=-1), "amax")
        radii = torch.full((k,), float("-inf"), device=points.device).scatter_reduce(0, self.assign, spread, "amax")
        # a code of cluster k is at least sqrt(partial + |q|^2) - radii[k] from the token; a margin
        # of float32 rounding, part per cluster and part per token, keeps a near-tie from being cut
        partial = torch.addmm((anchors * anchors).sum(-1), q, anchors.T, alpha=-2)  # (N, K) |a|^2 - 2 q.a
        own = partial.argmin(-1)
        q_squares = (q * q).sum(-1)
        reach = radii + slack * (anchors.norm(dim=-1) + longest)
        sizes = scoring.norm(dim=-1)
        per_token = slack * (q_squares.sqrt() + sizes + longest[own])
        if bias is None:  # cosine: score = |x| q.c, and d^2 = |q|^2 + 1 - 2 q.c for a unit code
            squares, scale = queries.pow(2).sum(-1) + 1, sizes.clamp_min(1e-30)
        else:
            squares, scale = sizes.square(), torch.ones(n, device=q.device)
        order = torch.argsort(own, stable=True)
        ids = torch.empty(n, dtype=torch.long, device=queries.device)
        scored = 0
        for start in range(0, n, block):
            rows = order[start : start + block]
            x = scoring[rows]
            first = torch.zeros(k, dtype=torch.bool, device=queries.device)
            first[own[rows]] = True
            codes = first[self.assign].nonzero().squeeze(1)
            best, best_id = _best(x, points, bias, codes)
            nearest = (squares[rows] - 2 * best / scale[rows]).clamp_min(0).sqrt() + per_token[rows]
            limit = (nearest[:, None] + reach).square() - q_squares[rows, None]  # (B, K)
            rest = ((partial[rows] <= limit).any(0) & ~first)[self.assign].nonzero().squeeze(1)
            if len(rest):
                more, more_id = _best(x, points, bias, rest)
                better = (more > best) | ((more == best) & (more_id < best_id))
                best_id = torch.where(better, more_id, best_id)
            ids[rows] = best_id
            scored += (len(codes) + len(rest)) * len(rows)
        return IndexedChoice(ids, scored / max(1, n * c))


def _best(x: Tensor, points: Tensor, bias: Tensor | None, codes: Tensor) -> tuple[Tensor, Tensor]:
    """The best score among ``codes`` for each row of x, and its code (the lowest id on ties)."""
    chosen = points[codes].T
    scores = x @ chosen if bias is None else torch.addmm(bias[codes], x, chosen)
    at = argmax_last(scores)
    return scores.gather(1, at[:, None])[:, 0], codes[at]


def default_clusters(codes: int) -> int:
    """About six times the square root of the codebook size: 600 for 10,000 codes (at 300, the
    shipped TokFSM model's layer-2 and layer-3 searches scored 11 % and 24 % of the codes in blocks
    of 64 tokens; at 600, 6 % and 10 %)."""
    return max(8, round(6 * math.sqrt(codes)))
