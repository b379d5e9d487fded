"""Sampling with codes held on: a small decoding loop over the model's KV cache.

transformers' own ``generate`` does not tell forward hooks where each new token sits in the
sequence, and interventions need absolute positions (a code forced at position 12 must fire
when token 12 is generated). This loop passes them, so ``positions=None`` interventions hold on
every generated token, which is how topic steering works.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from .codes import Codes
from .errors import CodebookError, check_positive_int
from .scalars import as_real

if TYPE_CHECKING:
    from .interventions import Intervention
    from .model import CodebookModel

__all__ = ["Generation", "generate", "sample_next", "stream"]


@dataclass(frozen=True)
class Generation:
    """Sampled sequences (prompt included), their codes, and the decoded continuations."""

    ids: Tensor  # (samples, prompt + new)
    prompt_length: int
    codes: Codes
    texts: tuple[str, ...] | None

    @property
    def new_ids(self) -> Tensor:
        return self.ids[:, self.prompt_length :]

    def __repr__(self) -> str:
        s, t = self.ids.shape
        return f"Generation(samples={s}, prompt={self.prompt_length}, new={t - self.prompt_length})"


def sample_next(
    logits: Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """One token per row from logits (rows, vocab); temperature 0 is greedy."""
    if temperature == 0:
        return logits.argmax(-1)
    logits = logits.float() / temperature
    if top_k is not None:
        kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        drop = cumulative - sorted_logits.softmax(-1) > top_p  # keep the token that crosses top_p
        logits = logits.scatter(-1, order, sorted_logits.masked_fill(drop, float("-inf")))
    probs = logits.softmax(-1)
    return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(-1).to(logits.device)


def _sampling(temperature: Any, top_p: Any) -> tuple[float, float | None]:
    """The two sampling numbers as Python floats (numpy and torch ones too), checked."""
    try:
        heat = as_real(temperature)
    except (TypeError, ValueError):
        heat = -1.0
    if heat < 0:
        raise CodebookError(f"temperature={temperature!r} is not valid; give a number >= 0 (0 = greedy).")
    if top_p is None:
        return heat, None
    try:
        nucleus = as_real(top_p)
    except (TypeError, ValueError):
        nucleus = 0.0
    if not 0 < nucleus <= 1:
        raise CodebookError(f"top_p={top_p!r} is not valid; give a number in (0, 1] or None.")
    return heat, nucleus


def _start(
    model: CodebookModel,
    prompt: Any,
    max_new_tokens: int,
    num_samples: int,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    seed: int | None,
) -> tuple[Tensor, int, int, Callable[[Tensor], Tensor]]:
    """Checked inputs: the prompt ids repeated per sample, the prompt length, the number of tokens
    to add (a Python int, whatever integer it came as), and the sampler."""
    max_new_tokens = check_positive_int("max_new_tokens", max_new_tokens)
    num_samples = check_positive_int("num_samples", num_samples)
    top_k = check_positive_int("top_k", top_k, allow_none=True)
    temperature, top_p = _sampling(temperature, top_p)
    ids = model.as_input_ids(prompt).repeat_interleave(num_samples, dim=0)
    prompt_length = ids.shape[1]
    limit = model.max_length()
    if limit is not None and prompt_length + max_new_tokens > limit:
        raise CodebookError(
            f"prompt ({prompt_length} tokens) + max_new_tokens ({max_new_tokens}) exceeds the model's context of "
            f"{limit}; lower max_new_tokens to at most {limit - prompt_length}."
        )
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    return ids, prompt_length, max_new_tokens, lambda logits: sample_next(logits, temperature, top_k, top_p, generator)


def _steps(
    model: CodebookModel,
    ids: Tensor,
    max_new_tokens: int,
    sample: Callable[[Tensor], Tensor],
    interventions: tuple[Intervention, ...],
) -> Generator[tuple[Tensor | None, Any], None, None]:
    """(token or None for the prompt, model output) per step.

    The interventions are checked and compiled once; the plan is entered around each forward
    only, not across the yields, so two streams with different interventions can take turns on
    one model.
    """
    prompt_length = ids.shape[1]
    where = {"prompt_length": prompt_length, "total_length": prompt_length + max_new_tokens}
    plan = model.prepare(*interventions)
    with torch.no_grad(), model.intervene(plan):
        out = model(ids, use_cache=True, **where)
    yield None, out
    for _ in range(max_new_tokens):
        token = sample(out.logits[:, -1])
        with torch.no_grad(), model.intervene(plan):
            out = model(token[:, None], cache=out.cache, use_cache=True, **where)
        yield token, out


def stream(
    model: CodebookModel,
    prompt: Any,
    max_new_tokens: int = 20,
    num_samples: int = 1,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    interventions: tuple[Intervention, ...] | list[Intervention] = (),
) -> Generator[Tensor, None, None]:
    """Yield each step's sampled tokens (num_samples,) as soon as they exist; stop early by closing it.

    The same sampling as ``generate`` (same seed, same tokens), for views that show text as it grows.
    """
    ids, _, max_new_tokens, sample = _start(model, prompt, max_new_tokens, num_samples, temperature, top_k, top_p, seed)
    steps = _steps(model, ids, max_new_tokens, sample, tuple(interventions))
    with model.evaluating():
        try:
            for token, _out in steps:
                if token is not None:
                    yield token
        finally:
            steps.close()


def generate(
    model: CodebookModel,
    prompt: Any,
    max_new_tokens: int = 20,
    num_samples: int = 1,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    interventions: tuple[Intervention, ...] | list[Intervention] = (),
) -> Generation:
    """Sample ``num_samples`` continuations of each prompt row.

    Interventions active around the call (``with model.force(...)``) and those passed here are held
    on for the prompt and for every generated token. ``seed`` makes sampling repeatable.
    """
    ids, prompt_length, max_new_tokens, sample = _start(
        model, prompt, max_new_tokens, num_samples, temperature, top_k, top_p, seed
    )
    parts, values, tokens = [], [], [ids]
    with model.evaluating():
        for token, out in _steps(model, ids, max_new_tokens, sample, tuple(interventions)):
            if token is not None:
                tokens.append(token[:, None])
            parts.append(out.codes.ids)
            if out.codes.values is not None:
                values.append(out.codes.values)
    ids = torch.cat(tokens, dim=1)
    codes = Codes(torch.cat(parts, dim=1), out.codes.codebooks, torch.cat(values, dim=1) if values else None)
    texts = None
    if model.tokenizer is not None:
        texts = tuple(model.tokenizer.decode(row[prompt_length:].tolist()) for row in ids)
    return Generation(ids, prompt_length, codes, texts)
