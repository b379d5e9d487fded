"""Retiring twin codes: a code's id must not depend on the batch it is read in."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cbwidgets import CodebookError
from cbwidgets.codebook import Codebook, CodebookSpec
from cbwidgets.tokfsm import TokFSM, load_default


def test_twins_are_retired_and_the_lowest_number_takes_their_inputs() -> None:
    book = Codebook(CodebookSpec(num_codes=6, k=1, similarity="euclidean"), dim=4)
    with torch.no_grad():
        book.vectors[0] = torch.tensor(
            [[0.0, 0, 0, 3], [3, 0, 0, 0], [3.01, 0, 0, 0], [0, 3, 0, 0], [3, 0.001, 0, 0], [0, 0, 3, 0]]
        )
    book.hits[0] = torch.tensor([5, 5, 5, 5, 5, 5])
    assert book.retire_twins(0.05) == 2  # codes 2 and 4 lie within 0.05 of code 1
    assert (book.vectors[0, [2, 4]] > 1e3).all() and torch.equal(book.hits[0], torch.tensor([5, 5, 0, 5, 0, 5]))
    x = torch.tensor([[3.005, 0.0005, 0.0, 0.0]])
    assert int(book.select(x.reshape(1, 1, 4))[0, 0, 0]) == 1
    assert book.retire_twins(0.05) == 0  # nothing left to retire
    live = book.vectors[0, [0, 1, 3, 5]].detach()  # the codes left still answer for themselves
    assert book.select(live.reshape(4, 1, 4)).flatten().tolist() == [0, 1, 3, 5]


def test_only_euclidean_codebooks_and_positive_radii() -> None:
    with pytest.raises(CodebookError, match="similarity='euclidean'"):
        Codebook(CodebookSpec(num_codes=4, k=1), dim=4).retire_twins()
    book = Codebook(CodebookSpec(num_codes=4, k=1, similarity="euclidean"), dim=4)
    for bad in (0, -1.0, float("nan"), "0.05", True):
        with pytest.raises(CodebookError, match=f"radius={bad!r}"):
            book.retire_twins(bad)  # type: ignore[arg-type]
    # numbers of the kinds the library returns are taken too
    assert book.retire_twins(np.float32(0.05)) == book.retire_twins(torch.tensor(0.05)) == 0


def test_the_shipped_model_gives_a_prompt_the_same_codes_alone_and_in_a_batch() -> None:
    """The known answer behind retirement: before it, every layer-0 code of every state's prompt
    differed between the prompt run alone and inside the batch of all 100 states."""
    model, fsm = load_default(), TokFSM()
    prompts = torch.tensor([[fsm.bos_id, *fsm.state_tokens(s)] for s in range(fsm.num_states)])
    together = model(prompts).codes.ids
    alone = torch.cat([model(prompts[s : s + 1]).codes.ids for s in range(fsm.num_states)])
    assert torch.equal(alone, together)
    assert sum(model.retire_twin_codes().values()) == 0  # the shipped codebooks hold no twins
