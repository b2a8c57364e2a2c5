"""SparsifiedMLP: NumPy composition of its sublayers, XLA training with its invariants, saving, errors."""

import keras
import numpy as np
import pytest
from keras import ops
from layer_testing import run_layer_test

from keras_adaptive_acts.layers.competitive_relu import CompetitiveReLU
from keras_adaptive_acts.layers.j_squared_relu import JSquaredReLU
from keras_adaptive_acts.layers.restricted_layer_normalization import RestrictedLayerNormalization
from keras_adaptive_acts.layers.sparsified_mlp import SparsifiedMLP
from keras_adaptive_acts.layers.zeroth_bias import ZerothBias


def random_input(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def value(variable):
    return ops.convert_to_numpy(variable).astype("float64")


def numpy_block(block, x):
    """The block's forward pass in NumPy (float64) from its sublayers' weights."""
    x = np.asarray(x, "float64")
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    hidden = (x - mean) / np.sqrt(var + block.epsilon) * value(block.norm.gamma)
    if block.norm.beta is not None:
        hidden = hidden + value(block.norm.beta)
    b0 = value(block.zeroth_bias.b0)[: x.shape[1]] if block.zeroth_bias is not None else 0.0
    if block.zeroth_bias_position == "input":
        hidden = hidden + b0
    hidden = hidden @ value(block.fc1.kernel) + value(block.fc1.bias)
    if block.activation == "j_squared_relu":
        hidden = np.maximum(hidden, 0) + 0.5 * np.maximum(hidden, 0) ** 2
    else:
        assert block.activation == "relu"
        hidden = np.maximum(hidden, 0)
    hidden = hidden @ value(block.fc2.kernel) + value(block.fc2.bias)
    if block.zeroth_bias_position == "output":
        hidden = hidden + b0
    return x + hidden if block.residual else hidden


def randomise(block, seed=0):
    """Non-trivial weights (gamma >= 1, b0 inside its clip) so every term of the forward pass shows."""
    rng = np.random.default_rng(seed)
    for weight in block.weights:
        shape = tuple(weight.shape)
        if weight.name == "gamma":
            weight.assign(rng.uniform(1.0, 2.0, shape).astype("float32"))
        elif weight.name == "b0":
            weight.assign(rng.uniform(-0.1, 0.1, shape).astype("float32"))
        else:
            weight.assign(rng.normal(0.0, 0.5, shape).astype("float32"))


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"zeroth_bias_position": "output", "activation": "relu", "residual": False},
        {"norm": "layer", "zeroth_bias": False},
    ],
)
def test_forward_equals_numpy_composition_of_its_sublayers(kwargs):
    block = SparsifiedMLP(hidden_units=16, max_len=8, **kwargs)
    x = random_input((3, 6, 5))
    block.build(x.shape)
    randomise(block)
    np.testing.assert_allclose(ops.convert_to_numpy(block(x)), numpy_block(block, x), rtol=1e-4, atol=1e-4)


def test_default_sublayers():
    block = SparsifiedMLP(hidden_units=8, max_len=4)
    assert isinstance(block.norm, RestrictedLayerNormalization) and block.norm.mode == "scratch"
    assert isinstance(block.zeroth_bias, ZerothBias) and block.zeroth_bias.reference_norm is block.norm
    assert block.zeroth_bias_position == "input" and block.zeroth_bias.clip == 0.1
    assert isinstance(block.act, JSquaredReLU) and block.fc1.units == 8 and block.fc2 is None
    block.build((None, 4, 6))
    assert block.fc2.units == 6
    plain = SparsifiedMLP(hidden_units=8, norm="layer", activation="gelu", zeroth_bias=False)
    assert type(plain.norm) is keras.layers.LayerNormalization and plain.zeroth_bias is None
    assert isinstance(plain.act, keras.layers.Activation)
    mixed = SparsifiedMLP(hidden_units=8, activation="mixed_activation", max_len=4)  # fine-tuning a ReLU MLP
    assert type(mixed.act).__name__ == "MixedActivation"


def test_rank_two_input_without_zeroth_bias():
    block = SparsifiedMLP(hidden_units=8, zeroth_bias=False, activation="relu")
    x = random_input((4, 5))
    block.build(x.shape)
    randomise(block)
    np.testing.assert_allclose(ops.convert_to_numpy(block(x)), numpy_block(block, x), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="batch, L, d_model"):
        SparsifiedMLP(hidden_units=8, max_len=4).build((None, 5))


def test_dropout_only_in_training():
    block = SparsifiedMLP(hidden_units=32, max_len=6, dropout=0.5, seed=1)
    x = random_input((4, 6, 8))
    inference = ops.convert_to_numpy(block(x))
    np.testing.assert_array_equal(ops.convert_to_numpy(block(x, training=False)), inference)
    assert not np.allclose(ops.convert_to_numpy(block(x, training=True)), inference)


def test_trains_under_jit_and_keeps_both_constraints():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(128, 6, 8)).astype("float32")
    y = np.tanh(x @ rng.normal(size=(8, 8))).astype("float32") + 0.3
    block = SparsifiedMLP(hidden_units=32, max_len=6, clip=0.1)
    model = keras.Sequential([keras.Input((6, 8)), block])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse", jit_compile=True)
    history = model.fit(x, y, batch_size=32, epochs=8, verbose=0).history["loss"]
    assert history[-1] < 0.7 * history[0]
    gamma = value(block.norm.gamma)
    assert gamma.min() >= 1.0
    b0 = value(block.zeroth_bias.b0)
    assert np.all(np.abs(b0) <= 0.1 * np.abs(gamma) * (1 + 1e-6)) and np.abs(b0).max() > 0


@pytest.mark.parametrize("position", ["input", "output"])
def test_passes_the_layer_test_harness(position, tmp_path):
    result = run_layer_test(
        SparsifiedMLP,
        {
            "hidden_units": 12,
            "zeroth_bias_position": position,
            "max_len": 7,
            "clip": 0.2,
            "dropout": 0.1,
            "seed": 3,
            "name": "mlp",
        },
        input_shape=(6, 5, 4),
        tmp_path=tmp_path,
    )
    for copy in (result.clone, result.loaded_layer):  # the zeroth bias clips against the block's own norm
        assert copy.zeroth_bias.reference_norm is copy.norm and copy.zeroth_bias.clip == 0.2
    # The sublayers' weights come back under the same names, in the same order.
    saved = result.model.get_layer("mlp").weights
    for original, loaded in zip(saved, result.loaded_layer.weights, strict=True):
        assert original.path.split("/")[-2:] == loaded.path.split("/")[-2:]


def test_max_len_none_is_taken_from_the_input_and_saved():
    block = SparsifiedMLP(hidden_units=4)
    block(random_input((2, 3, 4)))
    assert block.zeroth_bias.b0.shape == (3, 4) and block.get_config()["max_len"] == 3


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"hidden_units": 0}, "hidden_units"),
        ({"hidden_units": 2.0}, "hidden_units"),
        ({"activation": "not_an_activation"}, "activation"),
        (
            {"activation": "noisy_lstm_cell"},
            "NoisyLSTMCell is one of this package's objects, but not an activation",
        ),
        ({"activation": "zeroth_bias"}, "activation layer"),
        ({"activation": "j_squared_rel"}, "did you mean 'j_squared_relu'"),
        ({"norm": "batch"}, "norm"),
        ({"zeroth_bias_position": "middle"}, "zeroth_bias_position"),
        ({"dropout": 1.0}, "dropout"),
        ({"dropout": -0.1}, "dropout"),
        ({"clip": -1.0}, "clip"),
        ({"max_len": 0}, "max_len"),
        ({"residual": "yes"}, "residual"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SparsifiedMLP(**{"hidden_units": 8, **kwargs})


@pytest.mark.parametrize(
    ("activation", "layer_class", "reference"),
    [
        ("JSquaredReLU", JSquaredReLU, lambda x: np.maximum(x, 0) + 0.5 * np.maximum(x, 0) ** 2),
        ("competitive_relu", CompetitiveReLU, lambda x: np.maximum(x, 0)),  # ReLU at initialisation
        ("relu", keras.layers.ReLU, lambda x: np.maximum(x, 0)),
        ("tanh", keras.layers.Activation, np.tanh),
    ],
)
def test_activation_names_are_read_by_the_package_resolver(activation, layer_class, reference):
    block = SparsifiedMLP(hidden_units=6, activation=activation, zeroth_bias=False, dtype="mixed_bfloat16")
    assert type(block.act) is layer_class and block.act.name == f"{block.name}_act"  # named after the block
    assert block.act.dtype_policy.name == "mixed_bfloat16"  # the sublayer follows the block's policy
    x = random_input((3, 6))
    act = type(block.act).from_config({**block.act.get_config(), "dtype": "float32"})
    np.testing.assert_allclose(ops.convert_to_numpy(act(x)), reference(x), rtol=1e-6, atol=1e-6)
    assert block.get_config()["activation"] == activation  # the name is saved as given


@pytest.mark.parametrize("number_of_blocks", [2, 3])
def test_the_activations_of_several_blocks_are_measured_by_default_and_when_listed(number_of_blocks):
    from keras_adaptive_acts.callbacks import SparsityMonitor
    from keras_adaptive_acts.measurement import measure_sparsity

    blocks = [SparsifiedMLP(6, max_len=3, name=f"mlp{i}") for i in range(number_of_blocks)]  # J-SquaredReLU
    inputs = keras.Input((3, 4))
    hidden = inputs
    for block in blocks:
        hidden = block(hidden)
    model = keras.Model(inputs, hidden)
    x = random_input((5, 3, 4), seed=1)

    # The reference: each block's hidden activation, relu(fc1(norm(h) + b0)), in NumPy float64.
    expected, h = {}, x.astype("float64")
    for block in blocks:
        normalised = h - h.mean(-1, keepdims=True)
        normalised = normalised / np.sqrt(normalised.var(-1, keepdims=True) + 1e-6)
        normalised = normalised * value(block.norm.gamma) + value(block.zeroth_bias.b0)[:3]
        relu = np.maximum(normalised @ value(block.fc1.kernel) + value(block.fc1.bias), 0.0)
        hidden_units = relu + 0.5 * relu**2  # J-SquaredReLU: zero exactly where ReLU is
        expected[f"{block.name}_act"] = np.count_nonzero(hidden_units == 0) / hidden_units.size
        h = h + hidden_units @ value(block.fc2.kernel) + value(block.fc2.bias)

    assert len({block.act.name for block in blocks}) == number_of_blocks
    assert measure_sparsity(model, x) == pytest.approx(expected)  # by default: unique names now
    assert measure_sparsity(model, x, layers=[block.act for block in blocks]) == pytest.approx(expected)
    monitor = SparsityMonitor(x, layers=[block.act for block in blocks])
    monitor.set_model(model)
    measured = monitor.measure()
    assert {key: measured[f"zero_fraction/{key}"] for key in expected} == pytest.approx(expected)
