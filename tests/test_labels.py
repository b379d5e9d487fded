"""Code labels: written in any code form, saved and loaded with the model, stale once the code moves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cbwidgets import CodebookError
from cbwidgets.labels import LABELS_JSON
from cbwidgets.model import CodebookModel
from tests.tiny import tiny_data, tiny_model


def test_a_label_is_found_by_any_form_of_its_code_and_shown_in_the_codes_frame() -> None:
    model = tiny_model("gpt_neox", num_codes=16)
    out = model(tiny_data(1, 6))
    fired = out.codes.to_frame()
    first = fired.iloc[0]
    model.labels.set(("layers.0.attn_preproj.0", np.int64(first.id)), "  the first   token ", note="seen on row 0")
    assert model.labels.get(first.code).text == "the first token"  # whitespace tidied
    assert model.labels.status(first.code) == "current" and model.labels.shown(first.code) == "the first token"
    assert first.code in model.labels and "0.0.999" not in model.labels and 3.5 not in model.labels
    framed = out.codes.to_frame(labels=model.labels)
    assert set(framed.label[framed.code == first.code]) == {"the first token"}
    assert set(framed.label[framed.code != first.code]) == {""}
    assert model.labels.to_frame().to_dict("records") == [
        {"code": first.code, "label": "the first token", "note": "seen on row 0", "status": "current"}
    ]
    assert model.labels.set(first.code, "  ") is None and len(model.labels) == 0  # empty text removes it


def test_bad_labels_are_refused_with_what_to_do() -> None:
    model = tiny_model("gpt_neox", num_codes=16)
    with pytest.raises(CodebookError, match=r"short phrase .* put the rest in note="):
        model.labels.set("0.0.1", "x" * 201)
    with pytest.raises(CodebookError, match="are text"):
        model.labels.set("0.0.1", 5)  # type: ignore[arg-type]
    with pytest.raises(CodebookError):
        model.labels.set("0.0.99", "no such code")  # 16 codes: the error comes from the code's name


def test_a_retrained_code_makes_its_label_stale_and_the_views_say_so() -> None:
    model = tiny_model("gpt_neox", num_codes=16)
    model.labels.set("0.mlp.3", "moved later")
    model.labels.set("0.mlp.4", "kept")
    with torch.no_grad():
        model.attached["layers.0.mlp"].vectors[0, 3] += 0.1
    assert model.labels.status("0.mlp.3") == "stale" and model.labels.status("0.mlp.4") == "current"
    assert model.labels.shown("0.mlp.3") == "(stale) moved later" and model.labels.stale() == ["0.mlp.3"]
    assert "1 stale" in repr(model.labels)
    model.labels.set("0.mlp.3", "moved later")  # written again for the new vector: current
    assert model.labels.stale() == []
    model.half()  # the same vectors at half precision keep their labels
    assert model.labels.stale() == []


def test_labels_travel_with_the_saved_model_and_outlive_a_missing_codebook(tmp_path: Path) -> None:
    model = tiny_model("gpt2", num_codes=16)
    model.labels.set("1.mlp.2", "a label", note="ünïcode note")
    model.labels.set("0.1.5", "a head code")
    folder = model.save_pretrained(tmp_path / "m")
    assert (folder / LABELS_JSON).exists()
    loaded = CodebookModel.from_pretrained(folder)
    assert loaded.labels.to_frame().equals(model.labels.to_frame())
    loaded.detach("layers.1.mlp")  # its code is gone: the label is kept, and reported stale
    assert loaded.labels.status("1.mlp.2") == "stale" and loaded.labels.shown("1.mlp.2") == "(stale) a label"
    assert [label.code for label in loaded.labels] == ["1.mlp.2", "0.1.5"]
    loaded.labels.remove("1.mlp.2")
    loaded.labels.remove("0.1.5")
    loaded.save_pretrained(folder)  # no labels left: the old file goes
    assert not (folder / LABELS_JSON).exists() and len(CodebookModel.from_pretrained(folder).labels) == 0


def test_a_damaged_labels_file_is_named_in_the_error(tmp_path: Path) -> None:
    model = tiny_model("gpt_neox", num_codes=16)
    (tmp_path / LABELS_JSON).write_text("{not json")
    with pytest.raises(CodebookError, match="is not a labels file cbwidgets wrote"):
        model.labels.load(tmp_path)
    (tmp_path / LABELS_JSON).write_text('{"format": "other", "labels": []}')
    with pytest.raises(CodebookError, match="move it aside"):
        model.labels.load(tmp_path)
