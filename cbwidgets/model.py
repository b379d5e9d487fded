"""CodebookModel: a stock transformers causal LM with codebooks attached by hooks.

No model class is copied: codebooks sit in forward hooks (or a forward pre-hook on the attention
output projection for per-head codebooks), so any model whose module names are in the site table
works, and detaching removes the hooks and leaves the model exactly as it was.

Per-call state (the codes being collected, the step position under a KV cache) lives in a ``_Run``
that exists only for one forward; interventions and the on/off switch live in an immutable
``_HookState`` that context managers swap in and restore in ``finally``. Saving and loading live
in ``saving.py``, k-means and the usage counters in ``fitting.py``, input checks in ``inputs.py``.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import pandas as pd
import torch
from torch import Tensor, nn
from transformers import AutoModelForCausalLM, PretrainedConfig, PreTrainedModel

from . import fitting, recording, saving
from .codebook import Codebook, CodebookSpec
from .codes import Codes
from .dictionary import DictionarySpec, build_dictionary
from .errors import CodebookError, check_choice, choices
from .inputs import as_input_ids, check_tokenizer, context_length, tokenize
from .interventions import (
    Ablate,
    Add,
    Force,
    Intervention,
    InterventionPlan,
    Patch,
    Scale,
    SiteShape,
    StepContext,
    compile_interventions,
)
from .labels import CodeLabels
from .names import EMPTY, CodebookName, CodebookNames, CodeRef
from .rotary_layers import position_hooks
from .sae import SAESpec, TopKSAE
from .sites import SITE_KINDS, Site, parse_site, site_width, sites_for

__all__ = ["CODEBOOKS_JSON", "CODEBOOKS_WEIGHTS", "CodebookModel", "CodebookOutput"]

CODEBOOKS_JSON = saving.CODEBOOKS_JSON
CODEBOOKS_WEIGHTS = saving.CODEBOOKS_WEIGHTS


@dataclass
class CodebookOutput:
    """Logits and codes of one forward; ``loss`` is the LM loss when labels were given."""

    logits: Tensor
    codes: Codes
    loss: Tensor | None = None
    reconstruction: dict[str, Tensor] = field(default_factory=dict)  # per site
    cache: Any = None  # the KV cache when use_cache=True
    inputs: dict[str, Tensor] = field(default_factory=dict)  # capture=True: what entered each codebook
    outputs: dict[str, Tensor] = field(default_factory=dict)  # capture=True: what each codebook put out

    @property
    def reconstruction_loss(self) -> Tensor | None:
        if not self.reconstruction:
            return None
        return torch.stack(list(self.reconstruction.values())).sum()


@dataclass(frozen=True)
class _HookState:
    enabled: bool = True
    snap: bool = True  # False: codebooks apply only their LayerNorm (see CodebookModel.normalize_only)
    plan: InterventionPlan = field(default_factory=InterventionPlan)
    only: frozenset[str] | None = None  # the sites whose dictionaries run (None: all; see CodebookModel.only)
    others: str = "off"  # what the rest do: "off" (pass the activation through) or "normalized"
    zeroed: frozenset[str] = frozenset()  # sites whose activation is replaced by zeros


@dataclass
class _Run:
    step: StepContext
    ids: dict[str, Tensor] = field(default_factory=dict)
    values: dict[str, Tensor] = field(default_factory=dict)  # the sites whose dictionaries give values (SAEs)
    losses: dict[str, Tensor] = field(default_factory=dict)
    inputs: dict[str, list[Tensor]] | None = None  # set to capture what enters each codebook
    outputs: dict[str, Tensor] | None = None  # set to keep what each codebook puts out (grad retained)


def _key(site: str) -> str:
    return site.replace(".", "_")  # nn.ModuleDict keys cannot hold dots


_OLD_ORDER = ("num_codes", "k", "groups", "similarity", "loss", "revive_after")  # attach's positions before 0.2
_OWN_CAUSAL_MASK = ("gpt_neo",)  # attention that masks by token order and adds any mask given


def _positional_settings(*values: Any) -> dict[str, Any]:
    if len(values) > len(_OLD_ORDER) or isinstance(values[0], bool) or not isinstance(values[0], int):
        raise CodebookError(
            f"attach takes a CodebookSpec or settings by name, got {values[0]!r}; for example "
            f"attach('mlp', num_codes=1000, k=8) or attach('mlp', CodebookSpec(num_codes=1000, k=8))."
        )
    warnings.warn(
        "settings given by position to attach are deprecated; name them (attach(sites, num_codes=..., k=...)) "
        "or pass a CodebookSpec",
        DeprecationWarning,
        stacklevel=3,
    )
    return dict(zip(_OLD_ORDER, values, strict=False))


class CodebookModel(nn.Module):
    """Wraps a transformers causal LM; ``attach`` puts codebooks at sites, ``forward`` returns codes.

    Why the class runs past 300 lines: it is the object users hold, so besides its own four jobs
    (attach and detach, the hooks, forward, interventions) it keeps a short entry point for each
    thing done with a model whose work lives in another file (saving, fitting, recording, inputs,
    generate); those entry points are about 60 of its lines.
    """

    def __init__(self, model: PreTrainedModel, tokenizer: Any = None) -> None:
        super().__init__()
        if not isinstance(model, PreTrainedModel):
            raise CodebookError(
                f"CodebookModel wraps a transformers causal LM (a PreTrainedModel), got {type(model).__name__}; "
                f"use CodebookModel.from_config(config) or CodebookModel.from_pretrained(folder)."
            )
        check_tokenizer(tokenizer, int(model.config.vocab_size))
        self.model = model  # the wrapped transformers model ("the base model")
        self.tokenizer = tokenizer
        self.available_sites: dict[str, Site] = sites_for(model.config)
        self.codebooks = nn.ModuleDict()
        self._sites: dict[str, Site] = {}
        self._handles: dict[str, Any] = {}
        self._names = CodebookNames(())
        self.labels = CodeLabels(self)  # what its codes mean, in the user's words (saved with the codebooks)
        self._state = _HookState()
        self._run: _Run | None = None
        # transformers renamed past_key_values to cache during 5.x; speak whichever this model takes
        parameters = inspect.signature(model.forward).parameters
        self._cache_arg = "cache" if "cache" in parameters else "past_key_values"
        self._keeps_logits = "logits_to_keep" in parameters
        self._rotary_hooks = position_hooks(model)  # the config's rotary_layers, read at every forward

    # ------------------------------------------------------------ construction
    @classmethod
    def from_config(cls, config: PretrainedConfig, tokenizer: Any = None, seed: int | None = None) -> CodebookModel:
        """A freshly initialised stock model (no download) ready for codebooks."""
        if seed is not None:
            torch.manual_seed(seed)
        sites_for(config)  # fail on an unsupported architecture before building anything
        return cls(AutoModelForCausalLM.from_config(config), tokenizer)

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: str | torch.device | None = None) -> CodebookModel:
        """Load what save_pretrained wrote, or a plain transformers model folder (no codebooks)."""
        return saving.load_pretrained(cls, folder, device)

    @property
    def config(self) -> PretrainedConfig:
        return self.model.config

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def attached(self) -> dict[str, Codebook | TopKSAE]:
        """Site name -> its dictionary (a codebook or a TopK SAE), in forward order."""
        return {name: cast(Codebook | TopKSAE, self.codebooks[_key(name)]) for name in self._sites}

    @property
    def names(self) -> CodebookNames:
        """The attached codebooks' names, in the order of ``Codes``' codebook axis."""
        return self._names

    def __repr__(self) -> str:
        books = ", ".join(f"{n}(C={cb.num_codes}, k={cb.k}, G={cb.groups})" for n, cb in self.attached.items())
        return f"CodebookModel({type(self.model).__name__}, codebooks=[{books}])"

    # --------------------------------------------------------- attach / detach
    def attach(
        self, sites: str | Sequence[str], spec: DictionarySpec | int | None = None, *old: Any, **settings: Any
    ) -> list[str]:
        """Attach one codebook per site: site names (``layers.1.mlp``) or a kind for all layers (``mlp``).

        The codebook is built from ``spec`` with ``settings`` changed (``attach('mlp', num_codes=512,
        k=8)``); ``dim`` comes from the site, and ``groups`` defaults to one group per head at
        ``attn_preproj`` and 1 elsewhere. An ``SAESpec`` attaches a TopK SAE instead (one group, the
        whole site). Returns the site names attached.
        """
        if spec is not None and not isinstance(spec, CodebookSpec | SAESpec):  # the settings given in the old order
            settings = {**_positional_settings(spec, *old), **settings}
            spec = None
        elif old:
            raise CodebookError("after the spec, give settings by name: attach(sites, spec, k=8).")
        base = (spec or CodebookSpec()).with_settings(**settings)
        specs = [sites] if isinstance(sites, str) else list(sites)
        if not specs:
            raise CodebookError("no sites given; name sites like 'layers.1.mlp' or a kind like 'mlp'.")
        chosen: list[Site] = []
        for name in specs:
            for site in parse_site(name, self.available_sites):
                if site.name in self._sites:
                    raise CodebookError(f"site {site.name!r} already has a codebook; detach({site.name!r}) first.")
                if site not in chosen:
                    chosen.append(site)
        built = {site.name: build_dictionary(self._site_spec(site, base)) for site in chosen}  # all checked first
        for site in chosen:
            self._install(site, built[site.name].to(self.device))
        return [site.name for site in chosen]

    def _site_spec(self, site: Site, spec: DictionarySpec) -> DictionarySpec:
        dim = site_width(self.model, site)
        if spec.dim is not None and spec.dim != dim:
            raise CodebookError(f"the codebook spec has dim={spec.dim}, but site {site.name!r} is {dim} wide.")
        if isinstance(spec, SAESpec):
            return spec.with_settings(dim=dim)
        groups = spec.groups if spec.groups is not None else (site.num_heads if site.per_head else 1)
        return spec.with_settings(dim=dim, groups=groups)

    def _install(self, site: Site, codebook: Codebook | TopKSAE) -> None:
        module = self.model.get_submodule(site.module)
        name = site.name
        if site.hook == "output":

            def out_hook(_m: nn.Module, _args: Any, output: Any) -> Any:
                if isinstance(output, tuple):
                    return (self._snap_site(name, output[0]), *output[1:])
                return self._snap_site(name, output)

            handle = module.register_forward_hook(out_hook)
        else:

            def in_hook(_m: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
                if not args:
                    raise CodebookError(f"{site.module} was called without a positional input; cannot hook {name}.")
                return (self._snap_site(name, args[0]), *args[1:])

            handle = module.register_forward_pre_hook(in_hook)
        # in the model's mode: attached after eval(), it must not count reads as training usage
        codebook.train(self.training)
        self.codebooks[_key(name)] = codebook
        self._handles[name] = handle
        self._sites[name] = site
        self._sites = dict(sorted(self._sites.items(), key=lambda kv: (kv[1].layer, SITE_KINDS.index(kv[1].kind))))
        self._renamed()

    def detach(self, sites: str | Sequence[str] | None = None) -> list[str]:
        """Remove codebooks (all when sites is None); the base model is left exactly as before."""
        names = list(self._sites) if sites is None else self.attached_sites(sites)
        for name in names:
            self._handles.pop(name).remove()
            del self.codebooks[_key(name)]
            del self._sites[name]
        self._renamed()
        return names

    def _renamed(self) -> None:
        books: list[CodebookName] = []
        for name, cb in self.attached.items():
            site = self._sites[name]
            books.extend(
                CodebookName.at(name, site.kind, site.layer, g, cb.groups, cb.num_codes) for g in range(cb.groups)
            )
        self._names = CodebookNames(books)

    # ------------------------------------------------------------------ hooks
    def _snap_site(self, site: str, x: Tensor) -> Tensor:
        run, state = self._run, self._state
        if not state.enabled:
            return x
        if site in state.zeroed:
            return torch.zeros_like(x)
        codebook = cast(Codebook | TopKSAE, self.codebooks[_key(site)])
        if state.only is not None and site not in state.only:
            return x if state.others == "off" else codebook.normalize(x).reshape(x.shape).to(x.dtype)
        if run is not None and run.inputs is not None:
            run.inputs.setdefault(site, []).append(x.detach().reshape(-1, x.shape[-1]))
        if not state.snap:
            return codebook.normalize(x).reshape(x.shape).to(x.dtype)
        edit = None
        if state.plan:
            step = run.step if run is not None else StepContext(x.shape[0], x.shape[1], 0, x.shape[1], x.shape[1])
            edit = state.plan.edit(site, step, x.device)
        snap = codebook(x, edit)
        if run is not None:
            if run.outputs is not None:
                if snap.output.requires_grad:
                    snap.output.retain_grad()
                run.outputs[site] = snap.output
            run.ids[site] = snap.ids
            if snap.values is not None:
                run.values[site] = snap.values
            if snap.loss is not None:
                run.losses[site] = snap.loss
        return snap.output

    @contextmanager
    def _running(self, run: _Run) -> Iterator[_Run]:
        """Make ``run`` the one the hooks report to for the block (forwards may nest: k-means inside one)."""
        previous, self._run = self._run, run
        try:
            yield run
        finally:
            self._run = previous

    @contextmanager
    def _hook_state(self, **changes: Any) -> Iterator[CodebookModel]:
        """Swap in a changed hook state for the block; the previous one is back in ``finally``."""
        saved = self._state
        self._state = replace(saved, **changes)
        try:
            yield self
        finally:
            self._state = saved

    # ---------------------------------------------------------------- forward
    def tokenize(self, text: str | Sequence[str]) -> Tensor:
        return tokenize(self.tokenizer, text)

    def as_input_ids(self, input_ids: Any) -> Tensor:
        """Validate and normalise input ids (text, list, 1-D or 2-D tensor) to a (batch, tokens) long tensor."""
        return as_input_ids(input_ids, self.tokenizer, int(self.config.vocab_size), self.device)

    def max_length(self) -> int | None:
        return context_length(self.config)

    def forward(
        self,
        input_ids: Any,
        attention_mask: Tensor | None = None,
        labels: Tensor | None = None,
        cache: Any = None,
        use_cache: bool = False,
        *,
        prompt_length: int | None = None,
        total_length: int | None = None,
        capture: bool = False,
        logits_to_keep: int = 0,
        position_ids: Tensor | None = None,
    ) -> CodebookOutput:
        """Run the model; returns logits and the codes of every attached codebook.

        ``labels``: token ids (shifted inside, as in transformers) to get the LM loss.
        ``prompt_length`` / ``total_length`` tell interventions where this call sits in a longer
        generation; plain calls need neither. ``capture`` keeps what enters each codebook
        (``inputs``, one row per token) and what it puts out (``outputs``, the site's shape, its
        gradient retained when autograd is on): what circuit analyses read and differentiate.
        ``logits_to_keep``: only the last that many positions' logits (0: all), which spares the
        unembedding of a large vocabulary where only the last prediction is read.
        ``position_ids`` (with a 4D boolean ``attention_mask``, True where a query may read a key)
        packs tokens of different positions into one row, each reading its own chosen keys: how the
        quiet-removal screen runs one token per removal without padding (not on GPT-Neo, whose
        attention masks by token order whatever the mask says).
        """
        ids = self.as_input_ids(input_ids)
        offset = 0 if cache is None else int(cache.get_seq_length())
        end = offset + ids.shape[1]
        limit = self.max_length()
        last = end if position_ids is None else int(position_ids.max()) + 1
        if position_ids is not None and self.config.model_type in _OWN_CAUSAL_MASK:
            raise CodebookError(
                f"{self.config.model_type} attention applies its own causal mask by token order, so packed tokens "
                "(position_ids) would read the wrong keys; run each sequence in its own row instead."
            )
        if limit is not None and last > limit:
            raise CodebookError(
                f"{last} tokens exceed this model's context of {limit}; shorten the input or split it into windows."
            )
        step = StepContext(ids.shape[0], ids.shape[1], offset, prompt_length or end, total_length or end)
        kept: dict[str, list[Tensor]] | None = {} if capture else None
        with self._running(_Run(step, inputs=kept, outputs={} if capture else None)) as run:
            keep = {"logits_to_keep": logits_to_keep} if logits_to_keep and self._keeps_logits else {}
            out = self.model(
                input_ids=ids,
                attention_mask=attention_mask,
                labels=labels,
                use_cache=use_cache,
                **{self._cache_arg: cache},
                **keep,
                **({} if position_ids is None else {"position_ids": position_ids}),
            )
        return CodebookOutput(
            logits=out.logits[:, -logits_to_keep:] if logits_to_keep and not keep else out.logits,
            codes=self._codes(run, ids.shape),
            loss=out.loss,
            reconstruction=run.losses,
            cache=getattr(out, self._cache_arg) if use_cache else None,
            inputs={site: torch.cat(parts) for site, parts in (kept or {}).items()},
            outputs=run.outputs or {},
        )

    def _codes(self, run: _Run, shape: torch.Size) -> Codes:
        """Stack every site's ids; slots beyond a codebook's own k (and disabled codebooks) are EMPTY.
        Where some site gives values (an SAE), every slot has one: a codebook's active codes 1."""
        b, t = shape
        k_max = max((cb.k for cb in self.attached.values()), default=1)
        parts, values = [], []
        for site, cb in self.attached.items():
            ids = torch.full((b, t, cb.groups, k_max), EMPTY, dtype=torch.long, device=self.device)
            found = run.ids.get(site)
            if found is not None:
                ids[..., : cb.k] = found
            parts.append(ids)
            if run.values:
                value = torch.zeros(ids.shape, device=self.device)
                given = run.values.get(site)
                if given is not None:
                    value[..., : cb.k] = given.detach().float()
                else:
                    value = (ids != EMPTY).float()
                values.append(value)
        stacked = torch.cat(parts, dim=2) if parts else torch.zeros(b, t, 0, 1, dtype=torch.long, device=self.device)
        return Codes(stacked, self.names, torch.cat(values, dim=2) if values else None)

    def record(self, sites: str | Sequence[str], batches: Tensor | Iterable[Tensor]) -> dict[str, Tensor]:
        """Activations at any sites, one row per token: {site: (tokens, dim)} (see recording.record)."""
        return recording.record(self, sites, batches)

    @torch.no_grad()
    def codebook_inputs(self, batches: Tensor | Iterable[Tensor]) -> dict[str, Tensor]:
        """What enters each codebook, one row per token, with every codebook in normalize-only mode."""
        captured: dict[str, list[Tensor]] = {}
        with self.normalize_only():
            for batch in [batches] if isinstance(batches, Tensor) else batches:
                ids = self.as_input_ids(batch)
                step = StepContext(ids.shape[0], ids.shape[1], 0, ids.shape[1], ids.shape[1])
                with self._running(_Run(step, inputs=captured)):
                    self.model(input_ids=ids)
        return {site: torch.cat(parts) for site, parts in captured.items()}

    # ---------------------------------------------------------- interventions
    def prepare(self, *interventions: Intervention | InterventionPlan) -> InterventionPlan:
        """Check interventions against this model once; the plan can be entered again and again."""
        shapes = {n: SiteShape(cb.groups, cb.num_codes, cb.k) for n, cb in self.attached.items()}
        return compile_interventions(interventions, self.names, shapes, self.device)

    @contextmanager
    def intervene(self, *interventions: Intervention | InterventionPlan) -> Iterator[CodebookModel]:
        """Hold interventions on for the block; they compose with enclosing ones and end in ``finally``."""
        plan = self.prepare(*interventions)
        with self._hook_state(plan=self._state.plan.then(plan)):
            yield self

    def ablate(self, codes: CodeRef | Iterable[CodeRef], positions: Any = None, mode: str = "substitute") -> Any:
        """``with model.ablate('0.3.17'):`` removes a code (see Ablate)."""
        return self.intervene(Ablate(codes, positions, mode))

    def force(self, codes: CodeRef | Iterable[CodeRef], positions: Any = None, value: float | None = None) -> Any:
        """``with model.force('0.3.17', positions=[4]):`` makes a code fire (see Force; ``value``: how strongly)."""
        return self.intervene(Force(codes, positions, value))

    def scale(self, codes: CodeRef | Iterable[CodeRef], factor: float, positions: Any = None) -> Any:
        """``with model.scale('1.mlp.5', 0.5):`` scales a code's contribution (see Scale)."""
        return self.intervene(Scale(codes, factor, positions))

    def add(self, codes: CodeRef | Iterable[CodeRef], strength: float = 1.0, positions: Any = None) -> Any:
        """``with model.add(topic_codes, 4.0):`` adds code vectors on top of the natural codes (see Add)."""
        return self.intervene(Add(codes, strength, positions))

    def patch(self, source: Codes, codebooks: Any = None, positions: Any = None, source_positions: Any = None) -> Any:
        """``with model.patch(other.codes, 'attn_preproj', positions=[-1]):`` (see Patch)."""
        return self.intervene(Patch(source, codebooks, positions, source_positions))

    @contextmanager
    def evaluating(self) -> Iterator[CodebookModel]:
        """Eval mode for the block, the mode before restored after: reading a model must not count
        its codes as training usage (the next training step could revive codes by them) or run
        dropout, and must leave a model that was training still training."""
        was_training = self.training
        self.eval()
        try:
            yield self
        finally:
            self.train(was_training)

    @contextmanager
    def codebooks_disabled(self) -> Iterator[CodebookModel]:
        """Run the base model as if no codebook were attached (for with/without comparisons)."""
        with self._hook_state(enabled=False):
            yield self

    @contextmanager
    def normalize_only(self) -> Iterator[CodebookModel]:
        """Codebooks apply their own LayerNorm but choose no code; no codes are reported.

        A codebook's LayerNorm discards each activation's norm, which a model trained without it
        may rely on (a final MLP's output norm can vary 20-fold between tokens). Training the base
        model in this mode first keeps it from relying on what the codebooks will remove, so
        k-means codes can then be put in with little loss. Combine with ``kmeans_init(...,
        match_scale=False)`` to keep the LayerNorm's learned gain and bias.
        """
        with self._hook_state(snap=False):
            yield self

    @contextmanager
    def only(self, sites: str | Sequence[str], others: str = "off") -> Iterator[CodebookModel]:
        """Only the dictionaries at ``sites`` run in the block; the others are ``off`` (their site's
        activation passes through as in the stock model) or ``normalized`` (a codebook applies only
        its LayerNorm, as in ``normalize_only``): one dictionary spliced in at a time, as its metrics
        are measured."""
        check_choice("others", others, ("off", "normalized"))
        with self._hook_state(only=frozenset(self.attached_sites(sites)), others=others):
            yield self

    @contextmanager
    def zeroed(self, sites: str | Sequence[str]) -> Iterator[CodebookModel]:
        """Each of ``sites`` (attached ones) puts out zeros in the block: the zero ablation that
        "CE loss recovered" measures a dictionary against."""
        with self._hook_state(zeroed=self._state.zeroed | frozenset(self.attached_sites(sites))):
            yield self

    def attached_sites(self, sites: str | Sequence[str]) -> list[str]:
        """The attached sites that ``sites`` names (site names or kinds); a site without a
        dictionary is an error that lists the attached ones."""
        names = []
        for spec in [sites] if isinstance(sites, str) else list(sites):
            for site in parse_site(spec, self.available_sites):
                if site.name not in self._sites:
                    raise CodebookError(
                        f"site {site.name!r} has no dictionary; attached: {choices(self._sites) or 'none'}."
                    )
                names.append(site.name)
        return names

    def generate(self, prompt: Any, **kwargs: Any) -> Any:
        """Sample continuations with the current interventions held on; see cbwidgets.generate."""
        from .generate import generate

        return generate(self, prompt, **kwargs)

    # ------------------------------------------- fitting, saving (other files)
    def kmeans_init(
        self, batches: Tensor | Iterable[Tensor], iters: int = 10, seed: int = 0, match_scale: bool = True
    ) -> None:
        """Every codebook's codes from k-means on the activations at its site (see fitting.kmeans_init)."""
        fitting.kmeans_init(self, batches, iters, seed, match_scale)

    def end_training_step(
        self,
        all_reduce: Callable[[Tensor], Tensor] | None = None,
        gather: Callable[[Tensor], Tensor] | None = None,
    ) -> int:
        """Fold this step's code hits into the counters and revive dead codes; returns codes revived."""
        return fitting.end_training_step(self, all_reduce, gather)

    def retire_twin_codes(self, radius: float = 0.05) -> dict[str, int]:
        """Each euclidean codebook's ``retire_twins``: codes too close to a lower-numbered one go
        where they never fire, so a code's id does not depend on the batch; returns how many per site."""
        return {
            site: book.retire_twins(radius)
            for site, book in self.attached.items()
            if isinstance(book, Codebook) and book.spec.similarity == "euclidean"
        }

    def usage(self) -> pd.DataFrame:
        """Per codebook: codes used at least once, dead codes, and codes revived so far."""
        return fitting.usage(self)

    def codebook_parameters(self) -> list[nn.Parameter]:
        return [p for cb in self.codebooks.values() for p in cb.parameters()]

    def save_pretrained(self, folder: str | Path) -> Path:
        """The base model in transformers' format under ``base/``, codebooks as safetensors + JSON."""
        return saving.save_pretrained(self, folder)

    def save_codebooks(self, folder: str | Path) -> Path:
        """Only the codebooks (safetensors + JSON): how codebooks for a model shipped elsewhere travel."""
        return saving.save_codebooks(self, folder)

    def load_codebooks(self, folder: str | Path) -> list[str]:
        """Attach the codebooks that ``save_codebooks`` (or ``save_pretrained``) wrote; returns their sites."""
        return saving.load_codebooks(self, folder)
