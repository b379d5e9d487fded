"""The one exception type users catch, and the helpers that phrase its messages.

Every message names the value that was wrong and says what would have been valid, so a user in a
notebook can fix the call without reading the source.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["CodebookError", "check_choice", "choices"]


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


def check_positive_int(name: str, value: object, allow_none: bool = False) -> None:
    """Raise CodebookError unless value is an int >= 1 (bools are refused: True is not a count)."""
    if allow_none and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        extra = " or None" if allow_none else ""
        raise CodebookError(f"{name}={value!r} is not valid; give a positive integer{extra}.")
