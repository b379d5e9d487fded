"""Interventions on codes: values describing what to change, compiled per forward pass.

An intervention is a frozen value (Ablate, Force, Scale, Patch). ``CodebookModel.intervene(...)``
resolves it against the model once, when the context is entered, so a bad code name fails before
any forward; the model keeps the resolved values in an immutable tuple for the duration of the
``with`` block and restores the previous tuple in ``finally``. Nested contexts compose: inner
operations apply after outer ones.

Positions are token indices: non-negative ones are absolute (they may name tokens that generation
has not produced yet), negative ones count from the end of the prompt. ``positions=None`` means
every position, newly generated ones included; that is how topic steering holds codes on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from .codebook import CodeEdit
from .codes import Codes
from .errors import CodebookError, check_choice
from .names import CodebookNames, CodeRef

__all__ = [
    "Ablate",
    "Add",
    "Force",
    "Intervention",
    "Patch",
    "Resolved",
    "Scale",
    "StepContext",
    "resolve",
    "site_edit",
]

Positions = int | Sequence[int] | None


def _codes_tuple(codes: CodeRef | Iterable[CodeRef]) -> tuple[CodeRef, ...]:
    if isinstance(codes, str) or (isinstance(codes, tuple) and len(codes) == 2 and isinstance(codes[1], int)):
        return (codes,)
    return tuple(codes)


def _positions_tuple(positions: Positions) -> tuple[int, ...] | None:
    if positions is None:
        return None
    items = [positions] if isinstance(positions, int) else list(positions)
    for p in items:
        if isinstance(p, bool) or not isinstance(p, int):
            raise CodebookError(f"position {p!r} is not valid; positions are integers (negative count from the end).")
    if not items:
        raise CodebookError("positions is empty; give at least one position, or None for every position.")
    return tuple(items)


def _finite(name: str, value: object, meaning: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value or abs(value) == float("inf"):
        raise CodebookError(f"{name}={value!r} is not valid; give a finite number ({meaning}).")
    return float(value)


@dataclass(frozen=True)
class Ablate:
    """Remove codes. ``substitute``: the next-best code takes the slot, so k codes stay active;
    ``drop``: the slot contributes nothing and is reported as -1."""

    codes: tuple[CodeRef, ...]
    positions: tuple[int, ...] | None = None
    mode: Literal["substitute", "drop"] = "substitute"

    def __init__(
        self, codes: CodeRef | Iterable[CodeRef], positions: Positions = None, mode: str = "substitute"
    ) -> None:
        check_choice("mode", mode, ("substitute", "drop"))
        object.__setattr__(self, "codes", _codes_tuple(codes))
        object.__setattr__(self, "positions", _positions_tuple(positions))
        object.__setattr__(self, "mode", mode)


@dataclass(frozen=True)
class Force:
    """Make codes fire: they take the top slots (at most k per codebook), the rest stay natural."""

    codes: tuple[CodeRef, ...]
    positions: tuple[int, ...] | None = None

    def __init__(self, codes: CodeRef | Iterable[CodeRef], positions: Positions = None) -> None:
        object.__setattr__(self, "codes", _codes_tuple(codes))
        object.__setattr__(self, "positions", _positions_tuple(positions))


@dataclass(frozen=True)
class Scale:
    """Multiply the contribution of codes when they fire (0 = off, 1 = as is)."""

    codes: tuple[CodeRef, ...]
    factor: float = 1.0
    positions: tuple[int, ...] | None = None

    def __init__(self, codes: CodeRef | Iterable[CodeRef], factor: float, positions: Positions = None) -> None:
        object.__setattr__(self, "codes", _codes_tuple(codes))
        object.__setattr__(self, "factor", _finite("factor", factor, "0 = off, 1 = as is"))
        object.__setattr__(self, "positions", _positions_tuple(positions))


@dataclass(frozen=True)
class Add:
    """Add code vectors on top of whatever codes fire: the soft way to steer.

    Force puts codes into the k slots (and so pushes natural codes out); Add keeps every natural
    code and adds ``strength`` times each named code's vector, where strength 1 is as much as one
    of the k slots contributes. Large strengths push activations off what the model has seen.
    """

    codes: tuple[CodeRef, ...]
    strength: float = 1.0
    positions: tuple[int, ...] | None = None

    def __init__(self, codes: CodeRef | Iterable[CodeRef], strength: float = 1.0, positions: Positions = None) -> None:
        object.__setattr__(self, "codes", _codes_tuple(codes))
        object.__setattr__(self, "strength", _finite("strength", strength, "1 = one slot's worth"))
        object.__setattr__(self, "positions", _positions_tuple(positions))


@dataclass(frozen=True)
class Patch:
    """Put the codes of another prompt (``source``, from an earlier forward) into this one.

    ``codebooks`` chooses which (None = all; a site kind, site name, codebook name or label, or a
    list). ``positions`` are the target positions; ``source_positions`` (default: the same) say
    where in the source to read. With positions=None every position present in the source is
    patched.
    """

    source: Codes
    codebooks: str | tuple[str, ...] | None = None
    positions: tuple[int, ...] | None = None
    source_positions: tuple[int, ...] | None = None

    def __init__(
        self,
        source: Codes,
        codebooks: str | Iterable[str] | None = None,
        positions: Positions = None,
        source_positions: Positions = None,
    ) -> None:
        if not isinstance(source, Codes):
            raise CodebookError(
                f"Patch source must be the Codes of another forward (model(other).codes), got {type(source).__name__}."
            )
        object.__setattr__(self, "source", source)
        object.__setattr__(
            self,
            "codebooks",
            codebooks if codebooks is None or isinstance(codebooks, str) else tuple(codebooks),
        )
        object.__setattr__(self, "positions", _positions_tuple(positions))
        object.__setattr__(self, "source_positions", _positions_tuple(source_positions))
        if self.source_positions is not None and (
            self.positions is None or len(self.positions) != len(self.source_positions)
        ):
            raise CodebookError(
                "source_positions needs positions of the same length: one source position per target position."
            )


Intervention = Ablate | Force | Scale | Add | Patch


@dataclass(frozen=True)
class Resolved:
    """An intervention checked against one model: per site, what to do to which groups and codes."""

    op: Literal["scores", "weights", "replace", "add"]
    positions: tuple[int, ...] | None
    per_site: dict[str, Tensor] = field(default_factory=dict)  # (G, C) bool / float, or (G,) bool for replace
    value: float = 0.0
    drop: bool = False
    source: Codes | None = None
    source_units: dict[str, list[int | None]] = field(default_factory=dict)  # site -> source index per group
    source_positions: tuple[int, ...] | None = None


def _code_table(
    codes: tuple[CodeRef, ...],
    names: CodebookNames,
    sites: dict[str, tuple[int, int]],
    dtype: torch.dtype,
    fill: float,
    rest: float = 1.0,
) -> dict[str, Tensor]:
    """Per site, a (G, C) table holding ``fill`` at the named codes (False elsewhere, or ``rest`` for float)."""
    if not codes:
        raise CodebookError("no codes given; name at least one code like '0.3.17' or ('1.mlp', 512).")
    tables: dict[str, Tensor] = {}
    for ref in codes:
        index, code = names.parse_code(ref)
        unit = names.units[index]
        groups, num_codes = sites[unit.site]
        if unit.site not in tables:
            tables[unit.site] = (
                torch.zeros(groups, num_codes, dtype=dtype)
                if dtype == torch.bool
                else torch.full((groups, num_codes), rest, dtype=dtype)
            )
        tables[unit.site][unit.group or 0, code] = fill
    return tables


def resolve(
    intervention: Intervention, names: CodebookNames, sites: dict[str, tuple[int, int]], k: dict[str, int]
) -> Resolved:
    """Check one intervention against a model's codebooks; ``sites`` maps site -> (groups, num_codes)."""
    if isinstance(intervention, Ablate):
        if intervention.mode == "drop":
            tables = _code_table(intervention.codes, names, sites, torch.float32, 0.0)
            return Resolved("weights", intervention.positions, tables, drop=True)
        masks = _code_table(intervention.codes, names, sites, torch.bool, True)
        for site, mask in masks.items():
            left = sites[site][1] - int(mask.sum(1).max())
            if left < k[site]:
                raise CodebookError(
                    f"ablating {int(mask.sum(1).max())} codes of a codebook at {site} leaves {left}, fewer than "
                    f"k={k[site]}; ablate fewer codes or use mode='drop'."
                )
        return Resolved("scores", intervention.positions, masks, value=float("-inf"))
    if isinstance(intervention, Force):
        masks = _code_table(intervention.codes, names, sites, torch.bool, True)
        for site, mask in masks.items():
            most = int(mask.sum(1).max())
            if most > k[site]:
                raise CodebookError(
                    f"{most} codes forced in one codebook at {site}, but it has only k={k[site]} slots; force at "
                    f"most {k[site]} codes per codebook there."
                )
        return Resolved("scores", intervention.positions, masks, value=float("inf"))
    if isinstance(intervention, Scale):
        tables = _code_table(intervention.codes, names, sites, torch.float32, intervention.factor)
        return Resolved("weights", intervention.positions, tables)
    if isinstance(intervention, Add):
        tables = _code_table(intervention.codes, names, sites, torch.float32, intervention.strength, rest=0.0)
        return Resolved("add", intervention.positions, tables)
    if isinstance(intervention, Patch):
        return _resolve_patch(intervention, names, sites)
    raise CodebookError(
        f"{intervention!r} is not an intervention; use Ablate, Force, Scale, Add or Patch from cbwidgets."
    )


def _resolve_patch(patch: Patch, names: CodebookNames, sites: dict[str, tuple[int, int]]) -> Resolved:
    source = patch.source
    chosen = names.select(patch.codebooks)
    groups: dict[str, Tensor] = {}
    source_units: dict[str, list[int | None]] = {}
    for index in chosen:
        unit = names.units[index]
        if unit.name not in source.names:
            raise CodebookError(
                f"the patch source has no codes for codebook {unit.label!r}; run the source prompt through "
                f"the same model with the same codebooks attached."
            )
        g_count = sites[unit.site][0]
        groups.setdefault(unit.site, torch.zeros(g_count, dtype=torch.bool))[unit.group or 0] = True
        source_units.setdefault(unit.site, [None] * g_count)[unit.group or 0] = source.names.index(unit.name)
    return Resolved(
        "replace",
        patch.positions,
        groups,
        source=source,
        source_units=source_units,
        source_positions=patch.source_positions,
    )


@dataclass(frozen=True)
class StepContext:
    """Where one forward sits in its sequence: needed to turn positions into token masks."""

    batch: int
    tokens: int  # tokens in this forward
    offset: int  # absolute position of the first of them (past length under a KV cache)
    prompt_length: int  # what negative positions count back from
    total_length: int  # the last valid position + 1 (prompt plus planned generation)


def _absolute(positions: tuple[int, ...], ctx: StepContext) -> list[int]:
    out = []
    for p in positions:
        q = p + ctx.prompt_length if p < 0 else p
        if not 0 <= q < ctx.total_length:
            raise CodebookError(
                f"position {p} is out of range for a sequence of {ctx.total_length} tokens; valid positions are "
                f"0..{ctx.total_length - 1} or -{ctx.prompt_length}..-1."
            )
        out.append(q)
    return out


def _token_mask(positions: tuple[int, ...] | None, ctx: StepContext, device: torch.device) -> Tensor | None:
    if positions is None:
        return None
    step = torch.arange(ctx.offset, ctx.offset + ctx.tokens, device=device)
    wanted = torch.tensor(_absolute(positions, ctx), device=device)
    return torch.isin(step, wanted).repeat(ctx.batch)


def site_edit(
    resolved: Sequence[Resolved], site: str, ctx: StepContext, k: int, device: torch.device
) -> CodeEdit | None:
    """The CodeEdit for one site in one forward, or None when nothing applies there."""
    scores: list[tuple[Tensor | None, Tensor, float]] = []
    weights: list[tuple[Tensor | None, Tensor, bool]] = []
    replace: list[tuple[Tensor, Tensor]] = []
    add: list[tuple[Tensor | None, Tensor]] = []
    for r in resolved:
        if site not in r.per_site:
            continue
        mask = _token_mask(r.positions, ctx, device)
        table = r.per_site[site].to(device)
        if r.op == "scores":
            scores.append((mask, table, r.value))
        elif r.op == "weights":
            weights.append((mask, table, r.drop))
        elif r.op == "add":
            add.append((mask, table))
        else:
            replace.append(_patch_ids(r, site, ctx, table, k, device))
    if not (scores or weights or replace or add):
        return None
    return CodeEdit(tuple(scores), tuple(weights), tuple(replace), tuple(add))


def _patch_ids(
    r: Resolved, site: str, ctx: StepContext, groups: Tensor, k: int, device: torch.device
) -> tuple[Tensor, Tensor]:
    """(mask (N, G), ids (N, G, k)) reading the source's codes at the mapped positions."""
    assert r.source is not None
    src = r.source.ids.to(device)
    sb, st = src.shape[:2]
    if src.shape[3] != k:
        raise CodebookError(f"the patch source has k={src.shape[3]} codes per token but {site} has k={k}.")
    if sb not in (1, ctx.batch):
        raise CodebookError(f"the patch source has batch {sb}; it must be 1 or match this batch of {ctx.batch}.")
    # source position for each absolute position of this step (-1: not patched)
    step = range(ctx.offset, ctx.offset + ctx.tokens)
    if r.positions is None:
        mapping = {p: p for p in step if p < st}
    else:
        targets = _absolute(r.positions, ctx)
        sources = list(r.source_positions) if r.source_positions is not None else list(r.positions)
        mapping = {}
        for t, s in zip(targets, sources, strict=True):
            s_abs = s + st if s < 0 else s
            if not 0 <= s_abs < st:
                raise CodebookError(f"source position {s} is out of range for a patch source of {st} tokens.")
            mapping[t] = s_abs
    src_pos = torch.tensor([mapping.get(p, -1) for p in step], device=device)
    units = r.source_units[site]
    g_count = len(units)
    ids = torch.zeros(ctx.batch, ctx.tokens, g_count, k, dtype=torch.long, device=device)
    valid = src_pos >= 0
    for g, u in enumerate(units):
        if u is None:
            continue
        picked = src[:, src_pos.clamp_min(0), u]  # (sb, tokens, k)
        ids[:, :, g] = picked.expand(ctx.batch, -1, -1)
    mask = (valid[None, :, None] & groups[None, None, :]).expand(ctx.batch, -1, -1)
    return mask.reshape(-1, g_count), ids.reshape(-1, g_count, k)
