"""Canaries: one test per use of private Keras in `keras_adaptive_acts._keras_internals`.

Each checks the Keras behaviour the package relies on, through the shim, against what the model
is known to contain, and fails with a message naming that behaviour, so that a Keras release that
changes it is caught here rather than by a user.
"""

import inspect
from pathlib import Path
from typing import ClassVar

import keras
import numpy as np
import pytest
from every_layer_model import subclassed_model

from keras_adaptive_acts import NoisyLSTMCell, _keras_internals


def test_the_recursive_layer_walk_reaches_cells_their_units_and_bidirectional_copies():
    cell = NoisyLSTMCell(3, seed=1)
    recurrent = keras.layers.Bidirectional(keras.layers.RNN(cell))
    model = keras.Sequential([keras.Input((5, 2)), recurrent, keras.layers.Dense(1)])
    found = _keras_internals.flatten_layers(model)
    ids = [id(layer) for layer in found]
    message = (
        "Keras changed its private recursive layer walk (see _keras_internals.flatten_layers): it no "
        "longer lists every layer held at any depth (model, wrappers, RNN cells, the sublayers of a cell)."
    )
    assert found[0] is model, message
    assert len(ids) == len(set(ids)), message + " (a layer appears twice)"
    assert recurrent in found and recurrent.forward_layer in found and recurrent.backward_layer in found, (
        message
    )
    cells = [layer for layer in found if isinstance(layer, NoisyLSTMCell)]
    assert len(cells) == 2, (
        message + f" (found {len(cells)} noisy cells, expected the forward and backward copy)"
    )
    for copy in cells:
        assert all(unit in found for unit in copy.noisy_units), (
            message + " (a cell's noisy units are missing)"
        )
    # The listing sees exactly the variables the model owns: every weight belongs to a listed layer.
    owned = {id(weight) for layer in found for weight in layer.weights}
    assert {id(weight) for weight in model.weights} <= owned, message


def test_is_functional_tells_graph_models_from_sequential_and_subclassed():
    inputs = keras.Input((3,))
    functional = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    subclassed = subclassed_model()
    message = (
        "Keras changed its private Functional class (see _keras_internals.is_functional): "
        "keras.Model(inputs, outputs) no longer "
        "returns an instance of it, or subclassed models now are."
    )
    assert _keras_internals.is_functional(functional), message
    assert not _keras_internals.is_functional(subclassed), message
    assert not _keras_internals.is_functional(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])), (
        message + " (a Sequential model counts as Functional now: swap_activations rebuilds it twice)"
    )


def test_graph_nodes_finds_the_call_of_a_shared_layer_in_each_graph():
    shared = keras.layers.Dense(2, name="shared")
    first_input, second_input = keras.Input((3,)), keras.Input((3,))
    first = keras.Model(first_input, shared(first_input))
    second = keras.Model(second_input, shared(second_input))
    nested = keras.Sequential([keras.Input((3,)), shared])  # a third call, inside a Sequential
    message = (
        "Keras changed how a graph records a layer's calls (the private node bookkeeping named in "
        "_keras_internals.graph_nodes): the call of a layer that "
        "belongs to one particular model can no longer be found."
    )
    for model, model_input in ((first, first_input), (second, second_input)):
        nodes = _keras_internals.graph_nodes(model, shared)
        assert len(nodes) == 1, message
        assert nodes[0].input_tensors[0] is model_input, message
        assert nodes[0].output_tensors[0] is model.outputs[0], message
    nodes = _keras_internals.graph_nodes(nested, shared)
    assert len(nodes) == 1 and nodes[0].output_tensors[0] is nested.outputs[0], message
    unrelated = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    assert _keras_internals.graph_nodes(unrelated, shared) == [], message


def test_upstream_operations_walks_a_graph_under_construction():
    inputs = keras.Input((4, 3))
    norm = keras.layers.LayerNormalization(name="norm")
    hidden = keras.layers.Dense(5, name="up")(norm(inputs))
    outputs = keras.layers.Dense(3, name="down")(hidden + 1.0)  # an op between layers too
    names = [operation.name for operation in _keras_internals.upstream_operations(outputs)]
    message = (
        "Keras changed a symbolic tensor's private history or an operation's recorded calls (see "
        "_keras_internals.upstream_operations): a graph under construction can no longer be "
        "walked upwards from a symbolic tensor."
    )
    assert names[0] == "down", message
    assert names.index("up") < names.index("norm"), message + f" (order: {names})"
    assert len(names) == len(set(names)), message
    assert list(_keras_internals.upstream_operations(np.zeros((1, 4, 3), "float32"))) == [], (
        "An eager array has no graph: upstream_operations must yield nothing for it."
    )


def test_nodes_between_finds_the_calls_a_layer_makes_inside_its_call():
    class Block(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.up = keras.layers.Dense(5, name="up")
            self.act = keras.layers.ReLU(name="act")

        def call(self, inputs):
            return self.act(self.up(inputs)) + 1.0

    upstream = keras.Input((3,))
    inputs = keras.layers.Dense(3, name="before")(upstream)  # a call before the traced one
    block = Block()
    outputs = block.call(inputs)  # traced on symbolic tensors: the sublayers record their calls
    nodes = _keras_internals.nodes_between(inputs, outputs)
    message = (
        "Keras changed a symbolic tensor's private history or an operation's recorded calls (see "
        "_keras_internals.nodes_between): the calls made inside a traced layer call can no longer be "
        "found from its outputs."
    )
    names = [node.operation.name for node in nodes]
    assert "before" not in names and "input_layer" not in names, message + f" (the walk went past: {names})"
    by_name = {node.operation.name: node for node in nodes}
    assert {"up", "act"} <= set(by_name) and len(nodes) == 3, message + f" (found {names})"  # and `+ 1.0`
    assert by_name["act"].input_tensors[0] is by_name["up"].output_tensors[0], message
    assert by_name["up"].input_tensors[0] is inputs, message
    assert by_name["act"].arguments.args[0] is by_name["up"].output_tensors[0], message
    assert _keras_internals.nodes_between(inputs, inputs) == [], message


def test_lambda_output_shape_reads_the_argument_a_lambda_layer_was_made_with():
    def first_two(input_shape):
        return (*input_shape[:-1], 2)

    message = (
        "Keras changed where a Lambda layer keeps its `output_shape` argument (see "
        "_keras_internals.lambda_output_shape): swap_activations can no longer copy a Lambda layer exactly."
    )
    assert _keras_internals.lambda_output_shape(keras.layers.Lambda(lambda x: x)) is None, message
    layer = keras.layers.Lambda(lambda x: x[:, :2], output_shape=(2,))
    assert _keras_internals.lambda_output_shape(layer) == (2,), message
    layer = keras.layers.Lambda(lambda x: x[:, :2], output_shape=first_two)
    assert _keras_internals.lambda_output_shape(layer) is first_two, message
    # What Keras computes the layer's output shape from.
    assert layer.compute_output_shape((None, 5)) == (None, 2), message


class ContextReader(keras.layers.Layer):
    """A layer whose sublayer records what the call context says `training` is."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.inner = TrainingRecorder()

    def call(self, inputs):
        return self.inner(inputs)


class TrainingRecorder(keras.layers.Layer):
    seen: ClassVar[list] = []  # what each call found, across instances

    def call(self, inputs):  # no `training` argument: the value can only come from the context
        type(self).seen.append(_keras_internals.call_context_training())
        return inputs


def test_call_context_training_is_the_value_the_outer_call_resolved():
    message = (
        "Keras changed how it keeps `training` in its call context (see "
        "_keras_internals.call_context_training): the noisy cells can no longer tell, before their "
        "loop, whether a call draws noise."
    )
    model = keras.Sequential([keras.Input((2,)), ContextReader()])
    layer = ContextReader()
    x = np.zeros((1, 2), "float32")
    layer(x)  # the first call also builds, tracing the call once more
    TrainingRecorder.seen = []
    layer(x, training=True)
    layer(x, training=False)
    model(x, training=True)
    assert TrainingRecorder.seen == [True, False, True], message
    assert _keras_internals.call_context_training() is None, message  # outside any call
    # What the cells rely on: inside keras.layers.RNN, before the loop, the RNN's own value.
    cell = NoisyLSTMCell(2, seed=0)
    rnn = keras.layers.RNN(cell)
    rnn(np.zeros((1, 3, 2), "float32"), training=True)
    before = [float(v) for v in np.asarray(cell.noisy_units[0].noise_stream.pair())]
    rnn(np.zeros((1, 3, 2), "float32"), training=False)
    after_inference = [float(v) for v in np.asarray(cell.noisy_units[0].noise_stream.pair())]
    rnn(np.zeros((1, 3, 2), "float32"), training=True)
    after_training = [float(v) for v in np.asarray(cell.noisy_units[0].noise_stream.pair())]
    assert after_inference == before, message + " (an inference call advanced the noise stream)"
    assert after_training[1] == before[1] + 1, message + " (a training call did not take a seed)"


# The shim's public functions, found by inspection rather than from its `__all__`.
SHIM_FUNCTIONS = sorted(
    name
    for name, value in vars(_keras_internals).items()
    if inspect.isfunction(value)
    and value.__module__ == _keras_internals.__name__
    and not name.startswith("_")
)


def test_the_shim_exports_every_function_it_defines():
    assert SHIM_FUNCTIONS and sorted(_keras_internals.__all__) == SHIM_FUNCTIONS


@pytest.mark.parametrize("name", SHIM_FUNCTIONS)
def test_every_shim_function_says_why_no_public_api_serves(name):
    doc = getattr(_keras_internals, name).__doc__
    assert "Why private:" in doc, f"{name} must say why Keras' public API does not serve"
    # One canary per function: a test of this module that calls it through the shim.
    assert f"_keras_internals.{name}(" in Path(__file__).read_text(), f"{name} has no canary test"


def test_the_jax_trainer_hands_the_optimizer_step_only_trainable_variables():
    inputs = keras.Input((3,))
    frozen = keras.layers.Dense(3, name="frozen")
    trained = keras.layers.Dense(1, name="trained")
    seen = []

    class Record(keras.constraints.Constraint):
        def __call__(self, w):
            seen.append(
                (
                    _keras_internals.variable_is_detached(frozen.kernel),
                    _keras_internals.variable_is_detached(trained.bias),
                )
            )
            return w

    trained.kernel_constraint = Record()
    model = keras.Model(inputs, trained(frozen(inputs)))
    trained.kernel.constraint = Record()
    frozen.trainable = False
    model.compile(keras.optimizers.SGD(0.1), "mse", jit_compile=False)
    message = (
        "Keras changed what a variable holds during fit (see _keras_internals.variable_is_detached): the "
        "stateless scope and `Variable._value` no longer tell whether a frozen variable can be read."
    )
    assert not _keras_internals.variable_is_detached(frozen.kernel), message  # outside fit: a value
    with keras.StatelessScope(state_mapping=[(frozen.kernel, np.zeros((3, 3), "float32"))]):
        assert not _keras_internals.variable_is_detached(frozen.kernel), message
    model.fit(np.ones((4, 3), "float32"), np.zeros((4, 1), "float32"), batch_size=4, verbose=0)
    assert seen, message + " (the constraint did not run)"
    if keras.backend.backend() == "jax":  # a frozen variable is out of reach, a trainable one mapped
        assert seen[0] == (True, False), message
    else:  # the variables themselves are updated: all readable
        assert seen[0] == (False, False), message
    assert not _keras_internals.variable_is_detached(frozen.kernel), message  # values back after fit
