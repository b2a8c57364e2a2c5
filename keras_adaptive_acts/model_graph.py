"""A model's layers and the tensors between them: the walks that measurement, callbacks, export and
surgery share.

Built on the public API where Keras has one; what it lacks (a recursive listing of layers, the
call of a layer in one particular graph) comes from `keras_adaptive_acts._keras_internals`, the
package's one module that touches private Keras. The layers that a custom layer calls inside its
own `call` (not nodes of any graph) are reached through `keras_adaptive_acts.inner_calls`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from keras_adaptive_acts import _keras_internals, registry
from keras_adaptive_acts.inner_calls import inner_calls, inner_layers

__all__ = [
    "OUTPUT_ACTIVATION_LAYERS",
    "LayerTaps",
    "TappedCall",
    "all_layers",
    "check_graph_model",
    "check_layer_list",
    "graph_layers",
    "is_activation_layer",
    "is_functional",
    "is_graph_model",
    "match_layers",
    "preserved_state",
    "reachable_layers",
    "select_layers",
]

# Layers whose `activation` is applied to their output, besides the activation layers themselves.
OUTPUT_ACTIVATION_LAYERS = (
    keras.layers.Dense,
    keras.layers.EinsumDense,
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
    keras.layers.Conv1DTranspose,
    keras.layers.Conv2DTranspose,
    keras.layers.Conv3DTranspose,
    keras.layers.SeparableConv1D,
    keras.layers.SeparableConv2D,
    keras.layers.DepthwiseConv1D,
    keras.layers.DepthwiseConv2D,
)
_KERAS_ACTIVATION_LAYERS = (keras.layers.ReLU, keras.layers.LeakyReLU, keras.layers.PReLU, keras.layers.ELU)


# ----------------------------------------------------------------------------------------------
# Which layers


def is_activation_layer(layer: keras.layers.Layer) -> bool:
    """Whether `layer`'s output is an activation (see `measure_sparsity` for the list)."""
    if registry.is_registered_activation(layer) or isinstance(layer, _KERAS_ACTIVATION_LAYERS):
        return True
    if isinstance(layer, (keras.layers.Activation, *OUTPUT_ACTIVATION_LAYERS)):
        activation = getattr(layer, "activation", None)
        return activation is not None and activation is not keras.activations.linear
    return False


def all_layers(model: keras.layers.Layer) -> list[keras.layers.Layer]:
    """Every layer inside `model`, at any depth, each once (the model itself included).

    Unlike `Model.layers` (one level deep), this includes the layers a layer holds as attributes:
    an RNN's cell, the noisy units inside a cell, the copies of a `Bidirectional`.
    """
    return _keras_internals.flatten_layers(model)


def is_functional(model: Any) -> bool:
    """Whether `model` was built by `keras.Model(inputs, outputs)` (not Sequential, not subclassed)."""
    return _keras_internals.is_functional(model)


def is_graph_model(layer: Any) -> bool:
    """Whether `layer` is a Functional or Sequential model with a graph (built)."""
    return (
        isinstance(layer, keras.Model)
        and getattr(layer, "inputs", None) is not None
        and getattr(layer, "outputs", None) is not None
    )


def check_graph_model(model: Any, owner: str) -> None:
    """Raises `ValueError` unless `model` is a built Functional or Sequential model."""
    if is_graph_model(model):
        return
    if isinstance(model, keras.Sequential):
        raise ValueError(
            f"{owner}: the Sequential model {model.name!r} is not built yet, so its layers have no "
            "outputs to read. Start it with `keras.Input(shape)`, or call it once on data first."
        )
    kind = type(model).__name__ if isinstance(model, keras.Model) else repr(model)
    raise ValueError(
        f"{owner} reads the layers' outputs from the model's graph, which a subclassed model "
        f"({kind}) does not have. Pass a Functional or Sequential model (build the same layers with "
        "`keras.Input` and `keras.Model(inputs, outputs)`), or measure tensors yourself with "
        "`keras_adaptive_acts.ops.zero_fraction`."
    )


def graph_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers of `model`'s graph, with those of nested Functional/Sequential models, each once."""
    found: list[keras.layers.Layer] = []
    seen: set[int] = set()

    def walk(parent):
        for layer in parent.layers:
            if id(layer) in seen:
                continue
            seen.add(id(layer))
            found.append(layer)
            if is_graph_model(layer):
                walk(layer)

    walk(model)
    return found


def reachable_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers that `LayerTaps` can read: those of `graph_layers(model)`, each followed by the
    layers it calls inside its own `call`, at any depth (see `inner_calls.inner_layers`), each once.

    Inside wrappers (`TimeDistributed`, `Bidirectional`) and recurrent layers nothing is reachable.
    """
    found: list[keras.layers.Layer] = []
    seen: set[int] = set()
    for layer in graph_layers(model):
        inside = [] if is_graph_model(layer) else inner_layers(layer)
        for candidate in (layer, *inside):
            if id(candidate) not in seen:
                seen.add(id(candidate))
                found.append(candidate)
    return found


def select_layers(
    model: keras.Model,
    layers: Sequence[keras.layers.Layer | str] | None,
    owner: str,
    default,
    kind: str = "layer",
    accepts: tuple[type, ...] = (keras.layers.Layer,),
    default_kind: str = "activation layer",
) -> list[keras.layers.Layer]:
    """The layers of `model` to watch: those passing `default`, or `layers` (objects or names).

    By default: the layers of the graph that pass `default`, and, inside custom layers, this
    package's activation layers that pass it, whose name no other reachable layer has and whose
    owner's call can be traced (such as those `swap_activations` puts inside a KerasHub
    `TransformerEncoder`). Each chosen layer follows the graph layer that holds it. `layers` may
    name any reachable layer (see `reachable_layers`); a name is looked up among the graph's layers
    first.

    Raises `ValueError` for a subclassed or unbuilt model, an empty selection, a name that does
    not match exactly one layer, a layer that is not in the model or not of the `accepts` types,
    and two chosen layers of one name (results are keyed by name).
    """
    check_graph_model(model, owner)
    candidates = graph_layers(model)
    reachable = reachable_layers(model)
    if layers is None:
        in_graph = {id(layer) for layer in candidates}
        names = [layer.name for layer in reachable]
        chosen, inside_chosen = [], set()
        for layer in reachable:
            if id(layer) in inside_chosen:
                continue  # one activation, whatever it holds (MixedActivation's two, Dense(activation=layer))
            # Inside a custom layer: this package's activations, under names that key the results
            # unambiguously (the sublayers of custom layers often share names, such as "fc1").
            registered = registry.is_registered_activation(layer)
            is_chosen = default(layer) and (
                id(layer) in in_graph
                or (registered and names.count(layer.name) == 1 and _readable(model, layer, owner))
            )
            if is_chosen:
                chosen.append(layer)
            if is_chosen or registered:
                inside_chosen.update(id(inner) for inner in all_layers(layer)[1:])
        if not chosen:
            raise ValueError(
                f"{owner} found no {default_kind} in the model {model.name!r}. Pass `layers` (layers of the "
                "model or their names) to choose what to watch."
            )
    else:
        check_layer_list(layers, accepts, kind)
        hint = "layers inside wrappers (TimeDistributed, Bidirectional) or RNN cells cannot be read"
        chosen = match_layers(owner, model, candidates, layers, "layer", hint=hint, reachable=reachable)
        for layer in chosen:
            if not isinstance(layer, accepts):
                raise ValueError(
                    f"{owner}: the layer {layer.name!r} is a {type(layer).__name__}, not a {kind}. "
                    f"Received: layers={list(layers)!r}"
                )
    names = [layer.name for layer in chosen]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise ValueError(
            f"{owner} keys its results by layer name, and several chosen layers are named "
            f"{duplicated}: give them distinct names (the `name` argument) or pass `layers`."
        )
    return chosen


def _readable(model, layer, owner):
    """Whether `LayerTaps` can read `layer` in `model` (the call of the custom layer holding it traces)."""
    try:
        _symbolic_calls(model, layer, "input", owner)
    except ValueError:
        return False
    return True


def match_layers(
    owner: str,
    model: keras.layers.Layer,
    candidates: Sequence[keras.layers.Layer],
    requested: Sequence[keras.layers.Layer | str],
    kind: str,
    hint: str = "",
    reachable: Sequence[keras.layers.Layer] = (),
) -> list[keras.layers.Layer]:
    """The `candidates` (or `reachable` layers) that `requested` names or holds, in its order, each once.

    A name must match exactly one candidate or, if none, exactly one of the `reachable` layers
    (the layers inside custom layers, whose names often repeat); a layer must be one of them (the
    same object).
    """
    chosen: list[keras.layers.Layer] = []
    for item in requested:
        if isinstance(item, str):
            matches = [layer for layer in candidates if layer.name == item]
            if not matches:
                matches = [layer for layer in reachable if layer.name == item]
            if len(matches) != 1:
                problem = f"no {kind}" if not matches else f"{len(matches)} {kind}s"
                # A name the model holds out of reach (inside a wrapper or a cell).
                hidden = not matches and hint and any(layer.name == item for layer in all_layers(model))
                raise ValueError(
                    f"{owner}: the model {model.name!r} has {problem} named {item!r}"
                    f"{' it can read (' + hint + ')' if hidden else ''}. Its {kind}s: "
                    f"{[layer.name for layer in candidates]}. Received: layers={list(requested)!r}"
                )
            layer = matches[0]
        elif any(item is layer for layer in (*candidates, *reachable)):
            layer = item
        else:
            raise ValueError(
                f"{owner}: the layer {item.name!r} in `layers` is not part of the model {model.name!r} "
                f"(a copy, e.g. from `clone_model`, is a different layer{'; ' + hint if hint else ''}). "
                f"Its {kind}s: {[layer.name for layer in candidates]}."
            )
        if all(layer is not other for other in chosen):
            chosen.append(layer)
    return chosen


def check_layer_list(layers: Any, accepts: tuple[type, ...], kind: str) -> None:
    """Raises `ValueError` unless `layers` is a non-empty list of `accepts` layers or names."""
    if isinstance(layers, (str, keras.layers.Layer)) or not isinstance(layers, Sequence) or not layers:
        raise ValueError(
            f"`layers` must be None or a non-empty list of {kind}s (or their names). "
            f"Received: layers={layers!r}"
        )
    for i, item in enumerate(layers):
        if not isinstance(item, (str, *accepts)):
            raise ValueError(f"`layers` must hold {kind}s or layer names. Received: layers[{i}]={item!r}")


# ----------------------------------------------------------------------------------------------
# Reading the layers' tensors


class TappedCall:
    """One call of a tapped layer: its output (or input) `tensors`, and for outputs their `masks`.

    `masks[i]` is the boolean mask Keras attaches to `tensors[i]` (`Embedding(mask_zero=True)`,
    `Masking`, and the layers that pass a mask on), of shape `tensors[i].shape[:mask rank]`; an
    unmasked output gets a mask of shape `(batch,)` that is all True. Input taps carry no masks.
    """

    def __init__(self, tensors: list[Any], masks: list[Any]):
        self.tensors = tensors
        self.masks = masks


class LayerTaps:
    """A model that returns the outputs (or the inputs) of chosen layers of a graph model.

    `taps(x, training)` gives, for each layer, a list of `TappedCall`s, one per call of the layer:
    a layer called several times (a shared layer, a layer of a nested model that is itself called
    twice) is read at every call. Each call holds the layer's output tensors and their masks
    (`which="output"`) or its input tensors (`which="input"`: `[z]`, or `[z, source]` for a
    two-input call), computed on `x` by one forward pass that shares the model's variables.

    A layer inside a custom layer (one of `reachable_layers(model)`, such as an activation that
    `swap_activations` put inside a KerasHub `TransformerEncoder`) is read at each call its owner
    makes, found by tracing the owner's `call` on the tensors of its call in the graph (see
    `keras_adaptive_acts.inner_calls`): its inputs are what it is applied to (the pre-activation
    of an activation layer), its outputs carry the masks Keras attaches to them there. The traced
    copy of the owner's computation runs beside the owner's own call, with the same variables: in
    training mode it draws its own dropout and noise.
    """

    def __init__(self, model: keras.Model, layers: Sequence[keras.layers.Layer], which: str, owner: str):
        check_graph_model(model, owner)
        self.model = model
        self.layers = list(layers)
        self.which = which
        self._layout: list[list[tuple[int, int]]] = []  # per layer, per call: (tensors, masks)
        flat = []
        for layer in self.layers:
            calls = _symbolic_calls(model, layer, which, owner)
            self._layout.append([_call_layout(call, which) for call in calls])
            for call in calls:
                flat.extend(call)
        inputs = model.inputs[0] if isinstance(model, keras.Sequential) else model.input
        self._probe = keras.Model(inputs, flat, name=f"{model.name}_taps")

    def __call__(self, x: Any, training: bool) -> list[list[TappedCall]]:
        flat = self._probe(x, training=training)
        flat = list(flat) if isinstance(flat, (list, tuple)) else [flat]
        grouped, start = [], 0
        for calls in self._layout:
            tapped = []
            for tensor_count, mask_count in calls:
                tensors = flat[start : start + tensor_count]
                masks = flat[start + tensor_count : start + tensor_count + mask_count]
                tapped.append(TappedCall(tensors, masks))
                start += tensor_count + mask_count
            grouped.append(tapped)
        return grouped


class _OutputMask(keras.layers.Layer):
    """The mask Keras attaches to a tensor, as a boolean tensor (all True, of shape (batch,), if none).

    Keras passes a tensor's mask to a layer whose `call` takes `mask`: the public way to read it.
    """

    def call(self, inputs, mask=None):
        if mask is None:
            return ops.ones(ops.shape(inputs)[:1], "bool")
        return ops.cast(mask, "bool")

    def compute_mask(self, inputs, mask=None):
        return None


def _tensors_of(inputs, outputs, which):
    """One call's flat list: its outputs followed by one mask each, or its inputs."""
    if which == "output":
        return outputs + [_OutputMask()(tensor) for tensor in outputs]
    return inputs


def _call_layout(call, which):
    """(number of tensors, number of masks) of one call's flat list: outputs come with one mask each."""
    return (len(call) // 2, len(call) // 2) if which == "output" else (len(call), 0)


def _symbolic_calls(model, layer, which, owner):
    """One flat list of symbolic tensors per call of `layer` in the graph of `model`, nested models included.

    For outputs, a call's list is its output tensors followed by one mask tensor each.
    """
    calls = []
    for node in _keras_internals.graph_nodes(model, layer):
        calls.append(_tensors_of(list(node.input_tensors), list(node.output_tensors), which))
    for owner_layer in model.layers:  # the custom layers that call `layer` inside their own call
        if is_graph_model(owner_layer) or all(layer is not inner for inner in inner_layers(owner_layer)):
            continue
        for node in _keras_internals.graph_nodes(model, owner_layer):
            arguments = (tuple(node.arguments.args), dict(node.arguments.kwargs))
            for call in inner_calls(owner_layer, arguments, layer):
                calls.append(_tensors_of(call.inputs, call.outputs, which))
    for sub in model.layers:
        if (
            sub is layer
            or not is_graph_model(sub)
            or all(layer is not inner for inner in reachable_layers(sub))
        ):
            continue
        nested_calls = _symbolic_calls(sub, layer, which, owner)
        sub_inputs = sub.inputs[0] if isinstance(sub, keras.Sequential) else sub.input
        inner_model = keras.Model(sub_inputs, [tensor for call in nested_calls for tensor in call])
        # Without this, Keras warns at every call that the copy drops its input's mask: the user saw that
        # warning for their own nested model already, and the copy's outputs feed no masked layer.
        inner_model.supports_masking = True
        for sub_node in _keras_internals.graph_nodes(model, sub):  # every call of the nested model
            arguments = sub_node.arguments
            outputs = inner_model(arguments.args[0] if arguments.args else arguments.kwargs["inputs"])
            outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
            start = 0
            for call in nested_calls:
                calls.append(outputs[start : start + len(call)])
                start += len(call)
    if not calls:
        raise ValueError(
            f"{owner}: the layer {layer.name!r} is not in the graph of the model {model.name!r}."
        )
    return calls


@contextlib.contextmanager
def preserved_state(model: keras.Model):
    """Restores the model's non-trainable variables (BatchNorm statistics, seed states) on exit.

    A forward pass in training mode updates BatchNormalization's moving statistics and every
    noise draw advances a seed state; measuring must not change the model or its noise stream.
    """
    variables = list(model.non_trainable_variables)
    saved = [ops.convert_to_numpy(variable) for variable in variables]
    try:
        yield
    finally:
        for variable, value in zip(variables, saved, strict=True):
            variable.assign(value)
