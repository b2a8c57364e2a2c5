"""`swap_activations` inside custom layers, and reading those activations: the activations a custom layer
takes as arguments of its config are replaced (the layer rebuilt from its config, its weights kept,
`.keras` round trips intact), the others are reported; `measure_sparsity`, `SparsityMonitor` and
`LayerTaps` read the new activations inside the layer's call. Plain Keras only: the KerasHub backbones
are in tests/test_keras_hub.py."""

import collections

import keras
import numpy as np
import pytest
from keras import ops

from keras_adaptive_acts import TLU, CompetitiveReLU, JSquaredReLU
from keras_adaptive_acts.callbacks import SparsityMonitor
from keras_adaptive_acts.inner_calls import inner_calls, inner_layers
from keras_adaptive_acts.measurement import measure_sparsity
from keras_adaptive_acts.model_graph import LayerTaps
from keras_adaptive_acts.surgery import swap_activations

X = np.random.default_rng(0).standard_normal((64, 4)).astype("float32")
SET_BY_CODE = "not by an argument of its config"


@keras.saving.register_keras_serializable(package="test_surgery_sublayers")
class FeedForward(keras.layers.Layer):
    """A custom block as KerasHub writes them: its `activation` argument goes to a Dense made in
    `build`, its `gate_activation` to an activation layer it holds; its squash is set by its code."""

    def __init__(self, units, activation="gelu", gate_activation="relu", **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.activation = keras.activations.get(activation)  # passed down to `expand`: one activation
        self.gate_activation = gate_activation  # a setting, as given
        self.gate = keras.layers.Activation(gate_activation, name="gate")
        self.squash = keras.layers.Activation("tanh", name="squash")

    def build(self, input_shape):
        self.expand = keras.layers.Dense(self.units, activation=self.activation, name="expand")
        self.expand.build(input_shape)
        self.project = keras.layers.Dense(input_shape[-1], name="project")
        self.project.build((*input_shape[:-1], self.units))

    def call(self, inputs):
        return inputs + self.squash(self.project(self.gate(self.expand(inputs) - 0.5)))

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "activation": keras.activations.serialize(self.activation),
            "gate_activation": self.gate_activation,
        }


@keras.saving.register_keras_serializable(package="test_surgery_sublayers")
class TwoWidths(keras.layers.Layer):
    """One `activation` argument, returned by `get_config` as it was given, applied by two Dense
    layers of different widths. Without a `build`: Keras builds it by running its call."""

    def __init__(self, activation="relu", **kwargs):
        super().__init__(**kwargs)
        self.activation = activation
        self.narrow = keras.layers.Dense(3, activation=activation, name="narrow")
        self.wide = keras.layers.Dense(5, activation=activation, name="wide")

    def call(self, inputs):
        return ops.concatenate([self.narrow(inputs), self.wide(inputs)], axis=-1)

    def get_config(self):
        return {**super().get_config(), "activation": self.activation}


@keras.saving.register_keras_serializable(package="test_surgery_sublayers")
class TwoWidthsBuilt(TwoWidths):
    """The same with a `build` and an output shape of its own: Keras never runs its call to build it,
    so nothing builds an activation layer its Dense layers were given."""

    def build(self, input_shape):
        self.narrow.build(input_shape)
        self.wide.build(input_shape)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 8)


@keras.saving.register_keras_serializable(package="test_surgery_sublayers")
class Hardcoded(keras.layers.Layer):
    """A block whose activation is written in its code: no argument of its config sets it."""

    def build(self, input_shape):
        self.hidden = keras.layers.Dense(6, activation="relu", name="hidden")
        self.hidden.build(input_shape)

    def call(self, inputs):
        return self.hidden(inputs)


def feed_forward_model(name="ff"):
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(2, name="head")(FeedForward(8, name=name)(inputs))
    return keras.Model(inputs, outputs)


def numpy_of(variable):
    return np.asarray(ops.convert_to_numpy(variable), "float64")


def j_squared_relu(z):
    return np.maximum(z, 0) + 0.5 * np.maximum(z, 0) ** 2


def feed_forward_reference(block, x, activation):
    """The block's output, in float64 from its weights, with `activation` for both of its activations."""
    z = x.astype("float64") @ numpy_of(block.expand.kernel) + numpy_of(block.expand.bias)
    gated = activation(activation(z) - 0.5)
    return x + np.tanh(gated @ numpy_of(block.project.kernel) + numpy_of(block.project.bias))


def activation_count(layer):
    """The activations a FeedForward-like block applies, counted by hand (one per function or
    activation layer that computes something, the owner's passed-down function not counted twice)."""
    counts = collections.Counter()
    for attribute in ("expand", "gate", "squash", "hidden", "narrow", "wide"):
        sublayer = getattr(layer, attribute, None)
        if sublayer is not None:
            counts[keras.activations.serialize(sublayer.activation)] += 1
    return counts


@pytest.mark.parametrize("replacement", ["j_squared_relu", CompetitiveReLU])
def test_arguments_of_a_custom_layer_take_the_new_activation_and_the_rest_is_reported(replacement):
    model = feed_forward_model()
    new_model, report = swap_activations(model, replacement, targets=("gelu", "relu", "tanh"))
    assert report.seen == activation_count(model.get_layer("ff")) == {"gelu": 1, "relu": 1, "tanh": 1}
    assert [(path, kind) for path, _, kind in report.replaced] == [("ff/expand", "gelu"), ("ff/gate", "relu")]
    assert report.replaced[0][1].startswith("FeedForward rebuilt with activation=")
    assert [path for path, _ in report.left_alone] == ["ff/squash"]
    assert SET_BY_CODE in report.left_alone[0][1]
    new_block, old_block = new_model.get_layer("ff"), model.get_layer("ff")
    new_class = JSquaredReLU if replacement == "j_squared_relu" else CompetitiveReLU
    assert isinstance(new_block.expand.activation, new_class)
    assert isinstance(new_block.gate.activation, new_class)
    assert new_block.squash.activation is keras.activations.tanh
    for attribute in ("expand", "project"):
        for weight in ("kernel", "bias"):
            new, old = (getattr(getattr(block, attribute), weight) for block in (new_block, old_block))
            np.testing.assert_array_equal(numpy_of(new), numpy_of(old))
    # What the block computes now, from its weights in float64 (CompetitiveReLU starts as a ReLU).
    activation = j_squared_relu if replacement == "j_squared_relu" else (lambda z: np.maximum(z, 0))
    outputs = new_model.predict(X, verbose=0)
    hidden = feed_forward_reference(old_block, X, activation)
    expected = hidden @ numpy_of(model.get_layer("head").kernel) + numpy_of(model.get_layer("head").bias)
    np.testing.assert_allclose(outputs, expected, rtol=1e-5, atol=1e-5)
    assert not np.allclose(outputs, model.predict(X, verbose=0), atol=1e-3)  # GELU is gone


@pytest.mark.parametrize("replacement", ["j_squared_relu", CompetitiveReLU])
def test_a_swapped_custom_layer_round_trips_through_a_keras_file_and_trains(replacement, tmp_path):
    new_model, _ = swap_activations(feed_forward_model(), replacement, targets=("gelu", "relu"))
    block = new_model.get_layer("ff")
    if replacement is CompetitiveReLU:  # the new activations' own weights are saved and loaded too
        block.expand.activation.alpha.assign(0.25)
        block.gate.activation.beta.assign(-0.5)
    expected = new_model.predict(X, verbose=0)
    new_model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")  # safe mode
    np.testing.assert_array_equal(loaded.predict(X, verbose=0), expected)
    loaded_block = loaded.get_layer("ff")
    assert type(loaded_block.expand.activation) is type(block.expand.activation)
    for new, old in zip(loaded.weights, new_model.weights, strict=True):
        np.testing.assert_array_equal(numpy_of(new), numpy_of(old))
    if replacement is CompetitiveReLU:
        assert float(numpy_of(loaded_block.expand.activation.alpha)) == 0.25
        assert float(numpy_of(loaded_block.gate.activation.beta)) == -0.5
    kernel = numpy_of(loaded_block.expand.kernel)
    loaded.compile(keras.optimizers.SGD(0.1), "mse", jit_compile=True)
    loss = loaded.fit(X, np.ones((len(X), 2)), epochs=1, verbose=0).history["loss"][0]
    assert np.isfinite(loss)
    assert not np.array_equal(numpy_of(loaded_block.expand.kernel), kernel)  # gradients reach the block


def test_an_activation_set_by_a_layers_code_is_left_alone_with_the_reason():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, Hardcoded(name="block")(inputs))
    new_model, report = swap_activations(model, CompetitiveReLU)
    assert report.replaced == [] and [path for path, _ in report.left_alone] == ["block/hidden"]
    assert SET_BY_CODE in report.left_alone[0][1] and "lost on loading" in report.left_alone[0][1]
    assert new_model.get_layer("block").hidden.activation is keras.activations.relu
    np.testing.assert_array_equal(new_model.predict(X, verbose=0), model.predict(X, verbose=0))


# Keras' own warning at loading, for a layer without a `build` (as TwoWidths, on purpose).
@pytest.mark.filterwarnings("ignore:`build\\(\\)` was called on layer 'block'")
def test_a_rebuild_is_checked_against_what_loading_a_keras_file_gives(tmp_path):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, TwoWidths(name="block")(inputs))
    # TLU has a threshold per channel. Keras builds this block by running its call, so each Dense's
    # own TLU is built at its width, at loading too: replaced, and it round trips.
    new_model, report = swap_activations(model, TLU)
    assert [path for path, _, _ in report.replaced] == ["block/narrow", "block/wide"]
    block = new_model.get_layer("block")
    assert [tuple(block.narrow.activation.tau.shape), tuple(block.wide.activation.tau.shape)] == [(3,), (5,)]
    block.wide.activation.tau.assign(np.full(5, -0.25, "float32"))
    new_model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(loaded.predict(X, verbose=0), new_model.predict(X, verbose=0))
    np.testing.assert_array_equal(numpy_of(loaded.get_layer("block").wide.activation.tau), np.full(5, -0.25))
    # With a build of its own, loading would build neither TLU before reading their weights:
    # refused, with the reason, and the model is unchanged.
    model = keras.Model(inputs, TwoWidthsBuilt(name="block")(inputs))
    new_model, report = swap_activations(model, TLU)
    assert report.replaced == []
    assert [path for path, _ in report.left_alone] == ["block/narrow", "block/wide"]
    assert all("a .keras file would not load" in reason for _, reason in report.left_alone)
    assert new_model.get_layer("block").narrow.activation is keras.activations.relu
    np.testing.assert_array_equal(new_model.predict(X, verbose=0), model.predict(X, verbose=0))
    # A replacement without weights loads at any width: both are replaced, one layer each.
    new_model, report = swap_activations(model, "j_squared_relu")
    assert [path for path, _, _ in report.replaced] == ["block/narrow", "block/wide"]
    block = new_model.get_layer("block")
    assert (
        isinstance(block.narrow.activation, JSquaredReLU)
        and block.narrow.activation is not block.wide.activation
    )


def test_gelu_and_silu_are_targets_in_the_graph_too():
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(6, activation="gelu", name="up")(inputs)
    outputs = keras.layers.Activation("swish", name="swish")(hidden)
    model = keras.Model(inputs, outputs)
    new_model, report = swap_activations(model, "j_squared_relu", targets=("gelu", "silu"))
    assert [(path, kind) for path, _, kind in report.replaced] == [("up", "gelu"), ("swish", "silu")]
    names = [type(layer).__name__ for layer in new_model.layers]
    assert names == ["InputLayer", "Dense", "JSquaredReLU", "JSquaredReLU"]
    _, report = swap_activations(model, "j_squared_relu")  # the default targets: ReLU only
    assert report.seen == {"gelu": 1, "silu": 1} and report.replaced == []


def test_measure_sparsity_and_the_taps_read_the_new_activations_inside_the_block():
    model = feed_forward_model()
    new_model, _ = swap_activations(model, "j_squared_relu", targets=("gelu", "relu"))
    block = new_model.get_layer("ff")
    expand_activation, gate_activation = block.expand.activation, block.gate.activation
    # Independently: the pre-activations from the weights, and the zeros of J-SquaredReLU (z <= 0).
    z = X.astype("float64") @ numpy_of(block.expand.kernel) + numpy_of(block.expand.bias)
    gate_input = j_squared_relu(z) - 0.5
    expected = {
        expand_activation.name: np.count_nonzero(z <= 0) / z.size,
        gate_activation.name: np.count_nonzero(gate_input <= 0) / gate_input.size,
    }
    assert expected[expand_activation.name] != expected[gate_activation.name]
    assert measure_sparsity(new_model, X) == pytest.approx(expected)  # by default, in this order
    # The pre-activations themselves, as the derivative sparsity reads them (`which="input"`).
    inputs_taps = LayerTaps(new_model, [expand_activation, gate_activation], "input", "test")
    (expand_calls, gate_calls) = inputs_taps(X, training=False)
    assert len(expand_calls) == len(gate_calls) == 1
    np.testing.assert_allclose(ops.convert_to_numpy(expand_calls[0].tensors[0]), z, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        ops.convert_to_numpy(gate_calls[0].tensors[0]), gate_input, rtol=1e-4, atol=1e-4
    )
    (outputs,) = LayerTaps(new_model, [expand_activation], "output", "test")(X, training=False)
    np.testing.assert_allclose(
        ops.convert_to_numpy(outputs[0].tensors[0]), j_squared_relu(z), rtol=1e-5, atol=1e-5
    )
    assert outputs[0].masks[0].shape == (len(X),)
    # Any layer inside the block, by name or object; Keras' own layers there are not in the default.
    by_name = measure_sparsity(new_model, X, layers=["expand", gate_activation])
    gate_name = gate_activation.name
    assert by_name == pytest.approx(
        {"expand": expected[expand_activation.name], gate_name: expected[gate_name]}
    )
    # The monitor reads them too (SGD(0): the model does not change).
    new_model.compile(keras.optimizers.SGD(0.0), "mse")
    history = new_model.fit(X, np.zeros((len(X), 2)), verbose=0, callbacks=[SparsityMonitor(X)]).history
    for name, value in expected.items():
        assert history[f"zero_fraction/{name}"] == [pytest.approx(value)]
        assert history[f"zero_fraction_train/{name}"] == [pytest.approx(value)]  # no dropout, no noise


def test_blocks_with_repeated_sublayer_names_are_read_by_object_and_by_the_new_activations_names():
    inputs = keras.Input((4,))
    hidden = FeedForward(8, name="first")(inputs)
    model = keras.Model(inputs, FeedForward(8, name="second")(hidden))
    new_model, report = swap_activations(model, "j_squared_relu", targets=("gelu",))
    assert [path for path, _, _ in report.replaced] == ["first/expand", "second/expand"]
    result = measure_sparsity(new_model, X)
    assert list(result) == [new_model.get_layer(name).expand.activation.name for name in ("first", "second")]
    with pytest.raises(ValueError, match=r"has 2 layers named 'expand'"):
        measure_sparsity(new_model, X, layers=["expand"])
    second_expand = new_model.get_layer("second").expand
    assert list(measure_sparsity(new_model, X, layers=[second_expand])) == ["expand"]


def test_the_default_leaves_out_activations_in_a_call_that_cannot_be_traced():
    @keras.saving.register_keras_serializable(package="test_surgery_sublayers")
    class BatchSized(keras.layers.Layer):
        """Needs the batch size as a number, which a symbolic tensor does not have."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.inner = CompetitiveReLU(name="batch_sized_relu")

        def call(self, inputs):
            return self.inner(inputs + ops.zeros((ops.shape(inputs)[0], 1)))

    inputs = keras.Input((4,))
    hidden = BatchSized(name="block")(inputs)
    model = keras.Model(inputs, keras.layers.ReLU(name="relu")(hidden))
    assert list(measure_sparsity(model, X)) == ["relu"]  # as before: the inner layer is not read
    with pytest.raises(ValueError, match=r"The call of the layer 'block' \(BatchSized\) cannot be traced"):
        measure_sparsity(model, X, layers=["batch_sized_relu"])


def test_inner_calls_finds_each_call_of_a_sublayer_in_order():
    class Twice(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = keras.layers.Dense(4, name="shared_dense")
            self.wrapped = keras.layers.TimeDistributed(keras.layers.ReLU(name="wrapped_relu"))

        def build(self, input_shape):
            self.dense.build(input_shape)

        def call(self, inputs):
            return self.dense(self.dense(inputs) * 2.0)

    layer = Twice()
    inputs = keras.Input((4,))
    layer(inputs)
    calls = inner_calls(layer, ((inputs,), {}), layer.dense)
    assert len(calls) == 2
    assert calls[1].inputs[0].shape == calls[0].outputs[0].shape == (None, 4)
    reachable = inner_layers(layer)
    assert layer.dense in reachable and layer.wrapped in reachable
    assert all(inner.name != "wrapped_relu" for inner in reachable)  # inside a wrapper: out of reach
    # The calls are connected to the tensors given: a model from them computes the first call.
    first = keras.Model(inputs, calls[0].outputs[0])
    np.testing.assert_allclose(
        first.predict(X, verbose=0), keras.ops.convert_to_numpy(layer.dense(X)), rtol=1e-6, atol=1e-6
    )
