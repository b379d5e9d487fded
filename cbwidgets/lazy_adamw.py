"""AdamW that moves only the code vectors a step chose.

A codebook's gradient is zero on every code no token chose: the task gradient and the
reconstruction loss both reach a code through its look-up. Dense AdamW still reads and writes every
row of every codebook each step, and keeps moving codes that were chosen a while ago on their
momentum. With 10,000-code codebooks at every layer of a GPT-2-sized model that is 92 million
parameters a step for the few hundred rows a batch of 512 tokens touches.

In a param group marked ``lazy_rows``, a row (one code vector) whose gradient is all zero keeps its
value and its moments this step, as in lazy (sparse) Adam; chosen rows get exactly the AdamW update.
Other groups are plain AdamW. The state has AdamW's keys, so checkpoints load either way.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

__all__ = ["LazyRowsAdamW"]


class LazyRowsAdamW(torch.optim.AdamW):
    """``torch.optim.AdamW`` with row-lazy updates for the param groups that set ``lazy_rows=True``."""

    def __init__(self, params: Any, **kwargs: Any) -> None:
        if kwargs.get("amsgrad") or kwargs.get("maximize"):
            raise ValueError("LazyRowsAdamW supports neither amsgrad nor maximize.")
        super().__init__(params, **kwargs)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        lazy = [
            (group, p)
            for group in self.param_groups
            if group.get("lazy_rows")
            for p in group["params"]
            if p.grad is not None
        ]
        held = [p.grad for _, p in lazy]
        for _, p in lazy:
            p.grad = None  # AdamW skips a parameter without a gradient
        try:
            super().step()
        finally:
            for (_, p), grad in zip(lazy, held, strict=True):
                p.grad = grad
        for group, p in lazy:
            self._lazy_update(group, p)
        return loss

    def _lazy_update(self, group: dict[str, Any], p: Tensor) -> None:
        assert p.grad is not None
        if p.grad.is_sparse:
            raise ValueError("LazyRowsAdamW takes dense gradients (zero rows are what it skips).")
        state = self.state[p]
        if not state:
            state["step"] = torch.zeros((), dtype=torch.float32)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["step"] += 1
        width = p.shape[-1]
        grad = p.grad.reshape(-1, width)
        rows = grad.ne(0).any(-1).nonzero().squeeze(-1)
        if rows.numel() == 0:
            return
        beta1, beta2 = group["betas"]
        lr, eps, decay = float(group["lr"]), group["eps"], group["weight_decay"]
        t = float(state["step"])
        param, avg, avg_sq = (x.view(-1, width) for x in (p, state["exp_avg"], state["exp_avg_sq"]))
        g = grad.index_select(0, rows)
        m = avg.index_select(0, rows).lerp_(g, 1 - beta1)
        v = avg_sq.index_select(0, rows).mul_(beta2).addcmul_(g, g, value=1 - beta2)
        denom = (v.sqrt() / math.sqrt(1 - beta2**t)).add_(eps)
        new = param.index_select(0, rows)
        if decay:
            new.mul_(1 - lr * decay)
        new.addcdiv_(m, denom, value=-lr / (1 - beta1**t))
        avg.index_copy_(0, rows, m)
        avg_sq.index_copy_(0, rows, v)
        param.index_copy_(0, rows, new)
