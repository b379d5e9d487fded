"""widgets/base.py: arrays on the wire, the request/answer handshake, errors in the widget."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import traitlets

import cbwidgets
from cbwidgets.widgets.base import Array, WidgetBase, _from_json, _to_json, as_array
from tests.tiny import tiny_data, tiny_model


class Holder(WidgetBase):
    values = Array("<f4")
    grid = Array("<i4", ndim=2)


def test_arrays_of_any_origin_cross_the_wire_as_one_binary_buffer() -> None:
    source = torch.arange(12.0, requires_grad=True).reshape(3, 4).t()  # autograd, not contiguous
    holder = Holder(values=[0.5, 1.5], grid=source.long())
    assert holder.grid.dtype == np.dtype("<i4") and holder.grid.flags.c_contiguous
    assert np.array_equal(holder.grid, source.detach().long().numpy())
    sent = holder.get_state()["grid"]
    assert sent["shape"] == [4, 3] and sent["dtype"] == "int32" and isinstance(sent["data"], memoryview)
    assert np.array_equal(_from_json(sent, holder), holder.grid)
    assert np.array_equal(_from_json(_to_json(holder.values, holder), holder), np.array([0.5, 1.5], "<f4"))
    holder.values = torch.tensor([1.0, 2.0], dtype=torch.float64)
    assert holder.values.dtype == np.dtype("<f4")
    with pytest.raises(traitlets.TraitError, match="grid must have 2 dimension"):
        holder.grid = [1, 2, 3]
    assert as_array(np.float64(3), "<f4").shape == ()


@pytest.fixture
def panel() -> Any:
    return cbwidgets.ablation_panel(tiny_model("gpt_neox", num_codes=16), tiny_data(1, 12))


def _fresh(panel: Any, code: str, scale: float = 0.0) -> dict[str, float]:
    with torch.no_grad(), panel._model.ablate(code) if scale == 0 else panel._model.scale(code, scale):
        probs = panel._model(panel._ids).logits[0, panel.position].softmax(-1)
    return {t: float(probs[int(t)]) for t in panel.top_tokens}


def test_every_view_request_is_answered_once_even_when_nothing_changed(panel: Any, monkeypatch: Any) -> None:
    runs: list[int] = []
    real = panel._rerun
    monkeypatch.setattr(panel, "_rerun", lambda: runs.append(1) or real())
    revision = panel.revision
    panel.set_state({"request": 1})  # a click on the token already shown: nothing changes
    assert (panel.answered, panel.revision, len(runs)) == (1, revision + 1, 1)
    code = f"1.mlp.{int(panel.ids[-1, 4, 0])}"
    panel.set_state({"request": 2, "edits": [{"code": code, "scale": 0.0}], "mode": "drop", "position": 5})
    assert (panel.answered, panel.revision, len(runs)) == (2, revision + 2, 2)  # three changes, one answer


def test_python_side_changes_are_answered_and_painted_alike(panel: Any) -> None:
    code = f"0.mlp.{int(panel.ids[-1, 4, 0])}"
    revision, answered = panel.revision, panel.answered
    panel.edits = [{"code": ("layers.0.mlp", np.int64(code.split(".")[-1])), "scale": 0.0}]
    assert panel.revision == revision + 1 and panel.answered == answered  # an answer, to no request of the view's
    assert panel.edits == [{"code": code, "scale": 0.0}]  # read back in the written form
    after = {t: a for t, (_, a) in panel.predictions.items()}
    assert after == pytest.approx(_fresh(panel, code), abs=1e-6)


def test_failures_are_shown_and_still_answered(panel: Any) -> None:
    panel.set_state({"request": 1, "position": "last"})  # a value the trait refuses
    assert panel.answered == 1 and panel.error == "RefusedValue: position='last' is not valid; give a whole number."
    panel.set_state({"request": 2, "edits": [{"code": "9.mlp.1", "scale": 0.0}]})  # a code the model lacks
    assert panel.answered == 2 and "unknown codebook '9.mlp'" in panel.error
    panel.set_state({"request": 3, "edits": []})
    assert panel.answered == 3 and panel.error == ""


def test_reset_is_a_command_the_kernel_carries_out(panel: Any) -> None:
    untouched = dict(panel.predictions)
    panel.edits = [{"code": f"1.mlp.{int(panel.ids[-1, 4, 0])}", "scale": 0.0}]
    panel.set_state({"request": 1, "command": "reset"})
    assert panel.edits == [] and panel.answered == 1 and panel.predictions == untouched


def test_choices_are_written_once_and_sent_to_the_view(panel: Any) -> None:
    from cbwidgets.interventions import ABLATION_MODES

    assert panel.choices == {"mode": list(ABLATION_MODES), "where": ["everywhere", "token"]}
