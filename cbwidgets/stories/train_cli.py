"""``cbwidgets storyteller``: train the story model with its codebooks, save it, print its metrics."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

import pandas as pd

from .storyteller import StoryRecipe, save_storyteller, train_storyteller

__all__ = ["train_storyteller_cli"]


def train_storyteller_cli(
    out: str | Path, recipe: StoryRecipe, half: bool = True, progress: bool = True, stream: TextIO | None = None
) -> pd.DataFrame:
    """Train, save to ``out``, print phase times and held-out loss / accuracy per phase."""
    stream = stream or sys.stdout
    trained = train_storyteller(recipe, progress=progress)
    folder = save_storyteller(trained, out, half=half)
    times = ", ".join(f"{phase} {s:.0f} s" for phase, s in trained.seconds.items())
    print(f"Trained in {sum(trained.seconds.values()):.0f} s ({times}); saved to {folder}", file=stream)
    print(f"Load it with cbwidgets.storyteller({str(folder)!r})", file=stream)
    print("Held-out stories (loss in nats per token):", file=stream)
    print(trained.metrics.to_string(index=False, float_format="%.3f"), file=stream)
    return trained.metrics
