"""A TopK sparse autoencoder (Gao et al. 2024) behind the codebook's interface: it attaches at any
site, its latents read as codes (ids, with their values beside them), the interventions mean the
natural thing for it, and it trains, saves and loads where codebooks do.

- Encode: ``pre = (x - b_dec) @ encoder + b_enc``; the ``k`` largest pre-activations are the active
  latents, their values ReLU(pre). Decode: the values times their decoder rows (``vectors``, unit
  norm, so a value is the size along the latent's direction), plus ``b_dec``.
- Loss: the squared error summed over features and averaged over tokens (as the codebook's), plus
  the auxiliary loss for dead latents: the ``aux_k`` largest pre-activations among latents that have
  not fired for ``dead_after`` training steps reconstruct the error the k left, weighted ``aux_coef``.
  It gives dead latents a gradient toward what is missing, so they come back.
- Interventions arrive as the codebook's ``CodeEdit``: ablate (substitute: the next latent takes the
  slot; drop: value 0, reported -1), force (the latent takes a slot at the value the Force names, or
  else at its typical value, or its own where that is larger), scale (its value times the factor),
  patch (another run's latents with their values), add (strength times its typical value along its
  direction).
- One group always: an SAE reads the whole site (all heads at ``attn_preproj``), as SAELens does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .codebook import CodeEdit, Snap
from .dictionary_base import DictionaryBase, changed_spec, spec_from
from .errors import CodebookError, check_flag, check_positive_int
from .scalars import as_real
from .scores import argmax_last

__all__ = ["SAE_KIND", "SAESpec", "TopKSAE"]

SAE_KIND = "topk_sae"  # how a saved spec says it is an SAE's


@dataclass(frozen=True)
class SAESpec:
    """Every setting of a TopK SAE; ``dim`` may be left out where a site decides it."""

    num_codes: int = 4096  # latents ("codes", as the rest of the kit calls a dictionary's units)
    dim: int | None = None
    k: int = 32
    aux_k: int = 256  # dead latents the auxiliary loss may use per token
    aux_coef: float = 1 / 32
    dead_after: int = 100  # training steps without firing after which a latent counts as dead
    layer_norm: bool = False  # read LayerNorm(x) (its own gain and bias), as a codebook does, not x
    norm_groups: int = 1  # with layer_norm: normalise each of this many equal slices (a codebook's heads)
    groups: int = 1  # always 1; here so code that reads any dictionary's spec finds it
    revive_after: None = None  # SAEs bring dead latents back by the auxiliary loss, not by revival

    def __post_init__(self) -> None:
        for name in ("num_codes", "k", "aux_k", "dead_after", "norm_groups"):
            object.__setattr__(self, name, check_positive_int(name, getattr(self, name)))
        object.__setattr__(self, "dim", check_positive_int("dim", self.dim, allow_none=True))
        object.__setattr__(self, "layer_norm", check_flag("layer_norm", self.layer_norm))
        if self.k > self.num_codes:
            raise CodebookError(f"k={self.k} is larger than num_codes={self.num_codes}; an SAE keeps k of its latents.")
        if self.norm_groups != 1 and not self.layer_norm:
            raise CodebookError(
                f"norm_groups={self.norm_groups} says how a LayerNorm slices the input; set layer_norm=True with it."
            )
        if self.dim is not None and self.dim % self.norm_groups:
            raise CodebookError(
                f"dim={self.dim} does not split into norm_groups={self.norm_groups} equal slices; give a divisor of it."
            )
        if self.groups != 1:
            raise CodebookError(f"groups={self.groups!r}: an SAE reads its whole site; leave groups at 1.")
        if self.revive_after is not None:
            raise CodebookError("an SAE has no revival (its auxiliary loss brings dead latents back); leave it None.")
        try:
            coef = as_real(self.aux_coef)
        except (TypeError, ValueError):
            coef = -1.0
        if coef < 0:
            raise CodebookError(f"aux_coef={self.aux_coef!r} is not valid; give a finite number >= 0 (1/32 is usual).")
        object.__setattr__(self, "aux_coef", coef)

    @property
    def group_dim(self) -> int:
        if self.dim is None:
            raise CodebookError("this spec has no dim yet; give dim=... (attach fills it in from the site).")
        return self.dim

    def with_settings(self, **settings: Any) -> SAESpec:
        """A copy with some settings changed; unknown names are refused with the valid ones."""
        return changed_spec(self, "SAE", settings)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": SAE_KIND, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SAESpec:
        return cls().with_settings(**{key: value for key, value in data.items() if key != "kind"})


def _weighted_rows(ids: Tensor, weights: Tensor, rows: Tensor) -> Tensor:
    """(N, d): for each token, the sum of ``weights`` (N, k) times the ``rows`` (C, d) at ``ids`` (N, k).
    A bag of rows while k is small beside C; a dense (N, C) product once it is not (the auxiliary
    loss's 256 of 1,024 latents): a bag's backward on a CPU then costs several times the product's."""
    if 16 * ids.shape[-1] < rows.shape[0]:
        return F.embedding_bag(ids, rows, mode="sum", per_sample_weights=weights)
    dense = torch.zeros(ids.shape[0], rows.shape[0], dtype=weights.dtype, device=weights.device)
    return dense.scatter_add(1, ids, weights) @ rows


class TopKSAE(DictionaryBase):
    """A TopK SAE of ``num_codes`` latents over ``dim`` features: ``TopKSAE(SAESpec(...))`` or
    ``TopKSAE(4096, 768, k=32)``. ``forward(x, edit)`` returns a ``Snap`` whose ``values`` hold the
    active latents' values."""

    hits: Tensor  # (1, C) times each latent fired in training
    steps_since_used: Tensor  # (1, C)
    revived: Tensor  # (1,) always 0: kept so usage tables read every dictionary alike
    value_sum: Tensor  # (1, C) the sum of each latent's values when it fired in training

    def __init__(self, spec: SAESpec | int | None = None, dim: int | None = None, /, **settings: Any) -> None:
        super().__init__()
        spec = spec_from(SAESpec, spec, dim, settings)
        if spec.dim is None:
            raise CodebookError("a TopKSAE needs its input width: give dim=..., e.g. TopKSAE(4096, 768).")
        self.spec = spec
        c, d = spec.num_codes, spec.dim
        decoder = F.normalize(torch.randn(c, d), dim=-1)
        self.vectors = nn.Parameter(decoder[None].clone())  # (1, C, d): the decoder rows, unit norm
        self.encoder = nn.Parameter(decoder.t().clone())  # (d, C): starts as the decoder's transpose
        self.b_enc = nn.Parameter(torch.zeros(c))
        self.b_dec = nn.Parameter(torch.zeros(d))
        if spec.layer_norm:  # as a codebook's: what a model trained with codebooks in place passes on
            self.ln_weight = nn.Parameter(torch.ones(1, d))
            self.ln_bias = nn.Parameter(torch.zeros(1, d))
        self.register_buffer("hits", torch.zeros(1, c, dtype=torch.long))
        self.register_buffer("steps_since_used", torch.zeros(1, c, dtype=torch.long))
        self.register_buffer("revived", torch.zeros(1, dtype=torch.long))
        self.register_buffer("value_sum", torch.zeros(1, c))
        self._step_hits: Tensor | None = None
        self._step_values: Tensor | None = None

    def extra_repr(self) -> str:
        return f"num_codes={self.num_codes}, dim={self.dim}, k={self.k}, aux_k={self.spec.aux_k}"

    # ---------------------------------------------------------------- forward
    def normalize(self, x: Tensor) -> Tensor:
        """What the SAE reads and reconstructs, (N, 1, d): the input itself, or with ``layer_norm``
        its LayerNorm (a codebook's: per token and per slice of ``norm_groups``, then the gain and
        bias): the space a model trained with that codebook in place reads."""
        flat = x.reshape(-1, 1, self.dim)
        if not self.spec.layer_norm:
            return flat
        g = self.spec.norm_groups
        if g == 1:
            return F.layer_norm(flat, (self.dim,), self.ln_weight[0], self.ln_bias[0], 1e-5)
        sliced = F.layer_norm(flat.reshape(-1, g, self.dim // g), (self.dim // g,), None, None, 1e-5)
        return sliced.reshape(-1, 1, self.dim) * self.ln_weight + self.ln_bias

    def pre_activations(self, x: Tensor) -> Tensor:
        """(N, C): every latent's pre-activation for inputs (N, d)."""
        return torch.addmm(self.b_enc, x - self.b_dec, self.encoder)

    def scorer(self, dtype: torch.dtype | None = None) -> tuple[Tensor, Tensor]:
        """(1, d, C) weights and a (1, 1, C) bias such that ``bias + x @ weights`` are the
        pre-activations that rank the latents (a codebook's ``scorer``, for code analyses)."""
        w = self.encoder.detach()
        bias = (self.b_enc.detach() - self.b_dec.detach() @ w)[None, None]
        if dtype is not None:
            w, bias = w.to(dtype), bias.to(dtype)
        return w[None].contiguous(), bias

    def typical_values(self) -> Tensor:
        """(C,): each latent's mean value when it fired in training (where it never did, the mean
        over latents that did; 1 before any training): what force and add give it."""
        fired = self.hits[0] > 0
        mean = self.value_sum[0] / self.hits[0].clamp_min(1)
        fallback = mean[fired].mean() if bool(fired.any()) else mean.new_tensor(1.0)
        return torch.where(fired, mean, fallback)

    def forward(self, x: Tensor, edit: CodeEdit | None = None) -> Snap:
        if x.shape[-1] != self.dim:
            raise CodebookError(f"input has feature size {x.shape[-1]} but this SAE expects dim={self.dim}.")
        if not x.is_floating_point():
            raise CodebookError(f"input dtype {x.dtype} is not valid; the SAE takes floating-point activations.")
        lead = x.shape[:-1]
        flat = self.normalize(x.to(self.encoder.dtype)).reshape(-1, self.dim)
        pre = self.pre_activations(flat)  # (N, C), differentiable
        ids = self._select(pre.detach(), edit)  # (N, k)
        values = F.relu(pre.gather(1, ids))
        if edit:
            values = self._edited_values(values, ids, pre.detach(), edit)
        out = self.decode(ids, values)
        if edit and edit.add:
            out = out + self._added(edit, flat.shape[0])
        loss = self._loss(flat, out, pre) if torch.is_grad_enabled() else None
        if self.training:
            self._record_usage(ids, values.detach())
        ids = torch.where(values != 0, ids, torch.full_like(ids, -1))  # a latent at 0 did not fire
        shape = (*lead, 1, self.k)
        return Snap(out.reshape(*lead, self.dim).to(x.dtype), ids.reshape(shape), loss, values.reshape(shape))

    def decode(self, ids: Tensor, values: Tensor) -> Tensor:
        """(N, d): the values (N, k) times the decoder rows of ``ids`` (N, k), plus ``b_dec``."""
        return _weighted_rows(ids.clamp_min(0), values.to(self.vectors), self._decoder()) + self.b_dec

    def _decoder(self) -> Tensor:
        """(C, d): the decoder rows; when a gradient is taken, read through a normalisation (a no-op
        on unit rows), so that the gradient has no part along each row. ``constrain`` would undo
        that part after the step; left in, it would still steer Adam's moments (Gao et al. 2024
        project it out; it lowered the FVU by 9 % on TokFSM activations at 4,096 latents, k = 32)."""
        rows = self.vectors[0]
        return F.normalize(rows, dim=-1) if torch.is_grad_enabled() and rows.requires_grad else rows

    @torch.no_grad()
    def _select(self, pre: Tensor, edit: CodeEdit | None) -> Tensor:
        scores = pre
        if edit and (edit.scores or any(not knock.drop for knock in edit.knock)):
            scores = pre.clone()
            for op in edit.scores:
                chosen = op.chosen.to(pre.device)[0][None, :]  # (1, C)
                if op.tokens is not None:
                    chosen = chosen & op.tokens.to(pre.device)[:, None]
                scores = scores.masked_fill(chosen, op.value)
            for knock in edit.knock:
                if not knock.drop:  # substitute: the next latent takes the slot
                    scores[knock.tokens.to(pre.device), knock.codes.to(pre.device)] = float("-inf")
        ids = argmax_last(scores)[:, None] if self.k == 1 else scores.topk(self.k, dim=-1, sorted=True).indices
        if edit:
            for patch in edit.replace:
                ids = torch.where(patch.tokens.to(ids.device)[:, :1], patch.ids.to(ids.device)[:, 0], ids)
        return ids

    def _edited_values(self, values: Tensor, ids: Tensor, pre: Tensor, edit: CodeEdit) -> Tensor:
        """Forced latents at the value asked for, else at least their typical value; scaled, dropped
        and patched values."""
        typical = self.typical_values().to(values)
        for op in edit.scores:
            if op.value > 0:  # forced in: a latent whose own value is smaller gets its typical one
                forced = op.chosen.to(ids.device)[0][ids]
                if op.tokens is not None:
                    forced = forced & op.tokens.to(ids.device)[:, None]
                level = torch.maximum(values, typical[ids]) if op.levels is None else op.levels.to(values)[0][ids]
                values = torch.where(forced, level, values)
        for weight in edit.weights:
            factor = weight.factor.to(values)[0][ids]
            if weight.tokens is not None:
                factor = torch.where(weight.tokens.to(ids.device)[:, None], factor, torch.ones_like(factor))
            values = values * factor
        for knock in edit.knock:
            if knock.drop:  # several knocks may share a token: accumulate, never overwrite
                tokens = knock.tokens.to(ids.device)
                hit = (ids[tokens] == knock.codes.to(ids.device)[:, None]).int()  # (M, k)
                dropped = torch.zeros(values.shape, dtype=torch.int, device=ids.device)
                dropped.index_put_((tokens,), hit, accumulate=True)
                values = values.masked_fill(dropped > 0, 0.0)
        for patch in edit.replace:
            if patch.values is not None:  # another run's latents come with their own values
                values = torch.where(patch.tokens.to(ids.device)[:, :1], patch.values.to(values)[:, 0], values)
        return values

    def _added(self, edit: CodeEdit, n: int) -> Tensor:
        """(N, d): each added latent's typical value along its direction, times its strength."""
        total = self.vectors.new_zeros(n, self.dim)
        typical = self.typical_values()
        for op in edit.add:
            vec = (op.strength.to(self.vectors)[0] * typical) @ self.vectors[0]  # (d,)
            per_token = vec.expand(n, -1)
            if op.tokens is not None:
                per_token = per_token * op.tokens.to(per_token)[:, None]
            total = total + per_token
        return total

    def _loss(self, x: Tensor, out: Tensor, pre: Tensor) -> Tensor:
        target = x.detach()
        loss = (out - target).pow(2).sum(-1).mean()
        dead = self.steps_since_used[0] >= self.spec.dead_after
        if self.training and self.spec.aux_coef > 0 and bool(dead.any()):
            aux_k = min(self.spec.aux_k, int(dead.sum()))
            masked = pre.masked_fill(~dead[None, :], float("-inf"))
            top = masked.topk(aux_k, dim=-1)
            error = target - out.detach()
            weights = F.relu(top.values)
            guess = _weighted_rows(top.indices, weights, self._decoder())
            loss = loss + self.spec.aux_coef * (guess - error).pow(2).sum(-1).mean()
        return loss

    # ------------------------------------------------------- usage (as a codebook's)
    @torch.no_grad()
    def _record_usage(self, ids: Tensor, values: Tensor) -> None:
        fired = values > 0
        counts = torch.bincount(ids[fired], minlength=self.num_codes)[None]
        sums = torch.zeros(self.num_codes, device=values.device).index_add_(0, ids[fired], values[fired].float())[None]
        self._step_hits = counts if self._step_hits is None else self._step_hits + counts
        self._step_values = sums if self._step_values is None else self._step_values + sums

    def take_step_hits(self) -> Tensor:
        """Latent hits since the last call (1, C); zeros when no training forward ran. Their values
        are folded into ``value_sum`` at the same time."""
        hits, values = self._step_hits, self._step_values
        self._step_hits = self._step_values = None
        if values is not None:
            self.value_sum += values.to(self.value_sum.device)
        return torch.zeros_like(self.hits) if hits is None else hits

    def take_last_inputs(self) -> None:
        return None  # nothing to revive from

    def dead_codes(self) -> Tensor:
        """Latents that have not fired for ``dead_after`` training steps."""
        return self.steps_since_used >= self.spec.dead_after

    def revive(self, dead: Tensor, inputs: Tensor) -> int:
        return 0  # the auxiliary loss does it

    def reset_usage(self) -> None:
        super().reset_usage()
        self.value_sum.zero_()

    @torch.no_grad()
    def constrain(self) -> None:
        """Back to unit-norm decoder rows, after an optimiser step moved them."""
        self.vectors.data.copy_(F.normalize(self.vectors.data, dim=-1))

    # ----------------------------------------------------------------- init
    @torch.no_grad()
    def init_from(self, x: Tensor, generator: torch.Generator | None = None, match_scale: bool = True) -> None:
        """Start from the data (N, d): ``b_dec`` at the mean of what it reads, decoder rows random unit
        directions, the encoder their transpose (so a latent first reads the direction it writes).
        With ``layer_norm`` and ``match_scale``, the LayerNorm's gain and bias first go to the data's
        typical spread and offset (as a codebook's k-means does); without, they stay as they are."""
        x = x.reshape(-1, self.dim).to(self.vectors.dtype)
        if x.shape[0] < 2:
            raise CodebookError(f"an SAE's data init needs at least 2 activation vectors, got {x.shape[0]}.")
        if self.spec.layer_norm and match_scale:
            var, mean = torch.var_mean(x.reshape(x.shape[0], self.spec.norm_groups, -1), dim=-1, unbiased=False)
            self.ln_weight.data.fill_(float((var + 1e-5).sqrt().mean()))
            self.ln_bias.data.fill_(float(mean.mean()))
        x = self.normalize(x).reshape(-1, self.dim)
        self.b_dec.data.copy_(x.mean(0))
        decoder = F.normalize(torch.randn(self.num_codes, self.dim, generator=generator), dim=-1)
        self.vectors.data.copy_(decoder[None].to(self.vectors))
        self.encoder.data.copy_(decoder.t().to(self.encoder))
        self.b_enc.data.zero_()
        self.reset_usage()
