"""The calls a layer makes inside its own `call`: how the sublayers of custom layers are reached.

A Functional model's graph records the calls of its own layers, not the calls that a custom layer
makes inside its `call` (a KerasHub `TransformerEncoder` calling its feed-forward `Dense`, which
applies its activation). Those are read by tracing: the owner's `call` runs once on the symbolic
tensors of one of its calls, and each sublayer it calls on them records a call of its own,
connected to the tensors it was given. Where a sublayer's own symbolic call skips its `call` (a
`Dense` computes its output shape instead of calling its activation), that sublayer's `call` is
traced in turn, down to the layer sought.

`model_graph.LayerTaps` reads the outputs and inputs of such layers this way, and
`swap_activations` builds the activations it puts inside custom layers this way (a symbolic call
builds a layer, so its weights exist before the model is trained or saved).

What tracing cannot show: a branch of the owner's `call` on a Python value of `training`
(`if training:`) takes the path of the value the call was made with, usually None; the
sublayers themselves still follow the `training` flag of each run, which Keras passes down.
A `call` that runs backend-specific code (TensorFlow ops), or that needs the batch size as a
number (KerasHub's SigLIP attention-pooling head tiles its probe by it), cannot run on symbolic
tensors of an unknown batch size, and tracing it fails with a `ValueError`.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import keras

from keras_adaptive_acts import _keras_internals

__all__ = ["InnerCall", "inner_calls", "inner_layers", "is_traceable", "symbolic_arguments"]


@dataclasses.dataclass
class InnerCall:
    """One call of a layer inside another layer's call: its input and output symbolic tensors."""

    inputs: list[Any]
    outputs: list[Any]


def is_traceable(layer: keras.layers.Layer) -> bool:
    """Whether the sublayers that `layer` calls can be reached by tracing its `call`.

    Wrappers and recurrent layers are not: `TimeDistributed` calls its layer on the time steps
    folded into the batch, `Bidirectional` and the RNN layers call their cells inside a loop that
    the backend runs. Their sublayers stay out of reach, as they always were.
    """
    return not isinstance(layer, (keras.layers.Wrapper, keras.layers.RNN, keras.layers.Bidirectional))


def inner_layers(layer: keras.layers.Layer) -> list[keras.layers.Layer]:
    """The layers that `layer` holds, at any depth, whose calls tracing can reach, each once.

    `layer` itself is not listed; nor is anything inside a wrapper or a recurrent layer that
    `layer` holds (the wrapper or recurrent layer itself is).
    """
    if not is_traceable(layer):
        return []
    found, out_of_reach = [], set()
    for sublayer in _keras_internals.flatten_layers(layer)[1:]:
        if id(sublayer) in out_of_reach:
            continue
        found.append(sublayer)
        if not is_traceable(sublayer):
            out_of_reach.update(id(inner) for inner in _keras_internals.flatten_layers(sublayer)[1:])
    return found


def inner_calls(
    owner: keras.layers.Layer, arguments: tuple[tuple, dict], layer: keras.layers.Layer
) -> list[InnerCall]:
    """The calls of `layer`, one of `inner_layers(owner)`, that `owner` makes when called with `arguments`.

    The owner's `call` is traced on new inputs of the specs of `arguments` into a model of its own
    (one per owner: a model's graph must not hold two layers of one name, and the sublayers of
    two KerasHub encoder blocks share theirs), and that model is called on `arguments`: the calls
    returned are connected to the tensors given. At run time, that model sees the masks Keras
    attaches to them, as the owner does.

    Args:
        owner: the layer whose `call` is traced.
        arguments: `(args, kwargs)` of one call of `owner`, holding symbolic tensors: a node's
            arguments in a model's graph, or `symbolic_arguments` of them (a trace of its own).
        layer: the layer sought.

    Returns:
        The calls of `layer`, in an order that is the same at every trace of the same owner.

    Raises:
        ValueError: if `owner`'s call (or that of a layer between it and `layer`) cannot run on
            symbolic tensors.
    """
    args, kwargs = arguments
    tensors = list(
        {id(value): value for value in keras.tree.flatten((args, kwargs)) if _is_symbolic(value)}.values()
    )
    inputs = {id(tensor): keras.Input(batch_shape=tensor.shape, dtype=tensor.dtype) for tensor in tensors}
    traced_args, traced_kwargs = keras.tree.map_structure(
        lambda value: inputs.get(id(value), value) if _is_symbolic(value) else value,
        (list(args), dict(kwargs)),
    )
    found = _calls_in_trace(owner, tuple(traced_args), traced_kwargs, layer)
    if not found:
        return []
    model = keras.Model(
        list(inputs.values()), [tensor for call in found for tensor in (*call.inputs, *call.outputs)]
    )
    # Keras warns at each call of a model that drops a mask it is given; this one passes the masks
    # on to the layers inside it, which read them as the owner's call does.
    model.supports_masking = True
    # Nor does it check the shapes it is given: it was traced on the static shapes of the owner's
    # call, which the layers before it can get wrong (KerasHub's SigLIP embedding says 17 tokens where
    # it makes 16), and the owner's own call checks nothing either.
    model.input_spec = None
    outputs = model(tensors)
    outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    calls, start = [], 0
    for call in found:
        middle, end = start + len(call.inputs), start + len(call.inputs) + len(call.outputs)
        calls.append(InnerCall(outputs[start:middle], outputs[middle:end]))
        start = end
    return calls


def _calls_in_trace(owner, args, kwargs, layer):
    """The calls of `layer` in a trace of `owner.call(*args, **kwargs)`, on the trace's own tensors."""
    try:
        outputs = owner.call(*args, **_accepted(owner, kwargs))
    except Exception as error:  # whatever a call that cannot run symbolically raises
        raise ValueError(
            f"The call of the layer {owner.name!r} ({type(owner).__name__}) cannot be traced on symbolic "
            f"tensors, so the layers it calls cannot be read: {type(error).__name__}: {error}"
        ) from error
    calls = []
    # Nearest to the outputs first: reversed, the calls come roughly in the order the owner made them.
    for node in reversed(_keras_internals.nodes_between((args, kwargs), outputs)):
        operation = node.operation
        if operation is layer:
            calls.append(InnerCall(list(node.input_tensors), list(node.output_tensors)))
        elif isinstance(operation, keras.layers.Layer) and any(
            layer is inner for inner in inner_layers(operation)
        ):
            arguments = (tuple(node.arguments.args), dict(node.arguments.kwargs))
            calls.extend(inner_calls(operation, arguments, layer))
    return calls


def _accepted(layer, kwargs):
    """The keyword arguments `layer.call` takes. A call records those its caller passed, and Keras
    drops the ones a `call` does not take (a caller's `training=` to a layer without it)."""
    parameters = inspect.signature(layer.call).parameters.values()
    if any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters):
        return kwargs
    names = {parameter.name for parameter in parameters}
    return {key: value for key, value in kwargs.items() if key in names}


def _is_symbolic(value: Any) -> bool:
    return isinstance(value, keras.KerasTensor)


def symbolic_arguments(arguments: tuple[tuple, dict]) -> tuple[tuple, dict]:
    """`(args, kwargs)` with each symbolic tensor replaced by a new one of its shape and dtype.

    A trace on these records calls of its own, apart from any model's graph: what building a
    layer's sublayers needs, without adding to the graph the tensors came from.
    """

    def fresh(value):
        if _is_symbolic(value):
            return keras.KerasTensor(value.shape, dtype=value.dtype)
        return value

    args, kwargs = arguments
    return tuple(keras.tree.map_structure(fresh, list(args))), keras.tree.map_structure(fresh, dict(kwargs))
