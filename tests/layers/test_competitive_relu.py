"""CompetitiveReLU as a Keras layer: identity at init, serialisation, training, dtypes, bad input."""

import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from keras import ops
from layer_testing import (
    JIT_COMPILE,
    assert_config_round_trip,
    assert_keras_file_round_trip,
    float64_tolerance,
    jit_call,
    layer_vjp,
    requires_tensorflow,
    vjp,
    weight_values,
)

from keras_adaptive_acts import CompetitiveReLU

COMPETITIONS = ("energy", "l1", "count")
SHAPES = {"dense": (16, 32), "sequence": (4, 7, 12), "conv": (4, 8, 8, 3)}


def numpy_carelu(x, alpha, beta, competition="energy", K=2.0, eps=1e-6, axes=None):
    x = np.asarray(x, "float64")
    axes = tuple(range(1, x.ndim)) if axes is None else axes
    pos = np.maximum(x, 0)
    if competition == "energy":
        p = np.sum(pos**2, axes, keepdims=True) / (np.sum(x**2, axes, keepdims=True) + eps)
    elif competition == "l1":
        p = np.sum(pos, axes, keepdims=True) / (np.sum(np.abs(x), axes, keepdims=True) + eps)
    else:
        p = np.mean(x > 0, axes, keepdims=True)
    return np.maximum(K * np.tanh(alpha * p + beta) * x, 0)


def random_input(shape, seed=0, dtype="float32"):
    return np.random.default_rng(seed).normal(size=shape).astype(dtype)


@pytest.mark.parametrize("competition", COMPETITIONS)
@pytest.mark.parametrize("K", [2.0, 3.0, 1.5, 10.0])
@pytest.mark.parametrize("kind", sorted(SHAPES))
def test_equals_relu_to_the_last_bit_at_initialisation(competition, K, kind):
    x = random_input(SHAPES[kind], seed=1)
    layer = CompetitiveReLU(competition=competition, K=K)
    relu = np.maximum(x, 0)
    np.testing.assert_array_equal(ops.convert_to_numpy(layer(x)), relu)
    np.testing.assert_array_equal(ops.convert_to_numpy(jit_call(layer, x)), relu)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_equals_relu_to_the_last_bit_under_mixed_precision(policy, dtype_policy):
    dtype_policy(policy)
    layer = CompetitiveReLU()
    x = ops.cast(random_input((4, 8, 8, 3), seed=2), layer.compute_dtype)
    out = layer(x)
    assert layer.alpha.dtype == "float32" and layer.beta.dtype == "float32"
    np.testing.assert_array_equal(ops.convert_to_numpy(out), ops.convert_to_numpy(ops.relu(x)))


@pytest.mark.parametrize("kind", sorted(SHAPES))
@pytest.mark.parametrize("competition", COMPETITIONS)
def test_layer_matches_numpy_reference(kind, competition):
    x = random_input(SHAPES[kind], seed=3)
    layer = CompetitiveReLU(competition=competition, init="competition")
    # p near 0.5 makes s = 2 tanh(2p - 1) cancel: float32 sums in another order (JAX) move the
    # output by a few 1e-6.
    np.testing.assert_allclose(
        ops.convert_to_numpy(layer(x)), numpy_carelu(x, 2.0, -1.0, competition), rtol=2e-6, atol=5e-6
    )
    per_channel = CompetitiveReLU(competition=competition, init="competition", axis=-1)
    expected = numpy_carelu(x, 2.0, -1.0, competition, axes=(x.ndim - 1,))
    np.testing.assert_allclose(ops.convert_to_numpy(per_channel(x)), expected, rtol=2e-6, atol=5e-6)


def test_second_input_measures_p_on_the_source():
    rng = np.random.default_rng(4)
    z, source = rng.normal(size=(6, 10)), rng.normal(size=(6, 10)) + 1.0
    layer = CompetitiveReLU(init="competition", dtype="float64")
    out = ops.convert_to_numpy(layer([z, source]))
    p = np.sum(np.maximum(source, 0) ** 2, 1, keepdims=True) / (np.sum(source**2, 1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(out, np.maximum(2 * np.tanh(2 * p - 1) * z, 0), **float64_tolerance(1e-12))
    assert layer.compute_output_shape([(None, 10), (None, 10)]) == (None, 10)


def test_layer_gradients_of_alpha_and_beta_match_finite_differences():
    x = random_input((3, 5), seed=5, dtype="float64")
    upstream = random_input((3, 5), seed=6, dtype="float64")
    layer = CompetitiveReLU(competition="l1", init="competition", dtype="float64")
    layer.build(x.shape)

    def objective(alpha, beta):  # NumPy float64, independent of the backend
        return float(np.sum(numpy_carelu(x, alpha, beta, "l1") * upstream))

    layer.alpha.assign(0.7)
    layer.beta.assign(-0.2)
    _, _, grads = layer_vjp(layer, x, upstream)
    h = 1e-6
    numeric_alpha = (objective(0.7 + h, -0.2) - objective(0.7 - h, -0.2)) / (2 * h)
    numeric_beta = (objective(0.7, -0.2 + h) - objective(0.7, -0.2 - h)) / (2 * h)
    actual = [float(grads[layer.alpha.path]), float(grads[layer.beta.path])]
    np.testing.assert_allclose(actual, [numeric_alpha, numeric_beta], **float64_tolerance(1e-6))


def _small_model(activation, input_shape=(8,)):
    return keras.Sequential(
        [keras.Input(input_shape), keras.layers.Dense(16), activation, keras.layers.Dense(3)]
    )


def test_jit_compiled_fit_step_moves_alpha_and_beta_by_the_eager_gradient():
    keras.utils.set_random_seed(0)
    x, y = random_input((32, 8), seed=7), random_input((32, 3), seed=8)
    model = _small_model(CompetitiveReLU())
    learning_rate = 0.1
    model.compile(optimizer=keras.optimizers.SGD(learning_rate), loss="mse", jit_compile=JIT_COMPILE)
    layer = model.layers[1]
    before = weight_values(layer)
    # d(mean squared error)/d(output), then the eager gradient of the weights through the model
    upstream = 2.0 * (ops.convert_to_numpy(model(x)) - y) / y.size
    _, _, eager = layer_vjp(model, x, upstream)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False)
    after = weight_values(layer)
    for path, value in before.items():
        assert after[path] != value, f"{path} did not move"
        np.testing.assert_allclose(after[path], value - learning_rate * eager[path], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_forward_and_jit_fit(policy, dtype_policy):
    dtype_policy(policy)
    layer = CompetitiveReLU(init="competition")
    x = random_input((8, 4, 4, 2), seed=9)
    out = layer(x)
    assert keras.backend.standardize_dtype(out.dtype) == layer.compute_dtype == policy.split("_")[1]
    rounded = ops.convert_to_numpy(ops.cast(ops.cast(x, layer.compute_dtype), "float32"))
    np.testing.assert_allclose(
        ops.convert_to_numpy(ops.cast(out, "float32")), numpy_carelu(rounded, 2, -1), rtol=2e-2
    )
    model = _small_model(CompetitiveReLU())
    model.compile(optimizer="adam", loss="mse", jit_compile=JIT_COMPILE)
    before = weight_values(model.layers[1])
    history = model.fit(random_input((16, 8)), random_input((16, 3)), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert all(weight_values(model.layers[1])[k] != v for k, v in before.items())


def test_unknown_batch_size_in_functional_model_and_xla():
    inputs = keras.Input((5, 5, 3))
    model = keras.Model(inputs, CompetitiveReLU(init="competition", axis=(1, 2))(inputs))
    for batch in (1, 3, 7):
        x = random_input((batch, 5, 5, 3), seed=batch)
        expected = numpy_carelu(x, 2, -1, axes=(1, 2))
        np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=2e-6, atol=1e-6)
        np.testing.assert_allclose(ops.convert_to_numpy(jit_call(model, x)), expected, rtol=2e-6, atol=1e-6)


@requires_tensorflow
def test_one_xla_function_serves_every_batch_size():
    import tensorflow as tf

    inputs = keras.Input((5, 5, 3))
    model = keras.Model(inputs, CompetitiveReLU(init="competition", axis=(1, 2))(inputs))
    jitted = tf.function(model, jit_compile=True, input_signature=[tf.TensorSpec((None, 5, 5, 3))])
    for batch in (1, 3, 7):
        x = random_input((batch, 5, 5, 3), seed=batch)
        expected = numpy_carelu(x, 2, -1, axes=(1, 2))
        np.testing.assert_allclose(jitted(x).numpy(), expected, rtol=2e-6, atol=1e-6)


def test_integer_inputs_are_cast_to_the_compute_dtype():
    out = CompetitiveReLU()(np.array([[1, -2, 3]], dtype="int32"))
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    np.testing.assert_array_equal(ops.convert_to_numpy(out), [[1.0, 0.0, 3.0]])


def test_config_round_trip_keeps_every_argument():
    layer = CompetitiveReLU(
        competition="l1",
        K=3.0,
        eps=1e-4,
        axis=(1, 2),
        init="competition",
        alpha_regularizer=keras.regularizers.L2(0.01),
        beta_constraint=keras.constraints.NonNeg(),
        name="carelu",
    )
    clone = assert_config_round_trip(layer)
    assert (clone.competition, clone.K, clone.eps, clone.axis, clone.init) == (
        "l1",
        3.0,
        1e-4,
        (1, 2),
        "competition",
    )
    assert isinstance(clone.alpha_regularizer, keras.regularizers.L2)
    assert isinstance(clone.beta_constraint, keras.constraints.NonNeg)
    x = random_input((2, 4, 4, 3), seed=10)
    np.testing.assert_array_equal(ops.convert_to_numpy(clone(x)), ops.convert_to_numpy(layer(x)))


def _trained(model, x):
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    model.fit(x, np.ones((len(x), *model.output_shape[1:]), "float32"), epochs=2, verbose=0)
    return model


def test_keras_file_round_trip_sequential(tmp_path):
    x = random_input((16, 8), seed=11)
    model = _trained(_small_model(CompetitiveReLU(competition="count", K=3.0)), x)
    loaded = assert_keras_file_round_trip(model, x, tmp_path / "sequential.keras")
    layer = loaded.layers[1]
    assert isinstance(layer, CompetitiveReLU) and layer.competition == "count" and layer.K == 3.0
    np.testing.assert_array_equal(
        ops.convert_to_numpy(layer.alpha), ops.convert_to_numpy(model.layers[1].alpha)
    )


def test_keras_file_round_trip_functional_with_batchnorm_source(tmp_path):
    inputs = keras.Input((6, 6, 2))
    z = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    normalised = keras.layers.BatchNormalization()(z)
    outputs = CompetitiveReLU(init="competition", axis=(1, 2))([normalised, z])
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(outputs))
    x = random_input((8, 6, 6, 2), seed=12)
    _trained(model, x)
    assert_keras_file_round_trip(model, x, tmp_path / "functional.keras")


def test_keras_file_loads_in_a_fresh_process(tmp_path):
    x = random_input((4, 8), seed=13)
    model = _trained(_small_model(CompetitiveReLU(competition="l1")), x)
    path, data = tmp_path / "model.keras", tmp_path / "data.npz"
    model.save(path)
    np.savez(data, x=x, y=model.predict(x, verbose=0))
    script = textwrap.dedent(
        f"""
        import numpy as np, keras, keras_adaptive_acts
        data = np.load({str(data)!r})
        model = keras.saving.load_model({str(path)!r}, safe_mode=True)
        np.testing.assert_array_equal(model.predict(data["x"], verbose=0), data["y"])
        print("loaded", type(model.layers[1]).__name__)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "loaded CompetitiveReLU" in result.stdout


def test_subclassed_model_trains():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.hidden = keras.layers.Dense(8)
            self.act = CompetitiveReLU(init="competition")
            self.out = keras.layers.Dense(1)

        def call(self, x):
            return self.out(self.act(self.hidden(x)))

    model = Net()
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    x = random_input((64, 4), seed=14)
    y = np.sum(np.maximum(x, 0), axis=1, keepdims=True)
    history = model.fit(x, y, epochs=5, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_masks_pass_through():
    inputs = keras.Input((5,), dtype="int32")
    embedded = keras.layers.Embedding(10, 4, mask_zero=True)(inputs)
    activated = CompetitiveReLU(axis=-1)(embedded)
    tokens = np.array([[1, 2, 0, 0, 0]])
    mask = keras.Model(inputs, activated._keras_mask)(tokens)
    np.testing.assert_array_equal(ops.convert_to_numpy(mask), tokens != 0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"competition": "max"}, "competition='max'"),
        ({"K": 0}, "K=0"),
        ({"K": float("inf")}, "K=inf"),
        ({"eps": -1e-6}, "eps=-1e-06"),
        ({"axis": 0}, "axis=0"),
        ({"axis": (0, 1)}, r"axis=\(0, 1\)"),
        ({"init": "zeros"}, "init='zeros'"),
        ({"K": 0.5}, "K=0.5"),  # init="relu" needs K > 1
    ],
)
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CompetitiveReLU(**kwargs)


def test_k_below_one_is_accepted_with_the_competition_preset():
    layer = CompetitiveReLU(K=0.5, init="competition")
    x = random_input((2, 6), seed=15)
    np.testing.assert_allclose(
        ops.convert_to_numpy(layer(x)), numpy_carelu(x, 2, -1, K=0.5), rtol=2e-6, atol=1e-7
    )


@pytest.mark.parametrize(
    ("layer_kwargs", "shape", "match"),
    [
        ({}, (5,), "rank=1"),
        ({"axis": 3}, (2, 3, 4), "axis=3"),
        ({"axis": -3}, (2, 3, 4), "axis=-3"),
    ],
)
def test_bad_inputs_at_build(layer_kwargs, shape, match):
    with pytest.raises(ValueError, match=match):
        CompetitiveReLU(**layer_kwargs)(np.ones(shape, "float32"))


def test_second_input_of_another_shape_is_rejected():
    with pytest.raises(ValueError, match=r"\(None, 4\) and \(None, 5\)"):
        CompetitiveReLU()([keras.Input((4,)), keras.Input((5,))])
    with pytest.raises(ValueError, match="3 inputs"):
        CompetitiveReLU()([keras.Input((4,))] * 3)


def test_all_zero_input_gives_zero_output_and_zero_weight_gradients():
    layer = CompetitiveReLU(init="competition")
    x = np.zeros((3, 4, 4, 2), "float32")
    out, dx, weight_grads = layer_vjp(layer, x, np.ones_like(x))
    np.testing.assert_array_equal(out, 0.0)
    for grad in [dx, *weight_grads.values()]:
        np.testing.assert_array_equal(grad, 0.0)


def test_nan_in_one_sample_leaves_the_other_samples_alone():
    layer = CompetitiveReLU(init="competition")
    x = random_input((3, 6), seed=16)
    x[1, 2] = np.nan
    out, (dx,) = vjp(lambda v: layer(v), [x], np.ones_like(x))
    expected = numpy_carelu(x, 2, -1)
    np.testing.assert_allclose(out[[0, 2]], expected[[0, 2]], rtol=2e-6, atol=1e-7)
    assert np.all(np.isfinite(dx[[0, 2]])) and np.all(np.isnan(out[1]))
