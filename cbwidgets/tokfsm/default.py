"""The default TokFSM model: built, trained on a CPU in about two minutes, shipped, loaded offline.

The architecture is the reference's (GPT-NeoX, 4 layers, d_model 128, 4 heads, d_mlp 512, context
128; codebooks at every layer's attention heads before the output projection and at every MLP,
k = 1, 1,000 codes). Two choices make it trainable in minutes on two cores:

- Rotary frequencies scaled so the fastest pair turns by pi per token. Cosines of pi * distance are
  +-1, so attention can read a position's parity, which is what tells a state's first digit from
  its second anywhere in a 128-token walk. With the stock frequencies a small model learns that
  only near the start and mis-reads long walks.
- The base model is trained with every codebook's LayerNorm in place but no snap
  (``CodebookModel.normalize_only``). A codebook discards the norm of what it replaces, and a model
  that never saw that happen relies on it (a last-layer MLP output's norm varies 20-fold); trained
  this way it does not, and k-means codes then go in at almost no cost.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from transformers import GPTNeoXConfig

from ..errors import CodebookError, check_positive_int
from ..model import CodebookModel
from ..quiet import loading_bars_hidden
from ..train import TrainConfig, train
from .world import TokFSM

__all__ = [
    "DEFAULT_MODEL_DIR",
    "Recipe",
    "TrainedModel",
    "build_default_model",
    "default_config",
    "fit_codes",
    "load_default",
    "save_default",
    "train_base",
    "train_default",
    "tune_codes",
]

DEFAULT_MODEL_DIR = Path(__file__).parent / "default_model"
SITES = ("attn_preproj", "mlp")


class _DropRopeFactorWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "factor field must be" not in record.getMessage()


@contextmanager
def _quiet_rope_factor(bars: bool = True) -> Iterator[None]:
    """transformers warns about a rotary scaling factor below 1; here it is intended (see module doc).

    ``bars=False`` also hides transformers' weight-loading bar, noise for a 4 MB model in a notebook.
    """
    log = logging.getLogger("transformers.modeling_rope_utils")
    quiet = _DropRopeFactorWarning()
    log.addFilter(quiet)
    try:
        with loading_bars_hidden() if not bars else nullcontext():
            yield
    finally:
        log.removeFilter(quiet)


def default_config(fsm: TokFSM, context: int = 128) -> GPTNeoXConfig:
    """The reference's GPT-NeoX shape with parity-reading rotary frequencies (see the module doc)."""
    with _quiet_rope_factor():
        return GPTNeoXConfig(
            num_hidden_layers=4,
            hidden_size=128,
            num_attention_heads=4,
            intermediate_size=512,
            vocab_size=fsm.vocab_size,
            max_position_embeddings=context,
            rope_parameters={
                "rope_type": "linear",
                "factor": 1 / math.pi,
                "rope_theta": 10000.0,
                "partial_rotary_factor": 1.0,
            },
            bos_token_id=fsm.bos_id,
            eos_token_id=fsm.bos_id,
            pad_token_id=fsm.bos_id,
        )


def build_default_model(fsm: TokFSM | None = None, seed: int = 0, num_codes: int = 1000) -> CodebookModel:
    """An untrained default model with its 8 codebook sites (4 per-head groups + 4 MLPs), k = 1."""
    fsm = fsm or TokFSM()
    with _quiet_rope_factor():
        model = CodebookModel.from_config(default_config(fsm), tokenizer=fsm.tokenizer(), seed=seed)
    model.attach(list(SITES), num_codes=num_codes, k=1, similarity="euclidean", revive_after=25)
    return model


@dataclass(frozen=True)
class Recipe:
    """How the default model is trained; the defaults are what the shipped model was made with."""

    base_steps: int = 1000
    batch_size: int = 16  # sequences of 128 tokens: 2,048 tokens a step
    length: int = 128
    lr: float = 3e-3
    warmup_steps: int = 30
    kmeans_sequences: int = 128
    kmeans_iters: int = 20
    code_steps: int = 100  # codebook-only finetune with dead-code revival
    code_lr: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("base_steps", "batch_size", "length", "kmeans_sequences", "kmeans_iters"):
            check_positive_int(name, getattr(self, name))
        if not isinstance(self.code_steps, int) or self.code_steps < 0:
            raise CodebookError(f"code_steps={self.code_steps!r} is not valid; give 0 or a positive number of steps.")


def _config(recipe: Recipe, **changes: Any) -> TrainConfig:
    common = TrainConfig(
        batch_size=recipe.batch_size,
        weight_decay=0.0,
        betas=(0.9, 0.95),
        seed=recipe.seed,
        log_every=50,
    )
    return replace(common, **changes)


def train_base(
    model: CodebookModel, fsm: TokFSM, recipe: Recipe, progress: bool = True, callbacks: tuple[Callable, ...] = ()
) -> pd.DataFrame:
    """Phase 1: the base model learns the world with the codebooks' LayerNorms in place, no snap."""
    with model.normalize_only():
        result = train(
            model,
            fsm.batches(recipe.length, recipe.seed),
            _config(recipe, steps=recipe.base_steps, lr=recipe.lr, warmup_steps=recipe.warmup_steps, progress=progress),
            callbacks=callbacks,
        )
    return result.history.assign(phase="base")


def fit_codes(model: CodebookModel, fsm: TokFSM, recipe: Recipe) -> None:
    """Phase 2: every codebook's codes become k-means centroids of what enters it."""
    data = fsm.sample(recipe.kmeans_sequences, recipe.length, seed=recipe.seed + 1)
    model.kmeans_init(data, iters=recipe.kmeans_iters, seed=recipe.seed, match_scale=False)


def tune_codes(
    model: CodebookModel, fsm: TokFSM, recipe: Recipe, progress: bool = True, callbacks: tuple[Callable, ...] = ()
) -> pd.DataFrame:
    """Phase 3: codebooks alone (base frozen) train with the snap on and revive unused codes."""
    if recipe.code_steps == 0:
        return pd.DataFrame()
    result = train(
        model,
        fsm.batches(recipe.length, recipe.seed + 2),
        _config(
            recipe,
            steps=recipe.code_steps,
            lr=recipe.code_lr,
            warmup_steps=10,
            freeze_base=True,
            progress=progress,
            seed=recipe.seed + 2,
        ),
        callbacks=callbacks,
    )
    return result.history.assign(phase="codes")


@dataclass
class TrainedModel:
    model: CodebookModel
    history: pd.DataFrame  # logged training metrics of both training phases
    seconds: dict[str, float]  # wall time of each phase
    recipe: Recipe


def train_default(recipe: Recipe | None = None, fsm: TokFSM | None = None, progress: bool = True) -> TrainedModel:
    """Train the default model from scratch (about two minutes on a 2-core CPU)."""
    recipe = recipe or Recipe()
    fsm = fsm or TokFSM()
    model = build_default_model(fsm, seed=recipe.seed)
    seconds = {}
    start = time.perf_counter()
    base = train_base(model, fsm, recipe, progress)
    seconds["base"] = time.perf_counter() - start
    start = time.perf_counter()
    fit_codes(model, fsm, recipe)
    seconds["kmeans"] = time.perf_counter() - start
    start = time.perf_counter()
    codes = tune_codes(model, fsm, recipe, progress)
    seconds["codes"] = time.perf_counter() - start
    model.eval()
    return TrainedModel(model, pd.concat([base, codes], ignore_index=True), seconds, recipe)


def save_default(trained: TrainedModel, folder: str | Path, half: bool = True) -> Path:
    """Save a trained model; ``half`` stores float16 weights (the shipped model is about 4 MB)."""
    model = copy.deepcopy(trained.model)
    if half:
        model.half()
    with _quiet_rope_factor():
        folder = model.save_pretrained(folder)
    (folder / "recipe.json").write_text(json.dumps(asdict(trained.recipe), indent=2))
    return folder


def load_default(folder: str | Path | None = None, device: str | torch.device | None = None) -> CodebookModel:
    """The shipped TokFSM model, or one that ``cbwidgets train-fsm --out folder`` saved; float32, eval mode."""
    path = DEFAULT_MODEL_DIR if folder is None else Path(folder)
    if not (path / "codebooks.json").exists():
        if folder is not None:
            raise CodebookError(
                f"{str(path)!r} holds no saved TokFSM model (no codebooks.json); pass the folder that "
                f"`cbwidgets train-fsm --out FOLDER` wrote, or no folder for the shipped model."
            )
        raise CodebookError(
            f"the default TokFSM model is missing from {str(path)!r}; reinstall cbwidgets, or make it "
            f"with `cbwidgets train-fsm --out {path}` (about two and a half minutes on a CPU)."
        )
    with _quiet_rope_factor(bars=False):
        model = CodebookModel.from_pretrained(path, device=device)
    model.float()
    model.eval()
    return model
