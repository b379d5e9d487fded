"""Where codebooks attach in each supported architecture: one table, one row per (family, site kind).

A site kind names a place in every layer:
- ``block``: the residual stream after the whole block (the block's output);
- ``attn``: the attention module's output, before it is added to the residual stream;
- ``attn_preproj``: the concatenated head outputs just before the attention output projection,
  reached with a forward pre-hook; codebooks here get one group per head;
- ``mlp_hidden``: the MLP's hidden activations (its neurons), the input of its output projection;
- ``mlp``: the MLP's output.

Adding an architecture is adding rows to ``SITE_TABLE`` (module paths come from the stock
transformers classes; ``{layer}`` is replaced by the layer index).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from .errors import CodebookError, choices

__all__ = [
    "SITE_KINDS",
    "SITE_TABLE",
    "Site",
    "SiteRow",
    "parse_site",
    "site_width",
    "sites_for",
    "supported_model_types",
]

SITE_KINDS = ("attn_preproj", "attn", "mlp_hidden", "mlp", "block")  # in the order a layer computes them

HookKind = Literal["output", "input"]


@dataclass(frozen=True)
class SiteRow:
    model_types: tuple[str, ...]
    kind: str
    module: str  # path template with {layer}
    hook: HookKind  # "output": forward hook on the module; "input": pre-hook on its first argument


_GPT2 = ("gpt2",)
_NEO = ("gpt_neo",)
_NEOX = ("gpt_neox",)
_LLAMA = ("llama", "mistral", "qwen2", "qwen3")  # these share module names

SITE_TABLE: tuple[SiteRow, ...] = (
    SiteRow(_GPT2, "block", "transformer.h.{layer}", "output"),
    SiteRow(_GPT2, "attn", "transformer.h.{layer}.attn", "output"),
    SiteRow(_GPT2, "attn_preproj", "transformer.h.{layer}.attn.c_proj", "input"),
    SiteRow(_GPT2, "mlp_hidden", "transformer.h.{layer}.mlp.c_proj", "input"),
    SiteRow(_GPT2, "mlp", "transformer.h.{layer}.mlp", "output"),
    SiteRow(_NEO, "block", "transformer.h.{layer}", "output"),
    SiteRow(_NEO, "attn", "transformer.h.{layer}.attn", "output"),
    SiteRow(_NEO, "attn_preproj", "transformer.h.{layer}.attn.attention.out_proj", "input"),
    SiteRow(_NEO, "mlp_hidden", "transformer.h.{layer}.mlp.c_proj", "input"),
    SiteRow(_NEO, "mlp", "transformer.h.{layer}.mlp", "output"),
    SiteRow(_NEOX, "block", "gpt_neox.layers.{layer}", "output"),
    SiteRow(_NEOX, "attn", "gpt_neox.layers.{layer}.attention", "output"),
    SiteRow(_NEOX, "attn_preproj", "gpt_neox.layers.{layer}.attention.dense", "input"),
    SiteRow(_NEOX, "mlp_hidden", "gpt_neox.layers.{layer}.mlp.dense_4h_to_h", "input"),
    SiteRow(_NEOX, "mlp", "gpt_neox.layers.{layer}.mlp", "output"),
    SiteRow(_LLAMA, "block", "model.layers.{layer}", "output"),
    SiteRow(_LLAMA, "attn", "model.layers.{layer}.self_attn", "output"),
    SiteRow(_LLAMA, "attn_preproj", "model.layers.{layer}.self_attn.o_proj", "input"),
    SiteRow(_LLAMA, "mlp_hidden", "model.layers.{layer}.mlp.down_proj", "input"),
    SiteRow(_LLAMA, "mlp", "model.layers.{layer}.mlp", "output"),
)


@dataclass(frozen=True)
class Site:
    """One attachable place in one model: ``layers.{layer}.{kind}``."""

    kind: str
    layer: int
    module: str
    hook: HookKind
    num_heads: int

    @property
    def name(self) -> str:
        return f"layers.{self.layer}.{self.kind}"

    @property
    def per_head(self) -> bool:
        return self.kind == "attn_preproj"


def site_width(model: Any, site: Site) -> int:
    """The size of the activation at ``site`` in ``model`` (a transformers model): what a codebook there takes."""
    if site.hook == "output":
        return int(model.config.hidden_size)
    module = model.get_submodule(site.module)
    in_features = getattr(module, "in_features", None)  # nn.Linear
    if isinstance(in_features, int):
        return in_features
    weight = getattr(module, "weight", None)
    if weight is not None and weight.dim() == 2:  # GPT-2's Conv1D keeps (in, out)
        return int(weight.shape[0])
    raise CodebookError(f"cannot tell the input size of {site.module} ({type(module).__name__}).")


def supported_model_types() -> list[str]:
    return sorted({t for row in SITE_TABLE for t in row.model_types})


def _num_layers(config: Any) -> int:
    for attr in ("num_hidden_layers", "n_layer", "num_layers"):
        value = getattr(config, attr, None)
        if isinstance(value, int):
            return value
    raise CodebookError(f"cannot tell the number of layers of a {type(config).__name__}.")


def sites_for(config: Any) -> dict[str, Site]:
    """Every site of a model with this config, keyed by site name, in forward order."""
    model_type = getattr(config, "model_type", None)
    rows = [row for row in SITE_TABLE if model_type in row.model_types]
    if not rows:
        raise CodebookError(
            f"architecture {model_type!r} is not in the site table; supported: "
            f"{choices(supported_model_types())}. Add rows to cbwidgets.sites.SITE_TABLE to support it."
        )
    heads = int(getattr(config, "num_attention_heads", 1))
    found: dict[str, Site] = {}
    for layer in range(_num_layers(config)):
        for kind in SITE_KINDS:
            for row in rows:
                if row.kind == kind:
                    site = Site(kind, layer, row.module.format(layer=layer), row.hook, heads)
                    found[site.name] = site
    return found


_SITE_NAME = re.compile(r"^layers\.(\d+)\.([a-z_]+)$")


def parse_site(name: str, available: dict[str, Site]) -> list[Site]:
    """Resolve a user's site spec: a site name (``layers.1.mlp``) or a kind for all layers (``mlp``)."""
    if not isinstance(name, str):
        raise CodebookError(f"site {name!r} is not valid; give a string like 'layers.1.mlp' or 'mlp'.")
    if name in SITE_KINDS:
        return [s for s in available.values() if s.kind == name]
    if name in available:
        return [available[name]]
    match = _SITE_NAME.match(name)
    layers = sorted({s.layer for s in available.values()})
    if match and match.group(2) in SITE_KINDS:
        raise CodebookError(
            f"site {name!r} names layer {match.group(1)}, but this model has layers {layers[0]}..{layers[-1]}."
        )
    raise CodebookError(
        f"unknown site {name!r}; give a site kind ({choices(SITE_KINDS)}) for every layer, or a "
        f"site name like 'layers.{layers[-1]}.mlp'."
    )
