"""Which codes make a prediction: the exact effect of removing each code, and the edges between codes.

With k codes per token and codebook, "which codes caused this?" is a finite experiment: remove each
code where it fires and measure the target again. ``ablation_effects`` runs it exactly and cheaply:
- the removals at one position (and at the next ones, while they fit in a batch) share one batched
  forward (``AblateEach``: a different code in each row);
- that forward starts at the first of those positions, on the clean run's keys and values for every
  token before it, since a removal cannot change the past, and stops at the target's position;
- codes that cannot reach the target are not run: those after it, and at earlier positions those
  at or above its layer (later positions read a layer's input, never its own output);
- the codes a removal cannot change (its layer and below at later tokens, the sites before it at its
  own token) are handed over from the clean run instead of being scored again, and so are the codes
  nothing reads on the way to the target (the target's layer at earlier tokens);
- before any of that, removals that provably change no code after their own token (most of them
  where attention writes through codebooks at every layer: ``quiet_removals``) get an effect of
  exactly 0 without being run.

``attribution`` is the first-order estimate of the same numbers from one backward pass, for long
prompts and large models (it ranks well where removals are small changes, on the storyteller, and
badly where every write is a code, on TokFSM: see ``benchmarks/circuits.py``); ``code_graph``
keeps the strongest codes and ``graph_edges`` measures every edge between them (the effect of
removing one code on a later code's firing margin).

Effects are ``clean - ablated``: positive where the code holds the target up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd
import torch
from torch import Tensor

from .errors import CodebookError, check_choice
from .interventions import ABLATION_MODES, AblateEach, InterventionPlan, SiteShape, known_codes
from .model import CodebookModel, CodebookOutput
from .names import EMPTY, CodeRef, as_integer, as_real
from .quiet_removals import quiet_removals
from .removal_batches import prefix_cache, removal_windows
from .sae import TopKSAE

__all__ = [
    "EDGE_COLUMNS",
    "NODE_COLUMNS",
    "CodeMargin",
    "LogitDiff",
    "NextToken",
    "Target",
    "ablation_effects",
    "attribution",
    "code_graph",
    "graph_edges",
]

NODE_COLUMNS = ("position", "token", "codebook", "layer", "code", "id", "slot", "effect")
EDGE_COLUMNS = ("source", "source_position", "target", "target_position", "effect")
MEASURES = ("logit", "prob", "logprob")
_KIND_ORDER = {"attn_preproj": 0, "attn": 1, "mlp_hidden": 2, "mlp": 3, "block": 4}  # within a layer


@dataclass(frozen=True)
class NextToken:
    """The prediction of ``token`` (an id, or text that is one token) after ``position``."""

    token: int | str
    position: int = -1
    measure: Literal["logit", "prob", "logprob"] = "logit"

    def __post_init__(self) -> None:
        check_choice("measure", self.measure, MEASURES)


@dataclass(frozen=True)
class LogitDiff:
    """How much more ``token`` is predicted than ``other`` after ``position`` (logits)."""

    token: int | str
    other: int | str
    position: int = -1


@dataclass(frozen=True)
class CodeMargin:
    """How surely ``code`` fires at ``position``: its score minus the best score that would take its
    slot (the k-th best of the other codes). Positive where it fires."""

    code: CodeRef
    position: int


Target = NextToken | LogitDiff | CodeMargin


@dataclass(frozen=True)
class _Resolved:
    """A target checked against one model and prompt: absolute position, layer and place in the layer."""

    target: Target
    position: int
    layer: int
    order: float  # where in its layer it is read: codes at the same position and layer before it count
    tokens: tuple[int, ...] = ()
    site: str = ""
    group: int = 0
    code: int = 0

    def describe(self, model: CodebookModel) -> str:
        """The target in words, for titles: "the log-probability of '5' after token 20"."""
        tok = model.tokenizer

        def text(token: int) -> str:
            return repr(tok.decode([token])) if tok is not None else f"token id {token}"

        if isinstance(self.target, CodeMargin):
            return f"the firing margin of {model.names.canonical(self.target.code)} at token {self.position}"
        if isinstance(self.target, LogitDiff):
            return f"the logit of {text(self.tokens[0])} minus {text(self.tokens[1])} after token {self.position}"
        measure = {"logit": "logit", "prob": "probability", "logprob": "log-probability"}[self.target.measure]
        return f"the {measure} of {text(self.tokens[0])} after token {self.position}"

    def value(self, model: CodebookModel, out: CodebookOutput) -> Tensor:
        """The target in each row of a forward that ends at the target's position."""
        if isinstance(self.target, CodeMargin):
            book = model.attached[self.site]
            x = out.inputs[self.site].reshape(out.logits.shape[0], -1, book.dim)[:, -1]
            return _margins(book, x, self.group, self.code)
        logits = out.logits[:, -1].float()
        if isinstance(self.target, LogitDiff):
            return logits[:, self.tokens[0]] - logits[:, self.tokens[1]]
        measure = self.target.measure
        if measure == "prob":
            return logits.softmax(-1)[:, self.tokens[0]]
        if measure == "logprob":
            return logits.log_softmax(-1)[:, self.tokens[0]]
        return logits[:, self.tokens[0]]


def _scores(book: Any, x: Tensor, group: int) -> Tensor:
    """(rows, codes): every code's score in ``group`` for raw site inputs x (rows, dim), as selection ranks them."""
    w, bias = book.scorer(torch.float32)
    scores = book.normalize(x.float())[:, group] @ w[group]
    return scores if bias is None else scores + bias[group]


def _margins(book: Any, x: Tensor, group: int, code: int) -> Tensor:
    """(rows,) score of ``code`` minus the k-th best other score in ``group``, for raw site inputs x."""
    scores = _scores(book, x, group)
    own = scores[:, code].clone()
    scores[:, code] = float("-inf")
    return own - scores.topk(book.k, dim=-1).values[:, -1]


def _token_id(model: CodebookModel, token: Any) -> int:
    vocab = model.config.vocab_size
    if isinstance(token, str):
        if model.tokenizer is None:
            raise CodebookError(f"token {token!r} is text but this model has no tokenizer; give the token id.")
        ids = model.tokenizer.encode(token, add_special_tokens=False)
        if len(ids) != 1:
            raise CodebookError(
                f"{token!r} is {len(ids)} tokens for this tokenizer ({ids}); give text that is one token, or its id."
            )
        return int(ids[0])
    try:
        value = as_integer(token)
    except (TypeError, ValueError):
        raise CodebookError(f"token {token!r} is not a token id or text; give an int id or one token's text.") from None
    if not 0 <= value < vocab:
        raise CodebookError(f"token id {value} is outside this model's vocabulary of {vocab}.")
    return value


def _position(position: Any, length: int, what: str) -> int:
    try:
        p = as_integer(position)
    except (TypeError, ValueError):
        raise CodebookError(f"{what} position {position!r} is not an integer.") from None
    q = p + length if p < 0 else p
    if not 0 <= q < length:
        raise CodebookError(
            f"{what} position {p} is outside the prompt of {length} tokens (0..{length - 1} or -1..-{length})."
        )
    return q


def _resolve(model: CodebookModel, target: Any, length: int) -> _Resolved:
    last = int(model.config.num_hidden_layers) - 1
    if isinstance(target, NextToken):
        return _Resolved(
            target, _position(target.position, length, "target"), last, float("inf"), (_token_id(model, target.token),)
        )
    if isinstance(target, LogitDiff):
        tokens = (_token_id(model, target.token), _token_id(model, target.other))
        return _Resolved(target, _position(target.position, length, "target"), last, float("inf"), tokens)
    if isinstance(target, CodeMargin):
        index, code = model.names.parse_code(target.code)
        book = model.names.codebooks[index]
        site = book.site or book.name
        if site not in model.attached:
            raise CodebookError(f"code {target.code!r} names a codebook this model does not have attached.")
        return _Resolved(
            target,
            _position(target.position, length, "target code's"),
            int(book.layer if book.layer is not None else last),
            _KIND_ORDER.get(str(book.kind), 0),
            site=site,
            group=book.group,
            code=code,
        )
    raise CodebookError(
        f"{target!r} is not a target; use NextToken(token), LogitDiff(token, other) or CodeMargin(code, position)."
    )


def _reaches(layer: int, order: float, position: Any, target: _Resolved) -> Any:
    """Whether a code at (layer, kind order, position) can change the target at all; ``position`` an
    int (a bool back) or a tensor of positions (a bool tensor back)."""
    # its own layer reads it only at the same position, further along; a later layer, never
    own_layer = (layer == target.layer) & (position == target.position) & (order < target.order)
    return (position <= target.position) & ((layer < target.layer) | own_layer)


def _nodes(
    model: CodebookModel,
    out: CodebookOutput,
    target: _Resolved,
    codebooks: Any,
    positions: Any,
    prompt: Tensor,
    only: set[tuple[int, str]] | None = None,
) -> pd.DataFrame:
    """Every code that fired and can reach the target, one row per (position, codebook, slot);
    ``only`` keeps just these (position, code name) pairs."""
    names = model.names
    chosen = names.select(codebooks)
    length = prompt.shape[1]
    wanted = None if positions is None else {_position(p, length, "node") for p in _as_list(positions)}
    ids = out.codes.ids[0].cpu()  # (T, codebooks, k)
    tok = model.tokenizer
    rows = []
    for index in chosen:
        book = names.codebooks[index]
        layer = int(book.layer if book.layer is not None else 0)
        order = _KIND_ORDER.get(str(book.kind), 0)
        for p in range(target.position + 1):
            if (wanted is not None and p not in wanted) or not _reaches(layer, order, p, target):
                continue
            for slot, code in enumerate(ids[p, index].tolist()):
                if code == EMPTY or (only is not None and (p, names.code_name(index, code)) not in only):
                    continue
                text = tok.decode([int(prompt[0, p])]) if tok is not None else str(int(prompt[0, p]))
                rows.append((p, text, book.label, layer, names.code_name(index, code), code, slot, 0.0))
    return pd.DataFrame(rows, columns=list(NODE_COLUMNS))


def _as_list(values: Any) -> list[Any]:
    if isinstance(values, int) or getattr(values, "ndim", None) == 0:
        return [values]
    return list(values.tolist() if hasattr(values, "tolist") else values)


def _prompt(model: CodebookModel, prompt: Any) -> Tensor:
    ids = model.as_input_ids(model.tokenize(prompt) if isinstance(prompt, str) else prompt)
    if ids.shape[0] != 1:
        raise CodebookError(f"give one prompt (a batch of 1); got a batch of {ids.shape[0]}.")
    return ids.to(model.device)


@dataclass(frozen=True)
class _Site:
    """A codebook site's place in the forward and its codebooks' columns in a Codes array."""

    layer: int
    order: int
    columns: tuple[int, ...]  # per group
    k: int


def _sites(model: CodebookModel) -> dict[str, _Site]:
    columns: dict[str, list[int]] = {}
    for index, book in enumerate(model.names.codebooks):
        columns.setdefault(str(book.site), []).append(index)
    out = {}
    for site, cols in columns.items():
        book = model.names.codebooks[cols[0]]
        layer = int(book.layer if book.layer is not None else 0)
        out[site] = _Site(layer, _KIND_ORDER.get(str(book.kind), 0), tuple(cols), model.attached[site].k)
    return out


def _known(
    model: CodebookModel,
    clean_ids: Tensor,
    grid: Tensor,
    at: Tensor,
    layers: Tensor,
    orders: Tensor,
    target: _Resolved,
    own_token: bool = False,
) -> InterventionPlan:
    """The codes a removal cannot change, from the clean run, so they are not scored again, for a
    forward whose token (r, j) sits at position ``grid[r, j]`` and carries the removal of a code at
    position ``at[r, j]``, of layer ``layers[r, j]`` and kind order ``orders[r, j]`` (each of the four
    broadcasts to the forward's (rows, tokens)): every site before the removal's token; the sites
    before the removed code at its token; every site of its layer and below after it (a layer reads
    only its input at other positions). Sites whose codes cannot reach the target (the target's
    layer and above at earlier positions, say) are not scored either: whatever they hold, the target
    reads none of it; with ``own_token``, nothing after a removal's own token is read either."""
    shape = torch.broadcast_shapes(grid.shape, at.shape, layers.shape, orders.shape)
    shapes = {name: SiteShape(cb.groups, cb.num_codes, cb.k) for name, cb in model.attached.items()}
    before, same, after = grid < at, grid == at, grid > at
    every = clean_ids[grid]  # (grid rows, tokens, codebooks, k)
    known = {}
    for name, site in _sites(model).items():
        ids = every[..., list(site.columns), : site.k]
        below = (site.layer < layers) | ((site.layer == layers) & (site.order < orders))
        mask = before | (same & below) | (after & (site.layer <= layers))
        mask = mask & (ids >= 0).all(-1).all(-1)  # a slot emptied by an enclosing intervention: recompute
        mask = mask | ~_reaches(site.layer, site.order, grid, target)  # whatever they hold, nothing reads it
        if own_token:
            mask = mask | after
        if mask.any():
            groups = len(site.columns)
            ids = ids.clamp_min(0)  # an unread site's emptied slot: any code serves, nothing reads it
            known[name] = (mask.expand(shape)[..., None].expand(*shape, groups), ids.expand(*shape, groups, site.k))
    return known_codes(shapes, known)


_WINDOW = 8  # removals on tokens less than this far apart share a forward


def _orders(model: CodebookModel, nodes: pd.DataFrame) -> list[int]:
    """Each node's codebook's place within its layer (attention before MLP)."""
    books = model.names.codebooks
    return [_KIND_ORDER.get(str(books[model.names.index_of(label)].kind), 0) for label in nodes.codebook]


@torch.no_grad()
def _ablated_values(
    model: CodebookModel,
    prompt: Tensor,
    target: _Resolved,
    nodes: pd.DataFrame,
    mode: str,
    batch_size: int,
    clean: CodebookOutput,
    length: int,
) -> Tensor:
    """The target with each node's code removed: one batched forward per window of neighbouring
    positions (``removal_windows``). ``length`` is the whole prompt's (the one cut at the target),
    which enclosing interventions' positions refer to."""
    values = torch.empty(len(nodes))
    clean_ids = clean.codes.ids[0]
    layers = torch.tensor(nodes.layer.tolist(), device=clean_ids.device)
    orders = torch.tensor(_orders(model, nodes), device=clean_ids.device)
    at = torch.tensor(nodes.position.tolist(), dtype=torch.long)
    for rows in removal_windows(at, batch_size, _WINDOW):
        where = at[rows].to(clean_ids.device)
        p = int(where.min())
        cache = prefix_cache(clean.cache, p, len(rows))
        plan = AblateEach(list(nodes.code.iloc[rows.numpy()]), where.tolist(), mode=mode)
        grid = torch.arange(p, target.position + 1, device=where.device)[None]
        reuse = _known(model, clean_ids, grid, where[:, None], layers[rows, None], orders[rows, None], target)
        with model.intervene(plan, reuse):
            out = model(
                prompt[:, p : target.position + 1].expand(len(rows), -1),
                cache=cache,
                use_cache=cache is not None,
                prompt_length=length,
                total_length=length,
                capture=isinstance(target.target, CodeMargin),
                logits_to_keep=1,
            )
        values[rows] = target.value(model, out).cpu()
    return values


def ablation_effects(
    model: CodebookModel,
    prompt: Any,
    target: Target,
    mode: str = "substitute",
    codebooks: Any = None,
    positions: Any = None,
    batch_size: int = 64,
) -> pd.DataFrame:
    """The exact effect on ``target`` of removing each code where it fires (``clean - ablated``).

    ``prompt``: text or token ids (one prompt). ``mode``: ``substitute`` (the next-best code takes
    the slot) or ``drop`` (the slot contributes nothing). ``codebooks`` / ``positions`` narrow the
    codes tried (default: every codebook, every position up to the target's). Rows, strongest
    first: position, token, codebook, layer, code, id, slot, effect; ``attrs["clean"]`` is the
    target's value without any removal.
    """
    check_choice("mode", mode, ABLATION_MODES)
    batch_size = _count("batch_size", batch_size)
    with model.evaluating():
        return _ablation_effects(model, prompt, target, mode, codebooks, positions, batch_size)


def _ablation_effects(
    model: CodebookModel,
    prompt: Any,
    target: Target,
    mode: str,
    codebooks: Any,
    positions: Any,
    batch_size: int,
    only: set[tuple[int, str]] | None = None,
) -> pd.DataFrame:
    ids = _prompt(model, prompt)
    resolved = _resolve(model, target, ids.shape[1])
    length = ids.shape[1]  # an enclosing intervention's positions refer to the whole prompt
    ids = ids[:, : resolved.position + 1]  # nothing after the target matters to it
    with torch.no_grad():
        clean = model(
            ids,
            use_cache=True,
            capture=isinstance(target, CodeMargin),
            prompt_length=length,
            total_length=length,
        )
        clean_value = float(resolved.value(model, clean)[0])
    nodes = _nodes(model, clean, resolved, codebooks, positions, ids, only)
    if len(nodes):
        effects = torch.zeros(len(nodes))
        quiet = None
        # a margin reads a head's input, which any removal moves; an SAE's values move where its
        # ids do not, and the screen proves only that no id changes
        saes = any(isinstance(book, TopKSAE) for book in model.attached.values())
        if not isinstance(target, CodeMargin) and not saes:
            where = torch.tensor(nodes.position.tolist(), dtype=torch.long)
            removed = torch.tensor(nodes.layer.tolist(), dtype=torch.long)
            orders = torch.tensor(_orders(model, nodes), dtype=torch.long)
            last_layer = int(model.config.num_hidden_layers) - 1
            clean_ids = clean.codes.ids[0]

            def reuse(at: Tensor, rows: Tensor) -> InterventionPlan:  # one packed row, a removal's token each
                keys_only = _Resolved(target, int(at.max()), last_layer, -1.0)  # every layer's keys there
                return _known(model, clean_ids, at[None], at[None], removed[rows][None], orders[rows][None], keys_only)

            quiet = quiet_removals(model, ids, list(nodes.code), where, removed, mode, clean.cache, reuse)
        run = torch.ones(len(nodes), dtype=torch.bool) if quiet is None else ~quiet
        if run.any():  # the quiet ones change nothing the target reads: their effect is 0
            rest = nodes[run.numpy()].reset_index(drop=True)
            effects[run] = clean_value - _ablated_values(model, ids, resolved, rest, mode, batch_size, clean, length)
        nodes["effect"] = effects.tolist()
    nodes = _strongest_first(nodes)
    nodes.attrs.update(_attrs(model, resolved, mode), clean=clean_value)
    return nodes


def _attrs(model: CodebookModel, resolved: _Resolved, mode: str) -> dict[str, Any]:
    """What a result table carries: the target in words, its token (decoded) and the mode."""
    tok = model.tokenizer
    token = tok.decode([resolved.tokens[0]]) if resolved.tokens and tok is not None else None
    return {"target": resolved.describe(model), "token": token, "mode": mode}


def _strongest_first(nodes: pd.DataFrame) -> pd.DataFrame:
    order = nodes["effect"].abs().sort_values(ascending=False, kind="stable").index
    return nodes.loc[order].reset_index(drop=True)


def attribution(
    model: CodebookModel, prompt: Any, target: Target, mode: str = "substitute", codebooks: Any = None
) -> pd.DataFrame:
    """First-order estimates of ``ablation_effects`` from one forward and one backward pass.

    The removal changes a site's output by ``(replacement - code) / k`` (the replacement is the
    next-best code for ``substitute``, nothing for ``drop``); the estimate is that change times the
    target's gradient there. Same rows as ``ablation_effects``; the effect column holds the estimates.
    """
    check_choice("mode", mode, ABLATION_MODES)
    with model.evaluating():
        return _attribution(model, prompt, target, mode, codebooks)


def _attribution(model: CodebookModel, prompt: Any, target: Target, mode: str, codebooks: Any) -> pd.DataFrame:
    ids = _prompt(model, prompt)
    resolved = _resolve(model, target, ids.shape[1])
    length = ids.shape[1]
    ids = ids[:, : resolved.position + 1]
    with torch.enable_grad():
        out = model(ids, capture=True, prompt_length=length, total_length=length)
        value = resolved.value(model, out)[0]
        kept = {site: t for site, t in out.outputs.items() if t.requires_grad}
        if not kept or not value.requires_grad:
            raise CodebookError("no codebook output carries a gradient; are the codebooks switched off?")
        # gradients of the outputs only: the model's own .grad (a training run's) stays untouched
        found = torch.autograd.grad(value, list(kept.values()), allow_unused=True)
    grads = dict(zip(kept, found, strict=True))
    nodes = _nodes(model, out, resolved, codebooks, None, ids)
    if not len(nodes):
        return nodes
    estimates = []
    for position, code, value_id in zip(nodes.position.tolist(), nodes.code.tolist(), nodes.id.tolist(), strict=True):
        index = model.names.parse_code(code)[0]
        book_name = model.names.codebooks[index]
        site = str(book_name.site)
        book = model.attached[site]
        grad = grads.get(site)
        if grad is None:  # the target does not depend on this site at all
            estimates.append(0.0)
            continue
        dg, g = book.spec.group_dim, book_name.group
        grad_here = grad.reshape(ids.shape[1], -1)[position, g * dg : (g + 1) * dg].float()
        vectors = book.vectors.detach()[g].float()
        change = -vectors[value_id]
        if mode == "substitute":
            scores = _scores(book, out.inputs[site][position : position + 1], g)[0]
            fired = out.codes.ids[0, position, index, : book.k]
            scores[fired[fired >= 0]] = float("-inf")
            change = change + vectors[int(scores.argmax())]
        estimates.append(float(-(grad_here @ change) / book.k))
    nodes["effect"] = estimates
    nodes = _strongest_first(nodes)
    nodes.attrs.update(_attrs(model, resolved, mode), clean=float(value.detach()), estimate="gradient")
    return nodes


def code_graph(
    model: CodebookModel,
    prompt: Any,
    target: Target,
    mode: str = "substitute",
    nodes: int = 12,
    min_edge: float = 0.0,
    codebooks: Any = None,
    batch_size: int = 64,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The strongest ``nodes`` codes for ``target`` and the edges between them (``graph_edges``).

    Returns (nodes, edges) as DataFrames; ``nodes.attrs`` is the effects table's (target, clean
    value, mode).
    """
    nodes = _count("nodes", nodes)
    effects = ablation_effects(model, prompt, target, mode, codebooks, batch_size=batch_size)
    top = effects.head(nodes).reset_index(drop=True)
    top.attrs.update(effects.attrs)
    return top, graph_edges(model, prompt, top, mode, min_edge, batch_size)


def graph_edges(
    model: CodebookModel,
    prompt: Any,
    nodes: pd.DataFrame,
    mode: str = "substitute",
    min_edge: float = 0.0,
    batch_size: int = 64,
) -> pd.DataFrame:
    """Every edge among ``nodes`` (rows of an ``ablation_effects`` table): the exact effect of
    removing the source code on the target code's firing margin (``CodeMargin``), for each pair
    where the source can reach the target. Edges weaker than ``min_edge`` (absolute) are pruned;
    the threshold is kept in ``attrs["min_edge"]``."""
    min_edge = _real("min_edge", min_edge)
    batch_size = _count("batch_size", batch_size)
    missing = {"position", "code", "codebook"} - set(getattr(nodes, "columns", ()))
    if missing:
        raise CodebookError(f"nodes must be rows of an ablation_effects table; missing columns {sorted(missing)}.")
    pairs = {(int(p), str(c)) for p, c in zip(nodes.position.tolist(), nodes.code.tolist(), strict=True)}
    rows = []
    with model.evaluating():
        for down_code, down_position in sorted({(c, p) for p, c in pairs}, key=lambda pc: (pc[1], pc[0])):
            found = _ablation_effects(
                model, prompt, CodeMargin(down_code, down_position), mode, None, None, batch_size, pairs
            )
            for up_code, up_position, effect in zip(found.code, found.position, found.effect, strict=True):
                rows.append((up_code, up_position, down_code, down_position, effect))
    edges = pd.DataFrame(rows, columns=list(EDGE_COLUMNS))
    edges = _strongest_first(edges[edges.effect.abs() >= min_edge])
    edges.attrs.update(min_edge=min_edge, mode=mode)
    return edges


def _count(name: str, value: Any) -> int:
    """A positive count, from any integer type (numpy and torch ones too)."""
    try:
        number: int | None = as_integer(value)
    except (TypeError, ValueError):
        number = None
    if number is None or number < 1:
        raise CodebookError(f"{name}={value!r} is not valid; give a positive integer.")
    return number


def _real(name: str, value: Any) -> float:
    try:
        return as_real(value)
    except (TypeError, ValueError):
        raise CodebookError(f"{name}={value!r} is not valid; give a finite number.") from None
