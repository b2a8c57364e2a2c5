"""The only module of the package that touches Keras' private internals.

Each function below answers one question about a model that Keras' public API (as of Keras 3.15,
and on the floor this package declares, 3.10) cannot answer. Each says why no public API serves,
and `tests/test_keras_internals.py` holds one canary test per function that fails, naming the
Keras behaviour, when a Keras release changes it. Everything else in the package, tests included,
goes through these functions (or through `keras_adaptive_acts.model_graph`, built on them).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import keras

__all__ = [
    "call_context_training",
    "flatten_layers",
    "graph_nodes",
    "is_functional",
    "lambda_output_shape",
    "nodes_between",
    "upstream_operations",
    "variable_is_detached",
]


def flatten_layers(layer: keras.layers.Layer) -> list[keras.layers.Layer]:
    """Every layer inside `layer`, at any depth, each once (`layer` itself first).

    Why private: `Model.layers` is one level deep and misses the layers a layer holds as
    attributes (an RNN's cell, the noisy units inside a cell, the two copies a `Bidirectional`
    makes). `Layer._flatten_layers` is the walk Keras itself uses for `model.weights`, so it sees
    exactly the layers whose variables the model trains and saves.
    """
    return layer._flatten_layers(include_self=True, recursive=True)


def is_functional(model: Any) -> bool:
    """Whether `model` was built by `keras.Model(inputs, outputs)` (a graph of layers).

    Why private: Keras has no public name for the class `keras.Model(inputs, outputs)` returns
    (`Functional`), and a subclassed model is a `keras.Model` too; only the graph class can be
    rebuilt layer by layer (`keras.models.clone_model` with a `clone_function`).
    """
    from keras.src.models.functional import Functional

    return isinstance(model, Functional)


def lambda_output_shape(layer: keras.layers.Lambda) -> Any:
    """The `output_shape` argument a `Lambda` layer was made with: None, a shape, or a function.

    Why private: `Lambda` keeps the argument only as `_output_shape`. Its config holds a serialized
    copy, from which Keras rebuilds a Python lambda from bytecode without the globals of the module
    that defined it (so that calling it can fail), and a named function only if it is registered;
    `swap_activations` copies a Lambda layer with the very objects it holds instead.
    """
    return layer._output_shape


def graph_nodes(model: keras.Model, layer: keras.layers.Layer) -> list[Any]:
    """The nodes (calls) of `layer` that belong to `model`'s own graph, in call order.

    A node has the public attributes `input_tensors`, `output_tensors` and `arguments`.

    Why private: a layer's public `output` is defined only for a layer called once in all the
    graphs it belongs to; a layer of a nested model, or one reused by a second model, has
    several calls, and only `Layer._inbound_nodes` with the graph's node keys
    (`Function._nodes`, keyed by `make_node_key`) tell which call is this graph's. A Sequential
    model keeps its graph in `_functional`.
    """
    from keras.src.ops.function import make_node_key

    graph = model._functional if isinstance(model, keras.Sequential) else model
    keys = graph._nodes
    return [node for index, node in enumerate(layer._inbound_nodes) if make_node_key(layer, index) in keys]


def upstream_operations(tensors: Any) -> Iterator[Any]:
    """The operations (layers, and ops such as `x + 1`) that produced symbolic `tensors`, and
    their ancestors, nearest first; each once. Nothing for eager tensors.

    Why private: a `KerasTensor` records the call that produced it only in `_keras_history`
    (operation, node index, tensor index), and an operation's calls only in `_inbound_nodes`;
    Keras exposes no public walk up a graph under construction.
    """
    pending = [tensor for tensor in keras.tree.flatten(tensors) if hasattr(tensor, "_keras_history")]
    seen = set()
    while pending:
        tensor = pending.pop(0)
        operation, node_index, _ = tensor._keras_history
        if operation is None or (id(operation), node_index) in seen:
            continue
        seen.add((id(operation), node_index))
        yield operation
        node = operation._inbound_nodes[node_index]
        pending.extend(t for t in node.input_tensors if hasattr(t, "_keras_history"))


def nodes_between(inputs: Any, outputs: Any) -> list[Any]:
    """The nodes (calls of layers and of ops such as `x + 1`) that compute the symbolic `outputs` from
    the symbolic `inputs`, nearest to the outputs first; each once.

    The walk stops at `inputs` and at tensors with no recorded call, so a layer's `call` traced on
    symbolic tensors gives the calls it made, and nothing of the graph before it. A node has the
    public attributes `operation`, `input_tensors`, `output_tensors` and `arguments`.

    Why private: Keras keeps the call that produced a `KerasTensor` only in `_keras_history` and an
    operation's calls only in `_inbound_nodes` (as for `upstream_operations`). The public
    alternative, `keras.Model(inputs, outputs)` on intermediate tensors, copies the nodes between
    them onto new input layers: the copies are not connected to the graph the inputs came from,
    which the layer taps need to read a sublayer's call inside a model's graph.
    """
    stop = {id(tensor) for tensor in keras.tree.flatten(inputs)}
    pending = [tensor for tensor in keras.tree.flatten(outputs) if hasattr(tensor, "_keras_history")]
    seen, found = set(), []
    while pending:
        tensor = pending.pop(0)
        if id(tensor) in stop:
            continue
        operation, node_index, _ = tensor._keras_history
        if operation is None or (id(operation), node_index) in seen:
            continue
        seen.add((id(operation), node_index))
        node = operation._inbound_nodes[node_index]
        found.append(node)
        pending.extend(t for t in node.input_tensors if hasattr(t, "_keras_history"))
    return found


def call_context_training() -> Any:
    """The `training` value of the layer call now running (None outside any call).

    Why private: a recurrent cell is told `training` at each step, but `keras.layers.RNN` asks it
    for its per-sequence state (`get_dropout_mask`) before the loop, without `training`. The noisy
    cells take their noise seed there (before the loop, so that two calls running at once never
    share it) and only when the call draws noise (so that an inference graph holds no variable
    update). Keras keeps the resolved value of the outermost call in its call context, the global
    attribute "current_call_ctx" (read here without creating one, unlike `Layer._get_call_context`),
    which is how it passes `training` down to sublayers.
    """
    from keras.src.backend.common import global_state

    context = global_state.get_global_attribute("current_call_ctx")
    return None if context is None else getattr(context, "training", None)


def variable_is_detached(variable: keras.Variable) -> bool:
    """Whether `variable` has no value where the code now runs: the stateless scope running (if
    any) does not map it, and its own value has been taken away.

    This is the case of every non-trainable model variable inside the optimizer's update during
    `fit` on JAX: Keras' JAX trainer takes the values out of the model's variables for the whole
    epoch (it carries them in its own state) and runs `optimizer.stateless_apply` in a
    `StatelessScope` that maps only the trainable and the optimizer's variables, so a weight
    constraint that reads any other variable (a frozen LayerNormalization's gamma) finds no value.

    Why private: Keras exposes neither the stateless scope now running
    (`keras.src.backend.common.stateless_scope.get_stateless_scope`; only the class
    `keras.StatelessScope` is public) nor whether a variable holds a value (`Variable._value`,
    None once the JAX trainer has taken it away; reading `variable.value` then fails).
    """
    from keras.src.backend.common.stateless_scope import get_stateless_scope

    scope = get_stateless_scope()
    if scope is not None and scope.get_current_value(variable) is not None:
        return False
    return variable._value is None
