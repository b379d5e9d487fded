"""The TokFSM world: deterministic, walks follow edges, tokenizer round-trips."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from cbwidgets.errors import CodebookError
from cbwidgets.tokfsm import TokFSM


def test_fsm_shape_and_determinism() -> None:
    fsm = TokFSM()
    assert fsm.edges.shape == (100, 10)
    assert all(len(set(row)) == 10 for row in fsm.edges.tolist())  # distinct out-neighbours
    assert np.array_equal(fsm.edges, TokFSM().edges)
    assert not np.array_equal(fsm.edges, TokFSM(seed=1).edges)
    assert np.allclose(fsm.transition_matrix().sum(1), 1.0)


def test_sequences_are_walks_along_edges() -> None:
    fsm = TokFSM()
    ids = fsm.sample(8, 129, seed=3)
    assert ids.shape == (8, 129) and (ids[:, 0] == fsm.bos_id).all() and (ids[:, 1:] < 10).all()
    states = (ids[:, 1::2] * 10 + ids[:, 2::2]).numpy()
    for row in states:
        for a, b in itertools.pairwise(row):
            assert b in fsm.edges[a]
    assert (fsm.sample(8, 129, seed=3) == ids).all()


def test_tokenizer_round_trip() -> None:
    fsm = TokFSM()
    tok = fsm.tokenizer()
    ids = fsm.sample(1, 9, seed=0)[0].tolist()
    text = "".join(tok.convert_ids_to_tokens(ids))
    assert text.startswith("<bos>")
    assert tok(text)["input_ids"] == ids
    assert tok.decode(ids[1:]) == text[len("<bos>") :]
    assert len(tok) == fsm.vocab_size == 11


def test_bad_worlds_are_explained() -> None:
    with pytest.raises(CodebookError, match="num_edges=20 exceeds num_states=10"):
        TokFSM(num_states=10, num_edges=20)
    with pytest.raises(CodebookError, match="write only 100 states"):
        TokFSM(num_states=200)
