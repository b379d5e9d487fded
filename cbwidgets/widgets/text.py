"""Token ids to the strings a reader should see (decoded text, not byte-level BPE symbols)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["token_strings"]


def token_strings(tokenizer: Any, ids: Sequence[int]) -> list[str]:
    """One string per token: its decoded text, so 'Ġthe' reads ' the'; ids as text without a tokenizer."""
    if tokenizer is None:
        return [str(i) for i in ids]
    return [tokenizer.decode([int(i)]) for i in ids]
