"""SteeringPanel: pick a topic's codes, hold them on, and watch default and steered stories grow.

Generation runs in a background thread so the kernel stays free to hear the Stop button; the
default and the steered samples take turns on the model (``generate.stream`` enters each one's
interventions per forward only) and the texts are sent to the view as they grow, a few times a
second. While the panel generates, the model is busy: other cells using it would see the
steering interventions.
"""

from __future__ import annotations

import html
import threading
import time
from typing import Any

import traitlets

from ..errors import CodebookError, check_choice, check_positive_int
from ..generate import stream
from ..index import CodeIndex
from ..model import CodebookModel
from ..steering import RULES, cut_at_end, steering, topic_codes
from .base import STATIC, Array, CodeListTrait, Integer, Real, refusing
from .labelled import LabelledCodes

__all__ = ["SteeringPanel", "steering_panel"]

_SEND_EVERY_S = 0.1  # text updates per second to the view: enough to watch, few enough messages


class SteeringPanel(LabelledCodes):
    """Prompt, topic word -> candidate codes (with precision) to tick, rule, strength, sampling
    settings; Generate shows default and steered samples side by side as tokens arrive; Stop ends it.

    From code: set the traits (``panel.chosen = [...]``) and call ``panel.generate()`` (waits) or
    ``panel.start()`` / ``panel.stop()`` / ``panel.wait()``.
    """

    _esm = STATIC / "steering.js"
    prompt = traitlets.Unicode("Once upon a time,").tag(sync=True)
    topic = traitlets.Unicode("").tag(sync=True)  # a word or regex; finds candidates and is highlighted
    candidates = traitlets.List(traitlets.Unicode()).tag(sync=True)
    precision = Array("<f4")  # per candidate
    coverage = Array("<f4")  # per candidate
    chosen = CodeListTrait()
    rule = traitlets.Unicode("replace").tag(sync=True)
    strength = Real(1.0).tag(sync=True)
    temperature = Real(1.0).tag(sync=True)
    seed = Integer(0).tag(sync=True)
    samples = Integer(2).tag(sync=True)
    max_new_tokens = Integer(120).tag(sync=True)
    running = traitlets.Bool(False).tag(sync=True)
    default_texts = traitlets.List(traitlets.Unicode()).tag(sync=True)
    steered_texts = traitlets.List(traitlets.Unicode()).tag(sync=True)
    status = traitlets.Unicode("").tag(sync=True)

    def __init__(
        self,
        model: CodebookModel,
        index: CodeIndex | None = None,
        prompt: str = "Once upon a time,",
        topic: str = "",
        codes: list[str] | None = None,
        codebooks: str | list[str] | None = None,
        picks: int = 8,
        **settings: Any,
    ) -> None:
        if model.tokenizer is None:
            raise CodebookError("the panel shows text; give the model a tokenizer (CodebookModel(..., tokenizer)).")
        if not model.attached:
            raise CodebookError("this model has no codebooks; attach(...) or load a model with codebooks first.")
        unknown = set(settings) - {"rule", "strength", "temperature", "seed", "samples", "max_new_tokens"}
        if unknown:
            raise CodebookError(
                f"unknown settings {sorted(unknown)}; the panel takes rule, strength, temperature, seed, samples "
                f"and max_new_tokens."
            )
        self._model = model
        self._index = index
        self._codebooks = codebooks
        self._picks = picks
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        super().__init__(prompt=prompt, choices={"rule": list(RULES)}, **settings)
        self.topic = topic
        if codes is not None:
            self.chosen = list(codes)
        if codes is not None or not topic:
            self.status = f"{len(self.chosen)} codes ticked" if self.chosen else "type a topic word to find codes"
        self.follow_labels(model.labels)

    _answers_to = ("topic",)

    def answer(self, changed: set[str], command: str) -> None:
        """A new topic finds its candidates; Generate and Stop start and stop the sampling."""
        if "topic" in changed:
            self._find_candidates()
        if command == "generate":
            self.start()
        elif command == "stop":
            self.stop()

    @traitlets.validate("chosen")
    @refusing
    def _written_form(self, proposal: dict[str, Any]) -> list[str]:
        return [self._model.names.canonical(code) for code in proposal["value"]]

    # ------------------------------------------------------------ picking codes
    def _codes_shown(self) -> list[str]:
        return [*self.candidates, *self.chosen]

    @traitlets.observe("chosen")
    def _label_chosen(self, change: dict[str, Any]) -> None:
        self.refresh_labels()

    def _find_candidates(self) -> None:
        if not self.topic or self._index is None:
            if self.topic and self._index is None:
                raise CodebookError("no code index to search; pass index=CodeIndex.build(model, corpus).")
            with self.hold_sync():
                self.candidates, self.precision, self.coverage = [], [], []
            return
        k = min(cb.k for cb in self._model.attached.values())
        table = topic_codes(self._index, self.topic, self._codebooks, per_codebook=k, limit=24)
        with self.hold_sync():
            self.candidates = table["code"].tolist()
            self.precision, self.coverage = table["precision"], table["coverage"]
            self.chosen = self.candidates[: self._picks]
            self.refresh_labels()
            found = table.attrs["documents"]
            self.status = (
                f"{found} documents mention {self.topic!r}; {len(self.chosen)} codes ticked"
                if found
                else f"no document mentions {self.topic!r} twice; try another word"
            )

    # ------------------------------------------------------------ generating
    def _check(self) -> None:
        check_choice("rule", self.rule, RULES)
        check_positive_int("samples", self.samples)
        check_positive_int("max_new_tokens", self.max_new_tokens)
        if not self.chosen:
            raise CodebookError("no codes ticked; type a topic word to find codes, or set panel.chosen.")

    def start(self) -> None:
        """Start generating in the background (returns at once); the view shows the text as it grows."""
        if self._thread is not None and self._thread.is_alive():
            raise CodebookError("already generating; press Stop (or panel.stop()) first.")
        self._check()
        self._stop.clear()
        self.running = True
        self.error = ""
        self._thread = threading.Thread(target=self._generate, name="cbwidgets-steering", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask a running generation to stop after the current token."""
        self._stop.set()

    def wait(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def generate(self) -> SteeringPanel:
        """Generate and wait for the end (for code and tests); returns the panel to show it."""
        self.start()
        self.wait()
        if self.error:
            raise CodebookError(self.error)
        return self

    def _generate(self) -> None:
        with self.reporting_errors():
            try:
                self._stream()
            finally:
                self.running = False

    def _stream(self) -> None:
        model = self._model
        settings: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "num_samples": self.samples,
            "temperature": self.temperature,
            "seed": self.seed,
        }
        plain = stream(model, self.prompt, **settings)
        steered = stream(model, self.prompt, interventions=steering(self.chosen, self.rule, self.strength), **settings)
        ids: list[list[list[int]]] = [[[] for _ in range(self.samples)] for _ in range(2)]
        start = last = time.perf_counter()
        count = 0
        self.default_texts = [""] * self.samples
        self.steered_texts = [""] * self.samples
        try:
            for count, pair in enumerate(zip(plain, steered, strict=True), 1):
                for side, tokens in enumerate(pair):
                    for row, token in zip(ids[side], tokens.tolist(), strict=True):
                        row.append(token)
                if self._stop.is_set():
                    break
                now = time.perf_counter()
                if now - last >= _SEND_EVERY_S:
                    last = now
                    self._show(ids, f"generating: {count}/{self.max_new_tokens} tokens")
        finally:
            plain.close()
            steered.close()
        seconds = time.perf_counter() - start
        verb = "stopped after" if self._stop.is_set() else "generated"
        self._show(ids, f"{verb} {count} tokens x {self.samples} samples x 2 in {seconds:.1f} s")

    def _show(self, ids: list[list[list[int]]], status: str) -> None:
        """Send both sides' texts, each sample shown up to its story's end."""
        tok = self._model.tokenizer
        texts = [[tok.decode(cut_at_end(r, tok.eos_token_id), skip_special_tokens=True) for r in side] for side in ids]
        with self.hold_sync():
            self.default_texts, self.steered_texts = texts
            self.status = status

    # ------------------------------------------------------------ reading
    def __repr__(self) -> str:
        return (
            f"SteeringPanel(prompt={self.prompt!r}, topic={self.topic!r}, codes={len(self.chosen)}, "
            f"rule={self.rule!r}, strength={self.strength:g})"
        )

    def _fallback_html(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(a)}</td><td>{html.escape(b)}</td></tr>"
            for a, b in zip(self.default_texts, self.steered_texts, strict=False)
        )
        return (
            f"<p>{html.escape(repr(self))}: {html.escape(self.status)}</p>"
            f"<table><thead><tr><th>default</th><th>steered</th></tr></thead><tbody>{rows}</tbody></table>"
        )


def steering_panel(
    model: CodebookModel, index: CodeIndex | None = None, topic: str = "", **kwargs: Any
) -> SteeringPanel:
    """``cbwidgets.steering_panel(model, index, "dragon")``: steer stories towards a topic's codes."""
    return SteeringPanel(model, index, topic=topic, **kwargs)
