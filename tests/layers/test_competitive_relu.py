"""CompetitiveReLU as a Keras layer: identity at init, serialisation, training, dtypes, bad input."""

import json
import subprocess
import sys
import textwrap
import warnings
import zipfile

import keras
import numpy as np
import pytest
from keras import ops
from layer_testing import (
    JIT_COMPILE,
    assert_keras_file_round_trip,
    float64_tolerance,
    jit_call,
    layer_vjp,
    requires_tensorflow,
    run_layer_test,
    vjp,
    weight_values,
)

import keras_adaptive_acts as kaa
from keras_adaptive_acts import CompetitiveReLU
from keras_adaptive_acts.ops.competitive import relu_identity_beta

COMPETITIONS = ("energy", "l1", "count")
SHAPES = {"dense": (16, 32), "sequence": (4, 7, 12), "conv": (4, 8, 8, 3)}


def numpy_carelu(x, alpha, beta, competition="energy", scale_bound=2.0, eps=1e-6, axes=None):
    x = np.asarray(x, "float64")
    axes = tuple(range(1, x.ndim)) if axes is None else axes
    pos = np.maximum(x, 0)
    if competition == "energy":
        p = np.sum(pos**2, axes, keepdims=True) / (np.sum(x**2, axes, keepdims=True) + eps)
    elif competition == "l1":
        p = np.sum(pos, axes, keepdims=True) / (np.sum(np.abs(x), axes, keepdims=True) + eps)
    else:
        p = np.mean(x > 0, axes, keepdims=True)
    return np.maximum(scale_bound * np.tanh(alpha * p + beta) * x, 0)


def random_input(shape, seed=0, dtype="float32"):
    return np.random.default_rng(seed).normal(size=shape).astype(dtype)


@pytest.mark.parametrize("competition", COMPETITIONS)
@pytest.mark.parametrize("scale_bound", [2.0, 3.0, 1.5, 10.0])
@pytest.mark.parametrize("kind", sorted(SHAPES))
def test_equals_relu_to_the_last_bit_at_initialisation(competition, scale_bound, kind):
    x = random_input(SHAPES[kind], seed=1)
    layer = CompetitiveReLU(competition=competition, scale_bound=scale_bound)
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


@pytest.mark.parametrize("competition", COMPETITIONS)
def test_equals_relu_to_the_last_bit_in_float64(competition):
    """Keras' `Constant` stores the preset beta through a float32 tensor; the identity point that the
    scale is written around must be the same number, or tanh's argument is 1e-8, not 0."""
    x = ops.convert_to_tensor(random_input((6, 20), seed=5, dtype="float64"), "float64")
    relu = ops.convert_to_numpy(ops.relu(x))
    layer = CompetitiveReLU(competition=competition, dtype="float64")
    np.testing.assert_array_equal(ops.convert_to_numpy(layer(x)), relu)
    through_the_op = kaa.ops.competitive_relu(x, 0.0, relu_identity_beta(2.0), competition=competition)
    np.testing.assert_array_equal(ops.convert_to_numpy(through_the_op), relu)


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


# The layer-test harness: config, JSON and .keras round trips, symbolic shapes, the XLA fit step,
# masks, and the dtype policies (with a fit under each: the layer's gradient is its own).
HARNESS_CASES = {
    "energy": ({"competition": "energy"}, "dense"),
    "l1_per_channel": ({"competition": "l1", "axis": -1, "init": "competition"}, "sequence"),
    "count_per_image": ({"competition": "count", "axis": (1, 2), "scale_bound": 3.0}, "conv"),
}


@pytest.mark.parametrize("case", sorted(HARNESS_CASES))
def test_passes_the_layer_test_harness(case, tmp_path):
    init_kwargs, kind = HARNESS_CASES[case]
    run_layer_test(
        CompetitiveReLU,
        init_kwargs,
        input_shape=SHAPES[kind],
        expected_num_trainable_weights=2,
        expected_num_non_trainable_weights=0,
        supports_masking=True,
        train_under_policies=True,
        tmp_path=tmp_path,
    )


def test_every_argument_survives_config_and_keras_file_round_trips(tmp_path):
    result = run_layer_test(
        CompetitiveReLU,
        {
            "competition": "l1",
            "scale_bound": 3.0,
            "eps": 1e-4,
            "axis": (1, 2),
            "init": "competition",
            "alpha_regularizer": keras.regularizers.L2(0.01),
            "beta_constraint": keras.constraints.NonNeg(),
            "name": "carelu",
        },
        input_shape=SHAPES["conv"],
        policies=(),
        tmp_path=tmp_path,
    )
    for layer in (result.clone, result.loaded_layer):
        assert (layer.competition, layer.scale_bound, layer.eps, tuple(layer.axis), layer.init) == (
            "l1",
            3.0,
            1e-4,
            (1, 2),
            "competition",
        )
        assert isinstance(layer.alpha_regularizer, keras.regularizers.L2)
        assert isinstance(layer.beta_constraint, keras.constraints.NonNeg)


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


def _trained(model, x):
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    model.fit(x, np.ones((len(x), *model.output_shape[1:]), "float32"), epochs=2, verbose=0)
    return model


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


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"competition": "max"}, "competition='max'"),
        ({"scale_bound": 0}, "scale_bound=0"),
        ({"scale_bound": float("inf")}, "scale_bound=inf"),
        ({"eps": -1e-6}, "eps=-1e-06"),
        ({"axis": 0}, "axis=0"),
        ({"axis": (0, 1)}, r"axis=\(0, 1\)"),
        ({"init": "zeros"}, "init='zeros'"),
        ({"scale_bound": 0.5}, "scale_bound=0.5"),  # init="relu" needs scale_bound > 1
    ],
)
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CompetitiveReLU(**kwargs)


def test_scale_bound_below_one_is_accepted_with_the_competition_preset():
    layer = CompetitiveReLU(scale_bound=0.5, init="competition")
    x = random_input((2, 6), seed=15)
    np.testing.assert_allclose(
        ops.convert_to_numpy(layer(x)), numpy_carelu(x, 2, -1, scale_bound=0.5), rtol=2e-6, atol=1e-7
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


def test_a_built_layer_refuses_another_rank_or_number_of_inputs():
    # Its reduction axes are fixed by the first call. On another rank it would compete over other
    # axes (per position instead of per sample) or fail inside the backend; Keras' PReLU refuses.
    layer = CompetitiveReLU()
    vectors = np.random.default_rng(9).normal(size=(2, 4)).astype("float32")
    layer(vectors)
    for shape in [(2, 3, 4), (2,)]:
        with pytest.raises(ValueError, match=rf"expected ndim=2, found ndim={len(shape)}"):
            layer(np.ones(shape, "float32"))
    with pytest.raises(ValueError, match="expects 1 input"):
        layer([vectors, vectors])
    np.testing.assert_array_equal(ops.convert_to_numpy(layer(vectors * 2.0)), np.maximum(vectors * 2.0, 0.0))
    two = CompetitiveReLU()
    two([vectors, vectors])
    with pytest.raises(ValueError, match="expected ndim=2, found ndim=3"):
        two([np.ones((2, 3, 4), "float32")] * 2)


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


# ----------------------------------------------------------------------------------------------
# competition_statistics: the layer's own p and s


def numpy_statistics(z, alpha, beta, competition="energy", scale_bound=2.0, eps=1e-6, axes=None):
    """(p, s) per slice with keepdims, NumPy float64, straight from the formula."""
    z = np.asarray(z, "float64")
    axes = tuple(range(1, z.ndim)) if axes is None else axes
    pos = np.maximum(z, 0)
    if competition == "energy":
        p = np.sum(pos**2, axes, keepdims=True) / (np.sum(z**2, axes, keepdims=True) + eps)
    elif competition == "l1":
        p = np.sum(pos, axes, keepdims=True) / (np.sum(np.abs(z), axes, keepdims=True) + eps)
    else:
        p = np.mean(z > 0, axes, keepdims=True)
    return p, scale_bound * np.tanh(alpha * p + beta)


@pytest.mark.parametrize("competition", COMPETITIONS)
@pytest.mark.parametrize(("kind", "axis", "axes"), [("dense", None, (1,)), ("conv", (1, 2), (1, 2))])
def test_competition_statistics_match_numpy_reference(competition, kind, axis, axes):
    x = random_input(SHAPES[kind], seed=17, dtype="float64")
    layer = CompetitiveReLU(competition=competition, scale_bound=3.0, axis=axis, dtype="float64")
    layer.build(x.shape)
    layer.alpha.assign(1.7)
    layer.beta.assign(-0.4)
    p, s = layer.competition_statistics(x)
    expected_p, expected_s = numpy_statistics(x, 1.7, -0.4, competition, 3.0, axes=axes)
    assert p.shape == s.shape == expected_p.shape
    np.testing.assert_allclose(ops.convert_to_numpy(p), expected_p, **float64_tolerance(1e-12))
    np.testing.assert_allclose(ops.convert_to_numpy(s), expected_s, **float64_tolerance(1e-12))
    # The forward pass scales by that same s.
    np.testing.assert_allclose(
        ops.convert_to_numpy(layer(x)), np.maximum(ops.convert_to_numpy(s) * x, 0), **float64_tolerance(1e-12)
    )


def test_competition_statistics_of_the_two_input_form_are_measured_on_the_source():
    rng = np.random.default_rng(18)
    z, source = rng.normal(size=(5, 8)), rng.normal(size=(5, 8)) + 0.5
    layer = CompetitiveReLU(init="competition", dtype="float64")
    p, s = layer.competition_statistics([z, source])  # builds the layer
    assert layer.built
    expected_p, expected_s = numpy_statistics(source, 2.0, -1.0)
    np.testing.assert_allclose(ops.convert_to_numpy(p), expected_p, **float64_tolerance(1e-12))
    np.testing.assert_allclose(ops.convert_to_numpy(s), expected_s, **float64_tolerance(1e-12))


def test_competition_statistics_are_float32_under_mixed_precision(dtype_policy):
    dtype_policy("mixed_float16")
    layer = CompetitiveReLU(init="competition")
    x = random_input((4, 3, 6), seed=19)
    p, s = layer.competition_statistics(x)
    assert keras.backend.standardize_dtype(p.dtype) == keras.backend.standardize_dtype(s.dtype) == "float32"
    rounded = x.astype("float16")  # the layer measures its input in its compute dtype
    expected_p, expected_s = numpy_statistics(rounded, 2.0, -1.0)
    np.testing.assert_allclose(ops.convert_to_numpy(p), expected_p, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ops.convert_to_numpy(s), expected_s, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------------------------
# `K`, the former name of `scale_bound`


def test_former_argument_name_k_warns_and_sets_the_scale_bound():
    x = random_input((3, 7), seed=20)
    with pytest.warns(DeprecationWarning, match="scale_bound=3.0"):
        layer = CompetitiveReLU(K=3.0, init="competition")
    assert layer.scale_bound == 3.0 and "K" not in layer.get_config()
    np.testing.assert_allclose(
        ops.convert_to_numpy(layer(x)), numpy_carelu(x, 2, -1, scale_bound=3.0), rtol=2e-6, atol=1e-7
    )
    with pytest.raises(ValueError, match=r"K=3.0 and scale_bound=4.0"):
        CompetitiveReLU(K=3.0, scale_bound=4.0)


def test_config_saved_with_k_loads_without_a_warning():
    config = CompetitiveReLU(competition="l1", scale_bound=3.0, init="competition").get_config()
    config["K"] = config.pop("scale_bound")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layer = CompetitiveReLU.from_config(config)
        serialized = {"module": "keras_adaptive_acts", "class_name": "CompetitiveReLU", "config": config}
        deserialized = keras.saving.deserialize_keras_object(
            serialized, custom_objects={"CompetitiveReLU": CompetitiveReLU}
        )
    for loaded in (layer, deserialized):
        assert loaded.scale_bound == 3.0 and loaded.competition == "l1"


def _with_former_config_key(path, rewritten_path):
    """Copies a .keras file, renaming CompetitiveReLU's `scale_bound` to `K` in its config.json."""

    def rename(node):
        if isinstance(node, dict):
            if node.get("class_name") == "CompetitiveReLU":
                node["config"]["K"] = node["config"].pop("scale_bound")
            for value in node.values():
                rename(value)
        elif isinstance(node, list):
            for value in node:
                rename(value)

    with zipfile.ZipFile(path) as source, zipfile.ZipFile(rewritten_path, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                rename(config)
                data = json.dumps(config).encode()
                assert b'"K": 3.0' in data and b"scale_bound" not in data
            target.writestr(item, data)


def test_keras_file_saved_with_k_loads(tmp_path):
    x = random_input((8, 8), seed=21)
    model = _trained(_small_model(CompetitiveReLU(competition="l1", scale_bound=3.0, init="competition")), x)
    model.save(tmp_path / "model.keras")
    _with_former_config_key(tmp_path / "model.keras", tmp_path / "former.keras")
    loaded = keras.saving.load_model(tmp_path / "former.keras", safe_mode=True)
    assert loaded.layers[1].scale_bound == 3.0
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
