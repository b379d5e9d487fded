"""The storyteller: a small story model trained here from scratch with attention codebooks (k = 8).

Topic steering in the codebook-features paper used a one-layer story model whose attention
codebooks were trained together with it, so the model came to depend on them. This is that setting,
made offline: a two-layer Llama-style model, its tokenizer and its per-head codebooks are trained on
the shipped story corpus in three phases (as the TokFSM default model):

1. the base model learns the stories with each codebook's LayerNorm in place but no snap;
2. every head's codes become k-means centroids of what enters it;
3. model and codebooks train together with the snap on, so the model learns to read the codes.

``cbwidgets storyteller`` trains and saves one; ``storyteller()`` loads the shipped one in seconds.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import Tensor
from transformers import LlamaConfig, PreTrainedTokenizerFast

from ..errors import CodebookError, check_positive_int
from ..lm_metrics import lm_metrics
from ..model import CodebookModel
from ..quiet import loading_bars_hidden
from ..train import TrainConfig, train
from .corpus import Story, load_stories, split_stories
from .tokenizer import train_tokenizer

__all__ = [
    "STORYTELLER_DIR",
    "StoryRecipe",
    "TrainedStoryteller",
    "build_storyteller",
    "save_storyteller",
    "story_windows",
    "storyteller",
    "token_stream",
    "train_storyteller",
]

STORYTELLER_DIR = Path(__file__).parent / "storyteller_model"


@dataclass(frozen=True)
class StoryRecipe:
    """How the storyteller is made; the defaults are what the shipped model was made with."""

    vocab_size: int = 4096
    layers: int = 2
    width: int = 256
    heads: int = 8
    mlp: int = 768
    context: int = 256
    num_codes: int = 1024  # per head
    k: int = 8
    batch_size: int = 16
    base_steps: int = 1100
    lr: float = 3e-3
    warmup_steps: int = 50
    kmeans_sequences: int = 64
    kmeans_iters: int = 15
    joint_steps: int = 600
    joint_lr: float = 1e-3
    held_out_every: int = 20
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("vocab_size", "layers", "width", "heads", "mlp", "context", "num_codes", "k", "batch_size"):
            check_positive_int(name, getattr(self, name))
        for name in ("base_steps", "joint_steps"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise CodebookError(f"{name}={getattr(self, name)!r} is not valid; give 0 or more steps.")


def build_storyteller(tokenizer: PreTrainedTokenizerFast, recipe: StoryRecipe) -> CodebookModel:
    """An untrained storyteller with k-of-``num_codes`` codebooks on every head of every layer."""
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=recipe.width,
        intermediate_size=recipe.mlp,
        num_hidden_layers=recipe.layers,
        num_attention_heads=recipe.heads,
        num_key_value_heads=recipe.heads,
        max_position_embeddings=recipe.context,
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


@dataclass
class TrainedStoryteller:
    model: CodebookModel
    history: pd.DataFrame  # logged training metrics, both training phases
    seconds: dict[str, float]  # wall time per phase
    metrics: pd.DataFrame  # held-out loss and accuracy: base model, then the final model per mode
    recipe: StoryRecipe


def _config(recipe: StoryRecipe, **changes: Any) -> TrainConfig:
    common = TrainConfig(batch_size=recipe.batch_size, weight_decay=0.1, betas=(0.9, 0.95), seed=recipe.seed)
    return replace(common, log_every=50, **changes)


def train_storyteller(
    recipe: StoryRecipe | None = None, stories: list[Story] | None = None, progress: bool = True
) -> TrainedStoryteller:
    """Train tokenizer, model and codebooks from scratch (about 20 minutes on two CPU cores)."""
    recipe = recipe or StoryRecipe()
    torch.manual_seed(recipe.seed)
    train_set, held_out = split_stories(stories or load_stories(), recipe.held_out_every)
    seconds: dict[str, float] = {}
    clock = time.perf_counter()
    tokenizer = train_tokenizer([s.text for s in train_set], recipe.vocab_size)
    stream = token_stream(train_set, tokenizer)
    seconds["tokenizer"] = time.perf_counter() - clock
    model = build_storyteller(tokenizer, recipe)
    held_texts = [s.text for s in held_out]
    histories = []

    clock = time.perf_counter()
    if recipe.base_steps:
        with model.normalize_only():
            config = _config(
                recipe, steps=recipe.base_steps, lr=recipe.lr, warmup_steps=recipe.warmup_steps, progress=progress
            )
            histories.append(train(model, story_windows(stream, recipe.context, recipe.seed), config).history)
    seconds["base"] = time.perf_counter() - clock
    base = lm_metrics(model, held_texts, modes=("normalize_only",)).assign(model="base (no codes)")

    clock = time.perf_counter()
    sample = story_windows(stream, recipe.context, recipe.seed + 1)(0, recipe.kmeans_sequences)
    model.kmeans_init(sample, iters=recipe.kmeans_iters, seed=recipe.seed, match_scale=False)
    seconds["kmeans"] = time.perf_counter() - clock
    kmeans = lm_metrics(model, held_texts, modes=("codebooks",)).assign(model="k-means codes in")

    clock = time.perf_counter()
    if recipe.joint_steps:
        seed = recipe.seed + 2
        config = _config(
            recipe, steps=recipe.joint_steps, lr=recipe.joint_lr, warmup_steps=20, seed=seed, progress=progress
        )
        histories.append(train(model, story_windows(stream, recipe.context, seed), config).history)
    seconds["joint"] = time.perf_counter() - clock
    final = lm_metrics(model, held_texts, modes=("codebooks", "normalize_only")).assign(model="storyteller")
    model.eval()
    metrics = pd.concat([base, kmeans, final], ignore_index=True)[["model", "mode", "loss", "accuracy", "tokens"]]
    history = pd.concat(histories, ignore_index=True) if histories else pd.DataFrame()
    return TrainedStoryteller(model, history, seconds, metrics, recipe)


def save_storyteller(trained: TrainedStoryteller, folder: str | Path, half: bool = True) -> Path:
    """Save model, tokenizer and codebooks, with the recipe and the held-out metrics beside them."""
    model = copy.deepcopy(trained.model)
    if half:
        model.half()
    folder = model.save_pretrained(folder)
    (folder / "recipe.json").write_text(json.dumps(asdict(trained.recipe), indent=2))
    (folder / "metrics.json").write_text(
        json.dumps({"held_out": trained.metrics.to_dict("records"), "seconds": trained.seconds}, indent=2)
    )
    return folder


def storyteller(folder: str | Path | None = None, device: str | torch.device | None = None) -> CodebookModel:
    """The shipped storyteller (or one ``cbwidgets storyteller --out folder`` saved), float32, eval mode."""
    path = STORYTELLER_DIR if folder is None else Path(folder)
    if not (path / "codebooks.json").exists():
        raise CodebookError(
            f"{str(path)!r} holds no storyteller (no codebooks.json); "
            + (
                "pass the folder that `cbwidgets storyteller --out FOLDER` wrote, or no folder for the shipped one."
                if folder is not None
                else f"reinstall cbwidgets, or make it with `cbwidgets storyteller --out {path}` (about 20 minutes)."
            )
        )
    with loading_bars_hidden():
        model = CodebookModel.from_pretrained(path, device=device)
    model.float()
    model.eval()
    return model
