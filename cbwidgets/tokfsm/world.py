"""TokFSM: a world whose truth is known, generated locally, so codes can be checked against it.

A finite state machine of N states, each with E distinct random out-neighbours (self-loops
possible) and uniform transitions. States are written as base-b numbers with a fixed number of
digits, one token per digit, plus a BOS token; a sequence is BOS followed by a random walk from a
uniform random start. Everything is generated from seeds: nothing is downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import CodebookError, check_positive_int

__all__ = ["TokFSM"]

BOS = "<bos>"


def _symbol(digit: int) -> str:
    """Digits above 9 (bases over 10) are written a, b, c, ..."""
    return str(digit) if digit < 10 else chr(ord("a") + digit - 10)


@dataclass(frozen=True)
class TokFSM:
    num_states: int = 100
    num_edges: int = 10
    seed: int = 42
    base: int = 10
    digits: int = 2
    edges: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("num_states", "num_edges", "base", "digits"):
            object.__setattr__(self, name, check_positive_int(name, getattr(self, name)))
        if self.num_edges > self.num_states:
            raise CodebookError(
                f"num_edges={self.num_edges} exceeds num_states={self.num_states}; each state needs that many "
                f"distinct out-neighbours."
            )
        if self.base**self.digits < self.num_states:
            raise CodebookError(
                f"{self.digits} digits of base {self.base} write only {self.base**self.digits} states, fewer than "
                f"num_states={self.num_states}; raise digits or base."
            )
        rng = np.random.default_rng(self.seed)
        edges = np.stack([rng.choice(self.num_states, self.num_edges, replace=False) for _ in range(self.num_states)])
        object.__setattr__(self, "edges", np.sort(edges, axis=1))

    @property
    def bos_id(self) -> int:
        return self.base

    @property
    def vocab_size(self) -> int:
        return self.base + 1

    def digit_powers(self) -> list[int]:
        """Place values of a state's digits, most significant first (base**(digits-1), ..., 1)."""
        return [self.base**i for i in range(self.digits - 1, -1, -1)]

    def parse_states(self, tokens: Tensor) -> Tensor:
        """Digit tokens (..., k * digits) grouped into state ids (..., k); -1 where a group is not a state."""
        groups = tokens.reshape(*tokens.shape[:-1], -1, self.digits)
        valid = (groups < self.base).all(-1)
        states = (groups.clamp_max(self.base - 1) * torch.tensor(self.digit_powers())).sum(-1)
        return torch.where(valid & (states < self.num_states), states, torch.full_like(states, -1))

    def state_ends(self, length: int) -> Tensor:
        """Positions of the last digit of each whole state in a sequence ``BOS + digits`` of length tokens."""
        return torch.arange(self.digits, length, self.digits)

    def transition_matrix(self) -> np.ndarray:
        """(N, N) probabilities of the next state given the current one."""
        matrix = np.zeros((self.num_states, self.num_states))
        np.put_along_axis(matrix, self.edges, 1.0 / self.num_edges, axis=1)
        return matrix

    def state_tokens(self, state: int) -> list[int]:
        """The digit tokens of a state, most significant first."""
        out = []
        for _ in range(self.digits):
            state, digit = divmod(state, self.base)
            out.append(digit)
        return out[::-1]

    def state_text(self, state: int) -> str:
        return "".join(_symbol(d) for d in self.state_tokens(state))

    def walks(self, num_sequences: int, num_states: int, seed: int) -> np.ndarray:
        """(num_sequences, num_states) random walks from uniform random starts."""
        rng = np.random.default_rng(seed)
        states = np.empty((num_sequences, num_states), dtype=np.int64)
        states[:, 0] = rng.integers(0, self.num_states, num_sequences)
        for t in range(1, num_states):
            states[:, t] = self.edges[states[:, t - 1], rng.integers(0, self.num_edges, num_sequences)]
        return states

    def sample(self, num_sequences: int, length: int = 128, seed: int = 0) -> Tensor:
        """(num_sequences, length) token ids: BOS, then the digits of a random walk, cut to length."""
        if length < 1 + self.digits:
            raise CodebookError(
                f"length={length} is too short; a sequence needs BOS plus {self.digits} digits at least."
            )
        steps = -(-(length - 1) // self.digits)
        states = self.walks(num_sequences, steps, seed)
        digits = (states[..., None] // np.array(self.digit_powers())) % self.base  # (n, steps, digits)
        tokens = np.concatenate([np.full((num_sequences, 1), self.bos_id), digits.reshape(num_sequences, -1)], axis=1)
        return torch.from_numpy(tokens[:, :length].copy())

    def batches(self, length: int = 128, seed: int = 0) -> Any:
        """A (step, batch_size) -> batch function for ``cbwidgets.train``: fresh data every step."""

        def batch(step: int, batch_size: int) -> Tensor:
            return self.sample(batch_size, length, seed=seed * 1_000_003 + step)

        return batch

    def tokenizer(self) -> Any:
        """A transformers fast tokenizer for this world, built locally: one token per digit plus BOS."""
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers
        from transformers import PreTrainedTokenizerFast

        vocab = {_symbol(d): d for d in range(self.base)} | {BOS: self.bos_id}
        tok = Tokenizer(models.WordLevel(vocab, unk_token=BOS))
        tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")
        tok.decoder = decoders.Fuse()  # states read as "4759", not "4 7 5 9"
        return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, unk_token=BOS, pad_token=BOS)
