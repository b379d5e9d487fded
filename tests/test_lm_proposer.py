"""A language model as the label proposer: its words become rules, scored like the kit's own."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import cbwidgets
from cbwidgets import CodebookError
from cbwidgets.index import CodeIndex
from cbwidgets.label_proposals import Rule, about, proposal_half, propose_labels, score_rule, the_token
from cbwidgets.lm_proposer import LMProposer, rules_from_answers
from cbwidgets.smollm import load_smollm2
from cbwidgets.steering import topic_codes
from cbwidgets.stories import load_stories, split_stories


def test_an_answers_words_become_token_and_topic_rules() -> None:
    examples = ["the old[ king] sat", "a[ king] and a queen", "the[ castle] was"]
    answers = {
        "topic": "These stories are about a brave knight.",  # prompt words ("stories", "about") are not topics
        "token": 'The word marked most often is "King".',  # a marked token, quoted: the token itself
    }
    rules = rules_from_answers(answers, examples)
    assert rules == [about("brave"), about("knight"), the_token(" king")]
    assert rules_from_answers(answers, examples, per_answer=1) == [about("brave"), the_token(" king")]
    assert rules_from_answers({"topic": "a king"}, examples) == [about("king")]  # a topic, though it is marked
    assert rules_from_answers({"token": "", "topic": "The It"}, examples) == []
    assert about("friends").topic == r"\bfriend" and the_token(" a.b").pattern == r"(\ a\.b)"
    with pytest.raises(CodebookError, match="a topic is a word"):
        about(" ")
    with pytest.raises(CodebookError, match="a token is a non-empty string"):
        the_token("")


def test_smollm2_proposes_rules_that_are_scored_on_held_out_stories() -> None:
    """The real path: SmolLM2-135M-Instruct (with its codebooks attached, which the proposer turns off
    and leaves on) reads a king code's examples; every rule it returns is a row of the table, scored on
    the held-out half, and comes from a word it said."""
    smol = load_smollm2()
    train, _ = split_stories(load_stories())
    topics = ("a dragon", "a prince and his castle", "a flower", "a cat")
    texts = [story.text for story in train if story.topic in topics][:64]
    index = CodeIndex.build(cbwidgets.storyteller(), texts, batch_size=16, progress=False)
    code = topic_codes(index, "king", "0.", per_codebook=2, limit=1).code[0]
    proposer = LMProposer(smol, examples=np.int64(6), max_new_tokens=torch.tensor(12))
    returned: list[Rule] = []

    def recording(examples: list[str]) -> list[Rule]:
        returned.extend(proposer(examples))
        return returned

    table = propose_labels(index, code, top=500, proposer=recording)
    assert set(proposer.answers) == {"topic", "token"} and all(proposer.answers.values())
    said = " ".join(proposer.answers.values()).lower()
    assert returned and all(rule.phrase.split("'")[1].strip().lower() in said for rule in returned)
    mine = table[table.source.str.contains("proposer")]
    assert {(r.pattern, r.topic) for r in returned} == set(zip(mine.pattern, mine.topic, strict=True))
    scored_on = ~proposal_half(index.num_documents)
    for row in mine.itertuples():
        again = score_rule(index, code, Rule(row.pattern, row.phrase, row.topic, row.phase), documents=scored_on)
        assert (again["precision"], again["recall"]) == pytest.approx((row.precision, row.recall))
    with torch.no_grad():
        assert smol(smol.tokenize("Once upon a time")).codes.ids.numel() > 0  # codebooks back on after asking
    assert repr(proposer) == "LMProposer(LlamaForCausalLM, examples=6)"


def test_a_model_without_a_chat_template_is_refused_with_what_to_use() -> None:
    with pytest.raises(CodebookError, match=r"chat template, like cbwidgets\.smollm\.load_smollm2"):
        LMProposer(cbwidgets.storyteller())
    with pytest.raises(CodebookError, match="chat template"):
        LMProposer("SmolLM2")  # type: ignore[arg-type]
