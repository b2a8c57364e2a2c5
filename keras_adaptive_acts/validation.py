"""Argument checks shared by the package's layers and ops: one wording for every `ValueError`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np


def check_choice(name: str, value: Any, choices: Sequence[str]) -> None:
    """Raises `ValueError` unless `value` is one of `choices`."""
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {tuple(choices)}. Received: {name}={value!r}")


def check_number(name: str, value: Any, *, minimum: float | None = None, strict: bool = False) -> float:
    """Raises `ValueError` unless `value` is a finite real number (above `minimum`); returns it as float.

    NumPy's scalars count (`np.float32(0.1)`, read from an array or a sweep grid), as in Keras'
    own layers; booleans do not. `strict=True` requires `value > minimum`, else `value >= minimum`.
    Store the returned float, not `value`: a config must hold plain Python numbers.
    """
    real = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not real or not math.isfinite(value):
        raise ValueError(f"`{name}` must be a finite number. Received: {name}={value!r}")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        raise ValueError(f"`{name}` must be {bound}. Received: {name}={value!r}")
    return float(value)


def check_integer(name: str, value: Any, minimum: int | None = None) -> int:
    """Raises `ValueError` unless `value` is an integer (`>= minimum`); returns it as int."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"`{name}` must be an integer. Received: {name}={value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}. Received: {name}={value!r}")
    return int(value)


def check_callbacks(callbacks: Any) -> list:
    """Raises `ValueError` unless `callbacks` is a sequence of Keras callbacks; returns them as a list."""
    callbacks = list(callbacks)
    if not all(isinstance(callback, keras.callbacks.Callback) for callback in callbacks):
        raise ValueError(f"`callbacks` must be Keras callbacks. Received: callbacks={callbacks!r}")
    return callbacks
