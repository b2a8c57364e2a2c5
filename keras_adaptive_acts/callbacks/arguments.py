"""Argument checks of the callbacks, with the wording every callback's `ValueError` shares."""

from __future__ import annotations

import numbers
from typing import Any

__all__ = ["check_position", "check_positive_int"]


def check_positive_int(name: str, value: Any, what: str) -> int:
    """`value` as an int; `ValueError` unless it is a positive integer (`what` says what it counts)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"`{name}` must be a positive integer ({what}). Received: {name}={value!r}")
    return int(value)


def check_position(n: Any) -> int:
    """`n`, a schedule's position (a step or epoch index), as an int; `ValueError` unless it is >= 0."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
        raise ValueError(f"`n` must be an integer >= 0. Received: n={n!r}")
    return int(n)
