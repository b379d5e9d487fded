"""How removals of codes are batched: neighbouring tokens share one forward, which starts on the
clean run's keys and values for every token before the first of them (a removal cannot change the
past). ``circuits`` runs removals in full this way; ``quiet_removals`` judges its removals in the
same windows, and packs its forwards on a copy of the clean cache."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

__all__ = ["prefix_cache", "removal_windows"]


def removal_windows(positions: Tensor, rows: int, span: int) -> Iterator[Tensor]:
    """Indices of removals (at tokens ``positions``) to run in one forward, in token order: at most
    ``rows`` of them, on tokens less than ``span`` after the group's first (the rows of later tokens
    rerun the clean tokens between)."""
    order = positions.argsort(stable=True)
    group: list[int] = []
    for index in order.tolist():
        if group and (len(group) == rows or int(positions[index]) - int(positions[group[0]]) >= span):
            yield torch.tensor(group)
            group = []
        group.append(index)
    if group:
        yield torch.tensor(group)


def prefix_cache(cache: Any, length: int, rows: int) -> Any | None:
    """A copy of the clean run's ``cache`` cut to its first ``length`` tokens, repeated for a batch of
    ``rows``; None where there is nothing before (a forward from the first token)."""
    if length == 0:
        return None
    past = copy.deepcopy(cache)
    past.crop(length - int(past.get_seq_length()))
    past.batch_repeat_interleave(rows)
    return past
