"""The shipped story corpus: children's stories on set topics, written by SmolLM2-135M-Instruct.

The stories were generated once by ``tools/make_stories.py`` and ship compressed with the package
(their provenance is in ``data/README.md`` of the repository). A story model trained on them learns
topics that one attention layer can carry, which is what topic steering needs.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import CodebookError

__all__ = ["CORPUS_PATH", "Story", "load_stories", "split_stories"]

CORPUS_PATH = Path(__file__).parent / "data" / "stories.jsonl.gz"

# The instruct model sometimes opens with a line about the request ("Here's a short story about a
# dragon:") or a title; both name the topic outright, which a story should not need.
_PREAMBLE = re.compile(r"\A(?:(?:here'?s|here is|sure|title|\*\*)[^\n]*\n+)+", re.IGNORECASE)


@dataclass(frozen=True)
class Story:
    topic: str  # what the story was asked to be about, e.g. "a dragon"
    seed: int  # the generation batch's seed
    text: str


def _clean(text: str) -> str:
    return _PREAMBLE.sub("", text.strip()).strip()


def load_stories(path: str | Path | None = None) -> list[Story]:
    """Every story of the corpus (the shipped one unless ``path`` names another JSON-lines file)."""
    source = CORPUS_PATH if path is None else Path(path)
    if not source.exists():
        raise CodebookError(
            f"the story corpus {str(source)!r} is missing; reinstall cbwidgets, or make one with "
            f"`python tools/make_stories.py --out {source}`."
        )
    opener = gzip.open if source.suffix == ".gz" else open
    stories = []
    with opener(source, "rt", encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            try:
                row = json.loads(line)
                story = Story(str(row["topic"]), int(row["seed"]), _clean(str(row["story"])))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
                raise CodebookError(
                    f"line {number} of {str(source)!r} is not a story record {{'topic', 'seed', 'story'}}: {err}."
                ) from None
            if story.text:
                stories.append(story)
    return stories


def split_stories(stories: list[Story], held_out_every: int = 20) -> tuple[list[Story], list[Story]]:
    """(training, held-out): of each topic's stories, every ``held_out_every``-th is held out, so every
    topic is in both sets in the same proportion."""
    if held_out_every < 2:
        raise CodebookError(f"held_out_every={held_out_every} is not valid; give 2 or more.")
    seen: dict[str, int] = {}
    train: list[Story] = []
    held: list[Story] = []
    for story in stories:
        nth = seen.get(story.topic, 0)
        seen[story.topic] = nth + 1
        (train if nth % held_out_every else held).append(story)
    return train, held
