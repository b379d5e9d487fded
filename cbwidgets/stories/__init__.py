"""Stories: the shipped story corpus, its tokenizer, and the storyteller model that topic codes steer."""

from .corpus import CORPUS_PATH, Story, load_stories, split_stories
from .storyteller import (
    STORYTELLER_DIR,
    StoryRecipe,
    TrainedStoryteller,
    build_storyteller,
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
    "TrainedStoryteller",
    "build_storyteller",
    "load_stories",
    "save_storyteller",
    "split_stories",
    "storyteller",
    "train_storyteller",
    "train_tokenizer",
]
