"""CodeSearch and CodeDashboard over a real index of the default model, driven in Chromium."""

from __future__ import annotations

from typing import Any

import pytest

import cbwidgets
from cbwidgets import CodebookError
from cbwidgets.index import CodeIndex
from cbwidgets.tokfsm import TokFSM, load_default
from tests.browser import shot
from tests.harness import mount


@pytest.fixture(scope="module")
def model() -> Any:
    return load_default()


@pytest.fixture(scope="module")
def index(model: Any) -> CodeIndex:
    return CodeIndex.build(model, TokFSM().sample(100, 128, seed=11), batch_size=25, progress=False)


@pytest.fixture(scope="module")
def code(index: CodeIndex) -> str:
    """Layer 2's MLP code that fires most often in the index: the dashboards need its examples."""
    book = index.labels.index("2.mlp")
    counts = index.code_counts(book, slice(None))
    return f"2.mlp.{int(counts.argmax())}"


def test_search_table_is_the_index_search(index: CodeIndex) -> None:
    search = cbwidgets.CodeSearch(index, "4(2)", rows=10)
    expected = index.search("4(2)").head(10)
    assert search.table["code"].tolist() == expected["code"].tolist()
    assert search.table["matches"].tolist() == expected["matches"].tolist()
    assert repr(search) == "CodeSearch(pattern='4(2)', rows=10)"
    search.pattern = "4(2"
    assert search.error.startswith("CodebookError: '4(2' is not a valid regular expression")
    assert "Traceback" not in search.error
    assert search.table["code"].tolist() == expected["code"].tolist()  # the last good table stays
    search.pattern = ""
    assert search.error == "" and search.code_names == []


def test_dashboard_reads_the_index_and_the_model(index: CodeIndex, model: Any, code: str) -> None:
    dash = cbwidgets.CodeDashboard(index, code, model)
    assert dash.stats == index.code_stats(code)
    assert [e["position"] for e in dash.examples] == index.top_examples(code, n=12)["position"].tolist()
    assert {e["direction"] for e in dash.effects} == {"promotes", "suppresses"}
    assert len(dash.similar) == 5
    heatmap = dash.open_example(0)
    assert dash.examples[0]["position"] - index.doc_starts[0] >= 0
    assert heatmap.selected == code and len(heatmap.positions()) >= 1
    with pytest.raises(CodebookError, match="not a code of this index"):
        cbwidgets.CodeDashboard(index, "9.mlp.1")
    bare = cbwidgets.CodeDashboard(index, code)
    assert bare.effects == [] and "need the model" in bare.status


def test_typing_searches_and_clicking_opens_the_dashboard(page: Any, index: CodeIndex, model: Any) -> None:
    explorer = cbwidgets.code_explorer(index, model)
    search, dash = explorer.search, explorer.dashboard
    mount(page, search)
    page.locator(".cbw-se-input").type("4(2)", delay=20)
    page.wait_for_function("document.querySelectorAll('.cbw-se-row[data-code]').length > 0")
    shown = page.locator(".cbw-se-row[data-code]").evaluate_all("rows => rows.map(r => r.dataset.code)")
    assert shown == index.search("4(2)").head(50)["code"].tolist()
    assert "matched tokens" in page.locator(".cbw-status").inner_text()
    print("screenshot:", shot(page, "search-typed"))
    page.locator(".cbw-se-row[data-code]").nth(1).click()
    page.wait_for_selector(".cbw-se-row.cbw-selected")
    assert dash.code == shown[1]  # the dashboard followed the click
    page.locator(".cbw-se-input").type(")(", delay=20)
    page.wait_for_selector(".cbw-error:not([hidden])")
    assert "not a valid regular expression" in page.locator(".cbw-error").inner_text()
    assert page.blocked == [] and page.js_errors == []


def test_dashboard_clicks_switch_code_and_open_examples(page: Any, index: CodeIndex, model: Any, code: str) -> None:
    dash = cbwidgets.CodeDashboard(index, code, model)
    mount(page, dash)
    assert page.locator(".cbw-db-example").count() == len(dash.examples)
    assert page.locator(".cbw-db-bar").count() == 20
    # each logit value sits beside its token, not across the column
    gaps = page.locator(".cbw-db-effect").evaluate_all(
        "rows => rows.map((r) => { const [token, value] = [...r.children].map((c) => c.getBoundingClientRect());"
        " return value.left - token.right; })"
    )
    assert gaps and all(0 <= g <= 12 for g in gaps), gaps
    print("screenshot:", shot(page, "dashboard"))
    page.locator(".cbw-db-example").first.click()
    page.wait_for_function("document.querySelector('.cbw-status').textContent.startsWith('example 0')")
    assert dash.heatmap.selected == code and dash.heatmap.shape[0] > 0
    target = dash.similar[0]["code"]
    page.locator(f".cbw-db-similar[data-code='{target}']").click()
    page.wait_for_function(f"document.querySelector('.cbw-db-title').textContent === 'code {target}'")
    assert dash.code == target and dash.stats["code"] == target
    assert page.blocked == [] and page.js_errors == []


def test_exported_dashboard_and_fallbacks(page: Any, index: CodeIndex, model: Any, tmp_path: Any, code: str) -> None:
    dash = cbwidgets.CodeDashboard(index, code, model)
    path = tmp_path / "dash.html"
    dash.to_html(str(path))
    page.goto(path.as_uri())
    page.wait_for_selector(".cbw-db-example")
    assert page.locator(".cbw-db-title").inner_text() == f"code {code}"
    assert page.blocked == [] and page.js_errors == []
    data, _ = dash._repr_mimebundle_()
    assert data["text/plain"] == repr(dash) and "<table>" in data["text/html"]
    data, _ = cbwidgets.CodeSearch(index, "<b>")._repr_mimebundle_()
    assert "&lt;b&gt;" in data["text/html"]
