"""Removals that provably change no code at any later token, found without running the later tokens.

In a model whose every attention layer writes through head codebooks, a removal at token p reaches
a later token q only through attention to p. Removing one code rarely moves a later code: on the
TokFSM model, 81 % of removals change no code after their own token (`benchmarks/circuits.py`). For
such a removal the prediction after p is exactly the clean one, and running the model over the rest
of the prompt to learn that is the bulk of ``ablation_effects``' time.

This screen decides it from the clean run's attention and one forward of token p alone (packed with
other removals' tokens in one row, each at its own position reading the clean keys before it):
- at a layer above the removed code's, only p's keys and values differ (while nothing changed
  below), so each later head output is the clean one with p's term swapped: a rank-one update of
  its softmax, computed from the clean queries, weights and outputs (within 2e-6 of a real forward
  on TokFSM);
- the head's codes stay the same when the change of its normalised input is shorter than the
  clean run's "reach" there: the least change that lets any other code overtake one of the k chosen
  (for each pair, their score gap over the distance between their score columns).
A removal passes only when every head at every later token and layer passes; the others are run in
full. Models where attention does not write through codebooks at every layer are not screened.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from .interventions import AblateEach, InterventionPlan
from .model import CodebookModel
from .removal_batches import prefix_cache, removal_windows

__all__ = ["quiet_removals"]

_CAPTURE = "cbwidgets_capture"
_TOLERANCE = 1e-4  # slack on the change of a normalised head input, for float error in the update
_SPREAD = 1e-3  # the least softmax spread (see _passes) at which the update is trusted
_PACK = 512  # removals packed into one forward
_ROWS, _SPAN = 128, 8  # removals judged together: at most this many, on tokens less than this far apart


@dataclass
class _Call:
    """One attention call: post-rotary queries, keys and values (keys and values: the whole cache)."""

    layer: int
    query: Tensor  # (B, H, Tq, D)
    key: Tensor  # (B, KVH, Tk, D)
    value: Tensor
    mask: Tensor | None
    scaling: float | None


_RECORD: ContextVar[list[_Call] | None] = ContextVar("cbwidgets_attention_record", default=None)


def _recording_attention(
    module: Any, query: Tensor, key: Tensor, value: Tensor, attention_mask: Any, **kwargs: Any
) -> tuple[Tensor, Any]:
    """sdpa, after noting its inputs where a recording is open (see ``_recording``)."""
    record = _RECORD.get()
    if record is not None:
        record.append(
            _Call(int(getattr(module, "layer_idx", -1)), query, key, value, attention_mask, kwargs.get("scaling"))
        )
    return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)


def _register() -> bool:
    """Make the recording attention known to transformers under its own name, with sdpa's masks
    (without a mask function of its own, a forward on a cache would get no causal mask at all)."""
    try:
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
    except ImportError:  # pragma: no cover - every transformers this package admits has both
        return False
    AttentionInterface.register(_CAPTURE, _recording_attention)
    AttentionMaskInterface.register(_CAPTURE, sdpa_mask)
    return True


@contextmanager
def _recording(model: CodebookModel) -> Iterator[list[_Call]]:
    """Record every attention call of the block (the model runs sdpa as before, through a wrapper)."""
    config = model.model.config
    saved = config._attn_implementation
    calls: list[_Call] = []
    token = _RECORD.set(calls)
    config._attn_implementation = _CAPTURE
    try:
        yield calls
    finally:
        config._attn_implementation = saved
        _RECORD.reset(token)


def _screenable(model: CodebookModel) -> list[str] | None:
    """The attn_preproj site of every layer, in layer order, or None where the screen does not apply."""
    state = model._state
    if not state.enabled or not state.snap or state.plan.sites:  # an enclosing intervention: run in full
        return None
    if getattr(model.model.config, "_attn_implementation", None) != "sdpa" or not _register():
        return None
    layers = int(model.config.num_hidden_layers)
    sites = [f"layers.{layer}.attn_preproj" for layer in range(layers)]
    for site in sites:
        book = model.attached.get(site)
        if book is None or book.groups != model.available_sites[site].num_heads:
            return None
    return sites


def _by_layer(calls: list[_Call], layers: int) -> list[_Call] | None:
    found = {call.layer: call for call in calls}
    if sorted(found) != list(range(layers)) or len(calls) != layers:
        return None
    return [found[layer] for layer in range(layers)]


def _causal(mask: Tensor | None, length: int) -> bool:
    """Whether an attention call's mask (None: sdpa's own causal mask) is plain causal."""
    if mask is None:
        return True
    allowed = mask if mask.dtype == torch.bool else mask == 0
    allowed = allowed.reshape(-1, *allowed.shape[-2:])[0, -length:, -length:]
    return bool(torch.equal(allowed, torch.ones(length, length, dtype=torch.bool, device=allowed.device).tril()))


def _heads(t: Tensor, heads: int) -> Tensor:
    """(B, KVH, T, D) keys or values repeated for grouped-query attention: (B, H, T, D)."""
    return t.repeat_interleave(heads // t.shape[1], dim=1) if t.shape[1] != heads else t


@dataclass
class _Layer:
    """One layer's clean attention, and its head codebook's margins."""

    query: Tensor  # (H, T, D)
    key: Tensor
    value: Tensor
    weights: Tensor  # (H, T, T) softmax weights
    output: Tensor  # (H, T, D) what entered the head codebook
    normed: Tensor  # (T, H, D) its normalised form
    reach: Tensor  # (T, H): the shortest change of the normalised input that can change the codes
    chosen: Tensor  # (T, H, k): the codes chosen, sorted by id
    scale: float


def _clean_layers(model: CodebookModel, sites: list[str], ids: Tensor) -> list[_Layer] | None:
    with _recording(model) as calls, torch.no_grad():
        out = model(ids, capture=True)
    layers = _by_layer(calls, len(sites))
    if layers is None:
        return None
    t = ids.shape[1]
    found = []
    for call, site in zip(layers, sites, strict=True):
        book = model.attached[site]
        heads = call.query.shape[1]
        plain = book.vectors.dtype == torch.float32 and book.groups == heads and book.k < book.num_codes
        if call.scaling is None or not _causal(call.mask, t) or not plain:
            return None
        q, k, v = call.query[0].float(), _heads(call.key, heads)[0].float(), _heads(call.value, heads)[0].float()
        logits = call.scaling * q @ k.transpose(-1, -2)
        logits = logits.masked_fill(~torch.ones(t, t, dtype=torch.bool, device=q.device).tril(), float("-inf"))
        x = out.inputs[site].float()  # (T, H * D)
        normed = book.normalize(x)  # (T, H, D)
        reach, chosen = _reach(book, normed)
        found.append(
            _Layer(
                query=q,
                key=k,
                value=v,
                weights=logits.softmax(-1),
                output=x.reshape(t, heads, -1).transpose(0, 1),
                normed=normed,
                reach=reach,
                chosen=chosen,
                scale=float(call.scaling),
            )
        )
    return found


def _passes(
    clean: list[_Layer], keys: list[Tensor], values: list[Tensor], books: list[Any], at: Tensor, removed: Tensor, t: int
) -> Tensor:
    """Per removal, whether no head code at a token after ``at`` can move (removals at layers
    ``removed``, whose own tokens' keys and values are now ``keys[layer]``, ``values[layer]``: (n, H, D))."""
    ok = torch.ones(len(at), dtype=torch.bool, device=at.device)
    for layer, (c, book) in enumerate(zip(clean, books, strict=True)):
        # the rows whose removal changed this layer's keys and values at its token, and that are not out yet
        rows = ((removed < layer) & ok).nonzero().squeeze(1)
        if not len(rows):
            continue
        mine = at[rows]
        start = int(mine.min()) + 1  # the first token that can be later than one of these removals
        if start >= t:
            continue
        n, span, heads = len(rows), t - start, c.query.shape[0]
        new_k, new_v = keys[layer][rows], values[layer][rows]  # (n, H, D)
        old_k, old_v = c.key[:, mine].transpose(0, 1), c.value[:, mine].transpose(0, 1)
        delta = c.scale * torch.einsum("hqd,nhd->nhq", c.query[:, start:], new_k - old_k)  # (n, H, T') logit moves
        a = c.weights[:, start:, mine].permute(2, 0, 1)  # (n, H, T'): each token's clean weight on the removal's token
        grow = delta.clamp(max=60.0).exp()
        # the softmax with p's logit moved: weight a * grow / spread on p, the rest scaled by 1 / spread;
        # written without dividing by 1 - a, which vanishes where a token attends only to p
        spread = 1 - a + a * grow
        out = (c.output[None, :, start:] - a[..., None] * old_v[:, :, None]) / spread[..., None]
        out = out + (a * grow / spread)[..., None] * new_v[:, :, None]  # (n, H, T', D): the head outputs now
        normed = book.normalize(out.permute(0, 2, 1, 3).reshape(n * span, -1)).reshape(n, span, heads, -1)
        moved = (normed - c.normed[None, start:]).norm(dim=-1)  # (n, T', H)
        later = torch.arange(start, t, device=at.device)[None, :, None] > mine[:, None, None]  # (n, T', 1)
        # a spread near 0 would magnify float error in (output - a * value): not judged, run in full
        sound = (spread > _SPREAD).transpose(1, 2) & torch.isfinite(moved)
        ok[rows[(later & ~sound).any(-1).any(-1)]] = False
        unsure = later & sound & ~(c.reach[None, start:] > moved + _TOLERANCE)
        if unsure.any():  # the bound is loose there: score those head inputs and compare the codes
            r, q, h = unsure.nonzero(as_tuple=True)
            ok[rows[r[~_same_codes(book, normed[r, q, h], h, c.chosen[q + start, h])]]] = False
    return ok


def _same_codes(book: Any, normed: Tensor, heads: Tensor, chosen: Tensor) -> Tensor:
    """(M,) whether normalised head inputs (M, D), each of group ``heads[m]``, choose the codes
    ``chosen`` (M, k, sorted) again, with a score margin that float error cannot undo."""
    w, bias = book.scorer(normed.dtype)  # (G, D, C)
    same = torch.zeros(len(normed), dtype=torch.bool, device=normed.device)
    for group in heads.unique().tolist():
        pick = (heads == group).nonzero().squeeze(1)
        scores = normed[pick] @ w[group]  # (m, C)
        if bias is not None:
            scores = scores + bias[group]
        top = scores.topk(book.k + 1, dim=-1)
        clear = top.values[:, book.k - 1] - top.values[:, book.k] > _TOLERANCE
        same[pick] = clear & (top.indices[:, : book.k].sort(-1).values == chosen[pick]).all(-1)
    return same


def _scores(book: Any, normed: Tensor) -> tuple[Tensor, Tensor]:
    """(G, N, C) scores of normalised inputs (N, G, D), and the score columns (G, D, C)."""
    w, bias = book.scorer(normed.dtype)
    scores = torch.bmm(normed.transpose(0, 1), w)
    return (scores if bias is None else scores + bias), w


def _reach(book: Any, normed: Tensor) -> tuple[Tensor, Tensor]:
    """(T, H): per token and group, the shortest change of the normalised input after which some
    code outside the chosen k scores above one inside (scores move by the change's dot product with
    the difference of two codes' score columns, at most its length times their distance); and the
    chosen codes (T, H, k), sorted by id."""
    scores, w = _scores(book, normed)  # (G, T, C), (G, D, C)
    top = scores.topk(book.k, dim=-1)
    columns = w.transpose(1, 2)  # (G, C, D)
    square = columns.pow(2).sum(-1)  # (G, C)
    inside = torch.zeros_like(scores, dtype=torch.bool).scatter_(-1, top.indices, True)
    reach = torch.full(scores.shape[:2], float("inf"), device=scores.device)
    for slot in range(book.k):
        chosen = top.indices[..., slot]  # (G, T)
        picked = torch.gather(columns, 1, chosen[..., None].expand(-1, -1, columns.shape[-1]))  # (G, T, D)
        gap = top.values[..., slot, None] - scores  # (G, T, C)
        apart = (square.gather(1, chosen)[..., None] + square[:, None] - 2 * torch.bmm(picked, w)).clamp_min(0).sqrt()
        ratio = (gap / apart.clamp_min(1e-12)).masked_fill(inside, float("inf"))
        reach = torch.minimum(reach, ratio.amin(-1))
    return reach.transpose(0, 1), top.indices.sort(-1).values.transpose(0, 1)


@torch.no_grad()
def quiet_removals(
    model: CodebookModel,
    ids: Tensor,
    codes: list[str],
    positions: Tensor,
    layers: Tensor,
    mode: str,
    cache: Any,
    reuse: Callable[[Tensor, Tensor], InterventionPlan] | None = None,
) -> Tensor | None:
    """Per removal (``codes[r]`` at ``positions[r]``, of layer ``layers[r]``), whether it provably
    changes no code at any later token of ``ids`` (one prompt); None where the screen does not apply.

    ``cache`` is the clean run's key-value cache. Each removal's own token is run once, alone: up to
    512 removals share one forward as one packed row, each token at its own position reading the
    clean keys before it and itself (``_packed_mask``). ``reuse(at, rows)`` may hand that forward the
    codes it need not score (its tokens at positions ``at``, of removals ``rows``).
    """
    sites = _screenable(model)
    if sites is None or not len(codes):
        return None
    clean = _clean_layers(model, sites, ids)
    if clean is None:
        return None
    site_books = [model.attached[site] for site in sites]
    t = ids.shape[1]
    quiet = torch.zeros(len(codes), dtype=torch.bool)
    for rows in positions.argsort(stable=True).split(_PACK):
        n = len(rows)
        at = positions[rows].to(ids.device)
        before = int(at.max())  # the clean keys any of them reads
        past = prefix_cache(cache, before, 1)
        plan = AblateEach([codes[int(r)] for r in rows], range(before, before + n), rows=[0] * n, mode=mode)
        known = [] if reuse is None else [reuse(at, rows)]
        with _recording(model) as calls, model.intervene(plan, *known):
            model(
                ids[:, at],
                attention_mask=_packed_mask(at, before),
                position_ids=at[None],
                cache=past,
                use_cache=past is not None,
                prompt_length=t,
                total_length=before + n,
                logits_to_keep=1,
            )
        changed = _by_layer(calls, len(sites))
        if changed is None or any(call.key.shape[2] != before + n for call in changed):
            return None
        keys = [_own(call.key, c, before) for call, c in zip(changed, clean, strict=True)]
        values = [_own(call.value, c, before) for call, c in zip(changed, clean, strict=True)]
        removed = layers[rows].to(ids.device)
        for part in removal_windows(at.cpu(), _ROWS, _SPAN):  # judged on the tokens after the part's first
            mine = part.to(ids.device)
            passed = _passes(
                clean, [k[mine] for k in keys], [v[mine] for v in values], site_books, at[mine], removed[mine], t
            )
            quiet[rows[part]] = passed.cpu() & (at[mine] < t - 1).cpu()
    return quiet


def _own(t: Tensor, clean: _Layer, before: int) -> Tensor:
    """A packed forward's keys or values of its own tokens (after the ``before`` clean ones): (n, H, D)."""
    return _heads(t, clean.query.shape[0])[0, :, before:].transpose(0, 1).float()


def _packed_mask(at: Tensor, before: int) -> Tensor:
    """(1, 1, n, before + n) bool: packed token i (at position ``at[i]``) reads the clean keys before
    its position and its own key, nothing of the other removals'."""
    n = len(at)
    clean = torch.arange(before, device=at.device)[None] < at[:, None]
    return torch.cat([clean, torch.eye(n, dtype=torch.bool, device=at.device)], dim=1)[None, None]
