"""What every cbwidgets widget shares: the bundle, the wire, the request/answer handshake, errors.

- The wire: numbers travel as binary buffers. An ``Array`` trait holds a numpy array in Python
  (a torch tensor is moved to the CPU first) and reaches the view as ``{shape, dtype, data}`` with
  ``data`` a binary buffer; ``js/wire.js`` reads it. No widget converts arrays itself. Where a front
  end drops buffers (Colab), the widget's ``wire`` is ``"base64"`` and the bytes travel as text
  (``wire.py`` says when).
- The handshake: a view that wants the kernel to act sets the traits it changed and a new
  ``request`` number (and, for actions such as "reset", a ``command``) in one message. The widget
  answers every request, even one that changed nothing: ``answer(changed, command)`` brings its
  results up to date, then ``answered`` is set to the request and ``revision`` counts up. The
  view paints only when ``answered`` has caught up with the last request it sent. Traits set from
  Python get the same answer (a new ``revision``), so a view always shows what the kernel computed.
- Errors: an exception in an answer or a callback is shown in the widget (``error``) instead of
  vanishing into the kernel's log.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import anywidget
import numpy as np
import traitlets

from ..errors import CodebookError
from ..names import as_integer, as_real
from .wire import checked_wire, decode, default_wire, encode

__all__ = [
    "STATIC",
    "Array",
    "CodeGridWidget",
    "CodeListTrait",
    "CodeTrait",
    "Integer",
    "Real",
    "RefusedValue",
    "WidgetBase",
    "as_array",
    "refusing",
]

STATIC = Path(__file__).parent / "static"
_HANDSHAKE = ("request", "command")


def as_array(values: Any, dtype: str) -> np.ndarray:
    """The one converter to what crosses the wire: a contiguous little-endian array on the CPU."""
    if hasattr(values, "detach"):  # a torch tensor, perhaps on a GPU
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=dtype, order="C")


def _to_json(array: np.ndarray, widget: Any) -> dict[str, Any]:
    return encode(array, getattr(widget, "wire", "binary"))


def _from_json(value: Any, _widget: Any) -> np.ndarray:
    return decode(value)


class Array(traitlets.TraitType[np.ndarray, Any]):
    """A numpy array of one dtype and number of dimensions, sent to the view as a binary buffer
    (or as base64 text where the widget's ``wire`` says so)."""

    info_text = "an array"

    def __init__(self, dtype: str, ndim: int = 1, **kwargs: Any) -> None:
        self.dtype, self.ndim = dtype, ndim
        super().__init__(default_value=np.zeros((0,) * ndim, dtype=dtype), **kwargs)
        self.tag(sync=True, to_json=_to_json, from_json=_from_json)

    def validate(self, obj: Any, value: Any) -> np.ndarray:
        array = as_array(value, self.dtype)
        if array.ndim != self.ndim:
            raise traitlets.TraitError(f"{self.name} must have {self.ndim} dimension(s); got shape {array.shape}.")
        return array


class CodeTrait(traitlets.Any):
    """One code, held in its written form ("1.mlp.5"; "" for none). It takes any form the model takes
    (``("layers.1.mlp", np.int64(5))``): the widget's validator writes it, so a Unicode trait's type
    check must not refuse the tuple first."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("", **kwargs)
        self.tag(sync=True)


class CodeListTrait(traitlets.List):
    """Several codes, each held in its written form; takes any forms, as ``CodeTrait`` does."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(traitlets.Any(), **kwargs)
        self.tag(sync=True)


class RefusedValue(CodebookError, traitlets.TraitError):
    """A value a widget's trait refuses. A CodebookError to the user's code; a TraitError to traitlets,
    which then undoes the whole message from the view that carried it (a plain exception would leave
    the refused value set)."""


_Validator = Callable[[Any, dict[str, Any]], Any]


def refusing(validator: _Validator) -> _Validator:
    """Wrap a trait validator so that its CodebookError becomes a RefusedValue."""

    @functools.wraps(validator)
    def run(widget: Any, proposal: dict[str, Any]) -> Any:
        try:
            return validator(widget, proposal)
        except RefusedValue:
            raise
        except CodebookError as err:
            raise RefusedValue(str(err)) from None

    return run


def _library_number(trait: traitlets.TraitType[Any, Any], value: Any, convert: Callable[[Any], Any], kind: str) -> Any:
    """``value`` converted as the library converts numbers (numpy and torch scalars too), or refused."""
    try:
        return convert(value)
    except (TypeError, ValueError):
        raise RefusedValue(f"{trait.name}={value!r} is not valid; give {kind}.") from None


class Integer(traitlets.Int):
    """An int trait that also takes the numpy and torch integers the library hands out (stored as int)."""

    def validate(self, obj: Any, value: Any) -> Any:
        return super().validate(obj, _library_number(self, value, as_integer, "a whole number"))


class Real(traitlets.Float):
    """A float trait that also takes numpy and torch numbers (stored as a finite Python float)."""

    def validate(self, obj: Any, value: Any) -> Any:
        return super().validate(obj, _library_number(self, value, as_real, "a finite number"))


class WidgetBase(anywidget.AnyWidget):
    """The shared traits and the handshake; a widget lists the traits whose change needs an answer
    in ``_answers_to`` and computes the answer in ``answer``."""

    _css = STATIC / "style.css"
    error = traitlets.Unicode("").tag(sync=True)
    request = traitlets.Int(0).tag(sync=True)  # the view numbers its requests
    command = traitlets.Unicode("").tag(sync=True)  # an action the view's latest request asks for
    answered = traitlets.Int(0).tag(sync=True)  # the latest request of the view's that was answered
    revision = traitlets.Int(0).tag(sync=True)  # counts answers, to the view's requests or to Python
    choices = traitlets.Dict().tag(sync=True)  # each setting's valid values, for the view's controls
    # how Array traits travel: "binary" buffers, or "base64" text where a front end drops buffers (Colab)
    wire = traitlets.Unicode()

    _answers_to: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._answering = False
        self._callback_error = ""  # the message a guarded callback last put in the error box
        if self._answers_to:
            self.observe(lambda change: self._respond({change["name"]}), names=list(self._answers_to))

    @traitlets.default("wire")
    def _default_wire(self) -> str:
        return default_wire()

    @traitlets.validate("wire")
    @refusing
    def _valid_wire(self, proposal: dict[str, Any]) -> str:
        return checked_wire(proposal["value"], f"wire={proposal['value']!r}")

    @traitlets.observe("wire")
    def _resend_arrays(self, change: dict[str, Any]) -> None:
        """A view already shown gets every array again in the new form."""
        arrays = [name for name, trait in self.traits(sync=True).items() if isinstance(trait, Array)]
        if arrays and getattr(self, "comm", None) is not None:  # traitlets calls this only on a change
            self.send_state(arrays)

    # ------------------------------------------------------------ the handshake
    def answer(self, changed: set[str], command: str) -> None:
        """Bring the results up to date after ``changed`` traits changed (and do ``command``)."""

    def set_state(self, sync_data: dict[str, Any]) -> None:
        """What the view sends: a request is answered once, after all its changes are in."""
        if "request" not in sync_data:
            super().set_state(sync_data)
            return
        failed = None
        self._answering = True  # the observers of the changes below wait for the one answer
        try:
            super().set_state(sync_data)
        except Exception as err:  # a value the traits refuse (all changes are undone): say so, and answer
            failed = err
            self.request = sync_data["request"]
        finally:
            self._answering = False
        changed = set(sync_data) - set(_HANDSHAKE)
        self._respond(changed, self.command, from_view=True, failed=failed)

    def _respond(
        self, changed: set[str], command: str = "", from_view: bool = False, failed: Exception | None = None
    ) -> None:
        if self._answering:  # a change made while answering is part of that answer
            return
        self._answering = True
        try:
            with self.hold_sync():
                if failed is not None:
                    self.error = _message(failed)
                else:
                    with self.reporting_errors():
                        self.answer(changed, command)
                if from_view:
                    self.answered = self.request
                self.revision += 1
        finally:
            self._answering = False

    @contextmanager
    def showing(self) -> Iterator[None]:
        """Set traits that show state kept elsewhere (a model's label, say): not edits to act on, so
        the traits' own observers do not answer them."""
        answering, self._answering = self._answering, True
        try:
            yield
        finally:
            self._answering = answering

    # ---------------------------------------------------------------- errors
    @contextmanager
    def reporting_errors(self) -> Iterator[None]:
        """Run a callback's body; an exception is shown in the widget instead of vanishing."""
        try:
            yield
        except Exception as err:
            self.error = _message(err)
        else:
            self.error = ""

    def guarded(self, callback: Callable[..., Any]) -> Callable[..., None]:
        """Wrap a callback so that its exceptions land in the widget's error box. A callback that then
        succeeds clears only a callback's message, never one about the widget's own state (a bad regex
        stays reported while a row of the last good table is clicked)."""

        def run(*args: Any, **kwargs: Any) -> None:
            try:
                callback(*args, **kwargs)
            except Exception as err:
                self.error = self._callback_error = _message(err)
            else:
                if self.error and self.error == self._callback_error:
                    self.error = ""

        return run

    # -------------------------------------------------------------- fallbacks
    def _fallback_html(self) -> str:
        """A static HTML view for front ends that cannot render widgets (overridden per widget)."""
        return ""

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None:  # no front end to show a widget in
            return None
        data, meta = bundle if isinstance(bundle, tuple) else (bundle, {})
        data = dict(data)
        data["text/plain"] = repr(self)
        html = self._fallback_html()
        if html:
            data["text/html"] = html
        return data, meta

    def to_html(self, path: str | None = None) -> str:
        """A self-contained read-only HTML page of this view (no kernel, no network); written to ``path``."""
        from .export import export_html

        return export_html(self, path, title=type(self).__name__)


def _message(err: Exception) -> str:
    return f"{type(err).__name__}: {err}"


class CodeGridWidget(WidgetBase):
    """A widget showing one prompt's codes: token strings, codebook labels and names, and the ids."""

    tokens = traitlets.List(traitlets.Unicode()).tag(sync=True)
    labels = traitlets.List(traitlets.Unicode()).tag(sync=True)
    names = traitlets.List(traitlets.Unicode()).tag(sync=True)
    ids = Array("<i4", ndim=3)  # (tokens, codebooks, k); -1 = an empty slot

    @property
    def shape(self) -> tuple[int, int, int]:
        t, n, k = self.ids.shape
        return (t, n, k)
