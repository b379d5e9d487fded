"""Rotary positions in the first layers only: a model setting that travels in its config.

Why it exists: in a TokFSM model whose every attention layer can find the previous token by its
position, each layer reads a state's digits again, so the state is carried many times over, no
single site's code carries it, and early codes mix states the later layers tell apart. With
positions only in the first ``n`` layers, the later ones can only build on what those computed.

Layers from ``n`` on get the identity rotation (cosine 1, sine 0): their attention sees content and
the causal order, not positions ("NoPE"). The setting is one config attribute, so
``save_pretrained`` writes it, ``from_pretrained`` reads it back, and every ``CodebookModel`` that
wraps such a model puts the same layers back without positions.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle
from transformers import PretrainedConfig, PreTrainedModel

from .errors import CodebookError, check_positive_int
from .sites import SITE_TABLE

__all__ = ["CONFIG_KEY", "check_rotary_layers", "rotary_layers", "set_rotary_layers", "without_positions_after"]

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


def without_positions_after(model: PreTrainedModel) -> list[RemovableHandle]:
    """Hooks that take the rotation away from every attention layer from ``rotary_layers`` on;
    none when the config keeps positions everywhere."""
    config = model.config
    first = rotary_layers(config)
    if first is None:
        return []
    set_rotary_layers(config, first)  # a hand-edited config.json is checked like an argument
    row = next(row for row in SITE_TABLE if row.kind == "attn" and config.model_type in row.model_types)
    return [
        model.get_submodule(row.module.format(layer=layer)).register_forward_pre_hook(_no_rotation, with_kwargs=True)
        for layer in range(first, int(config.num_hidden_layers))
    ]


def _no_rotation(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    embeddings = kwargs.get("position_embeddings")
    if embeddings is None:
        raise CodebookError(
            f"{type(module).__name__} was called without position_embeddings, so rotary_layers cannot take its "
            f"positions away; this needs transformers >= 5 (pip install -U transformers)."
        )
    cos, sin = embeddings
    kwargs["position_embeddings"] = (_filled(cos, 1.0), _filled(sin, 0.0))
    return args, kwargs


def _filled(like: Tensor, value: float) -> Tensor:
    return like.new_full(like.shape, value)
