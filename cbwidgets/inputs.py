"""What a CodebookModel accepts as input: text, lists or tensors of token ids, checked with messages.

Every entry point that runs the model (forward, generate, the widgets, training) goes through
``as_input_ids``, so a bad input gets the same explanation wherever it is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from .errors import CodebookError

__all__ = ["as_input_ids", "check_tokenizer", "context_length", "tokenize"]


def context_length(config: Any) -> int | None:
    """The longest sequence a model of this config takes, or None when the config does not say."""
    for attr in ("max_position_embeddings", "n_positions"):
        value = getattr(config, attr, None)
        if isinstance(value, int):
            return value
    return None


def tokenize(tokenizer: Any, text: str | Sequence[str]) -> Tensor:
    """Texts of equal token length as a (batch, tokens) LongTensor."""
    if tokenizer is None:
        raise CodebookError("this model has no tokenizer; pass token ids, or build it with tokenizer=...")
    batch = [text] if isinstance(text, str) else list(text)
    rows = [tokenizer(t, add_special_tokens=True)["input_ids"] for t in batch]
    if len({len(r) for r in rows}) != 1:
        raise CodebookError("texts tokenize to different lengths; pass them one at a time or as padded ids.")
    return torch.tensor(rows, dtype=torch.long)


def as_input_ids(input_ids: Any, tokenizer: Any, vocab_size: int, device: torch.device) -> Tensor:
    """Text, a list, or a 1-D or 2-D tensor of ids -> a checked (batch, tokens) long tensor on ``device``."""
    if isinstance(input_ids, str) or (
        isinstance(input_ids, list | tuple) and input_ids and all(isinstance(t, str) for t in input_ids)
    ):
        input_ids = tokenize(tokenizer, input_ids)
    if isinstance(input_ids, list | tuple) or type(input_ids).__module__ == "numpy":
        try:
            input_ids = torch.as_tensor(input_ids)
        except (TypeError, ValueError, RuntimeError) as err:
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
    low, high = int(input_ids.min()), int(input_ids.max())
    if low < 0 or high >= vocab_size:
        bad = low if low < 0 else high
        raise CodebookError(f"token id {bad} is out of range; this model's vocabulary is 0..{vocab_size - 1}.")
    return input_ids.long().to(device)


def check_tokenizer(tokenizer: Any, vocab_size: int) -> None:
    """A tokenizer that can write ids the model has no embedding for is refused up front, not at the
    first prompt that happens to use one."""
    if tokenizer is None:
        return
    try:
        size = len(tokenizer)
    except TypeError:
        return  # not a transformers tokenizer; its ids are checked per input
    if size > vocab_size:
        raise CodebookError(
            f"the tokenizer has {size:,} tokens but the model's vocabulary has {vocab_size:,}: ids "
            f"{vocab_size:,} and up have no embedding. Pass the tokenizer the model was trained with, or grow "
            f"the model first: model.resize_token_embeddings(len(tokenizer))."
        )
