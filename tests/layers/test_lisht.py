"""LiSHT: the op and the layer against NumPy float64, finite differences, the harness, names."""

import keras
import numpy as np
import pytest
from keras import ops
from layer_testing import float64_tolerance, numeric_vjp, run_layer_test, vjp

import keras_adaptive_acts as kaa
from keras_adaptive_acts.ops import lisht
from keras_adaptive_acts.registry import activation_layer

X = np.random.default_rng(0).normal(size=(4, 6)) * 3


def numpy_lisht(x):
    return x * np.tanh(x)


def test_op_matches_numpy_and_tfa_example():
    np.testing.assert_allclose(ops.convert_to_numpy(lisht(X)), numpy_lisht(X), **float64_tolerance(1e-12))
    # tfa.activations.lisht's documented example: [1, 0, 1] -> [0.7615942, 0, 0.7615942]
    np.testing.assert_allclose(
        ops.convert_to_numpy(lisht(np.array([1.0, 0.0, 1.0], "float32"))),
        [0.7615942, 0.0, 0.7615942],
        rtol=1e-6,
    )


def test_op_gradient_matches_finite_differences():
    upstream = np.random.default_rng(1).normal(size=X.shape)
    _, (grad,) = vjp(lisht, [X], upstream)
    (expected,) = numeric_vjp(numpy_lisht, [X], upstream)
    np.testing.assert_allclose(grad, expected, **float64_tolerance(1e-6, 1e-9))


def test_non_finite_inputs_and_integers():
    out = ops.convert_to_numpy(kaa.LiSHT()(np.array([[np.nan, np.inf, -np.inf]], "float32")))
    assert np.isnan(out[0, 0]) and out[0, 1] == np.inf and out[0, 2] == np.inf
    with pytest.raises(ValueError, match="floating"):
        lisht(np.array([1, 2]))


def test_passes_the_layer_test_harness(tmp_path):
    run_layer_test(
        kaa.LiSHT,
        {},
        input_shape=(8, 5),
        expected_num_trainable_weights=0,
        expected_num_non_trainable_weights=0,
        supports_masking=True,
        run_training=False,  # no weights of its own; the harness's fit needs a weight to change
        tmp_path=tmp_path,
    )


def test_name_resolves_and_function_saves_in_a_keras_file(tmp_path):
    layer = activation_layer("lisht")
    assert type(layer) is kaa.LiSHT and layer.name.startswith("lisht")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation=lisht)])
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    x = X[:, :3].astype("float32")
    np.testing.assert_allclose(ops.convert_to_numpy(loaded(x)), ops.convert_to_numpy(model(x)), rtol=1e-6)
