"""Topic steering: hold a topic's codes on for every token and count the stories that take the topic.

The protocol is the codebook-features paper's: for each topic, sample 10 continuations of each of
four prompts ("", "Once upon a time,", "Once there was a", "A long time ago,"), 200 new tokens at
temperature 1; a sample succeeds when a topic word appears in its lowercased text. The baseline is
the same sampling with nothing held on. Beside the rates this reports the perplexity of the samples
under the model with no intervention: steering that only spams the topic word, or breaks the
language, shows there.

Topic codes come from a ``CodeIndex`` of the model over its corpus: ``topic_codes`` ranks codes by
how exclusively they fire inside stories that talk about the topic.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .errors import CodebookError, check_choice, check_positive_int
from .index import CodeIndex
from .interventions import Add, Force, Intervention, Scale
from .lm_metrics import batch_scores
from .model import CodebookModel
from .names import code_refs

__all__ = [
    "REFERENCE_PROMPTS",
    "REFERENCE_RESULTS",
    "REFERENCE_TOPICS",
    "RULES",
    "cut_at_end",
    "evaluate_steering",
    "mentions",
    "steering",
    "topic_codes",
]

REFERENCE_TOPICS = ("dragon", "slide", "friend", "flower", "fire", "prince|crown|king|castle", "baby")
REFERENCE_PROMPTS = ("", "Once upon a time,", "Once there was a", "A long time ago,")
# The paper's table (TinyStories-1Layer-21M, attention codebooks k = 8): % baseline, % steered.
REFERENCE_RESULTS = {
    "dragon": (2.5, 65.0),
    "slide": (2.5, 95.0),
    "friend": (42.5, 75.0),
    "flower": (0.0, 90.0),
    "fire": (2.5, 100.0),
    "prince|crown|king|castle": (40.0, 87.5),
    "baby": (0.0, 90.0),
}
RULES = ("replace", "add")


def _regex(topic: str) -> re.Pattern[str]:
    try:
        return re.compile(topic)
    except re.error as err:
        raise CodebookError(f"topic {topic!r} is not a valid regular expression: {err}.") from None


def mentions(topic: str, text: str) -> bool:
    """The paper's success test: the topic (a word, or words joined by |) occurs in the lowercased text."""
    return _regex(topic.lower()).search(text.lower()) is not None


def topic_codes(
    index: CodeIndex,
    topic: str,
    codebooks: str | Sequence[str] | None = None,
    per_codebook: int = 8,
    limit: int = 16,
    min_mentions: int = 2,
    min_firings: int = 50,
    max_word_share: float = 0.5,
) -> pd.DataFrame:
    """The codes that fire most exclusively inside documents about ``topic``, most exclusive first.

    A document is about the topic when the (case-insensitive) topic regex matches it at least
    ``min_mentions`` times. For each code: ``precision`` = its firings inside those documents / all
    its firings; ``coverage`` = share of those documents' tokens where it fires; ``word_share`` =
    share of its firings on the topic word itself. Codes above ``max_word_share`` are left out:
    they say "this token is the word", not "this story is about it", and held on at every position
    they make the model repeat the word instead of telling a story about it. ``codebooks`` narrows
    the candidates (any form ``CodebookNames.select`` takes: a label ``"0.3"``, a layer ``"0"``, a
    prefix such as ``"0."``, a site kind, a list). At most
    ``per_codebook`` codes come from one codebook (Force fills at most k slots).
    """
    per_codebook = check_positive_int("per_codebook", per_codebook)
    limit = check_positive_int("limit", limit)
    books = index.codebooks.select(codebooks)
    _regex(topic)
    words = index.matches(topic, ignore_case=True)  # the tokens where the topic word starts
    counts = np.bincount(index.document_of(words), minlength=index.num_documents)
    chosen = np.nonzero(counts >= min_mentions)[0]
    columns = ["code", "codebook", "precision", "coverage", "word_share", "firings", "documents"]
    if len(chosen) == 0:
        table = pd.DataFrame(columns=columns)
        table.attrs["documents"] = 0
        return table
    inside = np.zeros(index.num_tokens, dtype=bool)
    for d in chosen.tolist():
        a, b = index.document_span(d)
        inside[a:b] = True
    topic_tokens = int(inside.sum())
    firings = index.firings()
    rows = []
    for book in books:
        within, on_word = index.code_counts(book, inside), index.code_counts(book, words)
        total = firings[book]
        share = on_word / np.maximum(total, 1)
        ok = np.nonzero((total >= min_firings) & (share <= max_word_share))[0]
        label = index.labels[book]
        for c in ok.tolist():
            name = index.codebooks.code_name(book, c)
            rows.append((name, label, within[c] / total[c], within[c] / topic_tokens, share[c], int(total[c])))
    table = pd.DataFrame(rows, columns=columns[:-1])
    table = table.sort_values(["precision", "coverage"], ascending=False, ignore_index=True)
    table = table.groupby("codebook", sort=False).head(per_codebook).head(limit).reset_index(drop=True)
    table["documents"] = len(chosen)
    table.attrs["documents"] = len(chosen)
    return table


def steering(codes: Any, rule: str = "replace", strength: float = 1.0) -> tuple[Intervention, ...]:
    """The interventions that hold ``codes`` on. ``replace``: they take k slots (Force), scaled by
    ``strength``; ``add``: they are added on top of the natural codes with that strength."""
    check_choice("rule", rule, RULES)
    codes = code_refs(codes)
    if not codes:
        raise CodebookError("no codes to steer with; pick some with topic_codes(index, topic).")
    if rule == "add":
        return (Add(codes, strength),)
    if strength == 1.0:
        return (Force(codes),)
    return (Force(codes), Scale(codes, strength))


def cut_at_end(row: list[int], end: int | None) -> list[int]:
    """A sample's new tokens up to and including the first end token (the story is over there)."""
    return row[: row.index(end) + 1] if end is not None and end in row else row


def evaluate_steering(
    model: CodebookModel,
    codes: Mapping[str, Sequence[str]],
    prompts: Sequence[str] = REFERENCE_PROMPTS,
    samples: int = 10,
    new_tokens: int = 200,
    temperature: float = 1.0,
    rule: str = "replace",
    strength: float = 1.0,
    seed: int = 0,
    progress: bool = True,
) -> pd.DataFrame:
    """Baseline and steered success per topic, and the samples' perplexity under the unsteered model.

    ``codes`` maps each topic (a word or ``a|b|c``) to the codes that steer towards it. Samples stop
    at the story's end token when the model writes one. Columns: topic, codes, baseline, steered
    (fractions), ratio, baseline_ppl, steered_ppl, ppl_ratio. ``table.attrs["samples"]`` holds the
    texts: ``{"baseline": [...], topic: [...]}``.
    """
    from tqdm.auto import tqdm

    from .generate import generate

    samples = check_positive_int("samples", samples)
    if model.tokenizer is None:
        raise CodebookError("steering is judged on text; give the model a tokenizer (CodebookModel(..., tokenizer)).")
    if not codes:
        raise CodebookError("no topics given; pass {topic: [codes]} (see topic_codes).")
    runs: dict[str, tuple[Intervention, ...]] = {"": ()}
    for topic, chosen in codes.items():
        _regex(topic)
        runs[topic] = steering(chosen, rule, strength)
    end = model.tokenizer.eos_token_id
    texts: dict[str, list[str]] = {}
    nll: dict[str, tuple[float, int]] = {}
    bar = tqdm(total=len(runs) * len(prompts), desc="steering", unit="prompt", disable=not progress)
    try:
        for topic, interventions in runs.items():
            texts[topic], total, count = [], 0.0, 0
            for j, prompt in enumerate(prompts):
                out = generate(
                    model,
                    prompt,
                    max_new_tokens=new_tokens,
                    num_samples=samples,
                    temperature=temperature,
                    seed=seed * 7919 + j,
                    interventions=interventions,
                )
                kept = [cut_at_end(row, end) for row in out.new_ids.tolist()]
                texts[topic].extend(model.tokenizer.decode(row, skip_special_tokens=True) for row in kept)
                prompt_ids = out.ids[0, : out.prompt_length].tolist()
                s, _, n = batch_scores(model, [prompt_ids + row for row in kept], start=out.prompt_length)
                total, count = total + s, count + n
                bar.update(1)
            nll[topic] = (total, count)
    finally:
        bar.close()
    base_ppl = math.exp(nll[""][0] / max(1, nll[""][1]))
    rows = []
    for topic, chosen in codes.items():
        baseline = float(np.mean([mentions(topic, t) for t in texts[""]]))
        steered = float(np.mean([mentions(topic, t) for t in texts[topic]]))
        ppl = math.exp(nll[topic][0] / max(1, nll[topic][1]))
        rows.append(
            {
                "topic": topic,
                "codes": len(chosen),
                "baseline": baseline,
                "steered": steered,
                "ratio": steered / baseline if baseline else float("inf") if steered else float("nan"),
                "baseline_ppl": base_ppl,
                "steered_ppl": ppl,
                "ppl_ratio": ppl / base_ppl,
            }
        )
    table = pd.DataFrame(rows)
    table.attrs["samples"] = {"baseline" if k == "" else k: v for k, v in texts.items()}
    return table
