"""Names for codebooks and codes that users read in tables and paste back into interventions.

A grouped codebook module holds one codebook per group; each is named on its own:
- full name: the site name, plus ``.{group}`` when the site has several groups
  (``layers.1.mlp``, ``layers.0.attn_preproj.3``);
- label, the paper's short form: ``{layer}.{head}`` for per-head codebooks, ``{layer}.{kind}``
  otherwise (``0.3``, ``1.mlp``).
A code is ``{label}.{code}`` (``0.3.17``: layer 0, head 3, code 17; ``1.mlp.512``). Where a layer has
a single codebook, ``{layer}.{code}`` (``1.512``) is accepted too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .errors import CodebookError, choices

__all__ = ["CodeRef", "CodebookName", "CodebookNames"]

CodeRef = str | tuple[str, int]


@dataclass(frozen=True)
class CodebookName:
    site: str
    kind: str
    layer: int
    group: int | None  # None when the site has one group
    per_head: bool
    num_codes: int

    @property
    def name(self) -> str:
        return self.site if self.group is None else f"{self.site}.{self.group}"

    @property
    def label(self) -> str:
        if self.group is None:
            return f"{self.layer}.{self.kind}"
        if self.per_head:
            return f"{self.layer}.{self.group}"
        return f"{self.layer}.{self.kind}.{self.group}"


class CodebookNames:
    """The ordered codebooks of one model, and the parsing of user references to them."""

    def __init__(self, units: Sequence[CodebookName]) -> None:
        self.units = tuple(units)
        self._by_key: dict[str, int] = {}
        for i, unit in enumerate(self.units):
            self._by_key[unit.name] = i
            self._by_key[unit.label] = i

    def __len__(self) -> int:
        return len(self.units)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(u.name for u in self.units)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(u.label for u in self.units)

    def code_name(self, index: int, code: int) -> str:
        return f"{self.units[index].label}.{code}"

    def _none_attached(self) -> CodebookError:
        return CodebookError("this model has no codebooks attached; call attach(...) first.")

    def resolve(self, ref: str) -> int:
        """Index of one codebook from its full name, its label, or a layer with one codebook."""
        if not self.units:
            raise self._none_attached()
        if isinstance(ref, str) and ref in self._by_key:
            return self._by_key[ref]
        if isinstance(ref, str) and ref.isdigit():
            at_layer = [i for i, u in enumerate(self.units) if u.layer == int(ref)]
            if len(at_layer) == 1:
                return at_layer[0]
            if at_layer:
                raise CodebookError(
                    f"layer {ref} has {len(at_layer)} codebooks, so {ref!r} is ambiguous; name one of "
                    f"{choices(self.units[i].label for i in at_layer)}."
                )
        raise CodebookError(f"unknown codebook {ref!r}; this model's codebooks are {choices(self.labels)}.")

    def select(self, spec: str | Iterable[str] | None) -> list[int]:
        """Codebooks chosen by a spec: None/'all', a site kind, a site name, a name, a label, or a list."""
        if not self.units:
            raise self._none_attached()
        if spec is None or spec == "all":
            return list(range(len(self.units)))
        if isinstance(spec, str):
            hits = [i for i, u in enumerate(self.units) if spec in (u.kind, u.site)]
            return hits or [self.resolve(spec)]
        out: list[int] = []
        for item in spec:
            out.extend(i for i in self.select(item) if i not in out)
        return out

    def parse_code(self, ref: CodeRef) -> tuple[int, int]:
        """(codebook index, code id) from ``'0.3.17'``, ``'layers.1.mlp.512'`` or ``('1.mlp', 512)``."""
        if isinstance(ref, tuple) and len(ref) == 2:
            book, code = ref
            index = self.resolve(str(book))
        elif isinstance(ref, str) and "." in ref:
            book, _, code_text = ref.rpartition(".")
            if not code_text.lstrip("-").isdigit():
                raise CodebookError(
                    f"code {ref!r} does not end in a code number; write it as '<codebook>.<code>', "
                    f"for example {self.code_name(0, 0) if self.units else '1.mlp.512'!r}."
                )
            index, code = self.resolve(book), int(code_text)
        else:
            example = self.code_name(0, 0) if self.units else "1.mlp.512"
            raise CodebookError(
                f"code {ref!r} is not valid; write '<codebook>.<code>' like {example!r}, or a tuple (codebook, code)."
            )
        if isinstance(code, bool) or not isinstance(code, int):
            raise CodebookError(f"code id {code!r} in {ref!r} is not an integer.")
        size = self.units[index].num_codes
        if not 0 <= code < size:
            raise CodebookError(
                f"code {code} is out of range for codebook {self.units[index].label!r}, which has codes 0..{size - 1}."
            )
        return index, code
