"""The recipe both shipped models are made with: one config, three phases, one way to save and load.

1. ``base``: the base model learns its data with every codebook's LayerNorm in place but no snap
   (``CodebookModel.normalize_only``), so it never relies on the activation norms a codebook
   discards;
2. ``kmeans``: every codebook's codes become k-means centroids of what enters it;
3. ``finetune``: the snap goes on and the codebooks train, alone (``freeze_base``: the TokFSM
   model) or together with the model, which then learns to read the codes (the storyteller); then
   euclidean codebooks retire codes too close to another to tell apart.

A world (TokFSM, the stories) supplies the model and its data; ``train_in_phases`` runs the phases,
``save_trained`` writes the model with its recipe and metrics, ``load_trained`` reads it back.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Protocol, TextIO

import pandas as pd
import torch
from torch import Tensor

from .errors import CodebookError, check_flag, check_positive_int
from .model import CODEBOOKS_JSON, CodebookModel
from .scalars import as_integer
from .train import Callback, Data, TrainConfig, train

__all__ = [
    "PHASES",
    "PhaseData",
    "Recipe",
    "TrainedModel",
    "finetune",
    "fit_codes",
    "load_trained",
    "print_report",
    "save_trained",
    "train_base",
    "train_in_phases",
]

PHASES = ("base", "kmeans", "finetune")


@dataclass(frozen=True)
class Recipe:
    """How a model with codebooks is trained in the three phases; each world sets its own defaults."""

    batch_size: int = 16  # sequences a step
    length: int = 128  # tokens a sequence
    base_steps: int = 1000
    lr: float = 3e-3
    warmup_steps: int = 30
    weight_decay: float = 0.0
    kmeans_sequences: int = 128
    kmeans_iters: int = 20
    finetune_steps: int = 100
    finetune_lr: float = 1e-3
    finetune_warmup_steps: int = 10
    freeze_base: bool = True  # finetune the codebooks alone (True) or the model with them (False)
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("batch_size", "length", "kmeans_sequences", "kmeans_iters"):
            object.__setattr__(self, name, check_positive_int(name, getattr(self, name)))
        for name in ("base_steps", "finetune_steps", "warmup_steps", "finetune_warmup_steps"):
            value = getattr(self, name)
            try:
                steps = as_integer(value)
            except (TypeError, ValueError):
                steps = -1
            if steps < 0:
                raise CodebookError(f"{name}={value!r} is not valid; give 0 or a positive number of steps.")
            object.__setattr__(self, name, steps)
        object.__setattr__(self, "freeze_base", check_flag("freeze_base", self.freeze_base))

    def to_dict(self) -> dict[str, Any]:
        return {"recipe": type(self).__name__, **asdict(self)}

    def train_config(self, phase: str, **changes: Any) -> TrainConfig:
        """The TrainConfig of the ``base`` or ``finetune`` phase."""
        if phase == "base":
            steps, lr, warmup, seed, freeze = self.base_steps, self.lr, self.warmup_steps, self.seed, False
        else:
            steps, lr, warmup = self.finetune_steps, self.finetune_lr, self.finetune_warmup_steps
            seed, freeze = self.seed + 2, self.freeze_base
        config = TrainConfig(
            steps=steps,
            batch_size=self.batch_size,
            lr=lr,
            warmup_steps=warmup,
            weight_decay=self.weight_decay,
            betas=(0.9, 0.95),
            freeze_base=freeze,
            log_every=50,
            seed=seed,
        )
        return replace(config, **changes)


class PhaseData(Protocol):
    """What a world gives the phases: training batches and a sample for k-means, by seed."""

    def batches(self, seed: int) -> Data: ...

    def sample(self, sequences: int, seed: int) -> Tensor: ...


@dataclass
class TrainedModel:
    """A model fresh from ``train_in_phases``, with what it took to make."""

    model: CodebookModel
    history: pd.DataFrame  # logged training metrics of the training phases, with a ``phase`` column
    seconds: dict[str, float]  # wall time per phase (and any preparation the world timed)
    metrics: pd.DataFrame  # what the world measured after the phases (empty when nothing was)
    recipe: Recipe


def train_base(
    model: CodebookModel, recipe: Recipe, data: PhaseData, progress: bool = True, callbacks: Sequence[Callback] = ()
) -> pd.DataFrame:
    """Phase 1: the base model learns the data with the codebooks' LayerNorms in place, no snap."""
    if recipe.base_steps == 0:
        return pd.DataFrame()
    with model.normalize_only():
        config = recipe.train_config("base", progress=progress)
        result = train(model, data.batches(recipe.seed), config, callbacks=callbacks)
    return result.history.assign(phase="base")


def fit_codes(model: CodebookModel, recipe: Recipe, data: PhaseData) -> None:
    """Phase 2: every codebook's codes become k-means centroids of what enters it."""
    sample = data.sample(recipe.kmeans_sequences, recipe.seed + 1)
    model.kmeans_init(sample, iters=recipe.kmeans_iters, seed=recipe.seed, match_scale=False)


def finetune(
    model: CodebookModel, recipe: Recipe, data: PhaseData, progress: bool = True, callbacks: Sequence[Callback] = ()
) -> pd.DataFrame:
    """Phase 3: the snap goes on; the codebooks train (with the model unless ``freeze_base``). Then
    codes too close to a lower-numbered one to tell apart are retired (``retire_twin_codes``), so a
    code's id does not depend on the batch it is read in."""
    if recipe.finetune_steps == 0:
        return pd.DataFrame()
    config = recipe.train_config("finetune", progress=progress)
    result = train(model, data.batches(recipe.seed + 2), config, callbacks=callbacks)
    model.retire_twin_codes()
    return result.history.assign(phase="finetune")


def train_in_phases(
    model: CodebookModel,
    recipe: Recipe,
    data: PhaseData,
    progress: bool = True,
    measure: Callable[[CodebookModel, str], pd.DataFrame | None] | None = None,
    seconds: dict[str, float] | None = None,
) -> TrainedModel:
    """Run the three phases on ``model``; ``measure(model, phase)`` is called after each phase and
    what it returns is gathered (with a ``phase`` column) into ``TrainedModel.metrics``."""
    seconds = dict(seconds or {})
    histories, measured = [], []
    steps: dict[str, Callable[[], pd.DataFrame | None]] = {
        "base": lambda: train_base(model, recipe, data, progress),
        "kmeans": lambda: fit_codes(model, recipe, data),
        "finetune": lambda: finetune(model, recipe, data, progress),
    }
    for phase in PHASES:
        clock = time.perf_counter()
        history = steps[phase]()
        seconds[phase] = time.perf_counter() - clock
        if history is not None and not history.empty:
            histories.append(history)
        table = measure(model, phase) if measure is not None else None
        if table is not None:
            measured.append(table.assign(phase=phase))
    model.eval()
    history = pd.concat(histories, ignore_index=True) if histories else pd.DataFrame()
    metrics = pd.concat(measured, ignore_index=True) if measured else pd.DataFrame()
    return TrainedModel(model, history, seconds, metrics, recipe)


def save_trained(
    trained: TrainedModel,
    folder: str | Path,
    half: bool = True,
    quiet: Callable[[], AbstractContextManager[Any]] | None = None,
) -> Path:
    """The model (float16 when ``half``: half the size) with ``recipe.json`` and ``metrics.json`` beside it.

    Rounding to float16 can bring two codes within the twin radius that were apart in float32; those
    are retired as the recipe retires its twins, so a loaded model's codes still do not depend on the
    batch (the shipped TokFSM model had 4 such pairs of 56,000 codes)."""
    model = copy.deepcopy(trained.model)
    if half:
        model.half().float()
        model.retire_twin_codes()
        model.half()
    with quiet() if quiet is not None else nullcontext():
        folder = model.save_pretrained(folder)
    (folder / "recipe.json").write_text(json.dumps(trained.recipe.to_dict(), indent=2))
    metrics = {"metrics": trained.metrics.to_dict("records"), "seconds": trained.seconds}
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
    return folder


def load_trained(
    folder: str | Path | None,
    shipped: Path,
    what: str,
    command: str,
    device: str | torch.device | None = None,
    quiet: Callable[[], AbstractContextManager[Any]] | None = None,
) -> CodebookModel:
    """A model ``save_trained`` wrote (``shipped`` when ``folder`` is None), float32, in eval mode.

    ``what`` and ``command`` phrase the error when there is none: what the model is, and the
    command that makes it.
    """
    path = shipped if folder is None else Path(folder)
    if not (path / CODEBOOKS_JSON).exists():
        if folder is not None:
            raise CodebookError(
                f"{str(path)!r} holds no saved {what} (no {CODEBOOKS_JSON}); pass the folder that "
                f"`{command} --out FOLDER` wrote, or no folder for the shipped one."
            )
        raise CodebookError(
            f"the shipped {what} is missing from {str(path)!r}; reinstall cbwidgets, or make it with "
            f"`{command} --out {path}`."
        )
    with quiet() if quiet is not None else nullcontext():
        model = CodebookModel.from_pretrained(path, device=device)
    model.float()
    model.eval()
    return model


def print_report(trained: TrainedModel, folder: Path, load_hint: str, stream: TextIO, title: str = "") -> None:
    """Phase times, where the model went and what was measured: what both training commands print."""
    times = ", ".join(f"{phase} {s:.0f} s" for phase, s in trained.seconds.items())
    print(f"Trained in {sum(trained.seconds.values()):.0f} s ({times}); saved to {folder}", file=stream)
    print(f"Load it with {load_hint}({str(folder)!r})", file=stream)
    if not trained.metrics.empty:
        if title:
            print(title, file=stream)
        shown = trained.metrics.drop(columns=["phase"])
        print(shown.to_string(index=False, float_format="%.3f"), file=stream)
