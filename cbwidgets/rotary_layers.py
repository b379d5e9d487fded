"""Rotary positions in the first layers only: a model setting that travels in its config.

Why it exists: in a TokFSM model whose every attention layer can find the previous token by its
position, each layer reads a state's digits again, so the state is carried many times over, no
single site's code carries it, and early codes mix states the later layers tell apart. With
positions only in the first ``n`` layers, the later ones can only build on what those computed.

Layers from ``n`` on get the identity rotation (cosine 1, sine 0): their attention sees content and
the causal order, not positions ("NoPE"). The setting is one config attribute, so
``save_pretrained`` writes it, ``from_pretrained`` reads it back, and every ``CodebookModel`` that
wraps a rotary model (GPT-NeoX, Llama and its kin) follows it: set it before building, on a loaded
model, or on a live one (``set_rotary_layers(model.config, 1)``), and the next forward obeys it.
"""

from __future__ import annotations

from functools import partial
from typing import Any, cast

from torch import nn
from torch.utils.hooks import RemovableHandle
from transformers import PretrainedConfig, PreTrainedModel

from .errors import CodebookError, check_positive_int
from .sites import SITE_TABLE

__all__ = ["CONFIG_KEY", "check_rotary_layers", "position_hooks", "rotary_layers", "set_rotary_layers"]

CONFIG_KEY = "cbwidgets_rotary_layers"
_ROTARY_TYPES = ("gpt_neox", "llama", "mistral", "qwen2", "qwen3")  # attention takes position_embeddings


def rotary_layers(config: PretrainedConfig) -> int | None:
    """How many first layers keep their rotary positions (None: all of them, the stock model)."""
    return getattr(config, CONFIG_KEY, None)


def set_rotary_layers(config: PretrainedConfig, layers: Any) -> None:
    """Keep rotary positions in the first ``layers`` layers only (None: in every layer)."""
    if layers is None:
        if hasattr(config, CONFIG_KEY):
            delattr(config, CONFIG_KEY)
        return
    if config.model_type not in _ROTARY_TYPES:
        raise CodebookError(
            f"rotary_layers={layers!r} needs a model with rotary positions; a {config.model_type!r} model has "
            f"none. Use one of {', '.join(_ROTARY_TYPES)}, or leave rotary_layers=None."
        )
    setattr(config, CONFIG_KEY, check_rotary_layers(layers, int(config.num_hidden_layers)))


def check_rotary_layers(layers: Any, total: int) -> int | None:
    """``layers`` as a Python int from 1 to ``total`` (or None), or a CodebookError saying what to give."""
    count = check_positive_int("rotary_layers", layers, allow_none=True)
    if count is not None and count > total:
        raise CodebookError(
            f"rotary_layers={count} is more than the model's {total} layers; give 1 to {total}, or None for all."
        )
    return count


def position_hooks(model: PreTrainedModel) -> list[RemovableHandle]:
    """One forward pre-hook per attention layer of a rotary model (none for other families). Each
    reads ``rotary_layers`` from the config at every call, so setting it on a live model takes
    effect at the next forward, and unset it changes nothing."""
    config = model.config
    row = next((r for r in SITE_TABLE if r.kind == "attn" and config.model_type in r.model_types), None)
    if row is None or config.model_type not in _ROTARY_TYPES:
        return []
    check_rotary_layers(rotary_layers(config), int(config.num_hidden_layers))  # a hand-edited config.json
    return [
        model.get_submodule(row.module.format(layer=layer)).register_forward_pre_hook(
            partial(_no_rotation_past, layer), with_kwargs=True
        )
        for layer in range(int(config.num_hidden_layers))
    ]


def _no_rotation_past(
    layer: int, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Any, dict[str, Any]] | None:
    config = cast(PretrainedConfig, module.config)  # the attention modules of _ROTARY_TYPES keep it
    first = check_rotary_layers(rotary_layers(config), int(config.num_hidden_layers))
    if first is None or layer < first:
        return None
    embeddings = kwargs.get("position_embeddings")
    if embeddings is None:
        raise CodebookError(
            f"{type(module).__name__} was called without position_embeddings, so rotary_layers cannot take its "
            f"positions away; this needs transformers >= 5 (pip install -U transformers)."
        )
    cos, sin = embeddings
    kwargs["position_embeddings"] = (cos.new_ones(cos.shape), sin.new_zeros(sin.shape))
    return args, kwargs
