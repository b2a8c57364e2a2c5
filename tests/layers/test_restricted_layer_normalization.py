"""RestrictedLayerNormalization: NumPy forward, gamma >= 1 under XLA training, frozen beta, copies, saving."""

import keras
import numpy as np
import pytest
from keras import ops
from layer_testing import run_layer_test

from keras_adaptive_acts.layers.restricted_layer_normalization import GammaFloor, RestrictedLayerNormalization


def numpy_layer_norm(x, gamma, beta=None, epsilon=1e-3):
    x = np.asarray(x, "float64")
    mean = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    out = (x - mean) / np.sqrt(var + epsilon) * gamma
    return out if beta is None else out + beta


def random_input(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


class Halve(keras.constraints.Constraint):
    def __call__(self, w):
        return w * 0.5


def test_scratch_forward_equals_numpy_layer_norm_without_beta():
    x = random_input((3, 5, 6)) * 3 + 1
    layer = RestrictedLayerNormalization(epsilon=1e-3)
    layer.build(x.shape)
    gamma = np.linspace(1.0, 3.0, 6).astype("float32")
    layer.gamma.assign(gamma)
    assert layer.mode == "scratch" and layer.beta is None and not layer.center
    np.testing.assert_allclose(
        ops.convert_to_numpy(layer(x)), numpy_layer_norm(x, gamma), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_array_equal(
        ops.convert_to_numpy(RestrictedLayerNormalization()(x) * 0), np.zeros(x.shape)
    )


def test_gamma_floor_applies_the_user_constraint_first_then_the_floor():
    w = np.array([4.0, 1.0, -3.0], "float32")
    # halve first, then max(., 1): [2, 1, 1]; the other order would give [2, 0.5, 0.5].
    np.testing.assert_array_equal(ops.convert_to_numpy(GammaFloor(1.0, inner=Halve())(w)), [2.0, 1.0, 1.0])
    layer = RestrictedLayerNormalization(gamma_constraint=Halve())
    layer.build((None, 3))
    np.testing.assert_array_equal(ops.convert_to_numpy(layer.gamma.constraint(w)), [2.0, 1.0, 1.0])
    assert layer.get_config()["gamma_constraint"]["class_name"] == "Halve"  # the user's, not the floor


def fit_gamma_down(norm, epochs=3):
    """Trains Input -> norm with zero targets and a big SGD step: the loss pushes gamma to 0."""
    x = random_input((64, 8), seed=1)
    model = keras.Sequential([keras.Input((8,)), norm])
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse", jit_compile=True)
    model.fit(x, np.zeros_like(x), batch_size=16, epochs=epochs, verbose=0)
    return ops.convert_to_numpy(norm.gamma)


def test_gamma_stays_at_least_one_after_jit_compiled_fit_steps():
    plain = fit_gamma_down(keras.layers.LayerNormalization(center=False))
    assert plain.max() < 0.5  # the loss really pushes gamma well below 1 without the restriction
    restricted = fit_gamma_down(RestrictedLayerNormalization())
    assert restricted.min() >= 1.0
    np.testing.assert_allclose(restricted, 1.0)  # held at the floor, not left at its initial ones by chance


def test_gamma_can_grow_above_one_in_scratch_mode():
    x = random_input((64, 8), seed=2)
    norm = RestrictedLayerNormalization()
    model = keras.Sequential([keras.Input((8,)), norm])
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse", jit_compile=True)
    target = 3 * numpy_layer_norm(x, 1.0)
    model.fit(x, target, epochs=5, verbose=0)
    assert ops.convert_to_numpy(norm.gamma).min() > 2.0


def test_finetune_beta_frozen_and_gamma_trainable_without_floor():
    x = random_input((64, 8), seed=3)
    norm = RestrictedLayerNormalization(mode="finetune", beta_initializer=keras.initializers.Constant(0.3))
    model = keras.Sequential([keras.Input((8,)), norm])
    assert norm.center and [w.name for w in norm.trainable_weights] == ["gamma"]
    assert [w.name for w in norm.non_trainable_weights] == ["beta"]
    norm.trainable = False
    norm.trainable = True  # unfreezing the layer does not unfreeze beta
    assert not norm.beta.trainable and norm.gamma.constraint is None
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse", jit_compile=True)
    model.fit(x, np.zeros_like(x), batch_size=16, epochs=3, verbose=0)
    np.testing.assert_array_equal(ops.convert_to_numpy(norm.beta), np.full(8, 0.3, "float32"))
    assert ops.convert_to_numpy(norm.gamma).max() < 0.5  # trained, and no floor in finetune mode


def test_gamma_uplift_style_assignment_is_seen_by_the_layer():
    layer = RestrictedLayerNormalization(mode="finetune", epsilon=0.0)
    x = random_input((2, 4))
    layer(x)
    assert isinstance(layer, RestrictedLayerNormalization) and layer.mode == "finetune"
    layer.gamma.assign(np.full(4, 2.0, "float32"))
    np.testing.assert_allclose(
        ops.convert_to_numpy(layer(x)), numpy_layer_norm(x, 2.0, 0.0, 0.0), rtol=1e-5, atol=1e-5
    )


def test_from_layer_normalization_copies_axis_epsilon_gamma_and_beta():
    x = random_input((4, 3, 6), seed=4)
    ln = keras.layers.LayerNormalization(epsilon=1e-5)
    ln(x)
    ln.gamma.assign(np.linspace(0.2, 2.0, 6).astype("float32"))
    ln.beta.assign(np.linspace(-1.0, 1.0, 6).astype("float32"))
    rln = RestrictedLayerNormalization.from_layer_normalization(ln, name="copy")
    assert rln.name == "copy" and rln.mode == "finetune" and rln.epsilon == 1e-5 and rln.axis == ln.axis
    np.testing.assert_array_equal(ops.convert_to_numpy(rln.gamma), ops.convert_to_numpy(ln.gamma))
    np.testing.assert_array_equal(ops.convert_to_numpy(rln.beta), ops.convert_to_numpy(ln.beta))
    assert not rln.beta.trainable
    np.testing.assert_allclose(
        ops.convert_to_numpy(rln(x)), ops.convert_to_numpy(ln(x)), rtol=1e-6, atol=1e-6
    )
    # The copy is independent of the source.
    ln.gamma.assign(np.zeros(6, "float32"))
    assert ops.convert_to_numpy(rln.gamma).min() > 0.1


def test_from_layer_normalization_scratch_needs_a_layer_without_beta():
    x = random_input((2, 5))
    ln = keras.layers.LayerNormalization()
    ln(x)
    with pytest.raises(ValueError, match="center"):
        RestrictedLayerNormalization.from_layer_normalization(ln, mode="scratch")
    no_beta = keras.layers.LayerNormalization(center=False)
    no_beta(x)
    no_beta.gamma.assign(np.full(5, 1.5, "float32"))
    rln = RestrictedLayerNormalization.from_layer_normalization(no_beta, mode="scratch")
    assert rln.beta is None and isinstance(rln.gamma.constraint, GammaFloor)
    np.testing.assert_allclose(ops.convert_to_numpy(rln(x)), ops.convert_to_numpy(no_beta(x)), rtol=1e-6)
    with pytest.raises(ValueError, match="built"):
        RestrictedLayerNormalization.from_layer_normalization(keras.layers.LayerNormalization())
    with pytest.raises(ValueError, match="LayerNormalization"):
        RestrictedLayerNormalization.from_layer_normalization(keras.layers.Dense(3))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"center": True}, "center"),
        ({"mode": "frozen"}, "mode"),
        ({"scale": False}, "scale"),
        ({"epsilon": -1.0}, "epsilon"),
        ({"rms_scaling": True}, "rms_scaling"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RestrictedLayerNormalization(**kwargs)


@pytest.mark.parametrize("mode", ["scratch", "finetune"])
def test_passes_the_layer_test_harness(mode, tmp_path):
    result = run_layer_test(
        RestrictedLayerNormalization,
        {"mode": mode, "epsilon": 1e-4, "gamma_constraint": "non_neg", "name": "rln"},
        input_shape=(4, 3, 6),
        expected_num_trainable_weights=1,  # gamma
        expected_num_non_trainable_weights=1 if mode == "finetune" else 0,  # the frozen beta
        tmp_path=tmp_path,
    )
    for restored in (result.clone, result.loaded_layer):
        assert restored.mode == mode and restored.get_config()["gamma_constraint"]["class_name"] == "NonNeg"
        if mode == "scratch":  # the floor wraps the user's constraint again
            assert isinstance(restored.gamma.constraint, GammaFloor)
            assert isinstance(restored.gamma.constraint.inner, keras.constraints.NonNeg)
        else:
            assert not restored.beta.trainable


@pytest.mark.parametrize("axis", [5, 2, -3, (1, 2), [-3, -1]])
def test_an_axis_beyond_the_input_rank_raises(axis):
    with pytest.raises(ValueError, match=r"`axis` is out of range for inputs of rank 2. Received: axis="):
        RestrictedLayerNormalization(axis=axis)(np.ones((2, 3), "float32"))


@pytest.mark.parametrize("axis", [-2, (1, -1)])
def test_in_range_axes_of_any_sign_still_work(axis):
    x = random_input((2, 3, 4), seed=3)
    out = ops.convert_to_numpy(RestrictedLayerNormalization(axis=axis, epsilon=0.0)(x))
    mean_axes = (1,) if axis == -2 else (1, 2)
    np.testing.assert_allclose(out.mean(axis=mean_axes), 0.0, atol=1e-5)


@pytest.mark.parametrize("mode", ["scratch", "finetune"])
def test_integer_inputs_are_normalised_as_floats(mode):
    ints = np.array([[1, 2, 3, 6], [0, 5, 5, 9]], "int32")
    layer = RestrictedLayerNormalization(mode=mode)
    out = layer(ints)
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    np.testing.assert_array_equal(
        ops.convert_to_numpy(out), ops.convert_to_numpy(layer(ints.astype("float32")))
    )
    np.testing.assert_allclose(ops.convert_to_numpy(out), numpy_layer_norm(ints, 1.0), rtol=1e-5)


@pytest.mark.parametrize("mode", ["scratch", "finetune"])
def test_in_float64_the_normalisation_keeps_float64_precision(mode):
    # Inputs near 1e4 with a spread of 1: float32 keeps about 1e-3 of each deviation from the mean
    # (Keras' own float64 LayerNormalization on PyTorch and JAX erred by 1e-3 here; tests/keras_bugs.py).
    x = np.random.default_rng(0).normal(1e4, 1.0, size=(4, 3, 16))
    layer = RestrictedLayerNormalization(mode=mode, dtype="float64")
    out = layer(x)
    assert keras.backend.standardize_dtype(out.dtype) == "float64"
    np.testing.assert_allclose(ops.convert_to_numpy(out), numpy_layer_norm(x, 1.0), rtol=1e-10, atol=1e-10)
