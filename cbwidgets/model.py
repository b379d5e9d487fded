"""CodebookModel: a stock transformers causal LM with codebooks attached by hooks.

No model class is copied: codebooks sit in forward hooks (or a forward pre-hook on the attention
output projection for per-head codebooks), so any model whose module names are in the site table
works, and detaching removes the hooks and leaves the model exactly as it was.

Per-call state (the codes being collected, the step position under a KV cache) lives in a ``_Run``
object that exists only for the duration of one forward; interventions and the on/off switch
live in an immutable ``_HookState`` that context managers swap in and restore in ``finally``.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import pandas as pd
import torch
from torch import Tensor, nn
from transformers import AutoModelForCausalLM, PretrainedConfig, PreTrainedModel

from .codebook import LOSSES, SIMILARITIES, Codebook, CodebookSpec
from .codes import Codes
from .errors import CodebookError, check_choice, choices
from .interventions import (
    Ablate,
    Add,
    Force,
    Intervention,
    Patch,
    Resolved,
    Scale,
    StepContext,
    resolve,
    site_edit,
)
from .names import CodebookName, CodebookNames, CodeRef
from .sites import SITE_KINDS, Site, parse_site, sites_for

__all__ = ["CodebookModel", "CodebookOutput"]

FORMAT = "cbwidgets-codebooks"
FORMAT_VERSION = 1
CODEBOOKS_JSON = "codebooks.json"
CODEBOOKS_WEIGHTS = "codebooks.safetensors"


@dataclass
class CodebookOutput:
    """Logits and codes of one forward; ``loss`` is the LM loss when labels were given."""

    logits: Tensor
    codes: Codes
    loss: Tensor | None = None
    reconstruction: dict[str, Tensor] = field(default_factory=dict)  # per site
    cache: Any = None  # the KV cache when use_cache=True

    @property
    def reconstruction_loss(self) -> Tensor | None:
        if not self.reconstruction:
            return None
        return torch.stack(list(self.reconstruction.values())).sum()


@dataclass(frozen=True)
class _HookState:
    enabled: bool = True
    snap: bool = True  # False: codebooks apply only their LayerNorm (see CodebookModel.normalize_only)
    interventions: tuple[Resolved, ...] = ()


@dataclass
class _Run:
    ctx: StepContext
    ids: dict[str, Tensor] = field(default_factory=dict)
    losses: dict[str, Tensor] = field(default_factory=dict)
    inputs: dict[str, list[Tensor]] | None = None  # set to capture what enters each codebook


def _key(site: str) -> str:
    return site.replace(".", "_")  # nn.ModuleDict keys cannot hold dots


class CodebookModel(nn.Module):
    """Wraps a transformers causal LM; ``attach`` puts codebooks at sites, ``forward`` returns codes."""

    def __init__(self, model: PreTrainedModel, tokenizer: Any = None) -> None:
        super().__init__()
        if not isinstance(model, PreTrainedModel):
            raise CodebookError(
                f"CodebookModel wraps a transformers causal LM (a PreTrainedModel), got {type(model).__name__}; "
                f"use CodebookModel.from_config(config) or CodebookModel.from_pretrained(folder)."
            )
        self.model = model
        self.tokenizer = tokenizer
        self.available_sites: dict[str, Site] = sites_for(model.config)
        self.codebooks = nn.ModuleDict()
        self._sites: dict[str, Site] = {}
        self._handles: dict[str, Any] = {}
        self._state = _HookState()
        self._run: _Run | None = None
        # transformers renamed past_key_values to cache during 5.x; speak whichever this model takes
        self._cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"

    # ------------------------------------------------------------ construction
    @classmethod
    def from_config(cls, config: PretrainedConfig, tokenizer: Any = None, seed: int | None = None) -> CodebookModel:
        """A freshly initialised stock model (no download) ready for codebooks."""
        if seed is not None:
            torch.manual_seed(seed)
        sites_for(config)  # fail on an unsupported architecture before building anything
        return cls(AutoModelForCausalLM.from_config(config), tokenizer)

    @property
    def config(self) -> PretrainedConfig:
        return self.model.config

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def attached(self) -> dict[str, Codebook]:
        """Site name -> codebook module, in forward order."""
        return {name: cast(Codebook, self.codebooks[_key(name)]) for name in self._sites}

    @property
    def names(self) -> CodebookNames:
        units = []
        for name, cb in self.attached.items():
            site = self._sites[name]
            for g in range(cb.groups):
                units.append(
                    CodebookName(name, site.kind, site.layer, g if cb.groups > 1 else None, site.per_head, cb.num_codes)
                )
        return CodebookNames(units)

    def __repr__(self) -> str:
        books = ", ".join(f"{n}(C={cb.num_codes}, k={cb.k}, G={cb.groups})" for n, cb in self.attached.items())
        return f"CodebookModel({type(self.model).__name__}, codebooks=[{books}])"

    # --------------------------------------------------------- attach / detach
    def attach(
        self,
        sites: str | Sequence[str],
        num_codes: int = 1000,
        k: int = 1,
        groups: int | None = None,
        similarity: str = "cosine",
        loss: str = "aeloss",
        revive_after: int | None = None,
    ) -> list[str]:
        """Attach one codebook per site: site names (``layers.1.mlp``) or a kind for all layers (``mlp``).

        ``groups`` defaults to one group per head at ``attn_preproj`` and 1 elsewhere.
        Returns the site names attached.
        """
        check_choice("similarity", similarity, SIMILARITIES)
        check_choice("loss", loss, LOSSES)
        specs = [sites] if isinstance(sites, str) else list(sites)
        if not specs:
            raise CodebookError("no sites given; name sites like 'layers.1.mlp' or a kind like 'mlp'.")
        chosen: list[Site] = []
        for spec in specs:
            for site in parse_site(spec, self.available_sites):
                if site.name in self._sites:
                    raise CodebookError(f"site {site.name!r} already has a codebook; detach({site.name!r}) first.")
                if site not in chosen:
                    chosen.append(site)
        built = {
            site.name: Codebook(
                num_codes,
                self._site_dim(site),
                k=k,
                groups=groups if groups is not None else (site.num_heads if site.per_head else 1),
                similarity=similarity,
                loss=loss,
                revive_after=revive_after,
            )
            for site in chosen
        }  # all specs validated before any hook is registered
        for site in chosen:
            self._install(site, built[site.name].to(self.device))
        return [site.name for site in chosen]

    def _site_dim(self, site: Site) -> int:
        if site.hook == "output":
            return int(self.config.hidden_size)
        module = self.model.get_submodule(site.module)
        if isinstance(module, nn.Linear):
            return module.in_features
        weight = getattr(module, "weight", None)
        if weight is not None and weight.dim() == 2:  # GPT-2 Conv1D keeps (in, out)
            return int(weight.shape[0])
        raise CodebookError(f"cannot tell the input size of {site.module} ({type(module).__name__}).")

    def _install(self, site: Site, codebook: Codebook) -> None:
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
        self.codebooks[_key(name)] = codebook
        self._handles[name] = handle
        self._sites[name] = site
        self._sites = dict(sorted(self._sites.items(), key=lambda kv: (kv[1].layer, _kind_order(kv[1].kind))))

    def detach(self, sites: str | Sequence[str] | None = None) -> list[str]:
        """Remove codebooks (all when sites is None); the base model is left exactly as before."""
        if sites is None:
            names = list(self._sites)
        else:
            specs = [sites] if isinstance(sites, str) else list(sites)
            names = []
            for spec in specs:
                for site in parse_site(spec, self.available_sites):
                    if site.name not in self._sites:
                        raise CodebookError(
                            f"site {site.name!r} has no codebook; attached: {choices(self._sites) or 'none'}."
                        )
                    names.append(site.name)
        for name in names:
            self._handles.pop(name).remove()
            del self.codebooks[_key(name)]
            del self._sites[name]
        return names

    # ------------------------------------------------------------------ hooks
    def _snap_site(self, site: str, x: Tensor) -> Tensor:
        run, state = self._run, self._state
        if not state.enabled:
            return x
        codebook = cast(Codebook, self.codebooks[_key(site)])
        if run is not None and run.inputs is not None:
            run.inputs.setdefault(site, []).append(x.detach().reshape(-1, x.shape[-1]))
        if not state.snap:
            return codebook.normalize(x).reshape(x.shape).to(x.dtype)
        edit = None
        if state.interventions:
            ctx = run.ctx if run is not None else StepContext(x.shape[0], x.shape[1], 0, x.shape[1], x.shape[1])
            edit = site_edit(state.interventions, site, ctx, codebook.k, x.device)
        snap = codebook(x, edit)
        if run is not None:
            run.ids[site] = snap.ids
            if snap.loss is not None:
                run.losses[site] = snap.loss
        return snap.output

    # ---------------------------------------------------------------- forward
    def tokenize(self, text: str | Sequence[str]) -> Tensor:
        if self.tokenizer is None:
            raise CodebookError("this model has no tokenizer; pass token ids, or build it with tokenizer=...")
        batch = [text] if isinstance(text, str) else list(text)
        rows = [self.tokenizer(t, add_special_tokens=True)["input_ids"] for t in batch]
        if len({len(r) for r in rows}) != 1:
            raise CodebookError("texts tokenize to different lengths; pass them one at a time or as padded ids.")
        return torch.tensor(rows, dtype=torch.long)

    def as_input_ids(self, input_ids: Any) -> Tensor:
        """Validate and normalise input ids (text, list, 1-D or 2-D tensor) to a (batch, tokens) long tensor."""
        if isinstance(input_ids, str) or (
            isinstance(input_ids, list | tuple) and input_ids and all(isinstance(t, str) for t in input_ids)
        ):
            input_ids = self.tokenize(input_ids)
        if isinstance(input_ids, list | tuple):
            try:
                input_ids = torch.tensor(input_ids)
            except (TypeError, ValueError) as err:
                raise CodebookError(
                    f"input ids {str(input_ids)[:60]!r} are not a rectangular list of integers: {err}."
                ) from None
        if not isinstance(input_ids, Tensor):
            raise CodebookError(
                f"input of type {type(input_ids).__name__} is not valid; pass a string, a list of token ids, or "
                f"a LongTensor of shape (batch, tokens)."
            )
        if input_ids.is_floating_point() or input_ids.is_complex() or input_ids.dtype == torch.bool:
            raise CodebookError(
                f"input ids have dtype {input_ids.dtype}; token ids must be integers (torch.long). For activations, "
                f"call a Codebook directly."
            )
        if input_ids.dim() == 1:
            input_ids = input_ids[None]
        if input_ids.dim() != 2:
            raise CodebookError(f"input ids must be (batch, tokens); got shape {tuple(input_ids.shape)}.")
        if input_ids.numel() == 0:
            raise CodebookError(f"input is empty (shape {tuple(input_ids.shape)}); give at least one token.")
        vocab = int(self.config.vocab_size)
        low, high = int(input_ids.min()), int(input_ids.max())
        if low < 0 or high >= vocab:
            bad = low if low < 0 else high
            raise CodebookError(f"token id {bad} is out of range; this model's vocabulary is 0..{vocab - 1}.")
        return input_ids.long().to(self.device)

    def max_length(self) -> int | None:
        for attr in ("max_position_embeddings", "n_positions"):
            value = getattr(self.config, attr, None)
            if isinstance(value, int):
                return value
        return None

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
    ) -> CodebookOutput:
        """Run the model; returns logits and the codes of every attached codebook.

        ``labels``: token ids (shifted inside, as in transformers) to get the LM loss.
        ``prompt_length`` / ``total_length`` tell interventions where this call sits in a longer
        generation; plain calls need neither.
        """
        ids = self.as_input_ids(input_ids)
        offset = 0 if cache is None else int(cache.get_seq_length())
        limit = self.max_length()
        if limit is not None and offset + ids.shape[1] > limit:
            raise CodebookError(
                f"{offset + ids.shape[1]} tokens exceed this model's context of {limit}; shorten the input or split it "
                f"into windows."
            )
        end = offset + ids.shape[1]
        ctx = StepContext(ids.shape[0], ids.shape[1], offset, prompt_length or end, total_length or end)
        run = _Run(ctx)
        previous, self._run = self._run, run
        try:
            out = self.model(
                input_ids=ids,
                attention_mask=attention_mask,
                labels=labels,
                use_cache=use_cache,
                **{self._cache_arg: cache},
            )
        finally:
            self._run = previous
        return CodebookOutput(
            logits=out.logits,
            codes=self._codes(run, ids.shape),
            loss=out.loss,
            reconstruction=run.losses,
            cache=getattr(out, self._cache_arg) if use_cache else None,
        )

    def _codes(self, run: _Run, shape: torch.Size) -> Codes:
        """Stack every site's ids; slots beyond a codebook's own k (and disabled codebooks) hold -1."""
        names = self.names
        parts = []
        b, t = shape
        k_max = max((cb.k for cb in self.attached.values()), default=1)
        for site, cb in self.attached.items():
            ids = torch.full((b, t, cb.groups, k_max), -1, dtype=torch.long, device=self.device)
            found = run.ids.get(site)
            if found is not None:
                ids[..., : cb.k] = found
            parts.append(ids)
        if parts:
            stacked = torch.cat(parts, dim=2)
        else:
            stacked = torch.zeros(b, t, 0, 1, dtype=torch.long, device=self.device)
        return Codes(stacked, names.names, names.labels)

    # ---------------------------------------------------------- interventions
    @contextmanager
    def intervene(self, *interventions: Intervention) -> Iterator[CodebookModel]:
        """Hold interventions on for the block; they compose with enclosing ones and end in ``finally``."""
        names = self.names
        sites = {n: (cb.groups, cb.num_codes) for n, cb in self.attached.items()}
        ks = {n: cb.k for n, cb in self.attached.items()}
        resolved = tuple(resolve(i, names, sites, ks) for i in interventions)
        with self._hook_state(interventions=self._state.interventions + resolved):
            yield self

    @contextmanager
    def _hook_state(self, **changes: Any) -> Iterator[CodebookModel]:
        """Swap in a changed hook state for the block; the previous one is back in ``finally``."""
        saved = self._state
        self._state = replace(saved, **changes)
        try:
            yield self
        finally:
            self._state = saved

    def ablate(self, codes: CodeRef | Iterable[CodeRef], positions: Any = None, mode: str = "substitute") -> Any:
        """``with model.ablate('0.3.17'):`` removes a code (see Ablate)."""
        return self.intervene(Ablate(codes, positions, mode))

    def force(self, codes: CodeRef | Iterable[CodeRef], positions: Any = None) -> Any:
        """``with model.force('0.3.17', positions=[4]):`` makes a code fire (see Force)."""
        return self.intervene(Force(codes, positions))

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

    def generate(self, prompt: Any, **kwargs: Any) -> Any:
        """Sample continuations with the current interventions held on; see cbwidgets.generate."""
        from .generate import generate

        return generate(self, prompt, **kwargs)

    # ------------------------------------------------ initialisation and usage
    @torch.no_grad()
    def record(self, sites: str | Sequence[str], batches: Tensor | Iterable[Tensor]) -> dict[str, Tensor]:
        """Activations at sites (any, with or without a codebook), one row per token: {site: (tokens, dim)}.

        They are read as the model computes them now, codebooks and interventions included: the
        value leaving a codebook at output sites, the value entering it at input sites. Under
        ``codebooks_disabled()`` this is the base model's activations.
        """
        specs = [sites] if isinstance(sites, str) else list(sites)
        chosen = [site for spec in specs for site in parse_site(spec, self.available_sites)]
        captured: dict[str, list[Tensor]] = {site.name: [] for site in chosen}
        handles = []
        for site in chosen:
            module = self.model.get_submodule(site.module)
            store = captured[site.name]

            def keep(value: Any, store: list[Tensor] = store) -> None:
                tensor = value[0] if isinstance(value, tuple) else value
                store.append(tensor.detach().reshape(-1, tensor.shape[-1]))

            if site.hook == "output":
                handles.append(module.register_forward_hook(lambda _m, _a, out, keep=keep: keep(out)))
            else:
                handles.append(module.register_forward_pre_hook(lambda _m, args, keep=keep: keep(args[0])))
        try:
            for batch in [batches] if isinstance(batches, Tensor) else batches:
                self(batch)
        finally:
            for handle in handles:
                handle.remove()
        return {name: torch.cat(parts) for name, parts in captured.items()}

    def kmeans_init(
        self, batches: Tensor | Iterable[Tensor], iters: int = 10, seed: int = 0, match_scale: bool = True
    ) -> None:
        """Initialise every codebook with k-means on the base model's activations at its site.

        ``match_scale`` also sets each codebook's LayerNorm gain and bias to the activations' typical
        scale, so inserting the codebooks into a trained model disturbs it as little as possible;
        the activations are then read from the base model alone. With ``match_scale=False`` the
        LayerNorms keep their weights and each codebook's input is read under ``normalize_only()``,
        as a model trained in that mode computes it.
        """
        if not self._sites:
            raise CodebookError("no codebooks attached; attach(...) before kmeans_init.")
        if match_scale:
            with self.codebooks_disabled():
                inputs = self.record(list(self._sites), batches)
        else:
            inputs = self._codebook_inputs(batches)
        generator = torch.Generator().manual_seed(seed)
        for site, codebook in self.attached.items():
            codebook.kmeans_init(inputs[site], iters=iters, generator=generator, match_scale=match_scale)

    @torch.no_grad()
    def _codebook_inputs(self, batches: Tensor | Iterable[Tensor]) -> dict[str, Tensor]:
        """What enters each codebook, one row per token, with every codebook in normalize-only mode."""
        captured: dict[str, list[Tensor]] = {}
        with self.normalize_only():
            for batch in [batches] if isinstance(batches, Tensor) else batches:
                ids = self.as_input_ids(batch)
                run = _Run(StepContext(ids.shape[0], ids.shape[1], 0, ids.shape[1], ids.shape[1]), inputs=captured)
                previous, self._run = self._run, run
                try:
                    self.model(input_ids=ids)
                finally:
                    self._run = previous
        return {site: torch.cat(parts) for site, parts in captured.items()}

    def end_training_step(
        self,
        all_reduce: Callable[[Tensor], Tensor] | None = None,
        gather: Callable[[Tensor], Tensor] | None = None,
    ) -> int:
        """Fold this step's code hits into the counters and revive dead codes; returns codes revived.

        Under several processes pass ``all_reduce`` (sum) and ``gather`` (concatenate in rank order) so
        that every process sees the whole batch's hits and inputs, and so revives the same codes to
        the same vectors as a single process would.
        """
        revived = 0
        for codebook in self.attached.values():
            hits = codebook.take_step_hits()
            if all_reduce is not None:
                hits = all_reduce(hits)
            dead = codebook.update_usage(hits)
            inputs = codebook.take_last_inputs()
            if codebook.spec.revive_after is not None and inputs is not None and bool(dead.any()):
                if gather is not None:
                    inputs = gather(inputs.contiguous())
                revived += codebook.revive(dead, inputs)
        return revived

    def usage(self) -> pd.DataFrame:
        """Per codebook: codes used at least once, dead codes, and codes revived so far."""
        rows = []
        names = self.names
        i = 0
        for codebook in self.attached.values():
            for g in range(codebook.groups):
                rows.append(
                    {
                        "codebook": names.units[i].label,
                        "num_codes": codebook.num_codes,
                        "used": int((codebook.hits[g] > 0).sum()),
                        "used_share": float((codebook.hits[g] > 0).float().mean()),
                        "dead": int(codebook.dead_codes()[g].sum()),
                        "revived": int(codebook.revived[g]),
                    }
                )
                i += 1
        return pd.DataFrame(rows)

    def codebook_parameters(self) -> list[nn.Parameter]:
        return [p for cb in self.codebooks.values() for p in cb.parameters()]

    # ------------------------------------------------------------ save / load
    def save_pretrained(self, folder: str | Path) -> Path:
        """The base model in transformers' format under ``base/``, codebooks as safetensors + JSON."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(folder / "base")
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(folder / "tokenizer")
        return self.save_codebooks(folder)

    def save_codebooks(self, folder: str | Path) -> Path:
        """Only the codebooks (safetensors + JSON): how codebooks for a model shipped elsewhere travel."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {}
        for name, cb in self.attached.items():
            for key, value in cb.state_dict().items():
                tensors[f"{name}/{key}"] = value.detach().cpu().contiguous()
        meta = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "model_type": self.config.model_type,
            "sites": {name: cb.spec.to_dict() for name, cb in self.attached.items()},
        }
        save_file(tensors, str(folder / CODEBOOKS_WEIGHTS), metadata={"format": FORMAT})
        (folder / CODEBOOKS_JSON).write_text(json.dumps(meta, indent=2))
        return folder

    def load_codebooks(self, folder: str | Path) -> list[str]:
        """Attach the codebooks that ``save_codebooks`` (or ``save_pretrained``) wrote; returns their sites."""
        folder = Path(folder)
        meta = _read_meta(folder / CODEBOOKS_JSON)
        if meta.get("model_type") not in (None, self.config.model_type):
            raise CodebookError(
                f"the codebooks in {str(folder)!r} were made for a {meta['model_type']} model; this is "
                f"{self.config.model_type}."
            )
        tensors = _read_weights(folder / CODEBOOKS_WEIGHTS)
        attached: list[str] = []
        for name, spec_dict in meta["sites"].items():
            spec = CodebookSpec.from_dict(spec_dict)
            self.attach(name, spec.num_codes, spec.k, spec.groups, spec.similarity, spec.loss, spec.revive_after)
            cb = self.attached[name]
            state = {key.split("/", 1)[1]: t for key, t in tensors.items() if key.split("/", 1)[0] == name}
            try:
                cb.load_state_dict(state)
            except RuntimeError as err:
                self.detach([*attached, name])
                raise CodebookError(
                    f"{CODEBOOKS_WEIGHTS} in {str(folder)!r} does not match {CODEBOOKS_JSON} for {name}: {err}"
                ) from None
            attached.append(name)
        return attached

    @classmethod
    def from_pretrained(cls, folder: str | Path, device: str | torch.device | None = None) -> CodebookModel:
        """Load what save_pretrained wrote, or a plain transformers model folder (no codebooks)."""
        folder = Path(folder)
        if not folder.is_dir():
            raise CodebookError(f"{str(folder)!r} is not a folder; pass the folder that save_pretrained wrote.")
        meta_path = folder / CODEBOOKS_JSON
        if not meta_path.exists():
            if (folder / "config.json").exists():
                return cls(_load_base(folder, device), _load_tokenizer(folder))
            raise CodebookError(
                f"{str(folder)!r} is not a saved model: it has neither {CODEBOOKS_JSON} (a cbwidgets model) nor "
                f"config.json (a transformers model)."
            )
        _read_meta(meta_path)  # a clear error before the base model is loaded
        model = cls(_load_base(folder / "base", device), _load_tokenizer(folder / "tokenizer"))
        model.load_codebooks(folder)
        return model


def _kind_order(kind: str) -> int:
    return SITE_KINDS.index(kind)


def _load_base(folder: Path, device: str | torch.device | None) -> PreTrainedModel:
    if not (folder / "config.json").exists():
        raise CodebookError(f"{str(folder)!r} has no config.json; the base model was not saved there.")
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, RuntimeError) as err:
        raise CodebookError(f"could not load the base model from {str(folder)!r}: {err}") from None
    if device is not None:
        nn.Module.to(model, device)
    return model


def _load_tokenizer(folder: Path) -> Any:
    if not (folder / "tokenizer_config.json").exists() and not (folder / "tokenizer.json").exists():
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder, local_files_only=True)


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CodebookError(
            f"{str(path)!r} is not valid JSON ({err}); re-save the model with save_pretrained."
        ) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or not isinstance(meta.get("sites"), dict):
        raise CodebookError(f"{str(path)!r} is not a cbwidgets codebook file (expected format {FORMAT!r}).")
    if meta.get("version") != FORMAT_VERSION:
        raise CodebookError(
            f"{str(path)!r} has format version {meta.get('version')!r}; this cbwidgets reads version {FORMAT_VERSION}."
        )
    return meta


def _read_weights(path: Path) -> dict[str, Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.exists():
        raise CodebookError(f"{str(path)!r} is missing; the codebook weights were not saved.")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CodebookError(
            f"{str(path)!r} is not a readable safetensors file ({err}); it may be truncated or corrupt; re-save it."
        ) from None
