"""Do the proposed labels name the state a code stands for? TokFSM's known answer for ``label_proposals``."""

from __future__ import annotations

import re

import pandas as pd

from ..index import CodeIndex
from ..label_proposals import propose_labels
from ..model import CodebookModel
from .state_codes import state_codes
from .world import TokFSM

__all__ = ["STATE_LABEL_COLUMNS", "state_labels"]

STATE_LABEL_COLUMNS = ("code", "state", "label", "pattern", "precision", "named")


def _literal(pattern: str) -> tuple[str, str] | None:
    """(the text before the firing token, the token) of a literal rule such as ``'1(3)'``; None for others."""
    found = re.fullmatch(r"(.*)\((.*)\)", pattern)
    if found is None or re.search(r"(?<!\\)[\[\]|*+?{}]", pattern):
        return None
    before, token = (re.sub(r"\\(.)", r"\1", part) for part in found.groups())
    return before, token


def state_labels(
    model: CodebookModel,
    fsm: TokFSM,
    index: CodeIndex,
    codebooks: tuple[str, ...] = ("1.mlp", "2.mlp", "3.mlp"),
    min_firings: int = 10,
) -> pd.DataFrame:
    """For each code of ``codebooks`` that stands for one state (90 % or more of its firings at
    states' ends are at that state's, 5 or more of them in ``state_codes``' walks) and fires at least
    ``min_firings`` times in ``index``: its first proposed label, and whether that names the state
    (a literal rule whose text ends in the state's digits, firing on its last, with held-out
    precision >= 0.9). Layer 0's MLP is left out by default: its codes see one token."""
    table, _ = state_codes(model, fsm)
    table = table[table.codebook.isin(list(codebooks))]
    best = table.sort_values("precision", ascending=False, kind="stable").drop_duplicates("code")
    pure = best[(best.precision >= 0.9) & (best.firings >= 5)]
    rows = []
    for code, state in zip(pure.code, pure.state, strict=True):
        if len(index.positions(code)) < min_firings:
            continue
        top = propose_labels(index, code, top=1).iloc[0]
        literal = _literal(str(top.pattern))
        named = (
            literal is not None
            and (literal[0] + literal[1]).endswith(state)
            and literal[1] == state[-1]
            and float(top.precision) >= 0.9
        )
        rows.append((code, state, top.label, top.pattern, float(top.precision), named))
    return pd.DataFrame(rows, columns=list(STATE_LABEL_COLUMNS))
