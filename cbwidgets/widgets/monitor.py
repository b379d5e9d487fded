"""TrainingMonitor: live training curves in the cell that trains.

A training run is where a workshop waits longest, and a progress bar says little about whether the
codebooks are learning. The monitor is a ``train`` callback: show it, pass it, and four charts
(loss, reconstruction per codebook, share of codes used, dead and revived codes) grow as the run
goes, with the latest figures written out under them.

It sends at most one update per ``interval`` seconds (the view redraws no faster), and always the
last one when training ends, so even a log every step costs the run little
(``benchmarks/monitor_overhead.py`` measures it). Several ``train`` calls in a row (the recipe's
phases) continue one x axis, with a mark where each run began. In several processes only the main
process calls callbacks, so only rank 0 reports.
"""

from __future__ import annotations

import html
import math
import time
from typing import Any

import numpy as np
import pandas as pd
import traitlets

from ..errors import CodebookError
from ..names import as_real
from .base import STATIC, Array, Real, WidgetBase

__all__ = ["TrainingMonitor"]

_WAITING = "waiting for train(..., callbacks=[monitor])"


_CODE_FIGURES = ("reconstruction", "used_share", "dead", "revived")


def _codebooks_ran(metrics: dict[str, Any]) -> bool:
    return any(name.startswith("reconstruction/") for name in metrics)


def _drawn(metrics: dict[str, Any]) -> dict[str, float]:
    """The figures drawn (lr, seconds and the summed reconstruction go in the text line only). While
    the codebooks do not snap (the recipe's base phase, ``codebooks_disabled()``), no code is hit,
    so used, dead and revived would only report that: they are left out."""
    names = ["loss", "lm_loss"]
    if _codebooks_ran(metrics):
        names += ["used_share", "dead", "revived"] + [n for n in metrics if n.startswith("reconstruction/")]
    return {name: float(metrics[name]) for name in names if name in metrics}


class TrainingMonitor(WidgetBase):
    """Show it, then ``train(model, data, config, callbacks=[monitor])`` in the same cell (or a later one).

    ``history`` holds every metrics dict it received, as a DataFrame; ``reset()`` starts it afresh.
    """

    _esm = STATIC / "monitor.js"
    steps = Array("<f4")  # the x of each point; a later run continues after the last step of the one before
    values = Array("<f4", ndim=2)  # (points, series); NaN where a series had no value at that point
    series = traitlets.List(traitlets.Unicode()).tag(sync=True)  # the name of each column of ``values``
    run_starts = Array("<f4")  # the x where each later run began
    latest = traitlets.Unicode("").tag(sync=True)  # the newest figures as text
    state = traitlets.Unicode(_WAITING).tag(sync=True)
    interval = Real(0.25)  # seconds between updates sent to the view, at least (the kernel's alone)

    def __init__(self, interval: float = 0.25) -> None:
        try:
            seconds = as_real(interval)
        except (TypeError, ValueError):
            seconds = -1.0
        if not 0 <= seconds <= 60:
            raise CodebookError(f"interval={interval!r} is not valid; give seconds between 0 and 60, such as 0.25.")
        super().__init__(interval=seconds)
        self._records: list[dict[str, Any]] = []
        self._columns: dict[str, list[float]] = {}
        self._x: list[float] = []
        self._starts: list[float] = []
        self._offset = 0.0
        self._sent = -math.inf

    # -------------------------------------------------------------- the callback
    def __call__(self, metrics: dict[str, Any]) -> None:
        if not isinstance(metrics, dict) or "step" not in metrics:
            raise CodebookError(
                f"TrainingMonitor takes the metrics dicts train() logs (with a 'step'); got {metrics!r}. "
                "Pass the monitor itself: train(..., callbacks=[monitor])."
            )
        step = float(metrics["step"])
        if self._records and step <= float(self._records[-1]["step"]):  # a new run: continue the axis
            self._offset = self._x[-1]
            self._starts.append(self._offset)
        self._x.append(self._offset + step)
        self._records.append(dict(metrics))
        for name, value in _drawn(metrics).items():
            self._columns.setdefault(name, [math.nan] * (len(self._x) - 1)).append(value)
        for column in self._columns.values():
            if len(column) < len(self._x):
                column.append(math.nan)
        # the state goes out in the same message as the figures, so no view says one without the other
        with self.hold_sync():
            self.state = "training"
            if time.monotonic() - self._sent >= self.interval:
                self._push()

    def finish(self, error: BaseException | None) -> None:
        """What ``train`` calls when it ends: the last figures go out, and the state says how it ended.

        Both travel in one message: sent apart, a view could say "finished at step 150" over a chart
        that still ends at 149."""
        step = int(self._records[-1]["step"]) if self._records else 0
        with self.hold_sync():
            if error is None:
                self.state = f"finished at step {step}"
            elif isinstance(error, KeyboardInterrupt):
                self.state = f"stopped at step {step} (interrupted)"
            else:
                self.state = f"stopped at step {step} by {type(error).__name__}: {error}"
            self._push()

    def reset(self) -> None:
        """Forget every run (the next ``train`` starts a fresh chart)."""
        self._records, self._columns, self._x, self._starts = [], {}, [], []
        self._offset, self._sent = 0.0, -math.inf
        with self.hold_sync():
            self._push()
            self.state = _WAITING

    # ------------------------------------------------------------------ reading
    @property
    def history(self) -> pd.DataFrame:
        """Every metrics dict received, one row each, with ``x`` (the step on the monitor's axis)."""
        return pd.DataFrame(self._records).assign(x=self._x) if self._records else pd.DataFrame()

    def _push(self) -> None:
        names = list(self._columns)
        table = np.array([self._columns[n] for n in names], dtype="<f4").T.reshape(len(self._x), len(names))
        with self.hold_sync():
            self.series = names
            self.steps = np.asarray(self._x, dtype="<f4")
            self.values = table
            self.run_starts = np.asarray(self._starts, dtype="<f4")
            self.latest = _latest_text(self._records[-1]) if self._records else ""
        self._sent = time.monotonic()

    def __repr__(self) -> str:
        return f"TrainingMonitor({self.state}; {self.latest or 'no figures yet'})"

    def _fallback_html(self) -> str:
        return f"<pre>{html.escape(repr(self))}</pre>"


def _latest_text(metrics: dict[str, Any]) -> str:
    parts = [f"step {int(metrics['step'])}"]
    if not _codebooks_ran(metrics):
        metrics = {name: value for name, value in metrics.items() if name not in _CODE_FIGURES}
        parts.append("codebooks off")
    for name, label, fmt in (
        ("loss", "loss", "{:.4f}"),
        ("lm_loss", "LM loss", "{:.4f}"),
        ("reconstruction", "reconstruction", "{:.4f}"),
        ("used_share", "codes used", "{:.1%}"),
        ("dead", "dead", "{:,}"),
        ("revived", "revived", "{:,}"),
        ("lr", "lr", "{:.2e}"),
        ("seconds", "time", "{:.1f} s"),
    ):
        if name in metrics:
            parts.append(f"{label} {fmt.format(metrics[name])}")
    return " \u00b7 ".join(parts)
