"""AblationPanel: real model runs under the view's edits; clicked in Chromium through the real bundle."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import cbwidgets
from cbwidgets import CodebookError
from cbwidgets.tokfsm import TokFSM, load_default
from tests.browser import mount, shot


@pytest.fixture(scope="module")
def model() -> Any:
    return load_default()


@pytest.fixture
def prompt() -> torch.Tensor:
    return TokFSM().sample(1, 41, seed=2)


def _next_probs(model: Any, prompt: torch.Tensor, position: int = -1) -> torch.Tensor:
    with torch.no_grad():
        return model(prompt).logits[0, position].softmax(-1)


def test_edits_run_the_model_under_those_interventions(model: Any, prompt: torch.Tensor) -> None:
    panel = cbwidgets.ablation_panel(model, prompt)
    assert repr(panel) == "AblationPanel(tokens=41, codebooks=20, position=40, edits=0)"
    assert all(before == after for before, after in panel.predictions.values())
    code = f"1.mlp.{int(panel.ids[-1, 9, 0])}"
    panel.edits = [{"code": code, "scale": 0.0}]
    with model.ablate(code, mode="substitute"):
        expected = _next_probs(model, prompt)
    tokenizer = model.tokenizer
    for token, (_, after) in panel.predictions.items():
        assert after == pytest.approx(float(expected[tokenizer.convert_tokens_to_ids(token)]), abs=1e-6)
    assert panel.answered == panel.request and code in panel.status
    panel.mode = "drop"
    with model.ablate(code, mode="drop"):
        dropped = _next_probs(model, prompt)
    assert not torch.allclose(dropped, expected)
    first = next(iter(panel.predictions))
    first_id = tokenizer.convert_tokens_to_ids(first)
    assert panel.predictions[first][1] == pytest.approx(float(dropped[first_id]), abs=1e-6)
    panel.edits = [{"code": code, "scale": 1.5}]
    with model.scale(code, 1.5):
        scaled = _next_probs(model, prompt)
    assert panel.predictions[first][1] == pytest.approx(float(scaled[first_id]), abs=1e-6)


def test_per_token_marks_track_the_real_next_token(model: Any, prompt: torch.Tensor) -> None:
    panel = cbwidgets.ablation_panel(model, prompt)
    code = f"2.mlp.{int(panel.ids[20, 14, 0])}"
    panel.edits = [{"code": code, "scale": 0.0}]
    panel.mode = "drop"
    before, after = panel.next_before, panel.next_after
    assert np.isnan(before[0]) and np.isnan(after[0]) and len(before) == 41
    with torch.no_grad():
        base = model(prompt).logits[0].softmax(-1)
    truth = base[torch.arange(40), prompt[0, 1:]].numpy()
    assert np.allclose(before[1:], truth, atol=1e-6)
    assert not np.allclose(after[1:], before[1:])


def test_reset_restores_the_untouched_model(model: Any, prompt: torch.Tensor) -> None:
    untouched = _next_probs(model, prompt)
    panel = cbwidgets.ablation_panel(model, prompt)
    last = panel.ids[-1, :, 0]
    panel.edits = [{"code": f"{label}.{int(last[n])}", "scale": 0.0} for n, label in enumerate(panel.labels)]
    assert any(before != after for before, after in panel.predictions.values())
    panel.reset()
    assert panel.edits == []
    assert all(before == after for before, after in panel.predictions.values())
    assert torch.equal(_next_probs(model, prompt), untouched)


def test_bad_edits_raise_in_python_and_show_in_the_widget(model: Any, prompt: torch.Tensor) -> None:
    panel = cbwidgets.ablation_panel(model, prompt)
    code = f"1.mlp.{int(panel.ids[-1, 9, 0])}"
    panel.edits = [{"code": code, "scale": np.float32(0.5)}]  # numbers the library hands out are taken
    assert panel.edits == [{"code": code, "scale": 0.5}]
    for bad, message in [
        ({"code": code, "scale": 3.0}, "outside 0..2"),
        ({"code": code, "scale": float("nan")}, "not one finite number"),
        ({"code": code, "scale": "half"}, "'half'.* is not one finite number"),
        ({"code": "9.mlp.3", "scale": 0.0}, "9.mlp"),
        ({"scale": 0.0}, "has no 'code'"),
    ]:
        with pytest.raises(CodebookError, match=message):
            panel.edits = [bad]
        assert panel.edits == [{"code": code, "scale": 0.5}]  # nothing lost
    # the same from the view: the message lands in the widget and the request is answered
    panel.set_state({"edits": [{"code": "9.mlp.3", "scale": 0.0}], "request": 7})
    assert "9.mlp" in panel.error and panel.answered == 7 and panel.edits == [{"code": code, "scale": 0.5}]
    panel.set_state({"edits": [], "request": 8})
    assert panel.error == "" and panel.edits == []
    with pytest.raises(CodebookError, match="outside the prompt"):
        cbwidgets.ablation_panel(model, prompt).__class__(model, prompt, position=99)


# ------------------------------------------------------------------ browser


def _shown_after(page: Any) -> dict[str, str]:
    return page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('.cbw-ab-pred[data-token]')].map(
            r => [r.dataset.token, r.querySelector('.cbw-after span').textContent]))"""
    )


def test_click_a_code_reruns_the_kernel_model_and_paints(page: Any, model: Any, prompt: torch.Tensor) -> None:
    panel = cbwidgets.ablation_panel(model, prompt)
    mount(page, panel)
    assert page.locator(".cbw-ab-code").count() == 20
    page.locator(".cbw-ab-tok[data-t='20']").click()  # a token in the middle: its codes
    page.wait_for_function("document.querySelector('.cbw-ab-title').textContent.startsWith('codes at token 20')")
    code = f"1.mlp.{int(panel.ids[20, 9, 0])}"
    page.locator(f".cbw-ab-code[data-code='{code}'] .cbw-ab-toggle").check()
    page.locator("input[value='drop']").check()
    page.wait_for_function("document.querySelector('.cbw-status').textContent.includes('mode drop')")
    assert panel.edits == [{"code": code, "scale": 0.0}] and panel.mode == "drop"
    assert panel.answered == panel.request
    shown = _shown_after(page)
    assert shown == {t: f"{100 * a:.1f}%" for t, (_, a) in panel.predictions.items()}
    assert page.locator(".cbw-ab-tok.cbw-changed").count() > 0
    page.locator(".cbw-ab-tok.cbw-changed").first.hover()
    assert "after" in page.locator(".cbw-tooltip").inner_text()
    print("screenshot:", shot(page, "ablation-dropped"))
    page.locator(".cbw-ab-reset").click()
    page.wait_for_function("document.querySelector('.cbw-status').textContent.startsWith('edits: none')")
    assert all(b == a for b, a in panel.predictions.values())
    assert page.locator(".cbw-ab-tok.cbw-changed").count() == 0
    assert page.blocked == [] and page.js_errors == []


def test_rapid_slider_moves_show_only_the_latest(page: Any, model: Any, prompt: torch.Tensor) -> None:
    panel = cbwidgets.ablation_panel(model, prompt)
    mount(page, panel)
    code = f"3.mlp.{int(panel.ids[-1, 19, 0])}"
    page.evaluate(
        """(code) => {
            const slider = document.querySelector(`.cbw-ab-code[data-code='${code}'] .cbw-ab-scale`);
            for (const v of ["0.2", "0.6", "1.4", "0.3", "1.8"]) {
                slider.value = v;
                slider.dispatchEvent(new Event("input"));
            }
        }""",
        code,
    )
    page.wait_for_function("document.querySelector('.cbw-status').textContent.includes('x1.8')")
    assert panel.edits == [{"code": code, "scale": 1.8}]
    assert page.locator(".cbw-root.cbw-busy").count() == 0
    assert _shown_after(page) == {t: f"{100 * a:.1f}%" for t, (_, a) in panel.predictions.items()}


def test_clicking_a_token_shows_its_codes(page: Any, model: Any, prompt: torch.Tensor) -> None:
    panel = cbwidgets.ablation_panel(model, prompt)
    mount(page, panel)
    page.locator(".cbw-ab-tok[data-t='7']").click()
    page.wait_for_function("document.querySelector('.cbw-ab-title').textContent.startsWith('codes at token 7')")
    assert panel.position == 7
    shown = page.locator(".cbw-ab-code").evaluate_all("rows => rows.map(r => r.dataset.code)")
    assert shown == [f"{label}.{int(panel.ids[7, n, 0])}" for n, label in enumerate(panel.labels)]


def test_exported_panel_shows_its_predictions_offline(
    page: Any, model: Any, prompt: torch.Tensor, tmp_path: Any
) -> None:
    panel = cbwidgets.ablation_panel(model, prompt)
    panel.mode = "drop"
    panel.edits = [{"code": f"1.mlp.{int(panel.ids[-1, 9, 0])}", "scale": 0.0}]
    path = tmp_path / "panel.html"
    panel.to_html(str(path))
    page.goto(path.as_uri())
    page.wait_for_selector(".cbw-ab-pred[data-token]")
    assert _shown_after(page) == {t: f"{100 * a:.1f}%" for t, (_, a) in panel.predictions.items()}
    assert page.locator(".cbw-status").inner_text() == panel.status
    assert page.blocked == [] and page.js_errors == []


def test_reset_reclick_and_python_edits_paint_what_the_kernel_computed(
    page: Any, model: Any, prompt: torch.Tensor
) -> None:
    panel = cbwidgets.ablation_panel(model, prompt)
    mount(page, panel)
    code = f"1.mlp.{int(panel.ids[-1, 9, 0])}"
    page.locator(f".cbw-ab-code[data-code='{code}'] .cbw-ab-toggle").check()
    page.wait_for_function("document.querySelector('.cbw-status').textContent.includes('x0;')")
    page.locator(".cbw-ab-reset").click()  # the kernel clears the edits; the toggles follow
    page.wait_for_function("document.querySelector('.cbw-status').textContent.startsWith('edits: none')")
    assert panel.edits == [] and page.locator(".cbw-ab-toggle:checked").count() == 0
    page.locator(".cbw-ab-tok[data-t='40']").click()  # the token already shown: nothing changes, still answered
    page.wait_for_function("window.cbwModel.get('answered') === window.cbwModel.get('request')")
    assert page.locator(".cbw-root.cbw-busy").count() == 0
    panel.edits = [{"code": ("layers.1.mlp", np.int64(code.split(".")[-1])), "scale": 0.0}]  # from Python
    page.evaluate("cbwPull()")
    page.wait_for_function("document.querySelector('.cbw-status').textContent.includes('x0;')")
    assert _shown_after(page) == {t: f"{100 * a:.1f}%" for t, (_, a) in panel.predictions.items()}
    assert page.locator(f".cbw-ab-code[data-code='{code}'] .cbw-ab-toggle").is_checked()
    assert page.blocked == [] and page.js_errors == []
