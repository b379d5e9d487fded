"""Python numbers from whatever a user holds: numpy and torch scalars, one-element arrays.

Values the library itself returns (a code id from a DataFrame, a position from a tensor) come back
as numpy or torch scalars; every argument that takes a number accepts them through these two.
"""

from __future__ import annotations

import math
import operator
from typing import Any

__all__ = ["as_flag", "as_integer", "as_real"]


def _python_scalar(value: Any) -> Any:
    """The Python number or bool inside a numpy or torch scalar or one-element array; anything else
    as it is. Raises ValueError for an array of several values."""
    item = getattr(value, "item", None)
    if callable(item) and not isinstance(value, int | float):
        try:
            return item()
        except (ValueError, RuntimeError):
            raise ValueError("several numbers") from None
    return value


def as_integer(value: Any) -> int:
    """A Python int from a Python, numpy or torch integer, or a one-element integer array.

    Raises ValueError for an array of several numbers, TypeError for a bool or a non-integer; each
    caller turns those into a message about what the number was for.
    """
    value = _python_scalar(value)
    if isinstance(value, bool):  # True is not a 1 here
        raise TypeError("a bool")
    return operator.index(value)


def as_real(value: Any) -> float:
    """A finite Python float from a Python, numpy or torch real number, or a one-element array.

    Raises ValueError (several numbers, or not finite) or TypeError (a bool, or not a number), like
    ``as_integer``; each caller says what the number was for.
    """
    value = _python_scalar(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("not a number")
    if not math.isfinite(value):
        raise ValueError("not finite")
    return float(value)


def as_flag(value: Any) -> bool:
    """A Python bool from a Python, numpy or torch boolean (a comparison's result is one).

    Raises TypeError for anything else: ``"False"`` is a true string and ``1`` a count, and taking
    either as a setting would quietly do the opposite of what was meant, or something else.
    """
    try:
        value = _python_scalar(value)
    except ValueError:
        raise TypeError("several values") from None
    if not isinstance(value, bool):
        raise TypeError("not a bool")
    return value
