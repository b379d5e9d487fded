"""The codebook bottleneck: an activation is replaced by the mean of its k most similar codes.

Design choices that matter for speed and correctness:
- The snap (similarity + top-k) runs without autograd: the chosen ids are not differentiable, so
  recording the T x C score matrix for backward would only cost memory and a matmul's worth of
  backward time. Gradients reach the codes through the look-up and the input through the
  straight-through path.
- Cosine and euclidean similarity are folded into the code matrix (normalised codes; codes
  augmented with -|c|^2 / 2), so the score pass is one plain matmul and never a second pass over
  the T x C scores.
- G groups (one codebook per attention head) are one batched matmul, not a Python loop.
- Interventions arrive as a compiled ``CodeEdit`` value; the codebook keeps no intervention state.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .errors import CodebookError, check_choice, check_positive_int

__all__ = [
    "LOSSES",
    "SIMILARITIES",
    "CodeEdit",
    "Codebook",
    "CodebookSpec",
    "Snap",
]

SIMILARITIES = ("cosine", "inner", "euclidean")
LOSSES = ("aeloss", "vqvae", "fullaeloss")

# Score matrices above this many elements are computed in row chunks to bound memory (256 MB fp32).
_MAX_SCORE_ELEMENTS = 1 << 26


@dataclass(frozen=True)
class CodebookSpec:
    """Everything needed to rebuild a codebook; stored as JSON next to the weights."""

    num_codes: int
    dim: int
    k: int = 1
    groups: int = 1
    similarity: str = "cosine"
    loss: str = "aeloss"
    revive_after: int | None = None
    commitment: float = 0.25

    def __post_init__(self) -> None:
        for name in ("num_codes", "dim", "k", "groups"):
            check_positive_int(name, getattr(self, name))
        if self.k > self.num_codes:
            raise CodebookError(
                f"k={self.k} is larger than num_codes={self.num_codes}; k must be between 1 and "
                f"num_codes (typical: k = 1..8 of 1,000..10,000 codes)."
            )
        if self.dim % self.groups:
            divisors = [g for g in range(1, self.dim + 1) if self.dim % g == 0]
            raise CodebookError(
                f"groups={self.groups} does not divide dim={self.dim}; valid group counts for this dim: {divisors}."
            )
        check_choice("similarity", self.similarity, SIMILARITIES)
        check_choice("loss", self.loss, LOSSES)
        if self.revive_after is not None and (not isinstance(self.revive_after, int) or self.revive_after < 1):
            raise CodebookError(
                f"revive_after={self.revive_after!r} is not valid; give a positive number of "
                f"training steps, or None to never revive dead codes."
            )

    @property
    def group_dim(self) -> int:
        return self.dim // self.groups

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CodebookSpec:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise CodebookError(f"unknown codebook settings {sorted(unknown)}; valid settings: {sorted(known)}.")
        return cls(**data)


@dataclass(frozen=True)
class CodeEdit:
    """A compiled intervention for one codebook, built fresh for each forward.

    Each op carries a boolean mask over the flattened tokens of this forward (None = every token):
    - ``scores``: (mask, codes (G, C) bool, value): set those codes' scores to value before top-k;
      -inf removes a code so the next-best one takes its slot, +inf forces it in.
    - ``weights``: (mask, factor (G, C) float, drop): multiply a chosen code's contribution; with
      drop the slot is reported as -1.
    - ``replace``: (mask (N, G) bool, ids (N, G, k)): overwrite the ids of the masked token/group
      pairs (patching another prompt's codes in).
    - ``add``: (mask, strength (G, C) float): add code vectors on top of the chosen ones; strength 1
      adds as much as one of the k slots contributes. The reported ids do not change.
    """

    scores: tuple[tuple[Tensor | None, Tensor, float], ...] = ()
    weights: tuple[tuple[Tensor | None, Tensor, bool], ...] = ()
    replace: tuple[tuple[Tensor, Tensor], ...] = ()
    add: tuple[tuple[Tensor | None, Tensor], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.scores or self.weights or self.replace or self.add)


class Snap(NamedTuple):
    """What one codebook forward produces."""

    output: Tensor  # same shape and dtype as the input
    ids: Tensor  # (..., groups, k) int64; -1 marks a dropped slot
    loss: Tensor | None  # reconstruction loss; None when autograd is off


class Codebook(nn.Module):
    """G independent codebooks of ``num_codes`` codes over ``dim / G`` chunks of the input."""

    hits: Tensor  # (G, C) times each code fired in training
    steps_since_used: Tensor  # (G, C) training steps since each code last fired
    revived: Tensor  # (G,) codes revived so far

    def __init__(
        self,
        num_codes: int,
        dim: int,
        k: int = 1,
        groups: int = 1,
        similarity: str = "cosine",
        loss: str = "aeloss",
        revive_after: int | None = None,
        commitment: float = 0.25,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.spec = CodebookSpec(num_codes, dim, k, groups, similarity, loss, revive_after, commitment)
        g, c, dg = groups, num_codes, self.spec.group_dim
        self.eps = eps
        self.codes = nn.Parameter(torch.randn(g, c, dg) / math.sqrt(dg))
        self.ln_weight = nn.Parameter(torch.ones(g, dg))
        self.ln_bias = nn.Parameter(torch.zeros(g, dg))
        # Usage counters, readable by users and saved with the weights.
        self.register_buffer("hits", torch.zeros(g, c, dtype=torch.long))
        self.register_buffer("steps_since_used", torch.zeros(g, c, dtype=torch.long))
        self.register_buffer("revived", torch.zeros(g, dtype=torch.long))
        self._step_hits: Tensor | None = None
        self._last_inputs: Tensor | None = None

    @property
    def num_codes(self) -> int:
        return self.spec.num_codes

    @property
    def k(self) -> int:
        return self.spec.k

    @property
    def groups(self) -> int:
        return self.spec.groups

    @property
    def dim(self) -> int:
        return self.spec.dim

    def extra_repr(self) -> str:
        s = self.spec
        return (
            f"num_codes={s.num_codes}, dim={s.dim}, k={s.k}, groups={s.groups}, "
            f"similarity={s.similarity!r}, loss={s.loss!r}"
        )

    # ---------------------------------------------------------------- forward
    def normalize(self, x: Tensor) -> Tensor:
        """The codebook's own LayerNorm, per group: returns (N, G, dg)."""
        g, dg = self.groups, self.spec.group_dim
        if g == 1:
            xn = F.layer_norm(x, (dg,), self.ln_weight[0], self.ln_bias[0], self.eps)
            return xn.reshape(-1, 1, dg)
        xg = x.reshape(-1, g, dg)
        return F.layer_norm(xg, (dg,), None, None, self.eps) * self.ln_weight + self.ln_bias

    def forward(self, x: Tensor, edit: CodeEdit | None = None) -> Snap:
        if x.shape[-1] != self.dim:
            raise CodebookError(f"input has feature size {x.shape[-1]} but this codebook expects dim={self.dim}.")
        if not x.is_floating_point():
            raise CodebookError(
                f"input dtype {x.dtype} is not valid; the codebook takes floating-point "
                f"activations (float32, float16 or bfloat16)."
            )
        lead = x.shape[:-1]
        xn = self.normalize(x)  # (N, G, dg)
        ids = self.select(xn.detach(), edit)
        weights = self._weights(ids, edit) if edit else None
        q = self.lookup(ids, weights).reshape(xn.shape)
        if edit and edit.add:
            q = q + self._added(edit, q.shape[0])

        loss = None
        if self.spec.loss == "vqvae":
            out = xn + (q - xn).detach()
        else:
            out = q + (xn - xn.detach())
        if torch.is_grad_enabled():
            loss = self._loss(q, xn)

        if self.training:
            self._record_usage(ids, xn)
        if weights is not None and edit is not None and any(drop for _, _, drop in edit.weights):
            ids = torch.where(weights == 0, torch.full_like(ids, -1), ids)
        out = out.reshape(*lead, self.dim).to(x.dtype)
        return Snap(out, ids.reshape(*lead, self.groups, self.k), loss)

    def _loss(self, q: Tensor, xn: Tensor) -> Tensor:
        kind = self.spec.loss
        if kind == "aeloss":
            return (q - xn.detach()).pow(2).sum((-2, -1)).mean()
        if kind == "fullaeloss":
            return (q - xn).pow(2).sum((-2, -1)).mean()
        mse = (q - xn.detach()).pow(2).sum((-2, -1)).mean()
        commit = (xn - q.detach()).pow(2).sum((-2, -1)).mean()
        return mse + self.spec.commitment * commit

    def score_matrix(self, dtype: torch.dtype | None = None) -> Tensor:
        """(G, C, dg') such that ``[xn, 1] @ W.T`` ranks codes by the chosen similarity."""
        codes = self.codes.detach()
        sim = self.spec.similarity
        if sim == "cosine":
            w = codes / codes.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        elif sim == "inner":
            w = codes
        else:  # euclidean: argmax(x.c - |c|^2 / 2) == argmin |x - c|^2
            w = torch.cat([codes, -0.5 * codes.pow(2).sum(-1, keepdim=True)], dim=-1)
        return w if dtype is None else w.to(dtype)

    @torch.no_grad()
    def select(self, xn: Tensor, edit: CodeEdit | None = None) -> Tensor:
        """Top-k code ids (N, G, k) for normalised inputs (N, G, dg)."""
        n, g, _ = xn.shape
        w = self.score_matrix(xn.dtype)
        if self.spec.similarity == "euclidean":
            xn = torch.cat([xn, xn.new_ones(n, g, 1)], dim=-1)
        rows = max(1, _MAX_SCORE_ELEMENTS // (g * self.num_codes))
        if n <= rows:
            ids = self._select_chunk(xn, w, edit, 0)
        else:
            ids = torch.cat([self._select_chunk(xn[i : i + rows], w, edit, i) for i in range(0, n, rows)])
        if edit:
            for mask, new_ids in edit.replace:
                ids = torch.where(mask.to(ids.device)[..., None], new_ids.to(ids.device), ids)
        return ids

    def _select_chunk(self, xn: Tensor, w: Tensor, edit: CodeEdit | None, start: int) -> Tensor:
        if self.groups == 1:
            scores = (xn[:, 0] @ w[0].T).unsqueeze(0)  # (1, n, C)
        else:
            scores = torch.matmul(xn.transpose(0, 1), w.transpose(1, 2))  # (G, n, C)
        if edit:
            for mask, codes, value in edit.scores:
                sel = codes[:, None, :]
                if mask is not None:
                    sel = sel & mask[start : start + scores.shape[1]].to(sel.device)[None, :, None]
                scores = scores.masked_fill(sel, value)
        if self.k == 1:
            ids = scores.argmax(-1, keepdim=True)
        else:
            ids = scores.topk(self.k, dim=-1, sorted=True).indices
        return ids.permute(1, 0, 2)  # (n, G, k)

    def _weights(self, ids: Tensor, edit: CodeEdit) -> Tensor | None:
        if not edit.weights:
            return None
        weights = torch.ones(ids.shape, dtype=self.codes.dtype, device=ids.device)
        group = torch.arange(self.groups, device=ids.device)[None, :, None]
        for mask, factor, _ in edit.weights:
            f = factor.to(ids.device)[group, ids]
            if mask is not None:
                f = torch.where(mask.to(ids.device)[:, None, None], f, torch.ones_like(f))
            weights = weights * f
        return weights

    def _added(self, edit: CodeEdit, n: int) -> Tensor:
        """(N, G, dg): the code vectors an ``add`` edit puts on top of each token's k codes."""
        total = self.codes.new_zeros(n, self.groups, self.spec.group_dim)
        for mask, strength in edit.add:
            vec = torch.einsum("gc,gcd->gd", strength.to(self.codes), self.codes) / self.k
            per_token = vec.expand(n, -1, -1)
            if mask is not None:
                per_token = per_token * mask.to(per_token)[:, None, None]
            total = total + per_token
        return total

    def lookup(self, ids: Tensor, weights: Tensor | None = None) -> Tensor:
        """Mean of the chosen code vectors: ids (N, G, k) -> (N, G * dg), differentiable in codes."""
        n, g, k = ids.shape
        table = self.codes.reshape(g * self.num_codes, -1)
        offsets = torch.arange(g, device=ids.device)[None, :, None] * self.num_codes
        flat = (ids.clamp_min(0) + offsets).reshape(n * g, k)
        if weights is not None:
            w = (weights / k).reshape(n * g, k).to(table.dtype)
            out = F.embedding_bag(flat, table, mode="sum", per_sample_weights=w)
        elif k == 1:
            out = F.embedding(flat[:, 0], table)
        else:
            out = F.embedding_bag(flat, table, mode="mean")
        return out.reshape(n, g * table.shape[1])

    # ------------------------------------------------------- usage and revival
    @torch.no_grad()
    def _record_usage(self, ids: Tensor, xn: Tensor) -> None:
        offsets = torch.arange(self.groups, device=ids.device)[None, :, None] * self.num_codes
        counts = torch.bincount(
            (ids.clamp_min(0) + offsets).reshape(-1), minlength=self.groups * self.num_codes
        ).reshape(self.groups, self.num_codes)
        self._step_hits = counts if self._step_hits is None else self._step_hits + counts
        self._last_inputs = xn.detach()

    def take_step_hits(self) -> Tensor:
        """Code hits since the last call (G, C); zeros when no training forward ran."""
        hits = self._step_hits
        self._step_hits = None
        if hits is None:
            return torch.zeros_like(self.hits)
        return hits

    def take_last_inputs(self) -> Tensor | None:
        """The normalised inputs (N, G, dg) of the last training forward, for revival."""
        x, self._last_inputs = self._last_inputs, None
        return x

    @torch.no_grad()
    def update_usage(self, hits: Tensor) -> Tensor:
        """Fold one step's hits into the counters; returns the dead mask (G, C)."""
        hits = hits.to(self.hits.device)
        self.hits += hits
        self.steps_since_used.copy_(
            torch.where(hits > 0, torch.zeros_like(self.steps_since_used), self.steps_since_used + 1)
        )
        return self.dead_codes()

    def dead_codes(self) -> Tensor:
        """Codes unused for ``revive_after`` steps (or never hit, when revival is off)."""
        if self.spec.revive_after is None:
            return self.hits == 0
        return self.steps_since_used >= self.spec.revive_after

    @torch.no_grad()
    def revive(self, dead: Tensor, inputs: Tensor, noise: float = 1e-4) -> int:
        """Reset dead codes to random current inputs (N, G, dg) plus small noise.

        Uses the global torch RNG so that processes seeded alike choose alike.
        """
        total = 0
        for g in range(self.groups):
            idx = dead[g].nonzero().flatten()
            if idx.numel() == 0:
                continue
            rows = torch.randint(0, inputs.shape[0], (idx.numel(),))
            fresh = inputs[rows.to(inputs.device), g].to(self.codes.dtype)
            fresh = fresh + noise * torch.randn(fresh.shape).to(fresh.device)
            self.codes.data[g, idx.to(self.codes.device)] = fresh.to(self.codes.device)
            self.steps_since_used[g, idx] = 0
            self.revived[g] += idx.numel()
            total += idx.numel()
        return total

    def reset_usage(self) -> None:
        self.hits.zero_()
        self.steps_since_used.zero_()

    # -------------------------------------------------------------- k-means
    @torch.no_grad()
    def kmeans_init(
        self,
        x: Tensor,
        iters: int = 10,
        generator: torch.Generator | None = None,
        match_scale: bool = True,
    ) -> None:
        """Set the codes to k-means centroids of the normalised inputs x (..., dim).

        With ``match_scale`` the LayerNorm's gain and bias are first set to the inputs' typical
        per-token spread and offset, so LN(x) is close to x and putting the codebook into a trained
        model changes the scale of nothing downstream; the codes then start where the activations are.
        """
        if x.shape[-1] != self.dim:
            raise CodebookError(f"k-means input has feature size {x.shape[-1]}; this codebook expects dim={self.dim}.")
        n, c = x.numel() // self.dim, self.num_codes
        if n < c:
            raise CodebookError(
                f"k-means needs at least num_codes={c} activation vectors, got {n}; pass more "
                f"tokens (for example more or longer sequences)."
            )
        if match_scale:
            chunks = x.detach().reshape(-1, self.groups, self.spec.group_dim).to(self.codes.dtype)
            var, mean = torch.var_mean(chunks, dim=-1, unbiased=False)  # per token and group
            self.ln_weight.data.copy_((var + self.eps).sqrt().mean(0)[:, None].expand_as(self.ln_weight))
            self.ln_bias.data.copy_(mean.mean(0)[:, None].expand_as(self.ln_bias))
        points = self.normalize(x.detach().to(self.codes.dtype)).transpose(0, 1)  # (G, N, dg)
        g = points.shape[0]
        start = torch.stack([torch.randperm(n, generator=generator)[:c] for _ in range(g)])
        centroids = torch.gather(points, 1, start.to(points.device)[..., None].expand(-1, -1, points.shape[-1]))
        rows = max(1, _MAX_SCORE_ELEMENTS // (g * c))
        for _ in range(iters):
            sums = torch.zeros_like(centroids)
            counts = torch.zeros(g, c, device=points.device, dtype=points.dtype)
            half_norm = 0.5 * centroids.pow(2).sum(-1)
            for i in range(0, n, rows):
                p = points[:, i : i + rows]
                assign = (torch.bmm(p, centroids.transpose(1, 2)) - half_norm[:, None]).argmax(-1)
                sums.scatter_add_(1, assign[..., None].expand_as(p), p)
                counts.scatter_add_(1, assign, torch.ones_like(assign, dtype=counts.dtype))
            filled = counts > 0
            centroids = torch.where(filled[..., None], sums / counts.clamp_min(1)[..., None], centroids)
        self.codes.data.copy_(centroids)
        self.reset_usage()
