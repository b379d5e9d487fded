"""Proposed labels: rules scored on held-out text, with the TokFSM known answer."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

from cbwidgets import CodebookError
from cbwidgets.index import CodeIndex
from cbwidgets.label_proposals import PROPOSAL_COLUMNS, Rule, proposal_half, propose_labels, score_rule
from cbwidgets.tokfsm import TokFSM, load_default
from cbwidgets.tokfsm.state_labels import state_labels

MODEL = load_default()
FSM = TokFSM()


@pytest.fixture(scope="module")
def index() -> CodeIndex:
    return CodeIndex.build(MODEL, FSM.sample(400, 128, seed=21), progress=False)


def test_pure_state_codes_get_their_state_with_precision_at_least_0_9(index: CodeIndex) -> None:
    """The issue's known answer: of the MLP codes (layers 1-3) that fire on one state, at least 80 %
    get a first proposal that names it with held-out precision >= 0.9. Measured: 972 of 1060 (92 %)."""
    table = state_labels(MODEL, FSM, index)
    assert len(table) > 500
    assert table.named.mean() >= 0.8, table.named.mean()
    named = table[table.named].iloc[0]
    assert named.pattern.endswith(f"({named.state[-1]})") and named.precision >= 0.9


def test_a_rules_score_is_the_index_search_of_its_pattern(index: CodeIndex) -> None:
    found = index.search("4(2)").iloc[0]
    score = score_rule(index, found.code, Rule("4(2)", "a 2 after a 4"))
    assert score["precision"] == pytest.approx(found.precision) and score["recall"] == pytest.approx(found.recall)
    assert (score["hits"], score["matches"], score["firings"]) == (
        found.matches,
        index.search("4(2)").attrs["matched_tokens"],
        found.firings,
    )
    other_half = ~proposal_half(index.num_documents)
    half = score_rule(index, found.code, Rule("4(2)", "x"), documents=other_half)
    assert half["firings"] < score["firings"] and half["matches"] < score["matches"]
    every_2nd = score_rule(index, found.code, Rule("4(2)", "x", phase=(2, 0)))
    assert every_2nd["matches"] < score["matches"]  # the aligned "42"s only


def test_proposals_table_and_the_proposer_hook(index: CodeIndex) -> None:
    code = index.search("4(2)").code.iloc[0]
    seen: list[list[str]] = []

    def proposer(examples: list[str]) -> Any:
        seen.append(examples)
        return ["(?<=4)(2)", Rule("([2])", "any 2")]  # not among the kit's own candidates

    table = propose_labels(index, code, top=50, proposer=proposer)
    assert list(table.columns) == list(PROPOSAL_COLUMNS) and table.attrs["code"] == code
    assert len(seen) == 1 and 1 <= len(seen[0]) <= 12 and all("[" in e and "]" in e for e in seen[0])
    mine = table[table.source == "proposer"]
    assert set(mine.pattern) == {"(?<=4)(2)", "([2])"} and set(mine.phrase) == {"matches '(?<=4)(2)'", "any 2"}
    assert table.label.iloc[0].startswith(table.phrase.iloc[0] + " (precision ")
    scored_on = ~proposal_half(index.num_documents)
    for row in table.head(8).itertuples():  # each row's pattern, topic and phase are the rule that was scored
        again = score_rule(index, code, Rule(row.pattern, row.phrase, row.topic, row.phase), documents=scored_on)
        assert (again["precision"], again["recall"]) == pytest.approx((row.precision, row.recall))
    covers = (table.precision >= 0.9) & (table.recall >= 0.05)
    assert covers.iloc[: covers.sum()].all()  # rules that predict 90 % of the firings (not too broadly) come first
    assert covers.any() and table[covers].recall.is_monotonic_decreasing  # the narrowest of them first
    with pytest.raises(CodebookError, match="return a Rule"):
        propose_labels(index, code, proposer=lambda examples: 42)
    with pytest.raises(CodebookError, match="not a valid regex"):
        propose_labels(index, code, proposer=lambda examples: "(")
    with pytest.raises(CodebookError, match="give a positive integer"):
        propose_labels(index, code, top=0)
    other = CodeIndex.build(MODEL, FSM.sample(8, 32, seed=2), progress=False)
    assert propose_labels(index, code, held_out=other).attrs["held_out_firings"] == len(other.positions(code))


def test_the_halves_mix_documents_written_in_a_cycle_of_topics() -> None:
    """Alternate documents would put every document of half the topics on one side of a corpus
    written topic by topic in turn (the story corpus cycles through its 24 topics)."""
    half = proposal_half(24 * 57)
    topic = np.arange(24 * 57) % 24
    per_topic = np.bincount(topic[half], minlength=24)
    assert half.sum() == 12 * 57 and per_topic.min() >= 15 and per_topic.max() <= 42  # alternate documents: 0 or 57
    assert (proposal_half(24 * 57) == half).all() and proposal_half(np.int64(3)).tolist().count(True) == 2
    with pytest.raises(CodebookError, match="num_documents"):
        proposal_half(0)


def test_storyteller_topic_codes_are_named_after_their_topic_in_a_cycle_of_topics() -> None:
    """The storyteller's known answer on four topics written in turn (dragon, slide, flower, cat):
    every code ``topic_codes`` finds for "slide" and "flower" gets a first proposal naming its topic
    with held-out precision >= 0.9. With alternate documents as the halves, the slide stories were all
    held out and no slide code could be named (checked)."""
    import cbwidgets
    from cbwidgets.steering import topic_codes
    from cbwidgets.stories import load_stories, split_stories

    topics = ("a dragon", "a slide at the playground", "a flower", "a cat")
    train, _ = split_stories(load_stories())
    texts = [story.text for story in train if story.topic in topics][:96]
    index = CodeIndex.build(cbwidgets.storyteller(), texts, batch_size=16, progress=False)
    for word in ("slide", "flower"):
        for code in topic_codes(index, word, "0.", per_codebook=2, limit=4).code:
            best = propose_labels(index, code, top=1).iloc[0]
            assert best.source == "topic" and word in best.phrase and best.precision >= 0.9, (code, best.label)
            assert re.search(best.topic, word)


def test_the_feature_table_shows_written_and_proposed_labels_with_examples(index: CodeIndex, tmp_path: Any) -> None:
    from cbwidgets.feature_table import feature_table

    model = load_default()
    first, second = index.search("4(2)").code.iloc[:2]
    model.labels.set(first, "a 2 | after a 4")
    book, value = second.rsplit(".", 1)
    table = feature_table(index, [first, (book, np.int64(value))], labels=model.labels, examples=2)
    frame = table.frame
    assert frame.code.tolist() == [first, second] and frame.source.tolist() == ["written", "proposed"]
    assert frame.interpretation[0] == "a 2 | after a 4"
    assert frame.interpretation[1] == propose_labels(index, second, top=1).label[0]
    assert all(len(ex) == 2 and all(len(t) == 3 for t in ex) for ex in frame.examples)
    page = table.to_html(tmp_path / "features.html")
    assert (tmp_path / "features.html").read_text(encoding="utf-8") == page
    assert "<script" not in page and "http" not in page and page.count("<mark>") == 4
    text = table.to_markdown(tmp_path / "features.md")
    assert text.splitlines()[2].startswith(f"| `{first}` | a 2 \\| after a 4 | ")
    assert len(re.findall(r"`[^`]*`\*\*`[^`]+`\*\*`[^`]*`", text)) == 4  # left, **the firing token**, right
    assert (tmp_path / "features.md").read_text(encoding="utf-8") == text
    assert "<table" in table._repr_html_() and repr(table) == "FeatureTable(2 codes)"
