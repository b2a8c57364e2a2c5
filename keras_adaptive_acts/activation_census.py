"""Which activations a layer applies, and of what kind: what `swap_activations` reports on.

An activation is counted where it is applied, once: an activation layer (`ReLU`, `Activation`,
`LeakyReLU`, `PReLU`, `ELU`, `Softmax` and this package's registered activation layers, each one
activation whatever it holds), or a function that a layer keeps as its `activation` (Dense, the
convolutions, custom layers) or `recurrent_activation` (recurrent cells). `linear` is no activation.
A layer held as an `activation` (`Dense(activation=SomeLayer())`) is counted as the layer it is, once
however many layers hold it; a custom layer's own `activation` function that one of its sublayers
holds too (a KerasHub `TransformerEncoder` passes its argument to its feed-forward `Dense`) is the
sublayer's, counted there.

A kind is a name: Keras' name of the function (`"relu"`, `"tanh"`, `"silu"` for swish), `"relu6"` for
every capped ReLU, `"leaky_relu"` or `"thresholded_relu"` for a ReLU layer with a slope or a threshold,
the snake-case name of an activation layer (`"prelu"`, `"competitive_relu"`), or the `__name__` of a
function of the user's own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import keras

from keras_adaptive_acts import registry
from keras_adaptive_acts.model_graph import all_layers

__all__ = ["function_kind", "held_activations", "layer_kind"]

# Keras' activation layers besides ReLU and Activation, which say their kind by their arguments.
_KERAS_LAYER_KINDS: dict[type, str] = {
    keras.layers.LeakyReLU: "leaky_relu",
    keras.layers.PReLU: "prelu",
    keras.layers.ELU: "elu",
    keras.layers.Softmax: "softmax",
}

# The attributes through which Keras' layers and cells hold activation functions.
_FUNCTION_ATTRIBUTES = ("activation", "recurrent_activation")

RECURRENT = (
    "the {attribute} of a recurrent cell, applied inside the cell's step function, which "
    "swap_activations cannot rewrite (build the layer with NoisyLSTMCell or NoisyGRUCell instead)"
)
INSIDE = (
    "applied inside the call of {owner}, which swap_activations cannot rewrite (it rewrites "
    "Sequential and Functional models, TimeDistributed and SpectralNormalization)"
)


def function_kind(function: Callable[..., Any] | None) -> str | None:
    """The kind of an activation function; None for no function or `linear`."""
    if not callable(function):  # None, or a custom layer's setting such as the name "relu"
        return None
    if isinstance(function, keras.layers.Layer):  # `Dense(activation=SomeLayer())` is allowed
        return layer_kind(function)
    name = getattr(function, "__name__", None)
    if name is not None and getattr(keras.activations, name, None) is function:
        name = keras.activations.serialize(function)  # Keras' own name for an alias: swish is "silu"
    kind = "lambda" if name == "<lambda>" else name or type(function).__name__
    return None if kind == "linear" else kind


def layer_kind(layer: keras.layers.Layer) -> str | None:
    """The kind of an activation layer; None for a layer that is not one."""
    if isinstance(layer, keras.layers.ReLU):
        if float(layer.negative_slope) != 0:
            return "leaky_relu"
        if float(layer.threshold) != 0:
            return "thresholded_relu"
        return "relu" if layer.max_value is None else "relu6"
    if isinstance(layer, keras.layers.Activation):
        return function_kind(layer.activation)
    for layer_class, kind in _KERAS_LAYER_KINDS.items():
        if isinstance(layer, layer_class):
            return kind
    if registry.is_registered_activation(layer):
        return registry.default_name(type(layer).__name__)
    return None


def held_activations(layer: keras.layers.Layer, path: str) -> Iterator[tuple[str, str, str]]:
    """`(path, kind, why it cannot be swapped)` for each activation applied inside `layer`'s call.

    For the layers that `swap_activations` copies whole (recurrent layers, `Bidirectional`, custom
    layers and wrappers): the activations of their cells and sublayers, at any depth.
    """
    if isinstance(layer, keras.layers.Bidirectional):
        for direction in (layer.forward_layer, layer.backward_layer):
            yield from held_activations(direction, f"{path}/{direction.name}")
    elif isinstance(layer, keras.layers.RNN):
        # An RNN's own `activation` reads its cell's: count the cell's, reported under the layer.
        cells = layer.cell.cells if isinstance(layer.cell, keras.layers.StackedRNNCells) else [layer.cell]
        for cell in cells:
            cell_path = path if len(cells) == 1 else f"{path}/{cell.name}"
            for attribute in _FUNCTION_ATTRIBUTES:
                kind = function_kind(getattr(cell, attribute, None))
                if kind is not None:
                    yield cell_path, kind, RECURRENT.format(attribute=f"`{attribute}` ({kind})")
            yield from _sublayer_activations(cell, cell_path, RECURRENT.format(attribute="activation layer"))
    else:
        reason = INSIDE.format(owner=type(layer).__name__)
        passed_down = {  # the functions the sublayers hold: an owner's own is a setting it passed down
            id(function)
            for sublayer in all_layers(layer)[1:]
            for function in (getattr(sublayer, attribute, None) for attribute in _FUNCTION_ATTRIBUTES)
            if callable(function)
        }
        for attribute in _FUNCTION_ATTRIBUTES:
            function = getattr(layer, attribute, None)
            if isinstance(function, keras.layers.Layer) or id(function) in passed_down:
                continue  # a layer is counted as one of the sublayers (Keras tracks it as one)
            kind = function_kind(function)
            if kind is not None:
                yield path, kind, reason
        yield from _sublayer_activations(layer, path, reason)


def _sublayer_activations(
    layer: keras.layers.Layer, path: str, reason: str
) -> Iterator[tuple[str, str, str]]:
    """The activations of the layers that `layer` holds, at any depth, each counted once."""
    inside_activation_layers: set[int] = set()  # an activation layer is one activation, whatever it holds
    for sublayer in all_layers(layer)[1:]:
        if id(sublayer) in inside_activation_layers:
            continue
        kind = layer_kind(sublayer)
        if kind is not None:
            inside_activation_layers.update(id(inner) for inner in all_layers(sublayer)[1:])
            yield f"{path}/{sublayer.name}", kind, reason
        elif not isinstance(sublayer, keras.layers.RNN):  # an RNN's functions are its cell's, listed too
            for attribute in _FUNCTION_ATTRIBUTES:
                function = getattr(sublayer, attribute, None)
                if isinstance(function, keras.layers.Layer):
                    continue  # counted as the sublayer it is (Keras tracks it as one)
                kind = function_kind(function)
                if kind is not None:
                    yield f"{path}/{sublayer.name}", kind, reason
