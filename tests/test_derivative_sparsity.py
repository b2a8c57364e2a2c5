"""Derivative sparsity: `measure_sparsity(..., derivative=True)` and `SparsityMonitor(derivative=True)`.

References: the zero sets of the derivatives written out in NumPy float64 (ReLU, clipped ReLU,
hard-tanh, hard-sigmoid, a fused Dense), central finite differences of the layer's forward pass
in float64 (which never touch the backward pass under test), and the same computation with the
activation moved into its own layer (which reads the derivative by another route).
"""

import keras
import numpy as np
import pytest

import keras_adaptive_acts as kaa
from keras_adaptive_acts.callbacks import SparsityMonitor
from keras_adaptive_acts.measurement import measure_sparsity


def _data(shape, seed=0, scale=2.0):
    return (scale * np.random.default_rng(seed).normal(size=shape)).astype("float32")


def _one_layer_model(layer, features=12):
    inputs = keras.Input((features,))
    return keras.Model(inputs, layer(inputs))


# The derivative's zero set written out per activation (entries exactly at a kink do not occur in
# the random data), against the zero set of the output where the two differ.
ANALYTIC_CASES = {
    "relu": (lambda: keras.layers.ReLU(name="subject"), lambda z: z <= 0),
    "clipped_relu": (lambda: keras.layers.ReLU(max_value=1.0, name="subject"), lambda z: (z <= 0) | (z >= 1)),
    "hard_tanh": (lambda: keras.layers.Activation("hard_tanh", name="subject"), lambda z: np.abs(z) >= 1),
    "hard_sigmoid": (
        lambda: keras.layers.Activation("hard_sigmoid", name="subject"),
        lambda z: (z <= -3) | (z >= 3),
    ),
    "j_squared_relu": (lambda: kaa.JSquaredReLU(name="subject"), lambda z: z <= 0),
    "tlu": (lambda: kaa.TLU(name="subject"), lambda z: z < 0),  # max(z, tau) with tau = 0 at first
    "gelu": (lambda: keras.layers.Activation("gelu", name="subject"), lambda z: np.zeros_like(z, bool)),
}


# GELU's derivative is never 0, but computed in float32 it can be: PyTorch's backward of the tanh
# form gives exactly 0 below about x = -6.2 (8 of these 480 entries at scale 3). At scale 1.5 the
# smallest entry is -4.1, where every backend's float32 derivative is not 0.
DATA_SCALE = {"gelu": 1.5}


@pytest.mark.parametrize("case", sorted(ANALYTIC_CASES))
def test_the_fraction_is_that_of_the_derivatives_zero_set(case):
    make_layer, zero_derivative = ANALYTIC_CASES[case]
    x = _data((40, 12), seed=1, scale=DATA_SCALE.get(case, 3.0))
    model = _one_layer_model(make_layer())
    measured = measure_sparsity(model, x, derivative=True, batch_size=16)
    assert measured == {"subject": pytest.approx(np.mean(zero_derivative(x.astype("float64"))), abs=1e-12)}


def test_saturated_entries_count_for_the_derivative_not_for_the_output():
    """The issue's example: hard-tanh's outputs are rarely zero, its derivative often is."""
    x = _data((64, 12), seed=2, scale=2.0)
    model = _one_layer_model(keras.layers.Activation("hard_tanh", name="subject"))
    outputs, derivatives = measure_sparsity(model, x), measure_sparsity(model, x, derivative=True)
    assert outputs["subject"] == 0.0
    assert derivatives["subject"] == pytest.approx(np.mean(np.abs(x) >= 1))
    assert derivatives["subject"] > 0.5


def jacobian_diagonal(layer, x, delta=1e-6):
    """`d layer(x)[i, j] / d x[i, j]` by central differences of the forward pass (float64, inference).

    One step per feature column moves every row at once: each row is a sample of its own, and the
    layers here are elementwise or couple the entries of a sample only (CompetitiveReLU).
    """

    def forward(values):
        return keras.ops.convert_to_numpy(layer(values, training=False))

    diagonal = np.zeros_like(x)
    for column in range(x.shape[1]):
        step = np.zeros_like(x)
        step[:, column] = delta
        diagonal[:, column] = (forward(x + step) - forward(x - step))[:, column] / (2 * delta)
    return diagonal


# Elementwise activation layers in float64: the derivative is zero exactly where the forward
# pass is locally constant, which central differences see without the backward pass.
FINITE_DIFFERENCE_LAYERS = {
    "relu": lambda: keras.layers.ReLU(dtype="float64"),
    "leaky_relu": lambda: keras.layers.LeakyReLU(dtype="float64"),
    "elu": lambda: keras.layers.ELU(dtype="float64"),
    "relu6": lambda: keras.layers.Activation("relu6", dtype="float64"),
    "rrelu": lambda: kaa.RReLU(dtype="float64"),
    "noisy_hard_tanh": lambda: kaa.NoisyHardTanh(dtype="float64"),
    "noisy_hard_tanh_half_normal": lambda: kaa.NoisyHardTanh(half_normal=True, dtype="float64"),
    "noisy_hard_sigmoid": lambda: kaa.NoisyHardSigmoid(dtype="float64"),
    "lisht": lambda: kaa.LiSHT(dtype="float64"),
    "snake": lambda: kaa.Snake(dtype="float64"),
    "mixed": lambda: kaa.MixedActivation("relu", "hard_tanh", t=0.5, dtype="float64"),
    "competitive_relu": lambda: kaa.CompetitiveReLU(competition="l1", dtype="float64"),
}


@pytest.mark.parametrize("name", sorted(FINITE_DIFFERENCE_LAYERS))
def test_the_fraction_matches_finite_differences_of_the_forward_pass(name):
    layer = FINITE_DIFFERENCE_LAYERS[name]()
    x = np.random.default_rng(3).normal(scale=3.0, size=(16, 10))
    x[0, :4] = 0.0  # exact zeros: LiSHT's derivative vanishes there, ReLU's is 0 by convention
    inputs = keras.Input((10,), dtype="float64")
    model = keras.Model(inputs, layer(inputs))
    measured = measure_sparsity(model, x, derivative=True)[layer.name]

    numeric = jacobian_diagonal(layer, x)
    # At an exact zero input the central difference of ReLU-like layers is 1/2, not 0: the
    # backward pass picks the derivative from the right or left; those entries are checked apart.
    kink = x == 0
    expected_zeros = np.sum(np.abs(numeric[~kink]) < 1e-9) + np.sum(_derivative_at_zero_is_zero(name) & kink)
    assert measured == pytest.approx(expected_zeros / x.size, abs=1e-12), name


# A CompetitiveReLU couples the entries of a sample once `alpha != 0` (init="competition"), wherever
# it is held. Autodiff of the holder gives the Jacobian's column sums, which are never 0 there.
HELD_COMPETITIVE_RELU = {
    "mixed_activation_part": lambda held: kaa.MixedActivation("relu", held, t=0.5, dtype="float64"),
    "dense_activation": lambda held: keras.layers.Dense(
        10, kernel_initializer="identity", activation=held, dtype="float64"
    ),
    "activation_layer": lambda held: keras.layers.Activation(held, dtype="float64"),
}


@pytest.mark.parametrize("holder", sorted(HELD_COMPETITIVE_RELU))
def test_a_competitive_relu_held_by_another_layer_counts_its_diagonal(holder):
    held = kaa.CompetitiveReLU(init="competition", dtype="float64")
    layer = HELD_COMPETITIVE_RELU[holder](held)
    x = np.random.default_rng(7).normal(scale=3.0, size=(16, 10))
    inputs = keras.Input((10,), dtype="float64")
    model = keras.Model(inputs, layer(inputs))
    measured = measure_sparsity(model, x, derivative=True)[layer.name]

    diagonal = jacobian_diagonal(layer, x)
    expected = np.mean(np.abs(diagonal) < 1e-9)
    assert 0.1 < expected < 0.9  # a case where the count means something
    assert measured == pytest.approx(expected, abs=1e-12)


def test_a_mixing_layer_held_as_an_activation_has_no_derivative_sparsity():
    inputs = keras.Input((6,))
    head = keras.layers.Dense(3, activation=keras.layers.Softmax(), name="head")(inputs)
    wrapped = keras.layers.Activation(keras.layers.Softmax(), name="wrapped")(head)
    mixed = kaa.MixedActivation("relu", keras.layers.Softmax(), t=0.5, name="mixed")(wrapped)
    model = keras.Model(inputs, keras.layers.ReLU(name="relu")(mixed))
    x = _data((10, 6), seed=8)
    assert set(measure_sparsity(model, x, derivative=True)) == {"relu"}
    for name, reason in [
        ("head", "a Softmax layer, mixes entries"),
        ("wrapped", "a Softmax layer, mixes entries"),
        ("mixed", "one of its two activations mixes entries"),
    ]:
        with pytest.raises(ValueError, match=rf"{name!r} is not defined: (its activation, )?{reason}"):
            measure_sparsity(model, x, layers=[name], derivative=True)


def _derivative_at_zero_is_zero(name):
    """Whether the layer's backward pass gives 0 at an input of exactly 0 (a documented convention)."""
    return name in ("relu", "relu6", "lisht", "competitive_relu")


@pytest.mark.parametrize(
    "make_fused",
    [
        lambda: keras.layers.Dense(7, activation="hard_tanh", name="subject"),
        lambda: keras.layers.EinsumDense(
            "btf,fo->bto", output_shape=(None, 7), bias_axes="o", activation="relu", name="subject"
        ),
        lambda: keras.layers.Conv1D(
            5, 3, padding="causal", dilation_rate=2, activation="relu", name="subject"
        ),
        lambda: keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu6", name="subject"),
        lambda: keras.layers.Conv3D(3, 2, use_bias=False, activation="hard_sigmoid", name="subject"),
    ],
    ids=["dense", "einsum_dense", "conv1d_causal", "conv2d", "conv3d"],
)
def test_a_fused_activation_counts_as_if_it_had_its_own_layer(make_fused):
    """The pre-activation recomputed from the input and weights, against the same network with the
    activation in an `Activation` layer, whose input the graph carries."""
    # Seeded: with unseeded weights the share of saturated hard-sigmoid entries in the small Conv3D
    # fell below the range asserted below on one run in a few.
    keras.utils.set_random_seed(4)
    fused = make_fused()
    shape = {
        "Dense": (6,),
        "EinsumDense": (4, 6),
        "Conv1D": (9, 3),
        "Conv2D": (8, 8, 2),
        "Conv3D": (4, 4, 4, 2),
    }[type(fused).__name__]
    x = _data((8, *shape), seed=4, scale=4.0)  # wide enough that every case has zeros and non-zeros
    inputs = keras.Input(shape)
    fused_model = keras.Model(inputs, fused(inputs))
    config = fused.get_config() | {"activation": None, "name": "linear"}
    linear = type(fused).from_config(config)
    separate = keras.layers.Activation(fused.activation, name="subject")
    separate_model = keras.Model(inputs, separate(linear(inputs)))
    linear.set_weights(fused.get_weights())
    expected = measure_sparsity(separate_model, x, derivative=True)["subject"]
    assert 0.05 < expected < 0.95  # a case where the count means something
    assert measure_sparsity(fused_model, x, derivative=True) == {"subject": expected}


def test_a_fused_dense_matches_numpy():
    x = _data((30, 6), seed=5)
    layer = keras.layers.Dense(9, activation="relu", name="subject")
    model = _one_layer_model(layer, features=6)
    kernel, bias = (weight.astype("float64") for weight in layer.get_weights())
    pre_activation = x.astype("float64") @ kernel + bias
    assert measure_sparsity(model, x, derivative=True) == {
        "subject": pytest.approx(np.mean(pre_activation <= 0))
    }


def test_default_layers_leave_out_those_without_a_derivative_of_their_own():
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(8, activation="relu", name="hidden")(inputs)
    upsampled = keras.layers.Reshape((8, 1))(hidden)
    transposed = keras.layers.Conv1DTranspose(2, 3, activation="relu", name="transposed")(upsampled)
    head = keras.layers.Dense(3, activation="softmax", name="head")(keras.layers.Flatten()(transposed))
    model = keras.Model(inputs, head)
    x = _data((10, 6), seed=6)
    assert set(measure_sparsity(model, x)) == {"hidden", "transposed", "head"}
    assert set(measure_sparsity(model, x, derivative=True)) == {"hidden"}
    with pytest.raises(ValueError, match=r"'head' is not defined: its activation 'softmax' mixes entries"):
        measure_sparsity(model, x, layers=["head"], derivative=True)
    with pytest.raises(ValueError, match=r"'transposed' is not defined: its pre-activation cannot be read"):
        measure_sparsity(model, x, layers=["transposed"], derivative=True)
    with pytest.raises(ValueError, match=r"derivative=.yes."):
        measure_sparsity(model, x, derivative="yes")


def test_masked_entries_are_left_out():
    tokens = np.array([[3, 1, 0, 0], [2, 2, 4, 0]])
    inputs = keras.Input((4,), dtype="int32")
    embedded = keras.layers.Embedding(5, 3, mask_zero=True, embeddings_initializer="random_normal")(inputs)
    model = keras.Model(inputs, keras.layers.ReLU(name="subject")(embedded))
    table = model.layers[1].get_weights()[0].astype("float64")
    valid = tokens != 0
    expected = np.sum(table[tokens[valid]] <= 0) / (3 * np.sum(valid))
    assert measure_sparsity(model, tokens, derivative=True) == {"subject": pytest.approx(expected)}


def test_the_monitor_logs_the_derivative_beside_the_zero_fraction():
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(8, name="hidden")(inputs)
    saturated = keras.layers.Activation("hard_tanh", name="saturated")(hidden)
    head = keras.layers.Dense(2, activation="softmax", name="head")(saturated)
    model = keras.Model(inputs, head)
    model.compile(keras.optimizers.SGD(0.0), "categorical_crossentropy")  # the weights stay put
    x = _data((20, 6), seed=7, scale=3.0)
    y = np.eye(2, dtype="float32")[np.arange(20) % 2]
    monitor = SparsityMonitor(x, derivative=True, batch_size=8)
    history = model.fit(x, y, epochs=2, verbose=0, callbacks=[monitor]).history
    expected = measure_sparsity(model, x, derivative=True)
    assert history["derivative_zero_fraction/saturated"] == [expected["saturated"]] * 2
    assert history["derivative_zero_fraction_train/saturated"] == [expected["saturated"]] * 2  # no noise here
    assert history["zero_fraction/saturated"] == [measure_sparsity(model, x)["saturated"]] * 2
    assert "derivative_zero_fraction/head" not in history and "zero_fraction/head" in history
    with pytest.raises(ValueError, match="'head' is not defined"):
        model.fit(x, y, verbose=0, callbacks=[SparsityMonitor(x, layers=["head"], derivative=True)])


def test_measuring_in_training_mode_leaves_the_noise_stream_where_it_was():
    layer = kaa.NoisyHardTanh(name="subject", seed=3)
    model = _one_layer_model(layer)
    x = _data((16, 12), seed=8)
    before = [keras.ops.convert_to_numpy(variable) for variable in model.non_trainable_variables]
    monitor = SparsityMonitor(x, derivative=True)
    monitor.set_model(model)
    values = monitor.measure()
    after = [keras.ops.convert_to_numpy(variable) for variable in model.non_trainable_variables]
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    # With noise in the saturated regions, the backward pass reaches every entry.
    assert values["derivative_zero_fraction/subject"] == 0.0
    assert 0.0 <= values["derivative_zero_fraction_train/subject"] < np.mean(np.abs(x) >= 1)
