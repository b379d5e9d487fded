"""AblationPanel: switch a prompt's codes off or scale them, and see the predictions move.

Every change in the view (a toggle, a slider, the mode) reaches Python as a new ``edits`` value;
the panel re-runs the model in the kernel under those interventions and sends back the new
next-token probabilities and, per token, how the probability of the token that actually came
next changed. Requests are numbered so the view paints only the latest answer.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
import traitlets

from ..errors import CodebookError, check_choice
from ..interventions import Ablate, Intervention, Scale
from ..model import CodebookModel
from .base import STATIC, CodeGridWidget
from .export import export_html
from .text import token_strings

__all__ = ["AblationPanel", "ablation_panel"]

MODES = ("substitute", "drop")
WHERE = ("everywhere", "token")


def _f32(values: Any) -> bytes:
    return np.ascontiguousarray(np.asarray(values, dtype="<f4")).tobytes()


class AblationPanel(CodeGridWidget):
    """The codes at a chosen token, each with a toggle and a scale slider (0 = ablated, 1 = as is,
    up to 2); the next-token predictions before and after; per-token change marks on the prompt.

    ``edits`` is a list of ``{"code": "1.mlp.173", "scale": 0.0}``; set it from Python too.
    """

    _esm = STATIC / "ablation.js"
    position = traitlets.Int(0).tag(sync=True)  # the token whose codes and next-token prediction are shown
    edits = traitlets.List(traitlets.Dict()).tag(sync=True)
    mode = traitlets.Unicode("substitute").tag(sync=True)
    where = traitlets.Unicode("everywhere").tag(sync=True)
    request = traitlets.Int(0).tag(sync=True)  # numbered by the view; echoed in ``answered``
    answered = traitlets.Int(0).tag(sync=True)
    top_tokens = traitlets.List(traitlets.Unicode()).tag(sync=True)
    p_before = traitlets.Bytes(b"").tag(sync=True)  # float32, one per top token
    p_after = traitlets.Bytes(b"").tag(sync=True)
    next_before = traitlets.Bytes(b"").tag(sync=True)  # float32 (tokens,): p(actual token | prefix); NaN at 0
    next_after = traitlets.Bytes(b"").tag(sync=True)
    status = traitlets.Unicode("").tag(sync=True)

    def __init__(self, model: CodebookModel, prompt: Any, top: int = 10, position: int = -1) -> None:
        ids = model.as_input_ids(prompt)
        if ids.shape[0] != 1:
            raise CodebookError(f"the panel shows one prompt; got a batch of {ids.shape[0]}. Pass one text.")
        if not model.attached:
            raise CodebookError("this model has no codebooks; attach(...) or load a model with codebooks first.")
        self._model = model
        self._ids = ids
        self._top = top
        with torch.no_grad():
            out = model(ids)
        self._base_logp = out.logits[0].float().log_softmax(-1)
        t = ids.shape[1]
        if not -t <= position < t:
            raise CodebookError(f"position={position} is outside the prompt's {t} tokens.")
        super().__init__(
            tokens=token_strings(model.tokenizer, ids[0].tolist()),
            labels=list(out.codes.labels),
            names=list(out.codes.names),
            position=position % t,
            **self.code_traits(out.codes.ids[0].numpy()),
        )
        self.observe(self._on_change, names=["edits", "mode", "where", "position"])
        self._rerun()

    # ------------------------------------------------------------ running
    def interventions(self) -> list[Intervention]:
        """The edits as intervention values (what the panel runs the model under)."""
        check_choice("mode", self.mode, MODES)
        check_choice("where", self.where, WHERE)
        positions = [self.position] if self.where == "token" else None
        out: list[Intervention] = []
        for edit in self.edits:
            if "code" not in edit:
                raise CodebookError(f"edit {edit!r} has no 'code'; give {{'code': '1.mlp.173', 'scale': 0.0}}.")
            scale = float(edit.get("scale", 0.0))
            if not 0.0 <= scale <= 2.0:
                raise CodebookError(f"scale {scale} for {edit['code']} is outside 0..2 (0 = ablated, 1 = as is).")
            if scale == 0.0:
                out.append(Ablate(edit["code"], positions, self.mode))
            elif scale != 1.0:
                out.append(Scale(edit["code"], scale, positions))
        return out

    def _on_change(self, _change: dict[str, Any]) -> None:
        with self.reporting_errors():
            self._rerun()

    def _rerun(self) -> None:
        start = time.perf_counter()
        interventions = self.interventions()
        with torch.no_grad(), self._model.intervene(*interventions):
            logits = self._model(self._ids).logits[0]
        logp = logits.float().log_softmax(-1)
        p = self.position
        before, after = self._base_logp[p].exp(), logp[p].exp()
        top = torch.cat([before.topk(self._top).indices, after.topk(self._top).indices]).unique()
        top = top[after[top].argsort(descending=True)]
        actual = self._ids[0, 1:]
        steps = torch.arange(actual.shape[0])
        nan = torch.tensor([float("nan")])
        with self.hold_sync():
            self.top_tokens = token_strings(self._model.tokenizer, top.tolist())
            self.p_before = _f32(before[top])
            self.p_after = _f32(after[top])
            self.next_before = _f32(torch.cat([nan, self._base_logp[steps, actual].exp()]))
            self.next_after = _f32(torch.cat([nan, logp[steps, actual].exp()]))
            ms = (time.perf_counter() - start) * 1000
            edited = ", ".join(f"{e['code']}x{float(e.get('scale', 0)):g}" for e in self.edits) or "none"
            self.status = f"edits: {edited}; mode {self.mode}, {self.where}; ran in {ms:.0f} ms"
            self.answered = self.request

    def reset(self) -> None:
        """Back to the untouched model: no edits."""
        self.edits = []

    # ------------------------------------------------------------ reading
    @property
    def predictions(self) -> dict[str, tuple[float, float]]:
        """Top next tokens at ``position``: {token: (p before, p after)}."""
        before = np.frombuffer(self.p_before, dtype="<f4")
        after = np.frombuffer(self.p_after, dtype="<f4")
        return {t: (float(b), float(a)) for t, b, a in zip(self.top_tokens, before, after, strict=True)}

    def __repr__(self) -> str:
        t, n, _ = self.shape
        return f"AblationPanel(tokens={t}, codebooks={n}, position={self.position}, edits={len(self.edits)})"

    def _fallback_html(self) -> str:
        import html

        rows = "".join(
            f"<tr><td><code>{html.escape(tok)}</code></td><td>{b:.3f}</td><td>{a:.3f}</td></tr>"
            for tok, (b, a) in self.predictions.items()
        )
        return (
            f"<p>Next token after position {self.position} ({html.escape(self.status)})</p>"
            "<table><thead><tr><th>token</th><th>p before</th><th>p after</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
        )

    def to_html(self, path: str | None = None) -> str:
        """A self-contained read-only HTML page of this view."""
        return export_html(self, path, title="AblationPanel")


def ablation_panel(model: CodebookModel, prompt: Any, top: int = 10) -> AblationPanel:
    """``cbwidgets.ablation_panel(model, "text")``: click codes off and watch the predictions move."""
    return AblationPanel(model, prompt, top=top)
