"""widgets/wire.py: arrays travel as base64 text where a front end drops binary buffers (Colab),
chosen without the user asking, and the views draw the same either way."""

from __future__ import annotations

import base64
import re
import sys
import types
from typing import Any

import numpy as np
import pytest

import cbwidgets
from cbwidgets import CodebookError
from cbwidgets.tokfsm import TokFSM, load_default
from cbwidgets.widgets.base import _from_json
from cbwidgets.widgets.wire import default_wire
from tests.browser import mount, shot
from tests.test_widget_base import Holder


@pytest.fixture
def clean_env(monkeypatch: Any) -> Any:
    monkeypatch.delenv("CBWIDGETS_WIRE", raising=False)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    return monkeypatch


def test_binary_by_default_base64_in_colab_and_the_variable_wins(clean_env: Any) -> None:
    assert default_wire() == "binary" and Holder().wire == "binary"
    clean_env.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    assert default_wire() == "base64" and Holder().wire == "base64"
    clean_env.setenv("CBWIDGETS_WIRE", "Binary ")
    assert Holder().wire == "binary"
    clean_env.setenv("CBWIDGETS_WIRE", "json")
    with pytest.raises(CodebookError, match=r"CBWIDGETS_WIRE='json' is not a wire; use 'binary'.*or 'base64'"):
        Holder()


def test_base64_state_holds_the_same_bytes_as_text(clean_env: Any) -> None:
    grid = np.arange(-3, 9, dtype="<i4").reshape(3, 4)
    holder = Holder(values=[0.25, float("nan")], grid=grid, wire="base64")
    sent = holder.get_state()["grid"]
    assert sent["shape"] == [3, 4] and sent["dtype"] == "int32" and "data" not in sent
    assert base64.b64decode(sent["base64"]) == grid.tobytes()
    assert np.array_equal(_from_json(sent, holder), grid)
    values = _from_json(holder.get_state()["values"], holder)
    assert values[0] == 0.25 and np.isnan(values[1])
    binary = Holder(grid=grid, wire="binary").get_state()["grid"]
    assert bytes(binary["data"]) == base64.b64decode(sent["base64"])


def test_a_bad_wire_is_refused_and_the_old_one_kept(clean_env: Any) -> None:
    holder = Holder()
    with pytest.raises(CodebookError, match="wire='text' is not a wire"):
        holder.wire = "text"
    assert holder.wire == "binary"


def test_switching_the_wire_resends_every_array_to_a_shown_view(clean_env: Any) -> None:
    holder = Holder(grid=np.ones((2, 2)))
    sent: list[list[str]] = []
    holder.send_state = lambda key=None: sent.append(sorted(key or []))  # type: ignore[method-assign]
    holder.wire = "base64"
    holder.wire = "base64"  # no change, nothing sent
    assert sent == [["grid", "values"]]


# ------------------------------------------------------------------ browser
@pytest.fixture(scope="module")
def model() -> Any:
    return load_default()


def _painted(page: Any) -> str:
    """The view's markup, less what differs between any two mounts (random group names, timings)."""
    html = page.evaluate("document.getElementById('view').innerHTML")
    return re.sub(r"\d+ ms", "N ms", re.sub(r'name="([a-z-]+)-[a-z0-9]+"', r'name="\1"', html))


def _made(make: str, model: Any, prompt: Any) -> Any:
    if make != "fsm_view":
        return getattr(cbwidgets, make)(model, prompt)
    view = cbwidgets.fsm_view(model)  # with a state and a code chosen, every array is drawn
    view.select_state(13)
    view.select(view.codes_for(codebook="1.mlp").code[0])
    return view


@pytest.mark.parametrize("make", ["heatmap", "ablation_panel", "fsm_view"])
def test_views_draw_the_same_from_base64_and_buffers_and_colab_would_be_blank(
    browser: Any, model: Any, make: str
) -> None:
    prompt = TokFSM().sample(1, 25, seed=4)
    drawn = {}
    for wire, drop in [("binary", False), ("base64", True), ("binary", True)]:
        widget = _made(make, model, prompt)
        widget.wire = wire
        page = browser.new_page()  # one page per mount: the harness binds its functions once
        try:
            mount(page, widget, drop_buffers=drop)
            page.wait_for_timeout(100)
            drawn[wire, drop] = _painted(page)
            if (wire, drop) == ("base64", True):
                print("screenshot:", shot(page, f"{make}-base64-wire"))
        finally:
            page.close()
    # base64 survives a front end that drops buffers and draws exactly what buffers draw ...
    assert drawn["base64", True] == drawn["binary", False]
    # ... which that front end could not do with buffers (so the comparison above can fail)
    assert drawn["binary", True] != drawn["binary", False]
