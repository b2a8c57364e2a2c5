"""Rebuilding a custom layer with another activation, through an activation argument of its config.

A `.keras` file records a custom layer as its config and rebuilds it with `from_config` and its
`build`: the sublayers that its code creates are not in the file. Replacing the activation of one
of them (the feed-forward `Dense` of a KerasHub `TransformerEncoder`) would be lost on loading.
What the file does keep is the layer's arguments, and an activation that the layer takes as an
argument (`TransformerEncoder(activation=...)`, `CLIPEncoderLayer(intermediate_activation=...)`)
is where a new activation can go: the layer is rebuilt from its config with that argument set to
the new activation layer's config, and its own code puts the new layer wherever it put the old
activation (a `Dense(activation=...)`, an `Activation` layer it holds, its own `call`).

`rebuild` does this for one argument, and checks, rather than assumes, that it worked: that
targeted activations went away and only the new kind came in, that the rebuilt layer comes back
the same from its own config and build (what loading does: same activations, same weight shapes),
and that the weights line up with the original layer's, to be copied over. An activation that the
layer's code sets itself (`Dense(..., activation="gelu")` written in `build`, as in KerasHub's ViT)
has no argument: it stays, and `swap_activations` reports why.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Any

import keras

from keras_adaptive_acts.activation_census import function_kind, held_activations, layer_kind
from keras_adaptive_acts.inner_calls import inner_calls, symbolic_arguments
from keras_adaptive_acts.model_graph import all_layers

__all__ = ["Rebuilt", "activation_arguments", "argument_kind", "rebuild"]


@dataclasses.dataclass
class Rebuilt:
    """A custom layer rebuilt with a new activation, built, its weights not copied yet.

    Attributes:
        layer: the new layer.
        replaced: `(path, kind)` of each activation of the original layer that the new one replaces.
        own_weights: the new layer's weights that stand for the original layer's, in the same order
            (the new activation layers' weights are not among them).
    """

    layer: keras.layers.Layer
    replaced: list[tuple[str, str]]
    own_weights: list[Any]


def activation_arguments(config: dict[str, Any]) -> list[str]:
    """The keys of a layer's config that may set an activation: those named after one (Keras'
    convention: `activation`, `recurrent_activation`, KerasHub's `intermediate_activation`), with a
    value (None is no activation)."""
    return [key for key, value in config.items() if "activation" in key and value is not None]


def argument_kind(value: Any) -> str | None:
    """The kind of activation a config value names (as the report names kinds), or None if unknown.

    A Keras name (`"gelu"`), a registered function's name (`"keras_hub>gelu_approximate"`, or a
    KerasHub layer's own spelling such as `"quick_gelu"`), a serialized function or layer, or the
    function itself.
    """
    if callable(value):
        return function_kind(value)
    try:
        resolved = keras.activations.get(value)
    except Exception:  # a name Keras does not know: the layer resolves it itself (KerasHub's "quick_gelu")
        resolved = None
    if resolved is not None:
        return function_kind(resolved)
    if isinstance(value, dict) and isinstance(value.get("config"), str):
        value = value["config"]  # a serialized function: {"class_name": "function", "config": "pkg>name"}
    if isinstance(value, str):
        return value.split(">")[-1] or None
    return None


def census(layer: keras.layers.Layer, path: str) -> list[tuple[str, str]]:
    """`(path, kind)` of each activation applied inside `layer` (as the report counts them)."""
    return [(inner_path, kind) for inner_path, kind, _ in held_activations(layer, path)]


def rebuild(
    layer: keras.layers.Layer,
    path: str,
    key: str,
    activation: keras.layers.Layer,
    targeted: set[str],
    arguments: tuple[tuple, dict] | None,
) -> Rebuilt | str:
    """`layer` rebuilt with its argument `key` set to `activation`, or why that does not work.

    Args:
        layer: a built custom layer.
        path: its path in the report.
        key: the argument (a key of its config).
        activation: a new activation layer; its config (name included) goes into the argument.
        targeted: the kinds of activation that may be replaced.
        arguments: `(args, kwargs)` of a call of `layer`, holding symbolic tensors, to build the new
            activation layers by tracing; None for a layer with no call in a graph (one inside a
            wrapper): a symbolic input of its build shape, or, without one, they are built by
            their first call.
    """
    build_config = layer.get_build_config() or {}
    if arguments is None and build_config.get("input_shape") is not None:
        # A layer inside a wrapper has no call of its own in a graph: a symbolic input of its build shape.
        arguments = ((keras.KerasTensor(build_config["input_shape"], dtype=layer.compute_dtype),), {})
    before = census(layer, path)
    config = layer.get_config()
    rebuilt = _rebuilt(
        layer, {**config, key: keras.saving.serialize_keras_object(activation)}, arguments, activation
    )
    if isinstance(rebuilt, str):
        return rebuilt
    new, activations = rebuilt
    if not activations:
        return (
            f"its `{key}` argument took the new activation's config, but the rebuilt layer holds no "
            "layer made from it"
        )
    if len(activations) == 1 and activations[0].weights:
        # The argument's config then carries the layer's build shape, so that loading builds the
        # new activation before its weights are read (a layer that returns the argument as it was
        # given, as KerasHub's CLIP and SigLIP layers do, would otherwise save an unbuilt one).
        config = {**config, key: keras.saving.serialize_keras_object(activations[0])}
        rebuilt = _rebuilt(layer, config, arguments, activation)
        if isinstance(rebuilt, str):
            return rebuilt
        new, activations = rebuilt
    after = census(new, path)
    # The activations besides the new ones must be the original's, less targeted ones.
    new_paths = _paths_of(new, activations, path)
    others = collections.Counter(kind for inner_path, kind in after if inner_path not in new_paths)
    gone = collections.Counter(kind for _, kind in before) - others
    changed = others - collections.Counter(kind for _, kind in before)
    new_kind = layer_kind(activation)
    if not gone or set(gone) - targeted or changed:
        return (
            f"its `{key}` argument set to {new_kind} changes other activations than the targeted ones "
            f"(gone: {dict(gone) or 'none'}; new besides {new_kind}: {dict(changed) or 'none'})"
        )
    problem = _loading_problem(new, after, path, arguments)
    if problem:
        return (
            f"a .keras file would not load the layer rebuilt with its `{key}` argument set to "
            f"{new_kind}: {problem}"
        )
    new_activation_weights = {id(weight) for inner in activations for weight in inner.weights}
    own_weights = [weight for weight in new.weights if id(weight) not in new_activation_weights]
    shapes = [tuple(weight.shape) for weight in layer.weights]
    if [tuple(weight.shape) for weight in own_weights] != shapes:
        return (
            f"rebuilt with its `{key}` argument set to {new_kind}, its weights do not line up with the "
            "original layer's, so they cannot be copied"
        )
    return Rebuilt(new, _replaced(before, after, gone), own_weights)


def _rebuilt(layer, config, arguments, activation):
    """`(new layer, its new activation layers)`: a layer from `config`, built as `layer` was, its new
    activations built by tracing its call (a `build` rarely builds an activation it was given); or
    why not.
    """
    try:
        new = _as_loaded(type(layer).from_config(config), layer.get_build_config(), arguments)
    except Exception as error:  # whatever a layer's constructor or build raises
        return f"rebuilding it from its config failed: {type(error).__name__}: {error}"
    activations = _new_activations(new, activation)
    for inner in activations:
        if not inner.built and arguments is not None:
            try:
                inner_calls(new, symbolic_arguments(arguments), inner)
            except ValueError as error:
                return f"the new activation cannot be built: {error}"
    return new, activations


def _new_activations(layer, activation):
    """The layers inside `layer` made from `activation`'s config (its class and its name)."""
    return [
        inner
        for inner in all_layers(layer)[1:]
        if type(inner) is type(activation) and inner.name == activation.name
    ]


def _paths_of(layer, activations, path):
    """The census paths of the new `activations` inside `layer`: their own, or that of the activation
    layer holding one (an `Activation(new layer)` counts as one activation, at its path)."""
    holders = [
        inner
        for inner in all_layers(layer)[1:]
        if layer_kind(inner) is not None
        and any(new is sub for new in activations for sub in all_layers(inner))
    ]
    return {f"{path}/{inner.name}" for inner in holders}


def _as_loaded(layer, build_config, arguments):
    """`layer`, new from its config, built as loading a model builds it: its `build_from_config`
    (only for a layer with a `build` of its own: Keras' default build warns and creates nothing),
    then a symbolic call (`compute_output_spec`, which adds no call to any graph), which builds the
    sublayers that a layer without a `build` creates at its first call."""
    if build_config and type(layer).build is not keras.layers.Layer.build:
        layer.build_from_config(build_config)
    if arguments is not None:
        args, kwargs = symbolic_arguments(arguments)
        layer.compute_output_spec(*args, **kwargs)
    return layer


def _loading_problem(layer, expected, path, arguments):
    """What loading `layer` from a `.keras` file would not give back (None if nothing): what a load
    does, `from_config(get_config())` and a build, must give the activations of its census
    `expected` and the same weight shapes."""
    try:
        again = _as_loaded(type(layer).from_config(layer.get_config()), layer.get_build_config(), arguments)
    except Exception as error:
        return f"rebuilding it from its own config failed: {type(error).__name__}: {error}"
    kinds = collections.Counter(kind for _, kind in census(again, path))
    if kinds != collections.Counter(kind for _, kind in expected):
        return f"it comes back with the activations {dict(kinds)}"
    shapes = [tuple(weight.shape) for weight in layer.weights]
    loaded = [tuple(weight.shape) for weight in again.weights]
    if loaded != shapes:
        return (
            f"it comes back with {len(loaded)} weights of shapes {loaded}, not the {len(shapes)} of "
            f"shapes {shapes} it saves (its build does not create the new activation's weights)"
        )
    return None


def _replaced(before, after, gone):
    """The `(path, kind)` of the original activations that `gone` counts, in their order: those
    whose path the rebuilt layer no longer shows first (the paths of sublayers that Keras names
    can change from one build to the next)."""
    remaining = set(after)
    counts = collections.Counter(gone)
    chosen: set[int] = set()
    for prefer_vanished in (True, False):
        for index, entry in enumerate(before):
            vanished = entry not in remaining
            if counts[entry[1]] and index not in chosen and (vanished or not prefer_vanished):
                chosen.add(index)
                counts[entry[1]] -= 1
    return [entry for index, entry in enumerate(before) if index in chosen]
