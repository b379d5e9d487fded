"""SteeringPanel on the shipped storyteller: the texts are the model's own samples, Stop stops,
and in Chromium typing a topic, ticking codes and pressing Generate drive the kernel-side panel."""

from __future__ import annotations

import time
from typing import Any

import pytest

import cbwidgets
from cbwidgets import CodebookError
from cbwidgets.index import CodeIndex
from cbwidgets.steering import steering, topic_codes
from cbwidgets.stories import load_stories, split_stories
from tests.browser import mount, shot


@pytest.fixture(scope="module")
def model() -> Any:
    return cbwidgets.storyteller()


@pytest.fixture(scope="module")
def index(model: Any) -> CodeIndex:
    _, held_out = split_stories(load_stories())
    return CodeIndex.build(model, [s.text for s in held_out], progress=False)


def _cut_decode(model: Any, rows: Any) -> list[str]:
    end = model.tokenizer.eos_token_id
    texts = []
    for row in rows.tolist():
        row = row[: row.index(end) + 1] if end in row else row
        texts.append(model.tokenizer.decode(row, skip_special_tokens=True))
    return texts


def test_panel_texts_are_the_models_samples_with_and_without_the_codes(model: Any, index: CodeIndex) -> None:
    panel = cbwidgets.steering_panel(model, index, "dragon", samples=3, max_new_tokens=40, seed=5, picks=6)
    expected = topic_codes(index, "dragon", per_codebook=8, limit=24)
    assert panel.candidates == expected["code"].tolist()
    assert panel.chosen == panel.candidates[:6]
    assert panel.choices == {"rule": ["replace", "add"]}  # the rules, written once (steering.RULES), sent to the view
    first = model.names.parse_code(panel.chosen[0])
    panel.chosen = [f"{model.names.codebooks[first[0]].name}.{first[1]}", *panel.chosen[1:]]  # the full-name form
    assert panel.chosen == panel.candidates[:6]  # read back in the written form
    assert "documents mention 'dragon'" in panel.status
    panel.generate()
    settings = {"max_new_tokens": 40, "num_samples": 3, "seed": 5}
    plain = model.generate(panel.prompt, **settings)
    steered = model.generate(panel.prompt, interventions=steering(panel.chosen), **settings)
    assert panel.default_texts == _cut_decode(model, plain.new_ids)
    assert panel.steered_texts == _cut_decode(model, steered.new_ids)
    assert panel.default_texts != panel.steered_texts
    assert panel.status.startswith("generated 40 tokens x 3 samples x 2") and not panel.running
    panel.rule, panel.strength = "add", 4.0
    panel.generate()
    added = model.generate(panel.prompt, interventions=steering(panel.chosen, "add", 4.0), **settings)
    assert panel.steered_texts == _cut_decode(model, added.new_ids)


def test_stop_ends_generation_early_and_errors_say_what_to_do(model: Any, index: CodeIndex) -> None:
    panel = cbwidgets.steering_panel(model, index, "flower", samples=2, max_new_tokens=200)
    panel.start()
    time.sleep(0.3)
    panel.stop()
    panel.wait(30)
    assert not panel.running
    assert panel.status.startswith("stopped after") and "200 tokens" not in panel.status
    panel.chosen = []
    with pytest.raises(CodebookError, match="no codes ticked; type a topic word"):
        panel.generate()
    panel.set_state({"request": panel.request + 1, "command": "generate"})  # Generate in the view
    assert panel.answered == panel.request  # answered, with the error shown in the widget
    assert panel.error.startswith("CodebookError: no codes ticked")
    with pytest.raises(CodebookError, match="unknown settings \\['colour'\\]"):
        cbwidgets.steering_panel(model, index, "fire", colour="red")
    nothing = cbwidgets.steering_panel(model, index, "zebra")
    assert nothing.candidates == [] and "no document mentions 'zebra'" in nothing.status


def test_typing_ticking_and_generating_in_chromium(page: Any, model: Any, index: CodeIndex) -> None:
    panel = cbwidgets.steering_panel(model, index, samples=2, max_new_tokens=60, seed=1)
    mount(page, panel)
    page.locator(".cbw-st-topic").type("dragon", delay=20)
    page.wait_for_function("document.querySelectorAll('.cbw-st-row[data-code]').length > 0")
    shown = page.locator(".cbw-st-row[data-code]").evaluate_all("rows => rows.map(r => r.dataset.code)")
    assert shown == panel.candidates and panel.topic == "dragon"
    page.locator(".cbw-st-pick").nth(0).uncheck()  # untick the first candidate
    page.wait_for_function("(n) => window.cbwModel.get('chosen').length === n", arg=len(panel.chosen))
    assert panel.chosen == panel.candidates[1:8]
    page.locator(".cbw-st-go").click()
    for _ in range(300):  # a kernel pushes the thread's updates; the harness pulls them
        page.evaluate("cbwPull()")
        if not page.evaluate("window.cbwModel.get('running')") and panel.status.startswith("generated"):
            break
        time.sleep(0.1)
    page.evaluate("cbwPull()")
    assert panel.status.startswith("generated 60 tokens")
    samples = page.locator(".cbw-st-steered .cbw-st-sample").all_inner_texts()
    assert samples == [panel.prompt + t for t in panel.steered_texts]
    marks = page.locator(".cbw-st-steered .cbw-st-hit").all_inner_texts()
    assert all(m.lower() == "dragon" for m in marks)
    assert len(marks) == sum(t.lower().count("dragon") for t in panel.steered_texts)
    print("screenshot:", shot(page, "steering-panel"))
    assert page.blocked == [] and page.js_errors == []
