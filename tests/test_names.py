"""The one grammar of code names: every accepted form, read by one parser everywhere a code is taken."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import cbwidgets
from cbwidgets import CodebookError, CodebookNames
from cbwidgets.code_effects import code_vector
from cbwidgets.index import CodeIndex
from cbwidgets.names import EMPTY, CodebookName, code_refs
from cbwidgets.steering import steering
from cbwidgets.tokfsm import TokFSM, load_default
from tests.tiny import tiny_model


def _forms(names: CodebookNames, index: int, code: int) -> list[Any]:
    """Every way to write one code: label or full name, as a string or a tuple, with the id as a
    Python, numpy or torch integer, or a one-element array."""
    book = names.codebooks[index]
    return [
        f"{book.label}.{code}",
        f"{book.name}.{code}",
        (book.label, code),
        (book.name, code),
        (book.label, np.int64(code)),
        (book.label, np.int32(code)),
        (book.label, torch.tensor(code)),
        (book.name, np.array([code])),
    ]


def test_codebook_names_follow_the_paper() -> None:
    head = CodebookName.at("layers.0.attn_preproj", "attn_preproj", 0, 3, 4, 1000)
    assert (head.name, head.label) == ("layers.0.attn_preproj.3", "0.3")
    mlp = CodebookName.at("layers.1.mlp", "mlp", 1, 0, 1, 1000)
    assert (mlp.name, mlp.label) == ("layers.1.mlp", "1.mlp")
    grouped = CodebookName.at("layers.2.mlp", "mlp", 2, 1, 2, 10)
    assert (grouped.name, grouped.label) == ("layers.2.mlp.1", "2.mlp.1")
    # known only by labels (a bare heatmap): the labels are read back into the same places
    assert CodebookName.from_label("0.3") == CodebookName(
        "0.3", "0.3", None, 0, "attn_preproj", "layers.0.attn_preproj", 3
    )
    assert CodebookName.from_label("1.mlp").site == "layers.1.mlp"
    assert CodebookName.from_label("x").layer is None


def test_every_form_parses_to_the_same_code() -> None:
    names = tiny_model("gpt_neox", num_codes=16).names
    for index in (0, 3, 4, len(names) - 1):
        expected = (index, 7)
        for form in _forms(names, index, 7):
            assert names.parse_code(form) == expected, form
            assert names.canonical(form) == names.code_name(*expected)
    assert names.code_name(4, EMPTY) == ""  # an empty slot has no name


def test_a_layer_with_one_codebook_takes_the_short_form() -> None:
    model = tiny_model("gpt_neox", attach=False)
    model.attach("mlp", num_codes=16)
    assert model.names.parse_code("1.5") == model.names.parse_code("1.mlp.5") == (1, 5)


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        (("0.mlp", 1.5), "code id 1.5 in ('0.mlp', 1.5) is not an integer"),
        (("0.mlp", True), "is a bool"),
        (("0.mlp", np.array([1, 2])), "is not one integer"),
        ("0.mlp.x", "does not end in a code id"),
        ("mlp", "write '<codebook>.<id>'"),
        (("0.mlp", 16), "code 16 is out of range for codebook '0.mlp', which has codes 0..15"),
        (("0.mlp", -1), "code -1 is out of range"),
        ("7.mlp.1", "unknown codebook '7.mlp'"),
        ((3, 1), "must be a name or label"),
        (("0.mlp", "3"), "is a string; give an integer, or write '0.mlp.3'"),
        (3.5, "is not valid"),
    ],
)
def test_bad_references_are_explained(ref: Any, message: str) -> None:
    names = tiny_model("gpt_neox", num_codes=16).names
    with pytest.raises(CodebookError) as info:
        names.parse_code(ref)
    assert message in str(info.value)


def test_one_reference_or_many() -> None:
    assert code_refs("0.mlp.1") == ("0.mlp.1",)
    assert code_refs(("0.mlp", 1)) == (("0.mlp", 1),)
    assert code_refs(("0.mlp", np.int64(1))) == (("0.mlp", np.int64(1)),)
    assert code_refs(["0.mlp.1", ("1.mlp", 2)]) == ("0.mlp.1", ("1.mlp", 2))
    assert code_refs(("0.mlp.1", "1.mlp.2")) == ("0.mlp.1", "1.mlp.2")
    assert code_refs(("0.mlp.1", ("1.mlp", 2))) == ("0.mlp.1", ("1.mlp", 2))
    assert code_refs(np.array(["0.mlp.1", "1.mlp.2"])) == ("0.mlp.1", "1.mlp.2")
    with pytest.raises(CodebookError, match="not a code or a list of codes"):
        code_refs(7)


def test_select_takes_kinds_sites_layers_prefixes_and_lists() -> None:
    names = tiny_model("gpt_neox", num_codes=16).names  # 0.0..0.3, 0.mlp, 1.0..1.3, 1.mlp
    assert names.select("mlp") == [4, 9]
    assert names.select("layers.1.attn_preproj") == [5, 6, 7, 8]
    assert names.select("1") == [5, 6, 7, 8, 9]
    assert names.select("0.") == [0, 1, 2, 3, 4]
    assert names.select(["1.mlp", "0.2"]) == [9, 2]
    assert names.select(None) == list(range(10))
    with pytest.raises(CodebookError, match=r"unknown codebook '3\.'"):
        names.select("3.")


def test_names_travel_as_json() -> None:
    names = tiny_model("gpt2", num_codes=16).names
    assert CodebookNames.from_list(names.to_list()) == names


# ------------------------------------------------------ every place that takes a code


@pytest.fixture(scope="module")
def shipped() -> Any:
    model = load_default()
    index = CodeIndex.build(model, TokFSM().sample(40, 64, seed=3), progress=False)
    return model, index


def test_every_place_that_takes_a_code_takes_every_form(shipped: Any) -> None:
    model, index = shipped
    fsm = TokFSM()
    prompt = fsm.sample(1, 21, seed=2)
    book = model.names.index_of("2.mlp")
    code = int(model(prompt).codes.ids[0, 8, book, 0])
    written = model.names.code_name(book, code)
    with torch.no_grad(), model.ablate(written):
        expected_logits = model(prompt).logits
    heatmap = cbwidgets.heatmap(model, prompt)
    panel = cbwidgets.ablation_panel(model, prompt)
    search = cbwidgets.CodeSearch(index)
    for form in _forms(model.names, book, code):
        with torch.no_grad(), model.ablate(form):
            assert torch.equal(model(prompt).logits, expected_logits), form
        assert np.array_equal(index.positions(form), index.positions(written)), form
        assert index.code_stats(form)["code"] == written
        assert torch.equal(code_vector(model, form), code_vector(model, written))
        dashboard = cbwidgets.CodeDashboard(index, form, model)
        assert dashboard.code == written, form
        dashboard.show(form)
        assert dashboard.code == written and dashboard.error == ""
        heatmap.select(form)
        assert heatmap.selected == written and heatmap.positions() == heatmap.positions(form) == [8], form
        heatmap.selected = form if isinstance(form, str) else written
        assert heatmap.selected == written
        panel.edits = [{"code": form, "scale": 0.0}]
        assert panel.error == "" and panel.edits == [{"code": written, "scale": 0.0}], form
        search.open_code(form)
        assert search.opened == written
        with torch.no_grad(), model.intervene(*steering([form])):
            forced = model(prompt).codes.ids[0, :, book, 0]
        assert bool((forced == code).all()), form
    heatmap.select("")
    assert heatmap.selected == "" and heatmap.positions() == []
