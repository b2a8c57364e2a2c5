"""Activation specs of `kaa compare`: `name:key=value:...` strings, read into factories of fresh layers."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np

from keras_adaptive_acts import model_graph, registry
from keras_adaptive_acts.compare.messages import root_message

__all__ = ["parse_activation", "parse_value", "repeated_activations"]


def parse_value(text: str) -> Any:
    """A spec's value as the Python value it spells: int, float, bool, None, or else the string.

    Examples:
        >>> [parse_value(text) for text in ("3", "1e-3", "true", "none", "l1")]
        [3, 0.001, True, None, 'l1']
    """
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def parse_activation(spec: str) -> tuple[str, Callable[[], keras.layers.Layer]]:
    """Parses an activation spec into a label and a factory of fresh layers.

    A spec is a name, optionally followed by `:key=value` arguments of the layer's constructor:
    `"relu"`, `"competitive_relu:competition=l1"`, `"competitive_relu:init=competition:scale_bound=3"`.
    Values become int, float, bool (`true`/`false`) or None (`none`) where they parse as such,
    strings otherwise. Names are resolved by `keras_adaptive_acts.registry.activation_layer`:
    `relu` and `prelu` are Keras' `ReLU` and `PReLU` layers, other Keras activations (`gelu`,
    `tanh`, ...) a `keras.layers.Activation`, and the package's activations its own layers.

    The spec is validated at once: one layer is built and called on a small batch, so a typo fails
    before any training. An activation that changes the shape of its input (`glu`, which halves the
    last axis) is refused: the network needs one that keeps the number of features. So is `linear`,
    the identity: no activation to measure.

    Args:
        spec: the activation spec.

    Returns:
        `(label, factory)`: the spec as written (whitespace removed) and a function of no arguments
        that returns a new layer each time it is called.

    Raises:
        ValueError: for an unknown name (with the nearest known one), arguments the layer rejects
            (the message names the spec and the known activations), an activation that changes
            the shape of its input, or the identity (`linear`).

    Example:

    >>> label, make = parse_activation("competitive_relu:competition=l1:scale_bound=3")
    >>> layer = make()
    >>> label, type(layer).__name__, layer.competition, layer.scale_bound
    ('competitive_relu:competition=l1:scale_bound=3', 'CompetitiveReLU', 'l1', 3.0)
    """
    if not isinstance(spec, str):
        raise ValueError(f"An activation spec must be a string. Received: spec={spec!r}")
    parts = [part.strip() for part in spec.strip().split(":")]
    written_name, arg_parts = parts[0], parts[1:]
    kwargs: dict[str, Any] = {}
    label = written_name
    for part in arg_parts:
        key, sep, value = (piece.strip() for piece in part.partition("="))
        if not sep or not key.isidentifier():
            raise ValueError(
                f"Activation arguments are written name:key=value:key=value. Received: spec={spec!r} "
                f"(cannot read {part!r})"
            )
        if key in kwargs:
            raise ValueError(f"Argument {key!r} is given twice. Received: spec={spec!r}")
        if key == "name":  # each model holds the layer at several places, and names must be unique
            raise ValueError(
                f"An activation spec cannot name its layer: a model holds several of them, and Keras "
                f"names each one. Received: spec={spec!r}"
            )
        kwargs[key] = parse_value(value)
        # Keras' own layers take a NaN (`relu:negative_slope=nan` trained to a NaN loss); no argument
        # means it. Infinity can (an unbounded `max_value`), and is left to the layer.
        if isinstance(kwargs[key], float) and math.isnan(kwargs[key]):
            raise ValueError(
                f"Argument {key!r} is NaN, which no activation argument can be. Received: spec={spec!r}"
            )
        label += f":{key}={value}"

    try:
        name = registry.canonical_activation_name(written_name)
    except ValueError as err:
        raise ValueError(f"{err} Received: spec={spec!r}") from None

    def factory() -> keras.layers.Layer:
        return registry.activation_layer(name, **kwargs)

    probe = np.zeros((2, 4), dtype="float32")
    try:
        layer = factory()
        output = layer(probe)  # catches the checks that happen in build()
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"Invalid arguments in activation {spec!r}: {root_message(err)}. {_known_names()}"
        ) from None
    # The network feeds each activation's output to a Dense layer built for `width` features, and
    # `keras.layers.Activation` reports its input shape as its output shape whatever the function does
    # (`glu` halves the last axis): only an activation that keeps the shape fits.
    if tuple(output.shape) != probe.shape:
        raise ValueError(
            f"Activation {spec!r} changes the shape of its input ({probe.shape} to {tuple(output.shape)}): "
            "kaa compare's network needs an elementwise activation, one that keeps the number of features."
        )
    # Each run reports its activation's share of exact zeros (`measure_sparsity`), which counts the
    # layers that compute an activation: `linear` (the identity) is none, and would be found only after
    # training, with every finished run lost.
    if not model_graph.is_activation_layer(layer):
        raise ValueError(
            f"Activation {spec!r} is the identity: kaa compare measures each activation's exact zeros, "
            "and the identity computes none. Leave it out."
        )
    return label, factory


def repeated_activations(parsed: Sequence[tuple[str, Callable[[], keras.layers.Layer]]]) -> list[list[str]]:
    """The labels of parsed specs that build the same layer, in groups (empty if none repeats).

    Specs are compared by the configs of the layers they build, without the layers' names, and with
    numbers compared by value (`0` and `0.0` are one slope): `relu`, `ReLU` and
    `relu:negative_slope=0` are one activation, and so are `competitive_relu` and
    `competitive_relu:competition=energy` (its default), which would train the same network twice.

    >>> specs = ["relu", "ReLU", "relu:negative_slope=0", "competitive_relu",
    ...          "competitive_relu:competition=energy", "gelu"]
    >>> repeated_activations([parse_activation(spec) for spec in specs])
    [['relu', 'ReLU', 'relu:negative_slope=0'], ['competitive_relu', 'competitive_relu:competition=energy']]
    """
    groups: dict[str, list[str]] = {}
    for label, make in parsed:
        config = keras.saving.serialize_keras_object(make())
        config["config"].pop("name", None)
        key = json.dumps(_numbers_by_value(config), sort_keys=True, default=repr)
        groups.setdefault(key, []).append(label)
    return [labels for labels in groups.values() if len(labels) > 1]


def _numbers_by_value(value: Any) -> Any:
    """`value` with every int (not bool) as a float, in nested dicts and lists: a layer keeps the number
    it was given, so `negative_slope=0` and the default `0.0` would otherwise differ in its config."""
    if isinstance(value, dict):
        return {key: _numbers_by_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_numbers_by_value(item) for item in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _known_names() -> str:
    return f"Known activation names: {', '.join(registry.activation_names())}."
