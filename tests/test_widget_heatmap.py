"""CodeHeatmap: built from a real model, rendered by its real bundle in Chromium, clicked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import cbwidgets
from cbwidgets import CodebookError, CodeHeatmap
from cbwidgets.tokfsm import TokFSM, load_default
from tests.browser import mount, shot

NASTY = ["<img src=x onerror=alert(1)>", "</script>", "\u0120the", "a\nb", " lead", ""]


@pytest.fixture(scope="module")
def model() -> Any:
    return load_default()


def test_from_model_decodes_tokens_and_ships_codes_as_bytes(model: Any) -> None:
    ids = TokFSM().sample(1, 33, seed=1)
    widget = cbwidgets.heatmap(model, ids)
    assert widget.tokens[0] == "<bos>" and len(widget.tokens) == 33
    assert widget.labels == list(model.names.labels)
    assert widget.names[0] == "layers.0.attn_preproj.0"
    sent = widget.get_state()["ids"]  # what crosses the wire: a binary buffer with its shape and dtype
    assert isinstance(sent["data"], bytes | memoryview) and sent["shape"] == [33, 20, 1] and sent["dtype"] == "int32"
    expected = model(ids).codes.ids[0].numpy()
    assert np.array_equal(widget.ids, expected)
    assert repr(widget) == "CodeHeatmap(tokens=33, codebooks=20, k=1, selected=None)"


def test_select_and_positions() -> None:
    widget = CodeHeatmap(["a", "b", "c"], [[1, 2], [3, 2], [1, -1]], ["0.mlp", "1.mlp"])
    widget.select("0.mlp.1")
    assert widget.positions() == [0, 2]
    assert widget.positions("1.mlp.2") == [0, 1]
    assert repr(widget) == "CodeHeatmap(tokens=3, codebooks=2, k=1, selected='0.mlp.1')"
    with pytest.raises(CodebookError, match="not a code of this heatmap"):
        widget.select("7.mlp.1")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((["a"], [[1.5]], ["x"]), "integer ids"),
        ((["a", "b"], [[1]], ["x"]), "2 tokens and 1 codebook"),
        ((["a"], [[1, 2]], ["x"]), "1 tokens and 1 codebook"),
        ((["a"], [[[[1]]]], ["x"]), "integer ids of shape"),
    ],
)
def test_bad_arrays_are_explained(args: tuple[Any, ...], message: str) -> None:
    with pytest.raises(CodebookError, match=message):
        CodeHeatmap(*args)


def test_fallback_html_escapes_tokens() -> None:
    widget = CodeHeatmap(NASTY, np.arange(12).reshape(6, 2), ["0.mlp", "1.mlp"])
    data, _ = widget._repr_mimebundle_()
    assert data["text/plain"] == repr(widget)
    assert "&lt;img src=x onerror=alert(1)&gt;" in data["text/html"]
    assert "<img" not in data["text/html"] and "</script>" not in data["text/html"]
    assert "application/vnd.jupyter.widget-view+json" in data


def test_core_import_does_not_load_widgets() -> None:
    code = (
        "import sys, cbwidgets, cbwidgets.tokfsm; print('cbwidgets.widgets' in sys.modules, 'anywidget' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


# ------------------------------------------------------------------ browser


def test_click_selects_in_python_and_lights_tokens(page: Any, model: Any) -> None:
    widget = cbwidgets.heatmap(model, TokFSM().sample(1, 41, seed=2))
    heard: list[str] = []
    widget.on_select(heard.append)
    mount(page, widget)
    assert page.locator(".cbw-hm-label").count() == 20
    cell = page.locator(".cbw-hm-row[data-t='5'] .cbw-hm-cell[data-n='9']")  # token 5, codebook 1.mlp
    code = f"1.mlp.{int(widget.ids[5, 9, 0])}"
    assert cell.inner_text() == code.split(".")[-1]
    cell.click()
    page.wait_for_function("document.querySelector('.cbw-status').textContent.startsWith('code ')")
    assert widget.selected == code and heard == [code]
    lit = page.locator(".cbw-hm-row.cbw-lit").evaluate_all("rows => rows.map(r => Number(r.dataset.t))")
    assert lit == widget.positions() and 5 in lit
    assert page.locator(".cbw-hit").count() == len(widget.positions())
    assert f"fires on {len(lit)} of 41 tokens" in page.locator(".cbw-status").inner_text()
    cell.hover()
    tip = page.locator(".cbw-tooltip")
    assert tip.is_visible() and "layers.1.mlp" in tip.inner_text() and code in tip.inner_text()
    print("screenshot:", shot(page, "heatmap-selected"))
    cell.click()  # a second click clears
    page.wait_for_function("!document.querySelector('.cbw-status').textContent.startsWith('code ')")
    assert widget.selected == "" and page.locator(".cbw-hit").count() == 0
    assert page.blocked == [] and page.js_errors == []


def test_hostile_tokens_render_as_text(page: Any) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    widget = CodeHeatmap(NASTY, np.arange(12).reshape(6, 2), ["0.mlp", "1.mlp"])
    mount(page, widget)
    shown = page.locator(".cbw-hm-tok").evaluate_all("els => els.map(e => e.textContent)")
    assert shown[1:] == ["<img src=x onerror=alert(1)>", "</script>", "\u00b7the", "a\u21b5b", "\u00b7lead", "\u2205"]
    assert page.locator("img").count() == 0 and dialogs == []
    print("screenshot:", shot(page, "heatmap-hostile-tokens"))


def test_two_thousand_tokens_are_virtualised(page: Any) -> None:
    rng = np.random.default_rng(0)
    tokens, labels = [f"t{i}" for i in range(2048)], [f"{i}.mlp" for i in range(16)]
    widget = CodeHeatmap(tokens, rng.integers(0, 1000, (2048, 16)), labels)
    mount(page, widget)
    assert page.locator(".cbw-hm-row").count() < 80  # only what is visible, not 2,048 rows
    page.locator(".cbw-hm-scroll").evaluate("el => { el.scrollTop = el.scrollHeight; }")
    page.wait_for_selector(".cbw-hm-row[data-t='2047']")
    assert page.locator(".cbw-hm-row").count() < 80
    assert widget.ids.nbytes < 1_000_000


def test_callback_errors_show_in_the_widget(page: Any) -> None:
    widget = CodeHeatmap(["a", "b"], [[1], [2]], ["0.mlp"])

    def broken(code: str) -> None:
        raise ValueError(f"cannot handle {code}")

    widget.on_select(broken)
    mount(page, widget)
    page.locator(".cbw-hm-cell").first.click()
    page.wait_for_selector(".cbw-error:not([hidden])")
    assert "ValueError: cannot handle 0.mlp.1" in page.locator(".cbw-error").inner_text()
    assert widget.error.startswith("ValueError")


def test_exported_html_shows_the_same_view_offline(page: Any, tmp_path: Path, model: Any) -> None:
    widget = cbwidgets.heatmap(model, TokFSM().sample(1, 21, seed=4))
    widget.select(f"2.mlp.{int(widget.ids[3, 14, 0])}")
    path = tmp_path / "heatmap.html"
    widget.to_html(str(path))
    page.goto(path.as_uri())
    page.wait_for_selector(".cbw-hm-row")
    lit = page.locator(".cbw-hm-row.cbw-lit").evaluate_all("rows => rows.map(r => Number(r.dataset.t))")
    assert lit == widget.positions()
    assert page.locator(".cbw-hm-label").count() == 20
    assert page.blocked == [] and page.js_errors == []
    print("screenshot:", shot(page, "heatmap-exported"))


def test_sixty_four_codebooks_render_and_scroll_sideways(page: Any) -> None:
    labels = [f"{i // 16}.{i % 16}" for i in range(64)]
    widget = CodeHeatmap([f"t{i}" for i in range(50)], np.arange(50 * 64).reshape(50, 64) % 1000, labels)
    mount(page, widget)
    assert page.locator(".cbw-hm-label").count() == 64
    assert page.locator(".cbw-hm-row[data-t='0'] .cbw-hm-cell").count() == 64
    wide = page.locator(".cbw-hm-scroll").evaluate("el => el.scrollWidth > el.clientWidth")
    assert wide
    page.locator(".cbw-hm-row[data-t='2'] .cbw-hm-cell[data-n='63']").click()
    page.wait_for_function("document.querySelector('.cbw-status').textContent.startsWith('code 3.15.')")
    assert widget.selected == f"3.15.{(2 * 64 + 63) % 1000}"


# ------------------------------------------------------------ coloured by effect


def _effects(model: Any, ids: Any) -> Any:
    from cbwidgets.circuits import NextToken, ablation_effects

    target = NextToken(int(model(ids).logits[0, -1].argmax()), measure="logprob")
    return ablation_effects(model, ids, target, mode="drop")


def test_show_effects_places_each_effect_in_its_cell(model: Any) -> None:
    ids = TokFSM().sample(1, 21, seed=11)
    widget = cbwidgets.heatmap(model, ids)
    effects = _effects(model, ids)
    widget.show_effects(effects)
    assert widget.effects.shape == widget.ids.shape
    column = {label: i for i, label in enumerate(widget.labels)}
    for row in effects.head(10).itertuples():
        assert widget.effects[row.position, column[row.codebook], row.slot] == pytest.approx(row.effect, rel=1e-6)
        assert widget.code_at(row.position, row.codebook) == row.code
    measured = np.isfinite(widget.effects).sum()
    assert measured == len(effects) < widget.ids.size  # codes that cannot reach the target stay unmeasured
    assert widget.effect_title.startswith("effect on the log-probability of ") and widget.effect_title.endswith(
        "(drop)"
    )
    assert widget.get_state()["effects"]["dtype"] == "float32"
    widget.show(widget.tokens, widget.ids, widget.codebooks)  # new codes: the old effects no longer apply
    assert widget.effects.size == 0 and widget.effect_title == ""


def test_show_effects_refuses_tables_of_another_prompt(model: Any) -> None:
    ids = TokFSM().sample(1, 21, seed=11)
    widget = cbwidgets.heatmap(model, ids[:, :9])
    with pytest.raises(CodebookError, match="outside this heatmap's 9 tokens"):
        widget.show_effects(_effects(model, ids))
    with pytest.raises(CodebookError, match="columns"):
        widget.show_effects(ids)  # type: ignore[arg-type]
    other = CodeHeatmap(["a", "b"], [[1], [2]], ["5.mlp"])
    with pytest.raises(CodebookError, match="does not show"):
        other.show_effects(_effects(model, ids[:, :2]))


def test_cells_coloured_by_effect_in_chromium(page: Any, model: Any) -> None:
    ids = TokFSM().sample(1, 21, seed=11)
    widget = cbwidgets.heatmap(model, ids)
    effects = _effects(model, ids)
    widget.show_effects(effects)
    mount(page, widget)
    page.wait_for_selector(".cbw-hm-effect")
    status = page.locator(".cbw-status").inner_text()
    assert status.startswith(f"Colour: {widget.effect_title}; blue holds it up")
    assert widget.effect_title == f"effect on the log-probability of '{effects.attrs['token']}' after token 20 (drop)"
    column = {label: i for i, label in enumerate(widget.labels)}

    def colour(position: int, codebook: str) -> str:
        cell = page.locator(f".cbw-hm-row[data-t='{position}'] .cbw-hm-cell[data-n='{column[codebook]}']")
        return str(cell.evaluate("c => getComputedStyle(c).backgroundColor"))

    up = effects[effects.effect > 0].iloc[0]
    down = effects[effects.effect < 0].iloc[0]
    strongest = effects.effect.abs().max()
    full = {True: "rgb(33, 102, 172)", False: "rgb(178, 24, 43)"}  # blue above zero, red below
    for row in (up, down):
        shade = colour(row.position, row.codebook)
        if abs(row.effect) == strongest:
            assert shade == full[row.effect > 0]
        r, g, b = (int(v) for v in shade[4:-1].split(", "))
        assert (b > r) == (row.effect > 0) and g < 255, (row, shade)
    assert colour(20, "3.mlp") != colour(5, "3.mlp") == "rgb(228, 228, 228)"  # not measured: cannot reach
    page.locator(f".cbw-hm-row[data-t='{up.position}'] .cbw-hm-cell[data-n='{column[up.codebook]}']").hover()
    assert f"{up.code} (+" in page.locator(".cbw-tooltip").inner_text()
    print("screenshot:", shot(page, "heatmap-effects"))
    widget.clear_effects()  # from Python: back to a colour per id
    page.evaluate("cbwPull()")
    page.wait_for_function("document.querySelectorAll('.cbw-hm-effect').length === 0")
    assert page.locator(".cbw-status").inner_text().startswith("21 tokens x 20 codebooks")
    assert page.blocked == [] and page.js_errors == []


@pytest.mark.parametrize("route", ["exported", "no-buffers"])
def test_effect_colours_survive_export_and_front_ends_that_drop_buffers(
    page: Any, tmp_path: Path, model: Any, route: str
) -> None:
    """The exported page (offline), and Colab's widget manager, which loses binary buffers (the
    widget's base64 wire carries them as text there)."""
    ids = TokFSM().sample(1, 21, seed=11)
    widget = cbwidgets.heatmap(model, ids)
    if route == "no-buffers":
        widget.wire = "base64"
    widget.show_effects(_effects(model, ids))
    if route == "exported":
        path = tmp_path / "effects.html"
        widget.to_html(str(path))
        page.goto(path.as_uri())
    else:
        mount(page, widget, drop_buffers=True)
    page.wait_for_selector(".cbw-hm-effect")
    grey = page.locator(".cbw-hm-row[data-t='5'] .cbw-hm-cell[data-n='19']")  # 3.mlp before the last token
    assert grey.evaluate("c => getComputedStyle(c).backgroundColor") == "rgb(228, 228, 228)"
    assert page.locator(".cbw-status").inner_text().startswith("Colour: effect on the log-probability")
    assert page.blocked == [] and page.js_errors == []
