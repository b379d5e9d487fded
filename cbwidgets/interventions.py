"""Interventions on codes: values that say what to change, compiled once per ``with`` block.

An intervention is a frozen value (Ablate, AblateEach, Force, Scale, Add, Patch) naming codes and
positions; it knows no model. ``CodebookModel.prepare(...)`` compiles values against one model into an
``InterventionPlan``: every code name parsed (a bad one fails before any forward), and per site the
codebook edits with their tables already on the model's device. ``with model.intervene(...)``
prepares once when the block is entered and restores the previous plan in ``finally``; ``generate``
prepares once per call. A forward then only turns positions into token masks. Nested contexts
compose: inner edits apply after outer ones.

Positions are token indices: non-negative ones are absolute (they may name tokens that generation
has not produced yet), negative ones count from the end of the prompt. ``positions=None`` means
every position, newly generated ones included; that is how topic steering holds codes on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import torch
from torch import Tensor

from .codebook import AddEdit, CodeEdit, KnockEdit, ReplaceEdit, ScoreEdit, WeightEdit
from .codes import Codes
from .errors import CodebookError, check_choice, check_positive_real
from .names import CodebookNames, CodeRef, as_integer, as_real, code_refs

__all__ = [
    "ABLATION_MODES",
    "Ablate",
    "AblateEach",
    "Add",
    "Force",
    "Intervention",
    "InterventionPlan",
    "Patch",
    "Scale",
    "SiteShape",
    "StepContext",
    "compile_interventions",
    "known_codes",
    "positions_tuple",
]

ABLATION_MODES = ("substitute", "drop")  # what takes an ablated code's slot: the next best code, or nothing

Positions = Any  # an int, a sequence or array of ints (numpy and torch integers too), or None


def _position(value: Any) -> int:
    try:
        return as_integer(value)
    except ValueError:
        raise CodebookError(f"position {value!r} is not one integer; give a list of positions.") from None
    except TypeError:
        raise CodebookError(
            f"position {value!r} is not valid; positions are integers (negative count from the end)."
        ) from None


def positions_tuple(positions: Positions) -> tuple[int, ...] | None:
    """None (every position), or positions given as an int, a list, or a numpy / torch array."""
    if positions is None:
        return None
    if getattr(positions, "ndim", None) == 0 or isinstance(positions, int):
        return (_position(positions),)
    if isinstance(positions, str | bytes):  # iterable, but its characters are not positions
        raise CodebookError(f"positions={positions!r} is a string; give an int, a list of ints, or None.")
    if getattr(positions, "ndim", 1) > 1:
        raise CodebookError(
            f"positions={positions!r} has {positions.ndim} dimensions; give one list of positions (a 1-D array)."
        )
    if hasattr(positions, "tolist") and not isinstance(positions, list | tuple):
        positions = positions.tolist()
    try:
        items = [_position(p) for p in positions]
    except TypeError:
        raise CodebookError(
            f"positions={positions!r} is not valid; give an int, a list of ints, or None for every position."
        ) from None
    if not items:
        raise CodebookError("positions is empty; give at least one position, or None for every position.")
    return tuple(items)


def _finite(name: str, value: object, meaning: str) -> float:
    try:
        return as_real(value)
    except (TypeError, ValueError):
        raise CodebookError(f"{name}={value!r} is not valid; give a finite number ({meaning}).") from None


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
        check_choice("mode", mode, ABLATION_MODES)
        object.__setattr__(self, "codes", code_refs(codes))
        object.__setattr__(self, "positions", positions_tuple(positions))
        object.__setattr__(self, "mode", mode)


@dataclass(frozen=True)
class AblateEach:
    """A different ablation in each row of one batch: row ``rows[i]`` loses ``codes[i]`` at
    ``positions[i]`` (one position each). This is how one batched forward runs many single-code
    experiments on copies of a prompt; ``rows`` defaults to 0, 1, 2, ... A code that does not fire
    at its position changes nothing. Modes as in ``Ablate``."""

    codes: tuple[CodeRef, ...]
    positions: tuple[int, ...]
    rows: tuple[int, ...]
    mode: Literal["substitute", "drop"] = "substitute"

    def __init__(
        self, codes: Iterable[CodeRef], positions: Positions, rows: Positions = None, mode: str = "substitute"
    ) -> None:
        check_choice("mode", mode, ABLATION_MODES)
        refs = code_refs(codes)
        at = positions_tuple(positions)
        if at is None:
            raise CodebookError("AblateEach needs one position per code, not None (every position); use Ablate.")
        where = tuple(range(len(refs))) if rows is None else positions_tuple(rows)
        if where is None or len(at) != len(refs) or len(where) != len(refs):
            raise CodebookError(
                f"AblateEach takes one position and one row per code: got {len(refs)} codes, {len(at)} positions "
                f"and {len(refs) if where is None else len(where)} rows."
            )
        if min(where) < 0:
            raise CodebookError(f"rows are batch indices from 0; got {min(where)}.")
        object.__setattr__(self, "codes", refs)
        object.__setattr__(self, "positions", at)
        object.__setattr__(self, "rows", where)
        object.__setattr__(self, "mode", mode)


@dataclass(frozen=True)
class Force:
    """Make codes fire: they take the top slots (at most k per codebook), the rest stay natural.

    ``value`` says how strongly: an SAE latent's activation (None: its typical value, or its own
    where that is larger); for a codebook code, which has no activation, a multiple of its vector
    (None or 1: as it is).
    """

    codes: tuple[CodeRef, ...]
    positions: tuple[int, ...] | None = None
    value: float | None = None

    def __init__(
        self, codes: CodeRef | Iterable[CodeRef], positions: Positions = None, value: float | None = None
    ) -> None:
        object.__setattr__(self, "codes", code_refs(codes))
        object.__setattr__(self, "positions", positions_tuple(positions))
        if value is not None:  # an SAE reports a latent at 0 as not firing, and its values are >= 0
            value = check_positive_real("value", value, "an SAE latent's activation, or 2.0 for twice a code's vector")
        object.__setattr__(self, "value", value)


@dataclass(frozen=True)
class Scale:
    """Multiply the contribution of codes when they fire (0 = off, 1 = as is)."""

    codes: tuple[CodeRef, ...]
    factor: float = 1.0
    positions: tuple[int, ...] | None = None

    def __init__(self, codes: CodeRef | Iterable[CodeRef], factor: float, positions: Positions = None) -> None:
        object.__setattr__(self, "codes", code_refs(codes))
        object.__setattr__(self, "factor", _finite("factor", factor, "0 = off, 1 = as is"))
        object.__setattr__(self, "positions", positions_tuple(positions))


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
        object.__setattr__(self, "codes", code_refs(codes))
        object.__setattr__(self, "strength", _finite("strength", strength, "1 = one slot's worth"))
        object.__setattr__(self, "positions", positions_tuple(positions))


@dataclass(frozen=True)
class Patch:
    """Put the codes of another prompt (``source``, from an earlier forward) into this one.

    ``codebooks`` chooses which (None = all; see ``CodebookNames.select`` for the forms).
    ``positions`` are the target positions; ``source_positions`` (default: the same) say where in
    the source to read. With positions=None every position present in the source is patched.
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
            self, "codebooks", codebooks if codebooks is None or isinstance(codebooks, str) else tuple(codebooks)
        )
        object.__setattr__(self, "positions", positions_tuple(positions))
        object.__setattr__(self, "source_positions", positions_tuple(source_positions))
        if self.source_positions is not None and (
            self.positions is None or len(self.positions) != len(self.source_positions)
        ):
            raise CodebookError(
                "source_positions needs positions of the same length: one source position per target position."
            )


Intervention = Ablate | AblateEach | Force | Scale | Add | Patch


# --------------------------------------------------------------------------- one forward's place


@dataclass(frozen=True)
class StepContext:
    """Where one forward sits in its sequence: needed to turn positions into token masks."""

    batch: int
    tokens: int  # tokens in this forward
    offset: int  # absolute position of the first of them (past length under a KV cache)
    prompt_length: int  # what negative positions count back from
    total_length: int  # the last valid position + 1 (prompt plus planned generation)

    def absolute(self, positions: Sequence[int]) -> list[int]:
        """Positions as absolute indices; negative ones count back from the prompt's end."""
        out = []
        for p in positions:
            q = p + self.prompt_length if p < 0 else p
            if not 0 <= q < self.total_length:
                raise CodebookError(
                    f"position {p} is out of range for a sequence of {self.total_length} tokens; valid positions "
                    f"are 0..{self.total_length - 1} or -{self.prompt_length}..-1."
                )
            out.append(q)
        return out

    def token_mask(self, positions: tuple[int, ...], device: torch.device) -> Tensor:
        """(batch * tokens,) bool: the flattened tokens of this forward at those positions."""
        step = torch.arange(self.offset, self.offset + self.tokens, device=device)
        wanted = torch.tensor(self.absolute(positions), device=device)
        return torch.isin(step, wanted).repeat(self.batch)


# --------------------------------------------------------------------------- the compiled plan


@dataclass(frozen=True)
class SiteShape:
    """What compiling needs to know of the codebook at one site."""

    groups: int
    num_codes: int
    k: int


@dataclass(frozen=True)
class _Planned:
    """One code edit at one site, waiting only for its positions to become a token mask."""

    positions: tuple[int, ...] | None
    edit: ScoreEdit | WeightEdit | AddEdit  # with tokens=None

    def at(self, step: StepContext, device: torch.device) -> ScoreEdit | WeightEdit | AddEdit:
        if self.positions is None:
            return self.edit
        return replace(self.edit, tokens=step.token_mask(self.positions, device))


@dataclass(frozen=True)
class _PlannedPatch:
    """Another prompt's codes for some groups of one site, read per forward at mapped positions."""

    source_ids: Tensor  # (source batch, source tokens, codebooks, k) on the model's device
    source_index: tuple[int | None, ...]  # per group: the source's codebook axis index, or None
    positions: tuple[int, ...] | None
    source_positions: tuple[int, ...] | None
    source_values: Tensor | None = None  # the source's values, where its codes had them (SAE latents)

    def at(self, step: StepContext, device: torch.device, k: int, site: str) -> ReplaceEdit:
        src = self.source_ids.to(device)
        sb, st = src.shape[:2]
        if src.shape[3] != k:
            raise CodebookError(f"the patch source has k={src.shape[3]} codes per token but {site} has k={k}.")
        if sb not in (1, step.batch):
            raise CodebookError(f"the patch source has batch {sb}; it must be 1 or match this batch of {step.batch}.")
        here = range(step.offset, step.offset + step.tokens)
        if self.positions is None:
            mapping = {p: p for p in here if p < st}
        else:
            sources = self.source_positions if self.source_positions is not None else self.positions
            mapping = {}
            for target, source in zip(step.absolute(self.positions), sources, strict=True):
                at = source + st if source < 0 else source
                if not 0 <= at < st:
                    raise CodebookError(f"source position {source} is out of range for a patch source of {st} tokens.")
                mapping[target] = at
        src_pos = torch.tensor([mapping.get(p, -1) for p in here], device=device)  # (tokens,)
        groups = len(self.source_index)
        ids = torch.zeros(step.batch, step.tokens, groups, k, dtype=torch.long, device=device)
        values = None if self.source_values is None else torch.zeros(ids.shape, device=device)
        chosen = torch.zeros(groups, dtype=torch.bool, device=device)
        for g, index in enumerate(self.source_index):
            if index is not None:
                ids[:, :, g] = src[:, src_pos.clamp_min(0), index].expand(step.batch, -1, -1)
                if values is not None and self.source_values is not None:
                    read = self.source_values.to(device)[:, src_pos.clamp_min(0), index]
                    values[:, :, g] = read.expand(step.batch, -1, -1)
                chosen[g] = True
        mask = ((src_pos >= 0)[None, :, None] & chosen[None, None, :]).expand(step.batch, -1, -1)
        flat_values = None if values is None else values.reshape(-1, groups, k)
        return ReplaceEdit(mask.reshape(-1, groups), ids.reshape(-1, groups, k), flat_values)


@dataclass(frozen=True)
class _PlannedKnock:
    """Single-code removals at (row, absolute or negative position, group, code), one site."""

    rows: tuple[int, ...]
    positions: tuple[int, ...]
    groups: Tensor  # (M,) long on the model's device
    codes: Tensor  # (M,) long
    drop: bool

    def at(self, step: StepContext, device: torch.device) -> KnockEdit:
        if max(self.rows) >= step.batch:
            raise CodebookError(
                f"AblateEach names row {max(self.rows)} but this forward's batch has {step.batch} rows."
            )
        positions = torch.tensor(step.absolute(self.positions), device=device) - step.offset
        rows = torch.tensor(self.rows, device=device)
        here = (positions >= 0) & (positions < step.tokens)  # knocks at tokens of another forward wait
        tokens = rows * step.tokens + positions
        return KnockEdit(tokens[here], self.groups[here], self.codes[here], self.drop)


@dataclass(frozen=True)
class _KnownIds:
    """Ids already known for some (token, group) pairs of one forward of a fixed shape."""

    edit: ReplaceEdit  # tokens (N, G) over the forward's flattened tokens

    def at(self, step: StepContext, device: torch.device) -> ReplaceEdit:
        if self.edit.tokens.shape[0] != step.batch * step.tokens:
            raise CodebookError(
                f"known codes were given for {self.edit.tokens.shape[0]} tokens but this forward has "
                f"{step.batch} x {step.tokens}; they belong to one forward only."
            )
        return self.edit


Planned = _Planned | _PlannedPatch | _PlannedKnock | _KnownIds


@dataclass(frozen=True)
class InterventionPlan:
    """Interventions checked against one model: per site, the edits to make, in order.

    Enter it with ``model.intervene(plan)`` as often as needed (each generated token, say); it is
    never checked again. Sites whose edits hold at every position get their ``CodeEdit`` built here,
    once; the others build only their token masks per forward.
    """

    sites: Mapping[str, tuple[Planned, ...]] = field(default_factory=dict)
    shapes: Mapping[str, SiteShape] = field(default_factory=dict)
    _fixed: dict[str, CodeEdit] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for site, planned in self.sites.items():
            if all(isinstance(p, _Planned) and p.positions is None for p in planned):
                self._fixed[site] = _collect(p.edit for p in planned if isinstance(p, _Planned))

    def __bool__(self) -> bool:
        return bool(self.sites)

    def then(self, inner: InterventionPlan) -> InterventionPlan:
        """This plan, then ``inner``'s edits after it at every site (how nested contexts compose)."""
        if not inner:
            return self
        if not self:
            return inner
        sites = dict(self.sites)
        for site, planned in inner.sites.items():
            sites[site] = sites.get(site, ()) + planned
        return InterventionPlan(sites, {**self.shapes, **inner.shapes})

    def edit(self, site: str, step: StepContext, device: torch.device) -> CodeEdit | None:
        """The CodeEdit for one site in one forward, or None when nothing applies there."""
        planned = self.sites.get(site)
        if not planned:
            return None
        fixed = self._fixed.get(site)
        if fixed is not None:
            return fixed
        k = self.shapes[site].k
        return _collect(
            p.at(step, device, k, site) if isinstance(p, _PlannedPatch) else p.at(step, device) for p in planned
        )


def _collect(edits: Iterable[ScoreEdit | WeightEdit | AddEdit | ReplaceEdit | KnockEdit]) -> CodeEdit:
    parts: dict[type, list[Any]] = {ScoreEdit: [], WeightEdit: [], ReplaceEdit: [], AddEdit: [], KnockEdit: []}
    for e in edits:
        parts[type(e)].append(e)
    return CodeEdit(*(tuple(parts[kind]) for kind in (ScoreEdit, WeightEdit, ReplaceEdit, AddEdit, KnockEdit)))


def known_codes(shapes: Mapping[str, SiteShape], known: Mapping[str, tuple[Tensor, Tensor]]) -> InterventionPlan:
    """A plan that hands codebooks ids they would compute anyway, so they skip scoring those tokens.

    ``known[site] = (mask, ids)``: mask (batch, tokens, groups) bool, ids (batch, tokens, groups, k),
    for exactly one forward's shape. Only right where the site's input is what it was when the ids
    were read (the prefix an ablation cannot reach, say); a token is skipped when all its groups are
    known.
    """
    sites: dict[str, tuple[Planned, ...]] = {}
    for site, (mask, ids) in known.items():
        groups, k = shapes[site].groups, shapes[site].k
        if mask.shape[-1] != groups or ids.shape[-2:] != (groups, k):
            raise CodebookError(f"known codes for {site} must have {groups} groups and k={k}; got {tuple(ids.shape)}.")
        sites[site] = (_KnownIds(ReplaceEdit(mask.reshape(-1, groups), ids.reshape(-1, groups, k))),)
    return InterventionPlan(sites, {site: shapes[site] for site in sites})


def compile_interventions(
    interventions: Iterable[Intervention | InterventionPlan],
    names: CodebookNames,
    shapes: Mapping[str, SiteShape],
    device: torch.device,
) -> InterventionPlan:
    """Check intervention values against a model's codebooks (``shapes``: site -> its codebook's
    groups, codes and k) and compile them into one plan; plans among them are kept as they are."""
    plan = InterventionPlan()
    for intervention in interventions:
        if isinstance(intervention, InterventionPlan):
            plan = plan.then(intervention)
            continue
        planned = _compile_one(intervention, names, shapes, device)
        plan = plan.then(InterventionPlan(planned, {site: shapes[site] for site in planned}))
    return plan


def _compile_one(
    intervention: Any, names: CodebookNames, shapes: Mapping[str, SiteShape], device: torch.device
) -> dict[str, tuple[Planned, ...]]:
    if isinstance(intervention, Patch):
        return _compile_patch(intervention, names, shapes, device)
    if isinstance(intervention, AblateEach):
        return _compile_each(intervention, names, shapes, device)
    if not isinstance(intervention, Ablate | Force | Scale | Add):
        raise CodebookError(
            f"{intervention!r} is not an intervention; use Ablate, AblateEach, Force, Scale, Add or Patch from "
            f"cbwidgets."
        )
    positions = intervention.positions
    if isinstance(intervention, Ablate) and intervention.mode == "drop":
        tables = _code_tables(intervention.codes, names, shapes, 0.0, device)
        return {s: (_Planned(positions, WeightEdit(t, drop=True)),) for s, t in tables.items()}
    if isinstance(intervention, Ablate | Force):
        masks = _code_tables(intervention.codes, names, shapes, True, device)
        removing = isinstance(intervention, Ablate)
        for site, mask in masks.items():
            most, k, size = int(mask.sum(1).max()), shapes[site].k, shapes[site].num_codes
            if removing and size - most < k:
                raise CodebookError(
                    f"ablating {most} codes of a codebook at {site} leaves {size - most}, fewer than k={k}; ablate "
                    f"fewer codes or use mode='drop'."
                )
            if not removing and most > k:
                raise CodebookError(
                    f"{most} codes forced in one codebook at {site}, but it has only k={k} slots; force at most {k} "
                    f"codes per codebook there."
                )
        levels = {}  # a Force's value, where it names one
        if isinstance(intervention, Force) and intervention.value is not None:
            levels = _code_tables(intervention.codes, names, shapes, intervention.value, device)
        value = float("-inf") if removing else float("inf")
        return {s: (_Planned(positions, ScoreEdit(m, value, levels=levels.get(s))),) for s, m in masks.items()}
    if isinstance(intervention, Scale):
        tables = _code_tables(intervention.codes, names, shapes, intervention.factor, device)
        return {s: (_Planned(positions, WeightEdit(t)),) for s, t in tables.items()}
    tables = _code_tables(intervention.codes, names, shapes, intervention.strength, device, rest=0.0)
    return {s: (_Planned(positions, AddEdit(t)),) for s, t in tables.items()}


def _code_tables(
    codes: tuple[CodeRef, ...],
    names: CodebookNames,
    shapes: Mapping[str, SiteShape],
    fill: bool | float,
    device: torch.device,
    rest: float = 1.0,
) -> dict[str, Tensor]:
    """Per site, a (G, C) table: ``fill`` at the named codes, False (bool) or ``rest`` elsewhere."""
    if not codes:
        raise CodebookError("no codes given; name at least one code like '0.3.17' or ('1.mlp', 512).")
    tables: dict[str, Tensor] = {}
    for index, code in names.parse_codes(codes):
        book = names.codebooks[index]
        site = book.site or book.name
        shape = shapes[site]
        if site not in tables:
            size = (shape.groups, shape.num_codes)
            tables[site] = (
                torch.zeros(size, dtype=torch.bool)
                if isinstance(fill, bool)
                else torch.full(size, rest, dtype=torch.float32)
            )
        tables[site][book.group, code] = fill
    return {site: table.to(device) for site, table in tables.items()}


def _compile_patch(
    patch: Patch, names: CodebookNames, shapes: Mapping[str, SiteShape], device: torch.device
) -> dict[str, tuple[Planned, ...]]:
    source = patch.source
    per_site: dict[str, list[int | None]] = {}
    for index in names.select(patch.codebooks):
        book = names.codebooks[index]
        if book.name not in source.names:
            raise CodebookError(
                f"the patch source has no codes for codebook {book.label!r}; run the source prompt through "
                f"the same model with the same codebooks attached."
            )
        site = book.site or book.name
        per_site.setdefault(site, [None] * shapes[site].groups)[book.group] = source.names.index(book.name)
    ids = source.ids.to(device)
    values = None if source.values is None else source.values.to(device)
    return {
        site: (_PlannedPatch(ids, tuple(index), patch.positions, patch.source_positions, values),)
        for site, index in per_site.items()
    }


def _compile_each(
    each: AblateEach, names: CodebookNames, shapes: Mapping[str, SiteShape], device: torch.device
) -> dict[str, tuple[Planned, ...]]:
    per_site: dict[str, list[tuple[int, int, int, int]]] = {}  # site -> (row, position, group, code)
    for (index, code), row, position in zip(names.parse_codes(each.codes), each.rows, each.positions, strict=True):
        book = names.codebooks[index]
        per_site.setdefault(book.site or book.name, []).append((row, position, book.group, code))
    if each.mode == "substitute":
        for site in per_site:
            if shapes[site].num_codes <= shapes[site].k:
                raise CodebookError(
                    f"{site} has {shapes[site].num_codes} codes and k={shapes[site].k}: no code is left to substitute; "
                    f"use mode='drop'."
                )
    out: dict[str, tuple[Planned, ...]] = {}
    for site, knocks in per_site.items():
        rows, positions, groups, codes = zip(*knocks, strict=True)
        planned = _PlannedKnock(
            rows,
            positions,
            torch.tensor(groups, device=device),
            torch.tensor(codes, device=device),
            each.mode == "drop",
        )
        out[site] = (planned,)
    return out
