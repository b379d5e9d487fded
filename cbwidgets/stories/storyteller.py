"""The storyteller: a small story model trained here from scratch with attention codebooks (k = 8).

Topic steering in the codebook-features paper used a one-layer story model whose attention
codebooks were trained together with it, so the model came to depend on them. This is that setting,
made offline: a two-layer Llama-style model, its tokenizer and its per-head codebooks are trained on
the shipped story corpus by the recipe both shipped models share (``cbwidgets.recipe``): the base
model with the codebooks' LayerNorms and no snap, k-means codes, then model and codebooks together
with the snap on, so the model learns to read the codes.

``cbwidgets storyteller`` trains and saves one; ``storyteller()`` loads the shipped one in seconds.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import Tensor
from transformers import LlamaConfig, PreTrainedTokenizerFast

from ..errors import CodebookError, check_positive_int
from ..lm_metrics import lm_metrics
from ..model import CodebookModel
from ..quiet import transformers_quiet
from ..recipe import Recipe, TrainedModel, load_trained, save_trained, train_in_phases
from ..train import Data
from .corpus import Story, load_stories, split_stories
from .tokenizer import train_tokenizer

__all__ = [
    "STORYTELLER_DIR",
    "StoryRecipe",
    "TrainedModel",
    "build_storyteller",
    "load_storyteller",
    "save_storyteller",
    "story_windows",
    "storyteller",
    "token_stream",
    "train_storyteller",
]

STORYTELLER_DIR = Path(__file__).parent / "storyteller_model"


@dataclass(frozen=True)
class StoryRecipe(Recipe):
    """The storyteller's recipe (the shared three phases, see ``cbwidgets.recipe``) and its model's
    shape; the defaults are what the shipped model was made with (batch size and learning rates
    are the shared recipe's). The finetune phase trains model and codebooks together, so the model
    comes to depend on the codes."""

    length: int = 256  # the model's context, and the training windows
    base_steps: int = 1100
    warmup_steps: int = 50
    weight_decay: float = 0.1
    kmeans_sequences: int = 64
    kmeans_iters: int = 15
    finetune_steps: int = 600
    finetune_warmup_steps: int = 20
    freeze_base: bool = False
    vocab_size: int = 4096
    layers: int = 2
    width: int = 256
    heads: int = 8
    mlp: int = 768
    num_codes: int = 1024  # per head
    k: int = 8
    held_out_every: int = 20

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("vocab_size", "layers", "width", "heads", "mlp", "num_codes", "k", "held_out_every"):
            object.__setattr__(self, name, check_positive_int(name, getattr(self, name)))


def build_storyteller(tokenizer: PreTrainedTokenizerFast, recipe: StoryRecipe) -> CodebookModel:
    """An untrained storyteller with k-of-``num_codes`` codebooks on every head of every layer."""
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=recipe.width,
        intermediate_size=recipe.mlp,
        num_hidden_layers=recipe.layers,
        num_attention_heads=recipe.heads,
        num_key_value_heads=recipe.heads,
        max_position_embeddings=recipe.length,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = CodebookModel.from_config(config, tokenizer=tokenizer, seed=recipe.seed)
    model.attach("attn_preproj", num_codes=recipe.num_codes, k=recipe.k, revive_after=50)
    return model


def token_stream(stories: list[Story], tokenizer: PreTrainedTokenizerFast) -> Tensor:
    """All stories as one sequence: start token, story, end token, next story ..."""
    end = tokenizer.eos_token_id
    ids: list[int] = []
    for story in stories:
        ids.extend(tokenizer(story.text)["input_ids"])
        ids.append(end)
    return torch.tensor(ids, dtype=torch.long)


def story_windows(stream: Tensor, length: int, seed: int) -> Callable[[int, int], Tensor]:
    """Batches of ``length``-token windows at random offsets: a pure function of the step (resumable)."""
    if stream.numel() <= length:
        raise CodebookError(f"the corpus has {stream.numel()} tokens, too few for windows of {length}.")

    def batch(step: int, size: int) -> Tensor:
        generator = torch.Generator().manual_seed(seed * 1_000_003 + step)
        starts = torch.randint(0, stream.numel() - length, (size,), generator=generator)
        return torch.stack([stream[s : s + length] for s in starts.tolist()])

    return batch


@dataclass(frozen=True)
class _StoryData:
    stream: Tensor
    length: int

    def batches(self, seed: int) -> Data:
        return story_windows(self.stream, self.length, seed)

    def sample(self, sequences: int, seed: int) -> Tensor:
        return story_windows(self.stream, self.length, seed)(0, sequences)


# What each phase's held-out measurement shows: a name for the model, and the codebook modes.
_MEASURED = {
    "base": ("base (no codes)", ("normalize_only",)),
    "kmeans": ("k-means codes in", ("codebooks",)),
    "finetune": ("storyteller", ("codebooks", "normalize_only")),
}


def train_storyteller(
    recipe: StoryRecipe | None = None, stories: list[Story] | None = None, progress: bool = True
) -> TrainedModel:
    """Train tokenizer, model and codebooks from scratch (about 20 minutes on two CPU cores).

    ``metrics`` holds the held-out loss and accuracy after each phase.
    """
    recipe = recipe or StoryRecipe()
    torch.manual_seed(recipe.seed)
    train_set, held_out = split_stories(stories or load_stories(), recipe.held_out_every)
    clock = time.perf_counter()
    tokenizer = train_tokenizer([s.text for s in train_set], recipe.vocab_size)
    stream = token_stream(train_set, tokenizer)
    seconds = {"tokenizer": time.perf_counter() - clock}
    model = build_storyteller(tokenizer, recipe)
    held_texts = [s.text for s in held_out]

    def held_out_metrics(model: CodebookModel, phase: str) -> pd.DataFrame:
        name, modes = _MEASURED[phase]
        table = lm_metrics(model, held_texts, modes=modes).assign(model=name)
        return table[["model", "mode", "loss", "accuracy", "tokens"]]

    return train_in_phases(model, recipe, _StoryData(stream, recipe.length), progress, held_out_metrics, seconds)


def save_storyteller(trained: TrainedModel, folder: str | Path, half: bool = True) -> Path:
    """Save model, tokenizer and codebooks, with the recipe and the held-out metrics beside them."""
    return save_trained(trained, folder, half)


def load_storyteller(folder: str | Path | None = None, device: str | torch.device | None = None) -> CodebookModel:
    """The shipped storyteller (or one ``cbwidgets storyteller --out folder`` saved), float32, eval mode."""
    return load_trained(folder, STORYTELLER_DIR, "storyteller", "cbwidgets storyteller", device, transformers_quiet)


storyteller = load_storyteller  # the short name the README and notebooks use


def __getattr__(name: str) -> Any:
    if name == "TrainedStoryteller":  # both shipped models' training now returns a TrainedModel
        warnings.warn("TrainedStoryteller is now cbwidgets.recipe.TrainedModel", DeprecationWarning, stacklevel=2)
        return TrainedModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
