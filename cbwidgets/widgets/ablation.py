"""AblationPanel: switch a prompt's codes off or scale them, and see the predictions move.

Every change in the view (a toggle, a slider, the mode, a token clicked, Reset) is a request; the
panel re-runs the model in the kernel under the edits and answers with the new next-token
probabilities and, per token, how the probability of the token that actually came next changed.
Edits set from Python are answered the same way.
"""

from __future__ import annotations

import html
import time
from typing import Any

import torch
import traitlets

from ..errors import CodebookError, check_choice
from ..interventions import ABLATION_MODES, Ablate, Intervention, Scale
from ..model import CodebookModel
from ..names import as_real
from .base import STATIC, Array, CodeGridWidget, Integer, refusing
from .labelled import LabelledCodes, codes_in_grid
from .text import token_strings

__all__ = ["AblationPanel", "ablation_panel"]

WHERE = ("everywhere", "token")  # edit a code wherever it fires in the prompt, or only at the shown token
_SCALES = (0.0, 2.0)


class AblationPanel(CodeGridWidget, LabelledCodes):
    """The codes at a chosen token, each with a toggle and a scale slider (0 = ablated, 1 = as is,
    up to 2); the next-token predictions before and after; per-token change marks on the prompt.

    ``edits`` is a list of ``{"code": "1.mlp.173", "scale": 0.0}`` (any code form the model takes;
    it reads back in the written form); set it from Python too, or call ``reset()``.
    """

    _esm = STATIC / "ablation.js"
    position = Integer(0).tag(sync=True)  # the token whose codes and next-token prediction are shown
    edits = traitlets.List(traitlets.Dict()).tag(sync=True)
    mode = traitlets.Unicode("substitute").tag(sync=True)
    where = traitlets.Unicode("everywhere").tag(sync=True)
    top_tokens = traitlets.List(traitlets.Unicode()).tag(sync=True)
    p_before = Array("<f4")  # one per top token
    p_after = Array("<f4")
    next_before = Array("<f4")  # (tokens,): p(actual token | prefix); NaN at 0
    next_after = Array("<f4")
    status = traitlets.Unicode("").tag(sync=True)

    _answers_to = ("edits", "mode", "where", "position")

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
            ids=out.codes.ids[0],
            position=position % t,
            choices={"mode": list(ABLATION_MODES), "where": list(WHERE)},
        )
        self._rerun()
        self.follow_labels(model.labels)

    # ------------------------------------------------------------ running
    @traitlets.validate("edits")
    @refusing
    def _valid_edits(self, proposal: dict[str, Any]) -> list[dict[str, Any]]:
        """Edits are held checked and in the written form, whoever sets them: the view and Python then
        compare them alike, and a code id given as a numpy or torch integer never reaches the wire."""
        return self._checked_edits(proposal["value"])

    def _checked_edits(self, edits: list[Any]) -> list[dict[str, Any]]:
        names = self._model.names
        out = []
        for edit in edits:
            if not isinstance(edit, dict) or "code" not in edit:
                raise CodebookError(f"edit {edit!r} has no 'code'; give {{'code': '1.mlp.173', 'scale': 0.0}}.")
            scale = as_scale(edit.get("scale", 0.0), edit["code"])
            out.append({"code": names.canonical(edit["code"]), "scale": scale})
        return out

    def interventions(self, edits: list[dict[str, Any]] | None = None) -> list[Intervention]:
        """The edits (the panel's own, or others given in any form) as the intervention values it runs under."""
        check_choice("mode", self.mode, ABLATION_MODES)
        check_choice("where", self.where, WHERE)
        positions = [self.position] if self.where == "token" else None
        out: list[Intervention] = []
        for edit in self.edits if edits is None else self._checked_edits(edits):
            if edit["scale"] == 0.0:
                out.append(Ablate(edit["code"], positions, self.mode))
            elif edit["scale"] != 1.0:
                out.append(Scale(edit["code"], edit["scale"], positions))
        return out

    def answer(self, changed: set[str], command: str) -> None:
        if command == "reset":
            self.edits = []
        self._rerun()

    def _rerun(self) -> None:
        start = time.perf_counter()
        edits = self.edits
        with torch.no_grad(), self._model.intervene(*self.interventions()):
            logits = self._model(self._ids).logits[0]
        logp = logits.float().log_softmax(-1)
        p = self.position
        before, after = self._base_logp[p].exp(), logp[p].exp()
        top = torch.cat([before.topk(self._top).indices, after.topk(self._top).indices]).unique()
        top = top[after[top].argsort(descending=True)]
        actual = self._ids[0, 1:]
        steps = torch.arange(actual.shape[0])
        nan = torch.tensor([float("nan")], device=logp.device)
        with self.hold_sync():
            self.top_tokens = token_strings(self._model.tokenizer, top.tolist())
            self.p_before = before[top]
            self.p_after = after[top]
            self.next_before = torch.cat([nan, self._base_logp[steps, actual].exp()])
            self.next_after = torch.cat([nan, logp[steps, actual].exp()])
            ms = (time.perf_counter() - start) * 1000
            self.status = f"edits: {self.edits_text(edits)}; mode {self.mode}, {self.where}; ran in {ms:.0f} ms"

    def _codes_shown(self) -> list[str]:
        return codes_in_grid(self._model.names, self.ids)

    def edits_text(self, edits: list[dict[str, Any]] | None = None) -> str:
        """The edits (the panel's own by default) in a few words: ``1.mlp.173x0, 2.3.5x1.5``."""
        return ", ".join(f"{e['code']}x{e['scale']:g}" for e in (self.edits if edits is None else edits)) or "none"

    def reset(self) -> None:
        """Back to the untouched model: no edits."""
        self.edits = []

    # ------------------------------------------------------------ reading
    @property
    def predictions(self) -> dict[str, tuple[float, float]]:
        """Top next tokens at ``position``: {token: (p before, p after)}."""
        pairs = zip(self.top_tokens, self.p_before.tolist(), self.p_after.tolist(), strict=True)
        return {t: (b, a) for t, b, a in pairs}

    def __repr__(self) -> str:
        t, n, _ = self.shape
        return f"AblationPanel(tokens={t}, codebooks={n}, position={self.position}, edits={len(self.edits)})"

    def _fallback_html(self) -> str:
        rows = "".join(
            f"<tr><td><code>{html.escape(tok)}</code></td><td>{b:.3f}</td><td>{a:.3f}</td></tr>"
            for tok, (b, a) in self.predictions.items()
        )
        return (
            f"<p>Next token after position {self.position} ({html.escape(self.status)})</p>"
            "<table><thead><tr><th>token</th><th>p before</th><th>p after</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
        )


def as_scale(value: Any, code: Any) -> float:
    """A scale in 0..2 (0 = ablated, 1 = as is), given as any real number the library hands out."""
    try:
        scale = as_real(value)
    except (TypeError, ValueError):
        raise CodebookError(
            f"scale {value!r} for {code!r} is not one finite number; give one in 0..2 (0 = ablated, 1 = as is)."
        ) from None
    if not _SCALES[0] <= scale <= _SCALES[1]:
        raise CodebookError(f"scale {scale:g} for {code!r} is outside 0..2 (0 = ablated, 1 = as is).")
    return scale


def ablation_panel(model: CodebookModel, prompt: Any, top: int = 10) -> AblationPanel:
    """``cbwidgets.ablation_panel(model, "text")``: click codes off and watch the predictions move."""
    return AblationPanel(model, prompt, top=top)
