"""Which codes fire at which states: the table behind "this code stands for state 07".

Read at each state's last digit, where the model has seen the whole state: a code's firings there,
split by state, give its precision for a state (the share of its firings that land on it) and its
recall (the share of the state's occurrences it fires on). ``code_purity`` and ``codes_vs_neurons``
summarise such counts per codebook; this keeps them whole, one row per (code, state) pair seen, so
a view can go from a state to its codes and from a code to its states.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from ..errors import CodebookError, check_positive_int
from ..model import CodebookModel
from ..names import as_integer
from .world import TokFSM

__all__ = ["STATE_CODE_COLUMNS", "state_codes", "state_of"]

STATE_CODE_COLUMNS = ("codebook", "code", "id", "state", "state_index", "firings", "precision", "recall")


def state_of(fsm: TokFSM, state: Any) -> int:
    """A state as its index: ``7``, ``np.int64(7)``, ``torch.tensor(7)`` or its written form ``"07"``."""
    if isinstance(state, str):
        for index in range(fsm.num_states):
            if fsm.state_text(index) == state:
                return index
        raise CodebookError(
            f"{state!r} is not a state of this FSM; states are written {fsm.state_text(0)!r}.."
            f"{fsm.state_text(fsm.num_states - 1)!r} ({fsm.digits} digits)."
        )
    try:
        index = as_integer(state)
    except (TypeError, ValueError):
        raise CodebookError(f"{state!r} is not a state; give its number (7) or its digits ('07').") from None
    if not 0 <= index < fsm.num_states:
        raise CodebookError(f"state {index} is not in this FSM; states are 0..{fsm.num_states - 1}.")
    return index


@torch.no_grad()
def state_codes(
    model: CodebookModel,
    fsm: TokFSM,
    num_sequences: int = 256,
    length: int = 64,
    seed: int = 3,
    batch_size: int = 64,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Every (code, state) pair seen at a state's last digit, with its counts; and each state's
    number of occurrences (an array of length ``fsm.num_states``), the denominator of recall.

    Columns: codebook (label), code (name), id, state (written), state_index, firings (of this code
    at this state), precision (firings / the code's firings at any state's end), recall (firings /
    the state's occurrences). Every slot of a k > 1 codebook counts.
    """
    num_sequences = check_positive_int("num_sequences", num_sequences)
    length = check_positive_int("length", length)
    batch_size = check_positive_int("batch_size", batch_size)
    ends = fsm.state_ends(length)
    if len(ends) == 0:
        raise CodebookError(f"length={length} holds no whole state; give at least {1 + fsm.digits}.")
    ids = fsm.sample(num_sequences, length, seed=seed)
    states = fsm.parse_states(ids[:, 1 : 1 + fsm.digits * len(ends)]).reshape(-1).numpy()  # (B * E,)
    read = torch.cat(
        [model(ids[i : i + batch_size]).codes.ids[:, ends] for i in range(0, num_sequences, batch_size)]
    )  # (B, E, codebooks, k)
    fired = read.reshape(len(states), read.shape[2], read.shape[3]).numpy()
    occurrences = np.bincount(states[states >= 0], minlength=fsm.num_states)
    names = model.names
    frames = []
    for book in range(fired.shape[1]):
        slots = fired[:, book]  # (B * E, k)
        pairs = np.stack([slots.reshape(-1), np.repeat(states, slots.shape[1])], axis=1)
        pairs = pairs[(pairs[:, 0] >= 0) & (pairs[:, 1] >= 0)]
        unique, counts = np.unique(pairs, axis=0, return_counts=True)
        codes, on = unique[:, 0], unique[:, 1]
        totals = np.bincount(pairs[:, 0], minlength=int(codes.max(initial=-1)) + 1)
        frames.append(
            pd.DataFrame(
                {
                    "codebook": names.labels[book],
                    "code": [names.code_name(book, int(c)) for c in codes],
                    "id": codes.astype(np.int64),
                    "state": [fsm.state_text(int(s)) for s in on],
                    "state_index": on.astype(np.int64),
                    "firings": counts.astype(np.int64),
                    "precision": counts / totals[codes],
                    "recall": counts / np.maximum(occurrences[on], 1),
                }
            )
        )
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(STATE_CODE_COLUMNS))
    return table, occurrences
