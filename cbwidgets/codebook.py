"""The codebook bottleneck: an activation is replaced by the mean of its k most similar codes.

Design choices that matter for speed and correctness:
- The snap (similarity + top-k) runs without autograd: the chosen ids are not differentiable, so
  recording the T x C score matrix for backward would only cost memory and a matmul's worth of
  backward time. Gradients reach the code vectors through the look-up and the input through the
  straight-through path.
- Cosine and euclidean similarity are folded into the matmul (normalised vectors; -|c|^2 / 2 as
  the bias of a ``baddbmm``), so the score pass is one matmul and never a second pass over the
  T x C scores; the argmax over codes is blocked (``argmax_last``) because a CPU's plain argmax is
  not vectorised.
- G groups (one codebook per attention head) are one batched matmul, not a Python loop.
- A trained codebook of thousands of codes, read on a CPU, is searched through clusters of its
  codes (``code_index``): the same ids, with most codes never scored.
- Interventions arrive as a compiled ``CodeEdit`` value; the codebook keeps no intervention state.
- Every setting lives in ``CodebookSpec``: the codebook is built from one, and saves it.
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import asdict, dataclass, replace
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .code_index import CodeIndex, default_clusters
from .dictionary_base import DictionaryBase, changed_spec, spec_from
from .errors import CodebookError, check_choice, check_positive_int
from .scalars import as_integer, as_real
from .scores import argmax_last, kmeans_centroids, score_rows

__all__ = [
    "LOSSES",
    "SIMILARITIES",
    "AddEdit",
    "CodeEdit",
    "Codebook",
    "CodebookSpec",
    "KnockEdit",
    "ReplaceEdit",
    "ScoreEdit",
    "Snap",
    "WeightEdit",
    "argmax_last",
    "kmeans_centroids",
]

SIMILARITIES = ("cosine", "inner", "euclidean")
LOSSES = ("aeloss", "vqvae", "fullaeloss")

# Read on a CPU (not training: codes that move every step, and at the k-means codes a finetune starts
# from, the clusters saved nothing), a codebook of this many codes, k = 1, is searched through a
# CodeIndex (the same ids, but only the clusters of codes a token could be nearest to are scored)
# when at least this many tokens are scored at once: making the clusters takes about as long as two
# dense searches of 2,048 tokens. After a search that still scored most codes (codes that do not
# cluster), the next _INDEX_RESTS searches are dense, twice as many after each such search in a row,
# up to _INDEX_MAX_REST, and the clusters are made again.
# Only short vectors: at 768 dimensions the dense matmul runs near the cores' peak, and making the
# clusters of 10,000 codes would take about 0.4 s a codebook.
_INDEX_MIN_CODES = 4096
_INDEX_MIN_TOKENS = 512
_INDEX_MAX_DIMS = 256
_INDEX_RESTS = 16
_INDEX_MAX_REST = 1024

# Where retired codes go: every coordinate this far out, so no input is ever nearer to it (and it
# still fits float16, the shipped models' storage).
_FAR = 1e4


@dataclass(frozen=True)
class CodebookSpec:
    """Every setting of a codebook: what ``Codebook`` is built from, what ``attach`` takes and what
    is saved beside the weights. ``dim`` and ``groups`` may be left out where a site decides them
    (``attach`` fills in the site's width and one group per attention head)."""

    num_codes: int = 1000
    dim: int | None = None
    k: int = 1
    groups: int | None = None
    similarity: str = "cosine"
    loss: str = "aeloss"
    revive_after: int | None = None  # training steps a code may go unused before it is revived
    commitment: float = 0.25  # weight of the commitment term of the vqvae loss
    eps: float = 1e-5  # the codebook LayerNorm's epsilon

    def __post_init__(self) -> None:
        for name in ("num_codes", "k"):
            object.__setattr__(self, name, check_positive_int(name, getattr(self, name)))
        for name in ("dim", "groups"):
            object.__setattr__(self, name, check_positive_int(name, getattr(self, name), allow_none=True))
        if self.k > self.num_codes:
            raise CodebookError(
                f"k={self.k} is larger than num_codes={self.num_codes}; k must be between 1 and "
                f"num_codes (typical: k = 1..8 of 1,000..10,000 codes)."
            )
        if self.dim is not None and self.groups is not None and self.dim % self.groups:
            divisors = [g for g in range(1, self.dim + 1) if self.dim % g == 0]
            raise CodebookError(
                f"groups={self.groups} does not divide dim={self.dim}; valid group counts for this dim: {divisors}."
            )
        check_choice("similarity", self.similarity, SIMILARITIES)
        check_choice("loss", self.loss, LOSSES)
        if self.revive_after is not None:
            try:
                steps = as_integer(self.revive_after)
            except (TypeError, ValueError):
                steps = 0
            if steps < 1:
                raise CodebookError(
                    f"revive_after={self.revive_after!r} is not valid; give a positive number of "
                    f"training steps, or None to never revive dead codes."
                )
            object.__setattr__(self, "revive_after", steps)
        for name in ("commitment", "eps"):
            value = getattr(self, name)
            try:
                number = as_real(value)
            except (TypeError, ValueError):
                number = -1.0
            if number < 0:
                raise CodebookError(f"{name}={value!r} is not valid; give a finite number >= 0.")
            object.__setattr__(self, name, number)

    @property
    def group_dim(self) -> int:
        if self.dim is None:
            raise CodebookError("this spec has no dim yet; give dim=... (attach fills it in from the site).")
        return self.dim // (self.groups or 1)

    def with_settings(self, **settings: Any) -> CodebookSpec:
        """A copy with some settings changed; unknown names are refused with the valid ones."""
        return changed_spec(self, "codebook", settings)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CodebookSpec:
        return cls().with_settings(**data)


@dataclass(frozen=True)
class ScoreEdit:
    """Set these codes' scores before top-k: -inf removes a code (the next best takes its slot),
    +inf forces it in; ``levels`` then say how strongly each forced code fires (a codebook
    multiplies its vector by it, an SAE takes it as the latent's value)."""

    chosen: Tensor  # (G, C) bool: the codes whose scores are set
    value: float
    tokens: Tensor | None = None  # (N,) bool over this forward's flattened tokens; None = every token
    levels: Tensor | None = None  # (G, C) float, read at the chosen codes


@dataclass(frozen=True)
class WeightEdit:
    """Multiply a chosen code's contribution; with ``drop`` its slot is reported as empty (-1)."""

    factor: Tensor  # (G, C) float
    drop: bool = False
    tokens: Tensor | None = None


@dataclass(frozen=True)
class ReplaceEdit:
    """Overwrite the ids of the marked (token, group) pairs: another prompt's codes patched in."""

    tokens: Tensor  # (N, G) bool
    ids: Tensor  # (N, G, k)
    values: Tensor | None = None  # (N, G, k): the latents' values where the source had them (an SAE's)


@dataclass(frozen=True)
class AddEdit:
    """Add code vectors on top of the chosen ones; strength 1 adds as much as one of the k slots
    contributes. The reported ids do not change."""

    strength: Tensor  # (G, C) float
    tokens: Tensor | None = None


@dataclass(frozen=True)
class KnockEdit:
    """Remove one code at one token, a different one per token: the ``i``-th knock removes code
    ``codes[i]`` of group ``groups[i]`` at flattened token ``tokens[i]``. Batched ablation
    experiments put a different knock in each row of one forward. ``drop``: the slot contributes
    nothing (reported -1); otherwise the next-best code takes it."""

    tokens: Tensor  # (M,) long, over this forward's flattened tokens
    groups: Tensor  # (M,) long
    codes: Tensor  # (M,) long
    drop: bool = False


@dataclass(frozen=True)
class CodeEdit:
    """Everything an intervention does to one codebook in one forward, compiled by
    ``cbwidgets.interventions``; the codebook keeps no intervention state of its own."""

    scores: tuple[ScoreEdit, ...] = ()
    weights: tuple[WeightEdit, ...] = ()
    replace: tuple[ReplaceEdit, ...] = ()
    add: tuple[AddEdit, ...] = ()
    knock: tuple[KnockEdit, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.scores or self.weights or self.replace or self.add or self.knock)

    def then(self, other: CodeEdit) -> CodeEdit:
        """This edit followed by another (inner contexts apply after outer ones)."""
        return CodeEdit(
            self.scores + other.scores,
            self.weights + other.weights,
            self.replace + other.replace,
            self.add + other.add,
            self.knock + other.knock,
        )


class Snap(NamedTuple):
    """What one codebook forward produces."""

    output: Tensor  # same shape and dtype as the input
    ids: Tensor  # (..., groups, k) int64; -1 marks a dropped slot
    loss: Tensor | None  # reconstruction loss; None when autograd is off
    values: Tensor | None = None  # (..., groups, k): each slot's value where they vary (an SAE's latents)


class Codebook(DictionaryBase):
    """G independent codebooks of ``num_codes`` code vectors over ``dim / G`` chunks of the input.

    Build one from a ``CodebookSpec``, or from its settings: ``Codebook(spec)``,
    ``Codebook(1000, 128, k=8)``, ``Codebook(spec, k=4)``.
    """

    hits: Tensor  # (G, C) times each code fired in training
    steps_since_used: Tensor  # (G, C) training steps since each code last fired
    revived: Tensor  # (G,) codes revived so far
    _index: list[CodeIndex]  # one per group, made at the first indexed search (see _INDEX_MIN_CODES)
    _index_rests: int  # dense searches left before the index is tried again
    _index_backoff: int  # how many the next failed try earns: doubles at each, up to _INDEX_MAX_REST

    def __init__(self, spec: CodebookSpec | int | None = None, dim: int | None = None, /, **settings: Any) -> None:
        super().__init__()
        spec = spec_from(CodebookSpec, spec, dim, settings)
        if spec.dim is None:
            raise CodebookError("a Codebook needs its input width: give dim=..., e.g. Codebook(1000, 128).")
        if spec.groups is None:
            spec = replace(spec, groups=1)
        self.spec = spec
        g, c, dg = self.groups, self.num_codes, spec.group_dim
        self.vectors = nn.Parameter(torch.randn(g, c, dg) / math.sqrt(dg))  # (G, C, dg) the code vectors
        self.ln_weight = nn.Parameter(torch.ones(g, dg))
        self.ln_bias = nn.Parameter(torch.zeros(g, dg))
        # Usage counters, readable by users and saved with the weights.
        self.register_buffer("hits", torch.zeros(g, c, dtype=torch.long))
        self.register_buffer("steps_since_used", torch.zeros(g, c, dtype=torch.long))
        self.register_buffer("revived", torch.zeros(g, dtype=torch.long))
        self._step_hits: Tensor | None = None
        self._last_inputs: Tensor | None = None
        self._forget_index()

    @property
    def eps(self) -> float:
        return self.spec.eps

    @property
    def codes(self) -> nn.Parameter:
        """Deprecated: the code vectors are ``vectors`` (``codes`` means code ids everywhere else)."""
        warnings.warn("Codebook.codes is now Codebook.vectors", DeprecationWarning, stacklevel=2)
        return self.vectors

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        # files saved before the vectors were called vectors (format version 1) name them "codes"
        if prefix + "codes" in state_dict and prefix + "vectors" not in state_dict:
            state_dict[prefix + "vectors"] = state_dict.pop(prefix + "codes")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._forget_index()  # new vectors: clusters of the old ones would only prune less

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
        if weights is not None and edit is not None and _drops(edit):
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

    def scorer(self, dtype: torch.dtype | None = None) -> tuple[Tensor, Tensor | None]:
        """(G, dg, C) weights and a (G, 1, C) bias (or None) such that ``bias + xn @ weights`` ranks
        the codes by the chosen similarity: one batched matmul with the bias added in place."""
        w, bias = self._score_vectors()
        if dtype is not None:
            w, bias = w.to(dtype), bias if bias is None else bias.to(dtype)
        return w.transpose(1, 2).contiguous(), bias if bias is None else bias[:, None, :]

    def _score_vectors(self) -> tuple[Tensor, Tensor | None]:
        """(G, C, dg) vectors and a (G, C) bias (or None): a code's score is ``x . w + bias``."""
        vectors = self.vectors.detach()
        sim = self.spec.similarity
        if sim == "cosine":
            return vectors / vectors.norm(dim=-1, keepdim=True).clamp_min(1e-12), None
        if sim == "inner":
            return vectors, None
        return vectors, -0.5 * vectors.pow(2).sum(-1)  # euclidean: argmax(x.c - |c|^2 / 2) == argmin |x - c|^2

    @torch.no_grad()
    def select(self, xn: Tensor, edit: CodeEdit | None = None) -> Tensor:
        """Top-k code ids (N, G, k) for normalised inputs (N, G, dg).

        Tokens whose every group a ``replace`` edit overwrites are not scored at all: their ids are
        known already (a patch, or codes reused from a run where the input was the same).
        """
        if edit and edit.replace:
            covered = torch.zeros(xn.shape[0], dtype=torch.bool, device=xn.device)
            for patch in edit.replace:
                covered |= patch.tokens.to(xn.device).all(-1)
            if covered.any():
                todo = (~covered).nonzero().squeeze(1)
                ids = torch.zeros(xn.shape[0], self.groups, self.k, dtype=torch.long, device=xn.device)
                if len(todo):
                    ids[todo] = self._scored(xn[todo], _selection_rows(edit, todo, xn.shape[0]))
                return _replaced(ids, edit)
        ids = self._scored(xn, edit)
        return _replaced(ids, edit) if edit else ids

    def _scored(self, xn: Tensor, edit: CodeEdit | None) -> Tensor:
        n, g, _ = xn.shape
        if self._indexable(xn, edit):
            return self._indexed(xn)
        w, bias = self.scorer(xn.dtype)
        xg = xn.transpose(0, 1)  # (G, N, dg)
        rows = score_rows(g * self.num_codes, xn.shape[-1], xn.device)
        if n <= rows:
            ids = self._select_chunk(xg, w, bias, edit, 0)
        else:
            ids = torch.cat([self._select_chunk(xg[:, i : i + rows], w, bias, edit, i) for i in range(0, n, rows)])
        return ids

    def _indexable(self, xn: Tensor, edit: CodeEdit | None) -> bool:
        if self._index_rests > 0:
            self._index_rests -= 1
            return False
        steers = edit is not None and (bool(edit.scores) or any(not knock.drop for knock in edit.knock))
        return (
            not steers
            and self.k == 1
            and self.spec.similarity != "inner"
            and self.num_codes >= _INDEX_MIN_CODES
            and self.spec.group_dim <= _INDEX_MAX_DIMS
            and xn.shape[0] >= _INDEX_MIN_TOKENS
            and not self.training
            and xn.device.type == "cpu"
            and xn.dtype == self.vectors.dtype == torch.float32
        )

    def _indexed(self, xn: Tensor) -> Tensor:
        """The dense search's ids (N, G, 1), found through each group's ``CodeIndex``."""
        points, bias = self._score_vectors()  # unit vectors and no bias for cosine, else euclidean's
        if not self._index:
            clusters = default_clusters(self.num_codes)
            self._index = [CodeIndex.build(points[g], clusters) for g in range(self.groups)]
        ids, share = [], 0.0
        for g, index in enumerate(self._index):
            x = xn[:, g]
            if bias is None:
                choice = index.search(x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12), points[g], None, scoring=x)
            else:
                choice = index.search(x, points[g], bias[g])
            ids.append(choice.ids)
            share = max(share, choice.scored)
        if share > 0.5:  # the codes do not cluster (yet): rest, then make the clusters again
            self._index, self._index_rests = [], self._index_backoff
            self._index_backoff = min(2 * self._index_backoff, _INDEX_MAX_REST)
        else:
            self._index_backoff = _INDEX_RESTS
        return torch.stack(ids, 1)[..., None]

    def train(self, mode: bool = True) -> Codebook:
        if mode:  # training moves the codes: clusters of the old ones would only prune less
            self._forget_index()
        return super().train(mode)

    def _forget_index(self) -> None:
        self._index = []
        self._index_rests = 0
        self._index_backoff = _INDEX_RESTS

    def _select_chunk(self, xg: Tensor, w: Tensor, bias: Tensor | None, edit: CodeEdit | None, start: int) -> Tensor:
        scores = torch.bmm(xg, w) if bias is None else torch.baddbmm(bias, xg, w)  # (G, n, C)
        if edit:
            for op in edit.scores:
                sel = op.chosen.to(scores.device)[:, None, :]  # (G, 1, C)
                if op.tokens is not None:
                    sel = sel & op.tokens[start : start + scores.shape[1]].to(sel.device)[None, :, None]
                scores = scores.masked_fill(sel, op.value)
            for knock in edit.knock:
                if not knock.drop:
                    here = (knock.tokens >= start) & (knock.tokens < start + scores.shape[1])
                    at = (knock.groups[here], knock.tokens[here] - start, knock.codes[here])
                    scores.index_put_(tuple(i.to(scores.device) for i in at), scores.new_tensor(float("-inf")))
        if self.k == 1:
            ids = argmax_last(scores)[..., None]
        else:
            ids = scores.topk(self.k, dim=-1, sorted=True).indices
        return ids.permute(1, 0, 2)  # (n, G, k)

    def _weights(self, ids: Tensor, edit: CodeEdit) -> Tensor | None:
        drops = [knock for knock in edit.knock if knock.drop]
        # forced codes at a chosen strength: their vector times it, a factor like any other
        levelled = tuple(
            WeightEdit(torch.where(op.chosen, op.levels, 1.0), tokens=op.tokens)
            for op in edit.scores
            if op.levels is not None
        )
        if not edit.weights and not drops and not levelled:
            return None
        weights = torch.ones(ids.shape, dtype=self.vectors.dtype, device=ids.device)  # (N, G, k)
        group = torch.arange(self.groups, device=ids.device)[None, :, None]
        for op in levelled + edit.weights:
            f = op.factor.to(ids.device)[group, ids]
            if op.tokens is not None:
                f = torch.where(op.tokens.to(ids.device)[:, None, None], f, torch.ones_like(f))
            weights = weights * f
        for knock in drops:  # several knocks may share a (token, group): accumulate, never overwrite
            tokens, groups = knock.tokens.to(ids.device), knock.groups.to(ids.device)
            hit = (ids[tokens, groups] == knock.codes.to(ids.device)[:, None]).int()  # (M, k)
            knocked = torch.zeros(ids.shape, dtype=torch.int, device=ids.device)
            knocked.index_put_((tokens, groups), hit, accumulate=True)
            weights = weights.masked_fill(knocked > 0, 0.0)
        return weights

    def _added(self, edit: CodeEdit, n: int) -> Tensor:
        """(N, G, dg): the code vectors an ``add`` edit puts on top of each token's k codes."""
        total = self.vectors.new_zeros(n, self.groups, self.spec.group_dim)
        for op in edit.add:
            vec = torch.einsum("gc,gcd->gd", op.strength.to(self.vectors), self.vectors) / self.k  # (G, dg)
            per_token = vec.expand(n, -1, -1)
            if op.tokens is not None:
                per_token = per_token * op.tokens.to(per_token)[:, None, None]
            total = total + per_token
        return total

    def lookup(self, ids: Tensor, weights: Tensor | None = None) -> Tensor:
        """Mean of the chosen code vectors: ids (N, G, k) -> (N, G * dg), differentiable in the vectors."""
        n, g, k = ids.shape
        table = self.vectors.reshape(g * self.num_codes, -1)
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
            fresh = inputs[rows.to(inputs.device), g].to(self.vectors.dtype)
            fresh = fresh + noise * torch.randn(fresh.shape).to(fresh.device)
            self.vectors.data[g, idx.to(self.vectors.device)] = fresh.to(self.vectors.device)
            self.steps_since_used[g, idx] = 0
            self.revived[g] += idx.numel()
            total += idx.numel()
        return total

    @torch.no_grad()
    def retire_twins(self, radius: float = 0.05) -> int:
        """Move each code that lies within ``radius`` of a lower-numbered code far away, where it never
        fires; returns how many were moved.

        k-means on repeated activations and revival onto an input a code already serves leave codes
        closer together than float rounding can tell apart, and which twin fires then depends on the
        batch: a code read from one prompt is not the code the same prompt gets inside a batch, so
        ablating it there does nothing. The lower-numbered twin takes over its inputs; they move by
        less than ``radius``. Euclidean codebooks only (a far vector is never nearest).
        """
        if self.spec.similarity != "euclidean":
            raise CodebookError(
                f"retire_twins needs similarity='euclidean'; this codebook uses {self.spec.similarity!r}, "
                "where no vector is sure never to win."
            )
        number = isinstance(radius, numbers.Real) or (isinstance(radius, Tensor) and radius.numel() == 1)
        if isinstance(radius, bool) or not number or not float(radius) > 0:
            raise CodebookError(f"radius={radius!r} is not valid; give a positive distance such as 0.05.")
        radius = float(radius)
        total = 0
        ids = torch.arange(self.num_codes, device=self.vectors.device)
        for g in range(self.groups):
            vectors = self.vectors.data[g]
            live = ~(vectors == _FAR).all(-1)  # codes retired before stay out of it
            twin = torch.zeros(self.num_codes, dtype=torch.bool, device=vectors.device)
            for start in range(0, self.num_codes, 1024):
                rows = ids[start : start + 1024]
                near = torch.cdist(vectors[rows], vectors, compute_mode="donot_use_mm_for_euclid_dist") < radius
                twin[rows] = (near & live[None, :] & (ids[None, :] < rows[:, None])).any(1) & live[rows]
            vectors[twin] = _FAR
            self.hits[g, twin] = 0
            total += int(twin.sum())
        self._forget_index()
        return total

    # -------------------------------------------------------------- k-means
    @torch.no_grad()
    def kmeans_init(
        self,
        x: Tensor,
        iters: int = 10,
        generator: torch.Generator | None = None,
        match_scale: bool = True,
    ) -> None:
        """Set the code vectors to k-means centroids of the normalised inputs x (..., dim).

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
            chunks = x.detach().reshape(-1, self.groups, self.spec.group_dim).to(self.vectors.dtype)
            var, mean = torch.var_mean(chunks, dim=-1, unbiased=False)  # per token and group
            self.ln_weight.data.copy_((var + self.eps).sqrt().mean(0)[:, None].expand_as(self.ln_weight))
            self.ln_bias.data.copy_(mean.mean(0)[:, None].expand_as(self.ln_bias))
        points = self.normalize(x.detach().to(self.vectors.dtype)).transpose(0, 1)  # (G, N, dg)
        centroids = kmeans_centroids(points, c, iters, generator)  # (G, C, dg)
        self.vectors.data.copy_(centroids)
        self._forget_index()
        self.reset_usage()


def _replaced(ids: Tensor, edit: CodeEdit) -> Tensor:
    for patch in edit.replace:
        ids = torch.where(patch.tokens.to(ids.device)[..., None], patch.ids.to(ids.device), ids)
    return ids


def _selection_rows(edit: CodeEdit, rows: Tensor, n: int) -> CodeEdit:
    """The part of an edit that acts on selection (score edits, substituting knocks), for the
    tokens ``rows`` of ``n``, renumbered 0.. as they are scored."""
    scores = tuple(
        op if op.tokens is None else replace(op, tokens=op.tokens.to(rows.device)[rows]) for op in edit.scores
    )
    renumber = torch.full((n,), -1, dtype=torch.long, device=rows.device)
    renumber[rows] = torch.arange(len(rows), device=rows.device)
    knocks = []
    for knock in edit.knock:
        if knock.drop:
            continue
        tokens = renumber[knock.tokens.to(rows.device)]
        keep = tokens >= 0
        knocks.append(KnockEdit(tokens[keep], knock.groups.to(rows.device)[keep], knock.codes.to(rows.device)[keep]))
    return CodeEdit(scores=scores, knock=tuple(knocks))


def _drops(edit: CodeEdit) -> bool:
    """Whether an edit empties slots (which are then reported as -1)."""
    return any(w.drop for w in edit.weights) or any(k.drop for k in edit.knock)
