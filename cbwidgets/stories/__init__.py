"""Stories: the shipped story corpus, its tokenizer, and the storyteller model that topic codes steer."""

from typing import Any

from .corpus import CORPUS_PATH, Story, load_stories, split_stories
from .storyteller import (
    STORYTELLER_DIR,
    StoryRecipe,
    build_storyteller,
    load_storyteller,
    save_storyteller,
    storyteller,
    train_storyteller,
)
from .tokenizer import END, START, train_tokenizer

__all__ = [
    "CORPUS_PATH",
    "END",
    "START",
    "STORYTELLER_DIR",
    "Story",
    "StoryRecipe",
    "build_storyteller",
    "load_stories",
    "load_storyteller",
    "save_storyteller",
    "split_stories",
    "storyteller",
    "train_storyteller",
    "train_tokenizer",
]


def __getattr__(name: str) -> Any:
    if name == "TrainedStoryteller":  # deprecated: cbwidgets.recipe.TrainedModel
        import importlib

        return importlib.import_module(".storyteller", __name__).TrainedStoryteller
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
