"""TrainingMonitor: what train() logs is what the charts hold, sent no faster than asked, the last
figures always; drawn by the real bundle in Chromium, and live in JupyterLab while the cell runs."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest

from cbwidgets.errors import CodebookError
from cbwidgets.train import TrainConfig, train
from cbwidgets.widgets import TrainingMonitor
from tests.browser import mount, shot
from tests.jupyter import FrontEnd, JupyterLab, open_notebook
from tests.tiny import tiny_data, tiny_model


def _config(steps: int, log_every: int = 2) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=8, log_every=log_every, progress=False)


@pytest.fixture(scope="module")
def two_runs() -> tuple[TrainingMonitor, list[dict[str, Any]]]:
    """A base run with the codebooks off, then one with them on: the recipe's phases in small."""
    model = tiny_model("gpt_neox", num_codes=32, revive_after=5)
    monitor, seen = TrainingMonitor(interval=0), []
    with model.codebooks_disabled():
        train(model, tiny_data(), _config(10), callbacks=[monitor, seen.append])
    train(model, tiny_data(), _config(20), callbacks=[monitor, seen.append])
    return monitor, seen


def test_the_charts_hold_what_train_logged_on_one_axis(two_runs: tuple[TrainingMonitor, list[dict]]) -> None:
    monitor, seen = two_runs
    assert len(seen) == 15
    rows = monitor.history.drop(columns="x").to_dict("records")  # a run's missing figures are NaN there
    assert [{k: v for k, v in row.items() if not math.isnan(v)} for row in rows] == seen
    # the second run continues the axis where the first ended, with a mark there
    assert monitor.steps.tolist() == [2, 4, 6, 8, 10] + [10 + s for s in range(2, 21, 2)]
    assert monitor.run_starts.tolist() == [10.0]
    assert monitor.state == "finished at step 20"
    for j, name in enumerate(monitor.series):
        column = monitor.values[:, j]
        for i, metrics in enumerate(seen):
            if name in ("used_share", "dead", "revived") and i < 5:
                assert math.isnan(column[i]), (name, i)  # codes are not hit while the codebooks are off
            elif name in metrics:
                assert column[i] == pytest.approx(metrics[name], rel=1e-6), (name, i)
            else:
                assert math.isnan(column[i]), (name, i)
    sites = [n for n in monitor.series if n.startswith("reconstruction/")]
    assert sites == [n for n in seen[-1] if n.startswith("reconstruction/")] and len(sites) == 4
    assert {"loss", "lm_loss", "used_share", "dead", "revived"} <= set(monitor.series)
    assert "codes used" in monitor.latest and "dead" in monitor.latest and monitor.latest.startswith("step 20")


def test_updates_are_sent_no_faster_than_the_interval_and_the_last_always() -> None:
    monitor = TrainingMonitor(interval=60)
    sent: list[int] = []
    monitor.observe(lambda change: sent.append(len(change["new"])), "steps")
    for step in range(1, 51):
        monitor({"step": step, "loss": 1.0 / step, "lm_loss": 0.5})
    assert sent == [1]  # the first point went out at once; the rest waited for the interval
    assert monitor.state == "training"
    monitor.finish(None)
    assert sent == [1, 50] and monitor.state == "finished at step 50"
    assert monitor.latest == "step 50 \u00b7 codebooks off \u00b7 loss 0.0200 \u00b7 LM loss 0.5000"


def test_the_state_travels_with_the_figures_it_describes() -> None:
    """Sent apart, a view painted between the two messages said "finished at step 150" over a chart
    that ended at 149 (seen in JupyterLab under CI's load). Each change of the state must fall in the
    same held sync (one message) as the figures it describes. Counted at ``hold_sync``, because
    ipywidgets 7 sends nothing at all from a widget without a kernel."""
    monitor, blocks, depth, changes = TrainingMonitor(interval=60), [0], [0], []
    held = monitor.hold_sync

    @contextmanager
    def counted() -> Iterator[None]:
        blocks[0] += depth[0] == 0
        depth[0] += 1
        try:
            with held():
                yield
        finally:
            depth[0] -= 1

    monitor.hold_sync = counted  # type: ignore[method-assign]
    record = lambda change: changes.append((change["name"], blocks[0] if depth[0] else None))  # noqa: E731
    monitor.observe(record, ["state", "steps"])
    for step in range(1, 4):
        monitor({"step": step, "loss": 1.0})
    monitor.finish(None)
    assert None not in {block for _, block in changes}, changes  # nothing changed outside a held sync
    states = [block for name, block in changes if name == "state"]  # "training", then "finished at step 3"
    steps = [block for name, block in changes if name == "steps"]  # the first point, then all three
    assert (states[0], states[-1]) == (steps[0], steps[-1]), changes


def test_a_stopped_run_says_where_and_why() -> None:
    model, monitor = tiny_model("gpt2", num_codes=16), TrainingMonitor()

    def stop(metrics: dict[str, Any]) -> None:
        if metrics["step"] == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(model, tiny_data(), _config(10), callbacks=[monitor, stop])
    assert monitor.state == "stopped at step 4 (interrupted)"
    assert monitor.steps.tolist() == [2.0, 4.0]  # the last figures went out although the interval had not passed
    monitor.reset()
    assert monitor.history.empty and monitor.steps.size == 0 and monitor.state.startswith("waiting")


def test_bad_inputs_say_what_to_pass() -> None:
    with pytest.raises(CodebookError, match="interval=-1 is not valid"):
        TrainingMonitor(interval=-1)
    with pytest.raises(CodebookError, match="interval='fast' is not valid"):
        TrainingMonitor(interval="fast")  # type: ignore[arg-type]
    assert TrainingMonitor(interval=np.float64(0.5)).interval == 0.5
    with pytest.raises(CodebookError, match=r"callbacks=\[monitor\]"):
        TrainingMonitor()([1.0, 2.0])  # type: ignore[arg-type]


def test_the_bundle_draws_every_series_offline(page: Any, two_runs: tuple[TrainingMonitor, list[dict]]) -> None:
    monitor, _ = two_runs
    page.set_viewport_size({"width": 1000, "height": 600})
    mount(page, monitor)
    page.wait_for_selector(".cbw-mo-plot[data-points='15']")
    assert page.locator(".cbw-mo-plot g.trace").count() == len(monitor.series)
    legend = page.locator(".cbw-mo-plot .legendtext").evaluate_all("els => els.map(e => e.textContent)")
    assert legend[:2] == ["loss (with reconstruction)", "LM loss"] and "layers.1.mlp" in legend
    assert page.locator(".cbw-status").inner_text() == "finished at step 20"
    assert page.locator(".cbw-mo-latest").inner_text() == monitor.latest
    print("screenshot:", shot(page, "training-monitor"))
    # a point added from Python reaches the drawn chart
    monitor({**monitor.history.iloc[-1].drop("x").to_dict(), "step": 22})
    page.evaluate("cbwPull()")
    page.wait_for_selector(".cbw-mo-plot[data-points='16']")
    assert page.js_errors == [] and page.blocked == []


LIVE = [
    "from cbwidgets.tokfsm import FSMRecipe, TokFSM, load_default\n"
    "from cbwidgets.tokfsm.default import fsm_data\n"
    "from cbwidgets.train import TrainConfig, train\nfrom cbwidgets.widgets import TrainingMonitor\n"
    "model, fsm = load_default(), TokFSM()\nmodel.train()\n"
    "batches = fsm_data(fsm, FSMRecipe()).batches(0)\n"
    "monitor = TrainingMonitor()\ndisplay(monitor)\n"
    "config = TrainConfig(steps=150, batch_size=16, log_every=1, freeze_base=True, progress=False)\n"
    "_ = train(model, batches, config, callbacks=[monitor])",
]


def test_the_charts_grow_while_the_cell_still_runs(front_end: FrontEnd, page: Any) -> None:
    front_end.open(page, "monitor.ipynb", LIVE, wait=False)
    page.wait_for_selector(".cbw-monitor .cbw-status")
    seen: list[tuple[str, int]] = []
    for _ in range(1200):  # up to 2 minutes of polling, every 100 ms
        state = page.locator(".cbw-monitor .cbw-status").inner_text()
        points = int(page.locator(".cbw-mo-plot").get_attribute("data-points") or 0)
        seen.append((state, points))
        if state.startswith("finished"):
            break
        page.wait_for_timeout(100)
    during = sorted({points for state, points in seen if state == "training" and points})
    assert len(during) >= 3, seen  # several updates drawn before the cell finished
    assert during[0] < 100 and seen[-1] == ("finished at step 150", 150), seen[-5:]
    print("screenshot:", shot(page, front_end.shot_name("training-monitor-jupyterlab")))
    assert page.widget_errors == [] and page.blocked == []


def test_a_kernel_restart_mid_training_is_shown_and_the_curves_are_kept(jupyterlab: JupyterLab, page: Any) -> None:
    """Restart the kernel while train() still runs: the monitor says it lost its kernel, keeps the
    curves it had, and draws nothing more (the training that fed it is gone)."""
    open_notebook(jupyterlab, page, "monitor-restart.ipynb", LIVE, wait=False)
    page.wait_for_function("Number(document.querySelector('.cbw-mo-plot')?.dataset.points || 0) >= 10")
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:restart-kernel'); }")  # Kernel menu
    page.locator(".jp-Dialog .jp-mod-accept").click()  # "Restart"
    page.wait_for_function("document.querySelector('.cbw-monitor').classList.contains('cbw-disconnected')")
    notice = page.locator(".cbw-monitor .cbw-notice")
    assert notice.is_visible() and notice.inner_text().startswith("This view has lost its kernel")
    kept = int(page.locator(".cbw-mo-plot").get_attribute("data-points") or 0)
    page.wait_for_timeout(3000)
    assert 10 <= kept == int(page.locator(".cbw-mo-plot").get_attribute("data-points") or 0) < 150
    print("screenshot:", shot(page, "training-monitor-kernel-restarted"))
    assert page.widget_errors == [] and page.blocked == []
