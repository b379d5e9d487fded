"""Steering: the success test, topic codes on a hand-made index, the interventions each rule makes."""

from __future__ import annotations

import numpy as np
import pytest

from cbwidgets import Add, CodebookError, Force, Scale
from cbwidgets.index import CodeIndex
from cbwidgets.names import CodebookNames
from cbwidgets.steering import mentions, steering, topic_codes


def test_mentions_is_the_papers_lowercased_substring_test() -> None:
    assert mentions("dragon", "Two Dragons flew.")
    assert mentions("prince|crown|king|castle", "The KING slept.")
    assert not mentions("dragon", "a drag on the kite")
    assert not mentions("baby", "")
    with pytest.raises(CodebookError, match="not a valid regular expression"):
        mentions("(dragon", "x")


def _index() -> CodeIndex:
    # documents: 0 = "dragon fire dragon ." (about dragons), 1 = "cat sat ." , 2 = "dragon cat ." (one mention)
    vocab = ["dragon", " fire", " cat", " sat", " ."]
    tokens = np.array([0, 1, 0, 4, 2, 3, 4, 0, 2, 4], dtype=np.int32)
    # codebook "0.0": code 1 fires on all of document 0 and nowhere else; code 2 everywhere else
    # codebook "0.1": code 3 fires on document 0's first two tokens and once in document 1
    book0 = [1, 1, 1, 1, 2, 2, 2, 2, 2, 2]
    book1 = [3, 3, 0, 0, 3, 0, 0, 0, 0, 0]
    codes = np.stack([book0, book1], axis=1).astype(np.uint16)[:, :, None]
    return CodeIndex(
        codes, tokens, np.array([0, 4, 7, 10]), vocab, CodebookNames.from_labels(["0.0", "0.1"], num_codes=[4, 4])
    )


def test_topic_codes_rank_codes_by_how_exclusively_they_fire_in_topic_documents() -> None:
    table = topic_codes(_index(), "dragon", min_mentions=2, min_firings=1)
    assert table.attrs["documents"] == 1  # document 2 mentions it once only
    rows = table.set_index("code")
    assert rows.loc["0.0.1", "precision"] == 1.0 and rows.loc["0.0.1", "coverage"] == 1.0
    assert rows.loc["0.1.3", "precision"] == pytest.approx(2 / 3)
    assert rows.loc["0.1.3", "coverage"] == 0.5
    assert list(table["code"]) == ["0.0.1", "0.1.3", "0.1.0", "0.0.2"]  # most exclusive first
    assert rows.loc["0.0.2", "precision"] == 0.0
    # code 0.0.1 fires on both "dragon" tokens of document 0 and on two others: half its firings
    assert rows.loc["0.0.1", "word_share"] == 0.5 and rows.loc["0.1.3", "word_share"] == pytest.approx(1 / 3)
    assert "0.0.1" not in set(topic_codes(_index(), "dragon", min_firings=1, max_word_share=0.4)["code"])
    # narrowing to one codebook, a firing floor, and a per-codebook cap
    only = topic_codes(_index(), "dragon", codebooks="0.1", min_firings=1)
    assert set(only["codebook"]) == {"0.1"}
    assert "0.1.3" not in set(topic_codes(_index(), "dragon", min_firings=4)["code"])
    assert len(topic_codes(_index(), "dragon", per_codebook=1, min_firings=1)) == 2
    assert topic_codes(_index(), "unicorn").empty
    with pytest.raises(CodebookError, match=r"unknown codebook '3\.'"):
        topic_codes(_index(), "dragon", codebooks="3.")


def test_rules_make_the_right_interventions() -> None:
    assert steering(["0.1.3"]) == (Force(["0.1.3"]),)
    assert steering(["0.1.3"], "replace", 2.0) == (Force(["0.1.3"]), Scale(["0.1.3"], 2.0))
    assert steering(["0.1.3", "0.2.4"], "add", 5.0) == (Add(["0.1.3", "0.2.4"], 5.0),)
    with pytest.raises(CodebookError, match="rule='blend' is not valid"):
        steering(["0.1.3"], "blend")
    with pytest.raises(CodebookError, match="no codes to steer with"):
        steering([])
