"""``cbwidgets train-fsm``: reproduce the shipped TokFSM model and show how it compares."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

import pandas as pd

from .default import Recipe, save_default, train_default
from .metrics import compare_to_reference
from .world import TokFSM

__all__ = ["train_fsm"]


def train_fsm(
    out: str | Path,
    seed: int = 0,
    base_steps: int = 1000,
    code_steps: int = 100,
    half: bool = True,
    progress: bool = True,
    stream: TextIO | None = None,
) -> pd.DataFrame:
    """Train, save to ``out``, print the phase times and the metrics beside the reference's."""
    stream = stream or sys.stdout
    fsm = TokFSM()
    recipe = Recipe(base_steps=base_steps, code_steps=code_steps, seed=seed)
    trained = train_default(recipe, fsm, progress=progress)
    folder = save_default(trained, out, half=half)
    times = ", ".join(f"{phase} {s:.0f} s" for phase, s in trained.seconds.items())
    print(f"Trained in {sum(trained.seconds.values()):.0f} s ({times}); saved to {folder}", file=stream)
    print(f"Load it with cbwidgets.tokfsm.load_default({str(folder)!r})", file=stream)
    table = compare_to_reference(trained.model, fsm)
    print(table.to_string(index=False, float_format="%.3f"), file=stream)
    return table
