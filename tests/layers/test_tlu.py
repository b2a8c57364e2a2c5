"""TLU: the op and the layer against NumPy float64, finite differences, the harness, axes, names."""

import keras
import numpy as np
import pytest
from keras import ops
from layer_testing import away_from_zero, float64_tolerance, layer_vjp, numeric_vjp, run_layer_test, vjp

import keras_adaptive_acts as kaa
from keras_adaptive_acts.ops import tlu
from keras_adaptive_acts.registry import activation_layer

RNG = np.random.default_rng(0)
X = RNG.normal(size=(4, 3, 5)) * 2
TAU = RNG.normal(size=(5,)) * 0.5
ALPHA = RNG.normal(size=(5,)) * 0.5


def numpy_tlu(x, tau, alpha=None):
    return np.maximum(x, tau) if alpha is None else np.maximum(x, alpha * x + tau)


def test_op_matches_numpy():
    np.testing.assert_allclose(ops.convert_to_numpy(tlu(X, TAU)), numpy_tlu(X, TAU), rtol=1e-12)
    np.testing.assert_allclose(ops.convert_to_numpy(tlu(X, TAU, ALPHA)), numpy_tlu(X, TAU, ALPHA), rtol=1e-12)
    np.testing.assert_array_equal(ops.convert_to_numpy(tlu(X)), np.maximum(X, 0))  # tau = 0 is ReLU


def kink_free(x, tau, alpha):
    """`x` moved away from the kinks x = tau and x = alpha * x + tau, for finite differences."""
    plain_kink = tau
    affine_kink = tau / (1 - alpha)
    return away_from_zero(away_from_zero(x - plain_kink, 0.05) + plain_kink - affine_kink, 0.05) + affine_kink


def test_layer_gradients_match_finite_differences():
    upstream = RNG.normal(size=X.shape)
    layer = kaa.TLU(affine=True, dtype="float64")
    layer.build(X.shape)
    layer.tau.assign(TAU)
    layer.alpha.assign(ALPHA)
    x = kink_free(X, TAU, ALPHA)
    out, dx, grads = layer_vjp(layer, x, upstream)
    np.testing.assert_allclose(out, numpy_tlu(x, TAU, ALPHA), **float64_tolerance(1e-12))
    expected = numeric_vjp(numpy_tlu, [x, TAU, ALPHA], upstream)
    actual = [dx, grads[layer.tau.path], grads[layer.alpha.path]]
    for got, want in zip(actual, expected, strict=True):
        np.testing.assert_allclose(got, want, **float64_tolerance(1e-6, 1e-9))


def test_op_gradient_of_the_plain_form():
    upstream = RNG.normal(size=X.shape)
    tau = np.broadcast_to(TAU, X.shape).copy()
    x = away_from_zero(X - tau, 0.05) + tau
    _, (dx, dtau) = vjp(tlu, [x, tau], upstream)
    expected_dx, expected_dtau = numeric_vjp(numpy_tlu, [x, tau], upstream)
    np.testing.assert_allclose(dx, expected_dx, **float64_tolerance(1e-6, 1e-9))
    np.testing.assert_allclose(dtau, expected_dtau, **float64_tolerance(1e-6, 1e-9))


def test_infinite_inputs_take_the_limit():
    x = np.array([[np.inf, -np.inf, np.inf, -np.inf, -np.inf, np.nan]], "float32")
    tau = np.array([0.5, 0.5, 0.5, 0.5, 0.5, 0.5], "float32")
    alpha = np.array([0.0, 0.0, -1.0, -1.0, 2.0, 0.0], "float32")
    out = ops.convert_to_numpy(tlu(x, tau, alpha))
    np.testing.assert_array_equal(out[0, :5], [np.inf, 0.5, np.inf, np.inf, -np.inf])
    assert np.isnan(out[0, 5])
    plain = ops.convert_to_numpy(tlu(x, tau))
    np.testing.assert_array_equal(plain[0, :5], [np.inf, 0.5, np.inf, 0.5, 0.5])
    assert np.isnan(plain[0, 5])


@pytest.mark.parametrize("affine", [False, True])
def test_passes_the_layer_test_harness(tmp_path, affine):
    result = run_layer_test(
        kaa.TLU,
        {"affine": affine, "tau_regularizer": "l2", "alpha_constraint": "non_neg"},
        input_shape=(8, 3, 4),
        expected_num_trainable_weights=2 if affine else 1,
        expected_num_non_trainable_weights=0,
        supports_masking=True,
        tmp_path=tmp_path,
    )
    for restored in (result.clone, result.loaded_layer):
        assert restored.affine is affine and restored.axis == -1
    assert result.layer.tau.shape == (4,)


def test_axes_choose_the_parameter_shape():
    x = np.zeros((2, 3, 4, 5), "float32")
    for axis, shape in [(-1, (5,)), (1, (3,)), ([1, 2, 3], (3, 4, 5)), ((3, 1), (3, 5))]:
        layer = kaa.TLU(axis=axis)
        layer(x)
        assert tuple(layer.tau.shape) == shape, axis
    # tfa's TLU: a threshold per entry of input_shape[1:]
    layer = kaa.TLU(axis=[1, 2, 3], tau_initializer="random_normal")
    out = ops.convert_to_numpy(layer(x))
    np.testing.assert_array_equal(out[0], np.maximum(0, ops.convert_to_numpy(layer.tau)))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"affine": 1}, "affine=1"),
        ({"axis": "last"}, "axis='last'"),
        ({"axis": []}, r"axis=\[\]"),
        ({"axis": [1, 1]}, "axis="),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        kaa.TLU(**kwargs)


@pytest.mark.parametrize("axis", [0, 3, [-1, 2]])
def test_bad_axes_for_the_input_rank(axis):
    with pytest.raises(ValueError, match="axis"):
        kaa.TLU(axis=axis)(np.zeros((2, 3, 4), "float32"))


def test_defaults_name_and_mixed_precision():
    layer = activation_layer("tlu", affine=True)
    assert type(layer) is kaa.TLU and layer.affine
    mixed = kaa.TLU(affine=True, dtype="mixed_float16")
    out = mixed(np.ones((2, 3), "float32"))
    assert [w.dtype for w in mixed.weights] == ["float32", "float32"]
    assert keras.backend.standardize_dtype(out.dtype) == "float16"
    np.testing.assert_array_equal(ops.convert_to_numpy(mixed.tau), 0)  # tfa's default: zeros, so ReLU
    np.testing.assert_array_equal(ops.convert_to_numpy(mixed.alpha), 0)


def test_swap_activations_puts_the_new_layers_in_place_of_relu():
    from keras_adaptive_acts.surgery import swap_activations

    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(6, activation="relu"),
            keras.layers.ReLU(),
            keras.layers.Dense(2),
        ]
    )
    for replacement, cls in [("tlu", kaa.TLU), (kaa.Snake, kaa.Snake), ("lisht", kaa.LiSHT)]:
        swapped, report = swap_activations(model, replacement)
        assert [type(layer) for layer in swapped.layers].count(cls) == 2 and len(report.replaced) == 2
    swapped, _ = swap_activations(model, "tlu")
    x = RNG.normal(size=(3, 4)).astype("float32")
    # A TLU starts at tau = 0, a ReLU: the swapped model computes what the original did.
    np.testing.assert_allclose(ops.convert_to_numpy(swapped(x)), ops.convert_to_numpy(model(x)), rtol=1e-6)


def test_a_built_layer_refuses_another_rank_or_size_of_its_parameters_axes():
    # The parameters' shape holds for the first call's rank and sizes, as for Keras' PReLU: on rank
    # 2 after rank 3 it broadcast into a wrong shape, (1, 2, 4) for (2, 4).
    layer = kaa.TLU(affine=True)
    layer(np.ones((2, 3, 4), "float32"))
    with pytest.raises(ValueError, match="expected ndim=3, found ndim=2"):
        layer(np.ones((2, 4), "float32"))
    with pytest.raises(ValueError, match="expected axis 2 of input shape to have value 4"):
        layer(np.ones((2, 3, 5), "float32"))
    assert tuple(layer(np.ones((5, 7, 4), "float32")).shape) == (5, 7, 4)  # other sizes elsewhere
