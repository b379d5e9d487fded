"""The one grammar for codebook and code names: what users read in tables and paste back anywhere.

A codebook (one group of a grouped codebook module is a codebook of its own) has
- a full name: the site name, plus ``.{group}`` when the site has several groups
  (``layers.1.mlp``, ``layers.0.attn_preproj.3``);
- a label, the paper's short form: ``{layer}.{head}`` for per-head codebooks, ``{layer}.{kind}``
  otherwise (``0.3``, ``1.mlp``), ``{layer}.{kind}.{group}`` for other grouped sites.

A code is ``{codebook}.{id}`` where the codebook is given by its label or its full name
(``0.3.17``: layer 0, head 3, code 17; ``layers.1.mlp.512``), or ``({codebook}, id)``; where a layer
has a single codebook, ``{layer}.{id}`` (``1.512``) is accepted too. Ids may be Python, numpy or
torch integers. ``CodebookNames.parse_code`` is the only reader of these forms and
``CodebookNames.code_name`` the only writer (``{label}.{id}``); ``-1`` (``EMPTY``) marks "no code"
in every array of ids the package hands out.
"""

from __future__ import annotations

import operator
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, SupportsIndex

from .errors import CodebookError, choices
from .scalars import as_integer, as_real

__all__ = [
    "EMPTY",
    "CodeRef",
    "CodebookName",
    "CodebookNames",
    "as_integer",
    "as_real",
    "code_id",
    "code_refs",
    "is_one_code",
]

EMPTY = -1  # an empty slot: a dropped code, a codebook switched off, k beyond a codebook's own

CodeRef = str | tuple[str, int]

_LABEL = re.compile(r"^(\d+)\.(?:(\d+)|([a-z_]+)(?:\.(\d+))?)$")  # 0.3 | 1.mlp | 1.mlp.2


@dataclass(frozen=True)
class CodebookName:
    """One codebook's names and where it sits; ``site`` is None outside a model (a bare heatmap)."""

    name: str
    label: str
    num_codes: int | None = None  # None when unknown: ids are then not range-checked
    layer: int | None = None
    kind: str | None = None
    site: str | None = None
    group: int = 0

    @classmethod
    def at(cls, site: str, kind: str, layer: int, group: int, groups: int, num_codes: int) -> CodebookName:
        """The names of group ``group`` of ``groups`` at a model site (the one writer of codebook names)."""
        if groups == 1:
            return cls(site, f"{layer}.{kind}", num_codes, layer, kind, site, 0)
        label = f"{layer}.{group}" if kind == "attn_preproj" else f"{layer}.{kind}.{group}"
        return cls(f"{site}.{group}", label, num_codes, layer, kind, site, group)

    @classmethod
    def from_label(cls, label: str, name: str | None = None, num_codes: int | None = None) -> CodebookName:
        """A codebook known only by its label (and perhaps its full name), as a bare array view has it."""
        match = _LABEL.match(label)
        if match is None:
            return cls(name or label, label, num_codes)
        layer, head, kind, group = match.groups()
        if head is not None:
            kind, group = "attn_preproj", head
        site = f"layers.{layer}.{kind}"
        return cls(name or label, label, num_codes, int(layer), kind, site, int(group or 0))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CodebookName:
        return cls(**data)


class CodebookNames:
    """The ordered codebooks of a model (or of what was computed from it) and the parsing of
    references to them and to their codes. Every object that takes a code holds one."""

    def __init__(self, codebooks: Iterable[CodebookName]) -> None:
        self.codebooks = tuple(codebooks)
        self._by_key: dict[str, int] = {}
        for i, book in enumerate(self.codebooks):
            self._by_key.setdefault(book.name, i)
            self._by_key.setdefault(book.label, i)

    @classmethod
    def from_labels(
        cls, labels: Sequence[str], names: Sequence[str] | None = None, num_codes: Sequence[int] | None = None
    ) -> CodebookNames:
        """Codebooks known by their labels (and full names, and sizes) only."""
        if names is not None and len(names) != len(labels):
            raise CodebookError(f"{len(names)} names for {len(labels)} codebooks; give one name per codebook.")
        if num_codes is not None and len(num_codes) != len(labels):
            raise CodebookError(f"{len(num_codes)} sizes for {len(labels)} codebooks; give one per codebook.")
        return cls(
            CodebookName.from_label(
                str(label),
                None if names is None else str(names[i]),
                None if num_codes is None else int(num_codes[i]),
            )
            for i, label in enumerate(labels)
        )

    def __len__(self) -> int:
        return len(self.codebooks)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CodebookNames) and self.codebooks == other.codebooks

    def __hash__(self) -> int:
        return hash(self.codebooks)

    def __repr__(self) -> str:
        return f"CodebookNames({choices(self.labels, limit=8)})"

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(b.name for b in self.codebooks)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(b.label for b in self.codebooks)

    @property
    def units(self) -> tuple[CodebookName, ...]:
        """Deprecated: the codebooks are ``codebooks`` ("unit" was the old word for a codebook)."""
        warnings.warn("CodebookNames.units is now CodebookNames.codebooks", DeprecationWarning, stacklevel=2)
        return self.codebooks

    def to_list(self) -> list[dict[str, Any]]:
        return [b.to_dict() for b in self.codebooks]

    @classmethod
    def from_list(cls, data: Iterable[dict[str, Any]]) -> CodebookNames:
        return cls(CodebookName.from_dict(d) for d in data)

    # ---------------------------------------------------------------- writing
    def code_name(self, index: SupportsIndex, code: SupportsIndex) -> str:
        """The name of code ``code`` of codebook ``index``: ``{label}.{id}``, or '' for an empty slot."""
        value = operator.index(code)
        return "" if value == EMPTY else f"{self.codebooks[operator.index(index)].label}.{value}"

    def example(self) -> str:
        """A code name of this set for messages (``'0.0.0'``)."""
        return self.code_name(0, 0) if self.codebooks else "1.mlp.512"

    # ---------------------------------------------------------------- reading
    def _none(self) -> CodebookError:
        return CodebookError("there are no codebooks here; attach(...) codebooks to the model first.")

    def index_of(self, ref: str) -> int:
        """Index of one codebook from its full name, its label, or a layer with one codebook."""
        if not self.codebooks:
            raise self._none()
        if isinstance(ref, str) and ref in self._by_key:
            return self._by_key[ref]
        if isinstance(ref, str) and ref.isdigit():
            at_layer = [i for i, b in enumerate(self.codebooks) if b.layer == int(ref)]
            if len(at_layer) == 1:
                return at_layer[0]
            if at_layer:
                raise CodebookError(
                    f"layer {ref} has {len(at_layer)} codebooks, so {ref!r} is ambiguous; name one of "
                    f"{choices(self.codebooks[i].label for i in at_layer)}."
                )
        raise CodebookError(f"unknown codebook {ref!r}; the codebooks here are {choices(self.labels)}.")

    def resolve(self, ref: str) -> int:
        """Deprecated: ``index_of``."""
        warnings.warn("CodebookNames.resolve is now CodebookNames.index_of", DeprecationWarning, stacklevel=2)
        return self.index_of(ref)

    def select(self, spec: str | Iterable[str] | None) -> list[int]:
        """Codebooks chosen by a spec: None or 'all'; a site kind ('mlp'); a site name; a codebook's
        name or label; a layer ('1', every codebook of layer 1); a prefix ending in '.' ('0.', every
        codebook whose label or name starts so); or a list of these."""
        if not self.codebooks:
            raise self._none()
        if spec is None or spec == "all":
            return list(range(len(self.codebooks)))
        if isinstance(spec, str):
            books = self.codebooks
            if spec.isdigit():
                hits = [i for i, b in enumerate(books) if b.layer == int(spec)]
            elif spec.endswith("."):
                hits = [i for i, b in enumerate(books) if b.label.startswith(spec) or b.name.startswith(spec)]
            else:
                hits = [i for i, b in enumerate(books) if spec in (b.kind, b.site)]
            return hits or [self.index_of(spec)]
        out: list[int] = []
        for item in spec:
            out.extend(i for i in self.select(item) if i not in out)
        return out

    def parse_code(self, ref: Any) -> tuple[int, int]:
        """(codebook index, code id) from any accepted form (see the module doc); the only reader."""
        if isinstance(ref, tuple) and len(ref) == 2:
            book, code = ref
            if not isinstance(book, str):
                raise CodebookError(
                    f"the codebook in {ref!r} must be a name or label such as {self.labels[0] if self else '1.mlp'!r}."
                )
            if isinstance(code, str):  # a pair of strings is two codes wherever a list of codes is taken
                raise CodebookError(f"the id in {ref!r} is a string; give an integer, or write '{book}.{code}'.")
            index = self._index_in(ref, book)
        elif isinstance(ref, str) and "." in ref:
            book, _, code = ref.rpartition(".")
            if not code.lstrip("-").isdigit():
                raise CodebookError(
                    f"code {ref!r} does not end in a code id; write it as '<codebook>.<id>', for example "
                    f"{self.example()!r}."
                )
            index = self._string_codebook(ref, book, code)
        else:
            raise CodebookError(
                f"code {ref!r} is not valid; write '<codebook>.<id>' like {self.example()!r}, or a tuple "
                f"(codebook, id)."
            )
        code_int = code_id(code, ref)
        size = self.codebooks[index].num_codes
        if code_int < 0 or (size is not None and code_int >= size):
            valid = f"codes 0..{size - 1}" if size is not None else "ids of 0 or more"
            raise CodebookError(
                f"code {code_int} is out of range for codebook {self.codebooks[index].label!r}, which has {valid}."
            )
        return index, code_int

    def _index_in(self, ref: Any, book: str) -> int:
        """``index_of(book)``, its error prefixed with the whole code it was part of."""
        try:
            return self.index_of(book)
        except CodebookError as err:
            raise CodebookError(f"code {ref!r}: {err}") from None

    def _string_codebook(self, ref: str, book: str, code: str) -> int:
        """The codebook of a written code; "1.mlp.5.5" is read as a fractional id, not as codebook "1.mlp.5"."""
        try:
            return self._index_in(ref, book)
        except CodebookError:
            head, _, whole = book.rpartition(".")
            if head and whole.lstrip("-").isdigit() and head in self._by_key:
                raise CodebookError(
                    f"code {ref!r} has the id {whole}.{code}, which is not a whole number; code ids are "
                    f"integers, for example {head}.{whole}."
                ) from None
            raise

    def canonical(self, ref: Any) -> str:
        """The written form of any accepted reference (``('layers.1.mlp', 5)`` -> ``'1.mlp.5'``)."""
        return self.code_name(*self.parse_code(ref))

    def parse_codes(self, refs: Any) -> list[tuple[int, int]]:
        """One reference or many (a list, tuple or array of them) -> [(codebook index, code id), ...]."""
        try:
            return [self.parse_code(ref) for ref in code_refs(refs)]
        except CodebookError as err:
            if isinstance(refs, tuple) and len(refs) == 2 and all(isinstance(r, str) for r in refs):
                first, second = refs  # ("1.mlp", "5") is two codes; say so, it may have been meant as one
                raise CodebookError(
                    f"{refs!r} is read as two codes, {first!r} and {second!r}: {err} For one code write "
                    f"'{first}.<id>' or ({first!r}, <integer id>)."
                ) from None
            raise


def is_one_code(refs: Any) -> bool:
    """Whether ``refs`` is a single code reference rather than a collection of them."""
    if isinstance(refs, str):
        return True
    return (
        isinstance(refs, tuple)
        and len(refs) == 2
        and isinstance(refs[0], str)
        and not isinstance(refs[1], str | tuple | list)
    )


def code_refs(refs: Any) -> tuple[Any, ...]:
    """A single reference or an iterable of them, as a tuple of references."""
    if is_one_code(refs):
        return (refs,)
    if hasattr(refs, "tolist") and not isinstance(refs, tuple | list):  # numpy or torch arrays of names
        refs = refs.tolist()
    try:
        return tuple(refs)
    except TypeError:
        raise CodebookError(
            f"{refs!r} is not a code or a list of codes; name codes like '0.3.17' or ('1.mlp', 512)."
        ) from None


def code_id(value: Any, ref: Any = None) -> int:
    """An integer code id from a Python, numpy or torch integer (or a one-element integer array)."""
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    where = f" in {ref!r}" if ref is not None and ref is not value else ""
    try:
        return as_integer(value)
    except ValueError:
        raise CodebookError(f"code id {value!r} is not one integer; give one id per code.") from None
    except TypeError as err:
        is_bool = err.args == ("a bool",)  # numpy and torch bools too
        kind = "is a bool; give an integer id" if is_bool else "is not an integer; code ids are whole numbers"
        raise CodebookError(f"code id {value!r}{where} {kind}.") from None
