"""The one exception type users catch, and the helpers that phrase its messages.

Every message names the value that was wrong and says what would have been valid, so a user in a
notebook can fix the call without reading the source.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, overload

from .scalars import as_flag, as_integer, as_real

__all__ = ["CodebookError", "check_choice", "check_flag", "check_positive_int", "check_positive_real", "choices"]


class CodebookError(ValueError):
    """A bad argument, file or state; subclasses ValueError so generic handlers still catch it."""


def choices(values: Iterable[object], limit: int = 12) -> str:
    """Render valid values for a message, eliding the middle of long lists."""
    items = [repr(v) if isinstance(v, str) else str(v) for v in values]
    if len(items) > limit:
        items = [*items[: limit - 2], "...", items[-1], f"({len(items)} in all)"]
    return ", ".join(items)


def check_choice(name: str, value: object, valid: Iterable[object]) -> None:
    """Raise CodebookError unless value is one of valid."""
    valid = list(valid)
    if value not in valid:
        raise CodebookError(f"{name}={value!r} is not valid; choose one of {choices(valid)}.")


@overload
def check_positive_int(name: str, value: object, allow_none: Literal[False] = False) -> int: ...
@overload
def check_positive_int(name: str, value: object, allow_none: bool) -> int | None: ...
def check_positive_int(name: str, value: object, allow_none: bool = False) -> int | None:
    """``value`` as a Python int >= 1 (numpy and torch integers too, as the library's own results
    are); CodebookError otherwise (bools are refused: True is not a count)."""
    if allow_none and value is None:
        return None
    try:
        number = as_integer(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1:
        extra = " or None" if allow_none else ""
        raise CodebookError(f"{name}={value!r} is not valid; give a positive integer{extra}.")
    return number


def check_flag(name: str, value: object) -> bool:
    """``value`` as a Python bool (numpy and torch booleans too); CodebookError for anything else,
    which an ``if`` would have read as true or false without a word (the string "False" as true)."""
    try:
        return as_flag(value)
    except TypeError:
        raise CodebookError(f"{name}={value!r} is not valid; give True or False.") from None


def check_positive_real(name: str, value: object, example: str) -> float:
    """``value`` as a finite Python float > 0 (numpy and torch reals too); CodebookError otherwise,
    naming an ``example`` of a valid value (a learning rate's "1e-3")."""
    try:
        number = as_real(value)
    except (TypeError, ValueError):
        number = 0.0
    if not number > 0:
        raise CodebookError(f"{name}={value!r} is not valid; give a positive number such as {example}.")
    return number
