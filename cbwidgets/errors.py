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
