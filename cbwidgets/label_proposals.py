"""Labels the kit proposes for a code, each a rule that can be wrong, scored on text it was not made from.

A proposal is a ``Rule``: a regex over the corpus text whose group 1 starts at the token the code
should fire on (``"1(3)"``: a "3" after a "1"), and optionally a regex the document must match (its
topic). Candidates come from the code's firings in one half of an index's documents (a fixed
random half, ``proposal_half``): the tokens it fires on, the classes those tokens fall in (numbers, years, capitalised
words, punctuation, word starts), the tokens before them, the word that marks the documents it
prefers, its place at a document's start. Each is scored on the other half, as the index's search
scores a pattern (a code that fires fewer than 5 times there is scored where its rules came from,
and its labels say so): precision (of the code's firings there, the share the rule predicts) and recall
(of the rule's matches there, the share the code fires on). First come the rules that predict at
least 90 % of its firings (and of whose matches it fires on 5 % or more), narrowest (highest
recall) first: a label should be true of what the code does, and no broader than it; then the
rest, by F-beta with beta 0.25 (precision counts more), those whose matches the code fires on
less than once in 200 last.

``propose_labels(..., proposer=f)`` adds the proposals of any callable that reads examples (a
language model's prompt, say) and returns a rule; they are scored the same way.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .errors import CodebookError, check_positive_int
from .index import CodeIndex

__all__ = ["PROPOSAL_COLUMNS", "Rule", "about", "proposal_half", "propose_labels", "score_rule", "the_token"]

PROPOSAL_COLUMNS = (
    "label",
    "phrase",
    "pattern",
    "topic",
    "phase",
    "source",
    "precision",
    "recall",
    "f1",
    "hits",
    "matches",
    "firings",
)

# token classes: (phrase, regex with the token as group 1)
_CLASSES = (
    ("a digit", r"(?<![0-9])([0-9])(?![0-9])"),
    ("a number", r"(?<![0-9])( ?[0-9]+)"),
    ("a year", r"(?<![0-9])( ?(?:1[5-9]|20)[0-9]{2})(?![0-9])"),
    ("a capitalised word", r"(?<![A-Za-z])( ?[A-Z][a-z]+)"),
    ("a word start", r"( [A-Za-z])"),
    ("punctuation", r"([.,;:!?\"'()\-])"),
    ("a line break", r"(\n)"),
)
_COVERS = 0.9  # a rule that predicts this share of the code's firings describes it; the narrowest wins
_NARROW = 0.05  # ... if the code fires on this share of its matches at least ("a word start" is true, and empty)
_MIN_HELD_OUT = 5  # fewer held-out firings than this: scored on the proposing half, the label says so
_EMPTY = 0.005  # rules whose matches the code fires on less often than this come last
_BETA = 0.25  # the others rank by F-beta: precision (what the code does) counts more than recall
_TOPIC_WORDS = 4  # words tried as the topic of the documents a code prefers
_FIRST = r"(?:^|\x00)([^\x00])"  # a document's first token (documents are joined by \x00)
_ANY = r"([^\x00])"
_SPLIT_SEED = 17  # which random half of the documents proposals come from


@dataclass(frozen=True)
class Rule:
    """A falsifiable label: ``pattern`` (a regex; group 1, or the whole match, starts at the token
    the code should fire on), ``phrase`` (the rule in words), ``topic`` (a regex the document must
    match somewhere; "" for any document) and ``phase`` (a place in a period of the document: TokFSM
    writes a state every 2 tokens, so "a 3 after a 1" is state 13 only at every 2nd token)."""

    pattern: str
    phrase: str
    topic: str = ""
    phase: tuple[int, int] | None = None  # (m, r): only tokens whose offset in the document is r mod m


@dataclass(frozen=True)
class _Half:
    """The documents a proposal is made from, or scored on."""

    index: CodeIndex
    documents: np.ndarray  # bool (documents,)

    def keep(self, positions: np.ndarray) -> np.ndarray:
        return positions[self.documents[self.index.document_of(positions)]]


def proposal_half(num_documents: int) -> np.ndarray:
    """Which documents proposals are drawn from (True); the others score them. A fixed random half,
    not every other document: a corpus written topic by topic in turn (24 topics, say) would put
    every document of half the topics on one side, and a topic code could never be named after
    the topic it marks."""
    num_documents = check_positive_int("num_documents", num_documents)
    half = np.zeros(num_documents, dtype=bool)
    half[np.random.default_rng(_SPLIT_SEED).permutation(num_documents)[: (num_documents + 1) // 2]] = True
    return half


def score_rule(index: CodeIndex, code: Any, rule: Rule, documents: np.ndarray | None = None) -> dict[str, Any]:
    """How well ``code`` follows ``rule`` in the index (or in its ``documents``, a bool mask): precision
    (of its firings, the share at the rule's matches), recall (of the matches, the share it fires
    on), F1, and the counts behind them."""
    half = _Half(index, np.ones(index.num_documents, dtype=bool) if documents is None else documents)
    return _score(half, index.positions(code), rule)


def _score(half: _Half, fired: np.ndarray, rule: Rule) -> dict[str, Any]:
    index = half.index
    matched = half.keep(index.matches(rule.pattern))
    if rule.phase is not None:
        period, offset = rule.phase
        matched = matched[(matched - np.asarray(index.doc_starts)[index.document_of(matched)]) % period == offset]
    if rule.topic:
        about = np.zeros(index.num_documents, dtype=bool)
        about[index.document_of(index.matches(rule.topic, ignore_case=True))] = True
        matched = matched[about[index.document_of(matched)]]
    firings = half.keep(fired)
    hits = int(np.isin(firings, matched, assume_unique=True).sum())
    precision = hits / len(firings) if len(firings) else 0.0
    recall = hits / len(matched) if len(matched) else 0.0
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "hits": hits,
        "matches": len(matched),
        "firings": len(firings),
    }


def propose_labels(
    index: CodeIndex,
    code: Any,
    top: int = 5,
    proposer: Callable[[list[str]], Any] | None = None,
    held_out: CodeIndex | None = None,
) -> pd.DataFrame:
    """Rules that may describe ``code``, each scored on held-out text, best first; ``top`` rows.

    Candidates are drawn from half the index's documents (``proposal_half``) and scored on the
    others (or, with ``held_out``, another index of the same model, on all of that). Columns: label
    (the phrase with its scores, what a view shows), phrase, pattern, topic, phase (the rule's three
    parts, for ``score_rule``), source (tokens, class, context, topic, position, proposer; joined,
    "topic+proposer", where several found the same rule), precision, recall, f1, hits, matches,
    firings. ``proposer(examples)``, given
    up to 12 firings written ``left[token]right``, returns a Rule, a regex, or a list of them.
    """
    top = check_positive_int("top", top)
    name = index.codebooks.canonical(code)
    mine = proposal_half(index.num_documents)
    source = _Half(index, mine if held_out is None else np.ones(index.num_documents, dtype=bool))
    scored_on = _Half(held_out, np.ones(held_out.num_documents, dtype=bool)) if held_out else _Half(index, ~mine)
    if held_out is not None and list(held_out.codebooks.labels) != list(index.codebooks.labels):
        raise CodebookError("held_out must be an index of the same model's codebooks; build it with the same model.")
    fired = source.keep(index.positions(name))
    candidates = _candidates(index, fired, source)
    if proposer is not None:
        candidates += [(rule, "proposer") for rule in _from_proposer(proposer, _examples(index, fired))]
    rows: dict[tuple[str, str, tuple[int, int] | None], dict[str, Any]] = {}
    held_fired = scored_on.index.positions(name)
    held_out_firings = len(scored_on.keep(held_fired))
    where = ""
    if held_out_firings < _MIN_HELD_OUT:  # nothing to test on: score where it was proposed, and say so
        scored_on, held_fired = source, index.positions(name)
        where = f" on the documents it was proposed from: {held_out_firings} held-out firings"
    for rule, kind in candidates:
        key = (rule.pattern, rule.topic, rule.phase)
        if key in rows:  # proposed twice: one row, which says by whom ("topic+proposer")
            if kind not in rows[key]["source"].split("+"):
                rows[key]["source"] += "+" + kind
            continue
        score = _score(scored_on, held_fired, rule)
        label = f"{rule.phrase} (precision {score['precision']:.2f}, recall {score['recall']:.2f}{where})"
        rows[key] = {
            "label": label,
            "phrase": rule.phrase,
            "pattern": rule.pattern,
            "topic": rule.topic,
            "phase": rule.phase,
            "source": kind,
            **score,
        }
    table = pd.DataFrame(list(rows.values()), columns=list(PROPOSAL_COLUMNS))
    covers = (table.precision >= _COVERS) & (table.recall >= _NARROW)
    weighted = (1 + _BETA**2) * table.precision * table.recall / (_BETA**2 * table.precision + table.recall)
    empty = table.recall < _EMPTY  # the code fires on almost none of its matches: a true rule that says nothing
    rank = np.where(covers, 1 + table.recall, weighted.fillna(0.0) - empty) if len(table) else np.zeros(0)
    table = table.iloc[np.argsort(-np.asarray(rank), kind="stable")].reset_index(drop=True).head(top)
    table.attrs.update(code=name, firings_seen=len(fired), held_out_firings=held_out_firings, held_out=not where)
    return table


def _candidates(index: CodeIndex, fired: np.ndarray, half: _Half) -> list[tuple[Rule, str]]:
    """Rules suggested by where the code fires in the ``half`` it is proposed from."""
    if len(fired) == 0:
        return []
    tokens = np.asarray(index.tokens)
    vocab = index.vocab
    counts = Counter(tokens[fired].tolist())
    total = len(fired)
    out: list[tuple[Rule, str]] = []
    common = [t for t, n in counts.most_common(6) if n >= 0.05 * total]
    for t in common[:3]:
        out.append((the_token(vocab[t]), "tokens"))
    for size in range(2, len(common) + 1):
        words = [vocab[t] for t in common[:size]]
        out.append((Rule(_either(words), "one of " + ", ".join(repr(w) for w in words)), "tokens"))
    for phrase, pattern in _CLASSES:
        out.append((Rule(pattern, phrase), "class"))
    out += _contexts(index, fired, tokens, common)
    out += _topics(index, fired, half, common)
    out.append((Rule(_FIRST, "a document's first token"), "position"))
    phase = _phase(index, fired)
    if phase is not None:  # the same rules at its place in the period too
        period, offset = phase
        where = f"every {period}th token from the document's start" if period > 2 else "every 2nd token"
        out += [
            (Rule(rule.pattern, f"{rule.phrase}, at {where} (+{offset})", rule.topic, phase), kind)
            for rule, kind in list(out)
            if kind in ("tokens", "context")
        ]
    return out


def _phase(index: CodeIndex, fired: np.ndarray) -> tuple[int, int] | None:
    """(m, r) where 90 % of the firings (20 or more) sit at offsets r mod m in their documents (the
    smallest such m of 2, 3, 4), or None."""
    if len(fired) < 20:  # a period in a handful of firings is chance
        return None
    offsets = fired - np.asarray(index.doc_starts)[index.document_of(fired)]
    for period in (2, 3, 4):
        counts = np.bincount(offsets % period, minlength=period)
        if counts.max() >= 0.9 * len(fired):
            return period, int(counts.argmax())
    return None


def _either(words: Sequence[str]) -> str:
    return "(" + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)) + ")"


def _contexts(index: CodeIndex, fired: np.ndarray, tokens: np.ndarray, common: list[int]) -> list[tuple[Rule, str]]:
    """The tokens before a firing: one and two back, with the token fired on."""
    vocab, starts = index.vocab, np.asarray(index.doc_starts)
    out: list[tuple[Rule, str]] = []
    for back in (1, 2):
        inside = fired[fired - back >= starts[index.document_of(fired)]]
        if not len(inside):
            continue
        grams = Counter(tuple(tokens[p - back : p + 1].tolist()) for p in inside.tolist())
        for gram, n in grams.most_common(3):
            if n < 0.05 * len(fired):
                break
            *before, token = (vocab[t] for t in gram)
            words = "".join(before)
            out.append((Rule(re.escape(words) + f"({re.escape(token)})", f"{token!r} after {words!r}"), "context"))
        if back == 1 and common:  # any of the common tokens after the commonest previous token
            before_counts = Counter(tokens[inside - 1].tolist())
            previous = vocab[before_counts.most_common(1)[0][0]]
            out.append((Rule(re.escape(previous) + _ANY, f"the token after {previous!r}"), "context"))
    return out


def _topics(index: CodeIndex, fired: np.ndarray, half: _Half, common: list[int]) -> list[tuple[Rule, str]]:
    """Words that mark the documents the code prefers (where it fires at more than twice its average
    rate): the ``_TOPIC_WORDS`` words (letters only, 4 or more) whose share of those documents most
    exceeds their share of all documents."""
    docs = np.nonzero(half.documents)[0]
    if len(docs) < 4:
        return []
    starts = np.asarray(index.doc_starts)
    lengths = starts[docs + 1] - starts[docs]
    rate = np.bincount(index.document_of(fired), minlength=index.num_documents)[docs] / np.maximum(lengths, 1)
    preferred = docs[rate > 2 * rate.mean()] if rate.mean() > 0 else docs[:0]
    if not 0 < len(preferred) < len(docs):
        return []
    tokens, vocab = np.asarray(index.tokens), index.vocab
    words = np.array([bool(re.fullmatch(r" ?[A-Za-z]{4,}", w)) for w in vocab])

    def document_frequency(documents: Iterable[int]) -> Counter[int]:
        seen: Counter[int] = Counter()
        for d in documents:
            present = np.unique(tokens[starts[d] : starts[d + 1]])
            seen.update(present[words[present]].tolist())
        return seen

    inside, everywhere = document_frequency(preferred), document_frequency(docs)
    # how much more often a document it prefers has the word than any document does: a word of most
    # of those documents (the topic) outranks a rare name that happens to sit in two of them
    gain = {t: n / len(preferred) - everywhere[t] / len(docs) for t, n in inside.items() if n >= 2}
    out: list[tuple[Rule, str]] = []
    for t in sorted(gain, key=lambda t: -gain[t])[:_TOPIC_WORDS]:
        word = vocab[t].strip()
        rule = about(word)
        topic = rule.topic
        out.append((rule, "topic"))
        if common:
            shown = [vocab[c] for c in common[:3]]
            phrase = f"{', '.join(repr(w) for w in shown)} in a text about {word!r}"
            out.append((Rule(_either(shown), phrase, topic), "topic"))
    return out


def about(word: str) -> Rule:
    """Any token of a document that has ``word`` (or, for a plural, any word it starts: "friends"
    matches "friend"): the rule of a topic code."""
    if not isinstance(word, str) or not word.strip():
        raise CodebookError(f"a topic is a word, like 'dragon'; got {word!r}.")
    word = word.strip()
    stem = word[:-1] if word.endswith("s") and len(word) > 4 else word
    return Rule(_ANY, f"any token of a text about {word!r}", rf"\b{re.escape(stem)}")


def the_token(token: str) -> Rule:
    """The token ``token`` wherever it stands (its leading space included, as the tokenizer writes it)."""
    if not isinstance(token, str) or not token:
        raise CodebookError(f"a token is a non-empty string, like ' dragon'; got {token!r}.")
    return Rule(f"({re.escape(token)})", f"the token {token!r}")


def _examples(index: CodeIndex, fired: np.ndarray, n: int = 12, context: int = 8) -> list[str]:
    """Up to ``n`` firings spread over the source half, written ``left[token]right``."""
    chosen = fired[np.linspace(0, len(fired) - 1, min(n, len(fired))).astype(np.int64)] if len(fired) else fired
    out = []
    for p in np.unique(chosen).tolist():
        first, last = index.document_span(int(index.document_of(np.array([p]))[0]))
        left = "".join(index.token_strings(max(first, p - context), p))
        right = "".join(index.token_strings(p + 1, min(last, p + context + 1)))
        out.append(f"{left}[{index.token_strings(p, p + 1)[0]}]{right}")
    return out


def _from_proposer(proposer: Callable[[list[str]], Any], examples: list[str]) -> list[Rule]:
    """What a proposer returned, as rules; a regex stands for itself."""
    found = proposer(examples)
    items = found if isinstance(found, list | tuple) and not isinstance(found, Rule) else [found]
    rules = []
    for item in items:
        rule = Rule(item, f"matches {item!r}") if isinstance(item, str) else item
        if not isinstance(rule, Rule):
            raise CodebookError(
                f"the proposer returned {item!r}; return a Rule(pattern, phrase), a regex with the firing token "
                f"as group 1, or a list of them."
            )
        try:
            re.compile(rule.pattern)
        except re.error as err:
            raise CodebookError(f"the proposer's pattern {rule.pattern!r} is not a valid regex: {err}.") from None
        rules.append(rule)
    return rules
