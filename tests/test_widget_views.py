"""What every view does alike, checked in Chromium through the real bundles: hostile and huge tokens,
tooltips, sliders that show the value they hold, settings set from Python, and a kernel that does not
answer or is gone."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import cbwidgets
from cbwidgets.tokfsm import TokFSM, load_default
from cbwidgets.widgets import CodeHeatmap
from tests.browser import mount, shot

RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE: without isolation it reverses everything after it on the line
HUGE = "Z" * 10_000


@pytest.fixture(scope="module")
def model() -> Any:
    return load_default()


@pytest.fixture
def panel(model: Any) -> Any:
    return cbwidgets.ablation_panel(model, TokFSM().sample(1, 41, seed=2))


def _xs(page: Any, selector: str) -> list[float]:
    return page.locator(selector).evaluate_all("els => els.map(e => e.getBoundingClientRect().left)")


def test_direction_controls_stay_inside_their_token(page: Any, panel: Any) -> None:
    tokens = list(panel.tokens)
    tokens[3] = RLO + "abc"
    panel.tokens = tokens
    mount(page, panel)
    # the prompt is one line of token spans: after the RLO token they still run left to right
    xs = _xs(page, ".cbw-ab-tok")[3:12]
    assert xs == sorted(xs), xs
    assert page.locator(".cbw-ab-tok").nth(3).evaluate("e => getComputedStyle(e).unicodeBidi") == "isolate"
    page.locator(".cbw-ab-tok[data-t='3']").hover()
    assert '"\\u202eabc"' in page.locator(".cbw-tooltip").inner_text()  # the control written out
    tip = page.locator(".cbw-tooltip .cbw-tip-value").first.evaluate("e => getComputedStyle(e).unicodeBidi")
    assert tip == "isolate"
    print("screenshot:", shot(page, "ablation-rlo-token"))
    assert page.js_errors == []


def test_a_ten_thousand_character_token_is_cut_and_shown_whole_on_demand(page: Any, panel: Any) -> None:
    tokens = list(panel.tokens)
    tokens[5] = HUGE
    panel.tokens = tokens
    page.set_viewport_size({"width": 900, "height": 400})
    mount(page, panel)
    span = page.locator(".cbw-ab-tok[data-t='5']")
    assert span.inner_text() == "Z" * 40 + "\u2026" and "cbw-cut" in (span.get_attribute("class") or "")
    span.hover()
    tip = page.locator(".cbw-tooltip").inner_text()
    assert "(10,000 characters)" in tip and len(tip) < 400, tip
    span.dblclick()
    whole = page.locator(".cbw-full-text")
    assert whole.is_visible() and whole.inner_text() == HUGE
    page.locator(".cbw-full-close").click()
    assert not whole.is_visible()
    print("screenshot:", shot(page, "ablation-huge-token"))
    assert page.js_errors == []


def test_no_tooltip_stays_on_screen_after_scrolling(page: Any) -> None:
    tokens = [f"t{i}" for i in range(400)]
    widget = CodeHeatmap(tokens, torch.arange(800).reshape(400, 2), ["0.mlp", "1.mlp"])
    page.set_viewport_size({"width": 800, "height": 300})
    mount(page, widget)
    page.locator(".cbw-hm-row[data-t='2'] .cbw-hm-cell").first.hover()
    assert page.locator(".cbw-tooltip").is_visible()
    page.locator(".cbw-hm-scroll").evaluate("el => { el.scrollTop = 600; }")  # the view's own scroller
    page.wait_for_function("document.querySelector('.cbw-tooltip').hidden")
    page.locator(".cbw-hm-row[data-t='30'] .cbw-hm-cell").first.hover()
    assert page.locator(".cbw-tooltip").is_visible()
    page.mouse.wheel(0, 400)  # the page (the notebook) scrolls
    page.wait_for_function("document.querySelector('.cbw-tooltip').hidden")


def test_sliders_and_settings_show_what_the_kernel_holds(page: Any, panel: Any) -> None:
    mount(page, panel)
    code = f"1.mlp.{int(panel.ids[-1, 9, 0])}"
    panel.edits = [{"code": code, "scale": 1.25}]
    panel.mode = "drop"  # both from Python, while the view is shown
    page.evaluate("cbwPull()")
    row = page.locator(f".cbw-ab-code[data-code='{code}']")
    page.wait_for_function("document.querySelector('.cbw-status').textContent.includes('mode drop')")
    assert row.locator(".cbw-ab-value").inner_text() == "x1.25"
    assert row.locator(".cbw-ab-scale").input_value() == "1.25"
    assert page.locator(".cbw-ablation input[value='drop']").is_checked()
    assert page.locator(".cbw-status").inner_text() == panel.status
    # a drag moves in steps of 0.05 and shows the value sent
    row.locator(".cbw-ab-scale").fill("0.7")
    page.wait_for_function("document.querySelector('.cbw-status').textContent.includes('x0.7;')")
    assert panel.edits == [{"code": code, "scale": 0.7}] and row.locator(".cbw-ab-value").inner_text() == "x0.7"
    assert page.js_errors == []


def test_an_unanswered_request_says_so_and_a_lost_kernel_is_shown(page: Any, panel: Any) -> None:
    mount(page, panel)
    notice = page.locator(".cbw-notice")
    assert not notice.is_visible()
    page.evaluate("window.cbwDeaf = true")  # the kernel stops answering
    page.locator(".cbw-ab-toggle").first.check()
    assert page.locator(".cbw-root.cbw-busy").count() == 1
    page.wait_for_function("!document.querySelector('.cbw-notice').hidden", timeout=15_000)
    assert notice.inner_text().startswith("No answer from the kernel for 10 s")
    # the widget manager marks the model dead (what JupyterLab does on a kernel restart)
    page.evaluate("cbwFire('comm_live_update')")
    assert notice.inner_text().startswith("This view has lost its kernel")
    assert page.locator(".cbw-root.cbw-disconnected").count() == 1
    assert page.locator(".cbw-root.cbw-busy").count() == 0
    sent = page.evaluate("window.cbwSent.length")
    page.locator(".cbw-ab-reset").click()  # nothing is sent to a kernel that is gone; the note stays
    assert page.evaluate("window.cbwSent.length") == sent and notice.is_visible()
    print("screenshot:", shot(page, "ablation-disconnected"))
    assert page.js_errors == []
