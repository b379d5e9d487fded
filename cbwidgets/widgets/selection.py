"""One selected code, held twice: ``selected_at`` ([codebook, id], what a click in the view sets) and
``selected`` (its written name, what Python reads and sets). Each follows the other, so a click and
``widget.select("1.mlp.173")`` do the same thing; shared by every view where a code can be clicked."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import traitlets

from ..errors import CodebookError
from ..names import CodebookNames
from .base import CodeTrait, WidgetBase, refusing

__all__ = ["CodeSelecting"]


class CodeSelecting(WidgetBase):
    """A view with one selectable code of ``self.codebooks`` (set before any selection)."""

    selected = CodeTrait()  # the selected code's name, '' for none
    selected_at = traitlets.List(traitlets.Int(), default_value=[]).tag(sync=True)  # [codebook, id]: what the view sets
    codebooks: CodebookNames
    _called: ClassVar[str] = "view"  # how errors name the widget ("heatmap")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.observe(lambda change: self._select_at(change["new"]), names="selected_at")

    def select(self, code: Any) -> None:
        """Select a code (any accepted form, ``"1.mlp.173"``, ``("1.mlp", 173)``), as a click would; ``""`` clears."""
        self.selected_at = [] if code == "" or code is None else list(self._parse(code))

    def on_select(self, callback: Callable[[str], Any]) -> None:
        """Call ``callback(code_name)`` on every selection; its errors show in the widget."""
        guarded = self.guarded(callback)
        self.observe(lambda change: guarded(change["new"]), names="selected")

    def _parse(self, code: Any) -> tuple[int, int]:
        try:
            return self.codebooks.parse_code(code)
        except CodebookError as err:
            raise CodebookError(f"{code!r} is not a code of this {self._called}: {err}") from None

    def _select_at(self, where: list[int]) -> None:
        self.selected = self.codebooks.code_name(*where) if where else ""

    @traitlets.validate("selected")
    @refusing
    def _canonical(self, proposal: dict[str, Any]) -> str:
        """``widget.selected = "layers.1.mlp.5"`` is taken as ``select`` takes it, and reads "1.mlp.5"."""
        value = proposal["value"]
        return self.codebooks.code_name(*self._parse(value)) if value else ""

    @traitlets.observe("selected")
    def _select_name(self, change: dict[str, Any]) -> None:
        self.select(change["new"])
