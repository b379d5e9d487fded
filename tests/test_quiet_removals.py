"""The quiet-removal screen: every removal it passes really changes no code after its own token (checked
by running the model in full), it passes most of those that do not, and it steps aside where it
does not apply (an enclosing intervention, attention without codebooks at every layer)."""

from __future__ import annotations

import pytest
import torch

from cbwidgets import AblateEach, CodebookError
from cbwidgets.circuits import NextToken, ablation_effects
from cbwidgets.quiet_removals import quiet_removals
from cbwidgets.tokfsm import TokFSM, load_default
from tests.tiny import FAMILIES, tiny_data, tiny_model


def _fired(model, ids):  # type: ignore[no-untyped-def]
    """Every code that fired before the last token: (codes, positions, layers)."""
    with torch.no_grad():
        clean = model(ids, use_cache=True)
    codes, positions, layers = [], [], []
    names = model.names
    for p in range(ids.shape[1] - 1):
        for book in range(len(names)):
            for code in clean.codes.ids[0, p, book].tolist():
                if code >= 0:
                    codes.append(names.code_name(book, code))
                    positions.append(p)
                    layers.append(int(names.codebooks[book].layer))
    return clean, codes, torch.tensor(positions), torch.tensor(layers)


def _changes_later(model, ids, clean, codes, positions, mode):  # type: ignore[no-untyped-def]
    """Per removal, whether the codes after its token differ in a full forward (as sets: two chosen
    codes that only trade slots put out the same mean)."""
    out = []
    with torch.no_grad():
        for start in range(0, len(codes), 64):
            part, where = codes[start : start + 64], positions[start : start + 64].tolist()
            with model.intervene(AblateEach(part, where, mode=mode)):
                ids_after = model(ids.expand(len(part), -1)).codes.ids
            before = clean.codes.ids[0].sort(-1).values
            after = ids_after.sort(-1).values
            for row, p in enumerate(where):
                out.append(bool((after[row, p + 1 :] != before[p + 1 :]).any()))
    return torch.tensor(out)


@pytest.mark.parametrize("mode", ["substitute", "drop"])
def test_every_quiet_removal_changes_no_later_code_on_tokfsm(mode: str) -> None:
    model = load_default()
    ids = TokFSM().sample(1, 61, seed=7)
    clean, codes, positions, layers = _fired(model, ids)
    quiet = quiet_removals(model, ids, codes, positions, layers, mode, clean.cache)
    assert quiet is not None
    changes = _changes_later(model, ids, clean, codes, positions, mode)
    assert not (quiet & changes).any()  # sound: nothing it passes moves a later code
    # and useful: it passes most removals that move nothing (most removals on TokFSM)
    assert int(quiet.sum()) >= 0.6 * int((~changes).sum()) > 0
    assert model.model.config._attn_implementation == "sdpa"  # the recording attention is gone again


@pytest.mark.parametrize("family", FAMILIES)
def test_quiet_removals_are_sound_on_every_family(family: str) -> None:
    model = tiny_model(family, num_codes=16, k=2)
    ids = tiny_data(1, 12, seed=5)
    clean, codes, positions, layers = _fired(model, ids)
    quiet = quiet_removals(model, ids, codes, positions, layers, "substitute", clean.cache)
    if family == "gpt_neo":  # its attention is its own, not sdpa's: nothing to record, every removal runs in full
        assert quiet is None
        return
    assert quiet is not None and quiet.any()
    assert not (quiet & _changes_later(model, ids, clean, codes, positions, "substitute")).any()


def test_the_screen_steps_aside_where_it_does_not_apply() -> None:
    model = tiny_model("gpt_neox", num_codes=16)
    ids = tiny_data(1, 8, seed=2)
    clean, codes, positions, layers = _fired(model, ids)
    with model.ablate(codes[0], mode="drop"):  # an enclosing intervention: every removal runs in full
        assert quiet_removals(model, ids, codes, positions, layers, "drop", clean.cache) is None
    mlp_only = tiny_model("gpt_neox", attach=False)
    mlp_only.attach(["mlp"], num_codes=16)  # attention writes around the codebooks
    clean, codes, positions, layers = _fired(mlp_only, ids)
    assert quiet_removals(mlp_only, ids, codes, positions, layers, "drop", clean.cache) is None
    found = ablation_effects(mlp_only, ids, NextToken(3))  # and the effects are still computed
    assert len(found) > 0


def test_the_attention_implementation_is_restored_after_an_error() -> None:
    model = tiny_model("gpt_neox", num_codes=16)
    ids = tiny_data(1, 8, seed=2)
    clean, _, positions, layers = _fired(model, ids)
    with pytest.raises(CodebookError):
        quiet_removals(model, ids, ["0.mlp.99999"], positions[:1], layers[:1], "drop", clean.cache)
    assert model.model.config._attn_implementation == "sdpa"
