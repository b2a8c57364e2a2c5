"""Regression tests of the bugs the property tests (test_properties.py) found.

Each test is hypothesis' minimal failing example, written out, with what was wrong. A test marked
xfail pins a bug of Keras' that the package does not work around: it fails when Keras fixes it.
"""

import copy

import keras
import numpy as np
import pytest

import keras_adaptive_acts as kaa
from keras_adaptive_acts.ops import noisy_input


def values(tensor):
    return np.asarray(keras.ops.convert_to_numpy(tensor)).astype("float64")


def test_mixed_activation_with_a_named_package_part_follows_its_dtype_policy():
    # Hypothesis: MixedActivation(dtype="float16") with a part named "competitive_relu" raised
    # "cannot compute Mul ... expected half but is float": parts named by a string were created with
    # the default float32 policy. The default end, "j_squared_relu", failed the same way.
    layer = kaa.MixedActivation(start="relu", end="competitive_relu", t=0.0, dtype="float16")
    out = layer(np.zeros((0, 0), "float32"))
    assert tuple(out.shape) == (0, 0) and keras.backend.standardize_dtype(out.dtype) == "float16"
    out = kaa.MixedActivation(t=0.5, dtype="float16")(np.array([[-1.0, 2.0]], "float32"))
    assert keras.backend.standardize_dtype(out.dtype) == "float16"
    np.testing.assert_array_equal(values(out), [[0.0, 3.0]])


def test_mixed_activation_with_a_layer_of_another_policy_returns_its_own_compute_dtype():
    # Hypothesis: a part given as a layer instance (float32 by default) in a float64 blend raised the
    # same error. The instance keeps its own policy; its output is cast to the blend's dtype.
    layer = kaa.MixedActivation(start=kaa.RReLU(), end="relu", t=0.5, dtype="float64")
    out = layer(np.array([[-2.0, 2.0]], "float32"))
    assert keras.backend.standardize_dtype(out.dtype) == "float64"


def test_mixed_activation_at_t_0_is_start_even_where_end_overflows():
    # Hypothesis: bfloat16, start="relu", end="competitive_relu", t=0, x=[[1e30]] gave NaN: the end
    # overflows to NaN (documented for CompetitiveReLU) and 0 * NaN is NaN. In float16 the default
    # end, J-SquaredReLU, overflows from x = 362 on: t=0 gave NaN where ReLU gives 400.
    layer = kaa.MixedActivation(start="relu", end="competitive_relu", t=0.0, dtype="bfloat16")
    out = layer(np.array([[1e30]], "float32"))
    np.testing.assert_array_equal(values(out), values(keras.ops.cast([[1e30]], "bfloat16")))
    out = kaa.MixedActivation(dtype="float16")(np.array([[400.0, -1.0]], "float32"))
    np.testing.assert_array_equal(values(out), [[400.0, 0.0]])
    # And at t=1 the output is end(x) where start(x) is infinite (start: J-SquaredReLU of 1e30).
    layer = kaa.MixedActivation(start="j_squared_relu", end="relu", t=1.0)
    x = np.array([[1e30]], "float32")
    np.testing.assert_array_equal(values(layer(x)), x)


def test_mixed_activation_config_can_be_deep_copied():
    # Hypothesis: copy.deepcopy(MixedActivation(end=RReLU(...)).get_config()) raised
    # NotImplementedError: the part's config dict was stored on the layer, which Keras wraps in a
    # TrackedDict referring to the layer, so the copy tried to copy (and serialise) the layer.
    layer = kaa.MixedActivation(
        start="j_squared_relu", end=kaa.RReLU(lower=0.0, upper=0.0), t=0.0, dtype="float16"
    )
    config = copy.deepcopy(layer.get_config())
    assert type(config["end"]) is dict
    clone = kaa.MixedActivation.from_config(config)
    assert clone.get_config() == layer.get_config()


def test_noisy_lstm_cell_accepts_an_empty_batch():
    # Hypothesis: RNN(NoisyLSTMCell(1, implementation=2)) on a (0, 1, 0) input raised "Biases must
    # be 1D: [0,4]" on TensorFlow: Keras' `ops.add` takes a (0, 4 * units) tensor for a bias there
    # (Keras' own LSTMCell fails too). NoisyGRUCell and implementation=1 were fine.
    cell = kaa.NoisyLSTMCell(
        1,
        use_bias=False,
        implementation=2,
        recurrent_initializer="glorot_uniform",  # JAX and torch have no float16 QR for "orthogonal"
        dtype="float16",
    )
    out = keras.layers.RNN(cell, dtype="float16")(np.zeros((0, 1, 0), "float32"))
    assert tuple(out.shape) == (0, 1)
    out = keras.layers.RNN(kaa.NoisyLSTMCell(3, implementation=2))(np.zeros((0, 2, 4), "float32"))
    assert tuple(out.shape) == (0, 3)


def test_competitive_relu_minus_inf_only_loses():
    # Hypothesis: float16, x=[[-inf]] gave 0, where the docstring promised NaN for any Inf. The
    # docstring was wrong: -Inf makes p = 0 (finite); only NaN and +Inf (or an overflowing positive
    # part) make the slice NaN. The docstring now says so.
    layer = kaa.CompetitiveReLU(dtype="float16")
    np.testing.assert_array_equal(values(layer(np.array([[-np.inf]], "float32"))), [[0.0]])
    np.testing.assert_array_equal(values(layer(np.array([[-np.inf, 2.0]], "float32"))), [[0.0, 2.0]])
    assert np.all(np.isnan(values(layer(np.array([[np.inf, 2.0]], "float32")))))
    # energy: -1e30 squared overflows float32 but only the denominator: p = 0, not NaN.
    out = kaa.CompetitiveReLU()(np.array([[-1e30, 2.0]], "float32"))
    np.testing.assert_array_equal(values(out), [[0.0, 2.0]])


def test_zeroth_bias_built_on_empty_sequence_round_trips():
    # Hypothesis: ZerothBias() on a (0, 0, 0) input, then from_config(get_config()): ValueError
    # "`max_len` must be an int >= 1 or None. Received: max_len=0".
    layer = kaa.ZerothBias()
    layer(np.zeros((0, 0, 0), "float32"))
    clone = kaa.ZerothBias.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


def test_sparsified_mlp_built_on_empty_sequence_round_trips():
    # Hypothesis: SparsifiedMLP(1) on a (0, 0, 1) input, then from_config(get_config()) failed.
    layer = kaa.SparsifiedMLP(1)
    layer(np.zeros((0, 0, 1), "float32"))
    clone = kaa.SparsifiedMLP.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


def test_kl_sparsity_with_a_tiny_rho_is_finite():
    # Hypothesis: ActivitySparsity(KLSparsity(rho=2.2250738585072014e-308, strength=0.0)) with
    # dtype="float16" on [[0.12573022]] added a NaN loss (even at strength 0: 0 * NaN is NaN).
    regularizer = kaa.regularizers.KLSparsity(rho=2.2250738585072014e-308, strength=0.0)
    layer = kaa.ActivitySparsity(regularizer, dtype="float16")
    layer(np.array([[0.12573022]], "float32"))
    (loss,) = layer.losses
    assert values(loss) == 0.0


ON_TORCH = keras.backend.backend() == "torch"


def test_restricted_layer_normalization_over_a_middle_axis():
    # Hypothesis (torch): RestrictedLayerNormalization(axis=1, dtype="float16") on a (0, 0, 1)
    # input raised "Given normalized_shape=[0], expected input with shape [*, 0]". Keras 3.15's torch
    # layer_normalization sends contiguous axes to F.layer_norm, which normalises the trailing axes
    # whatever `axis` says (keras.layers.LayerNormalization(axis=1) too). On torch the layer now
    # computes the moments with keras.ops.
    layer = kaa.RestrictedLayerNormalization(axis=1, epsilon=0.0625, dtype="float16")
    assert tuple(layer(np.zeros((0, 0, 1), "float32")).shape) == (0, 0, 1)
    x = np.arange(6, dtype="float32").reshape(1, 3, 2)
    out = kaa.RestrictedLayerNormalization(axis=1, epsilon=0.0)(x)
    expected = (x - x.mean(axis=1, keepdims=True)) / x.std(axis=1, keepdims=True)
    np.testing.assert_allclose(values(out), expected, rtol=1e-5)


def test_layer_normalization_of_huge_inputs_is_finite():
    # Hypothesis (torch): RestrictedLayerNormalization(axis=1, epsilon=0.0625, dtype="bfloat16") on
    # [[1e30]] gave NaN; SparsifiedMLP(1, zeroth_bias=False, residual=False) on [[[1e30]]] too.
    # Keras' torch layer_normalization takes the variance as E[x^2] - E[x]^2 = inf - inf; the layer
    # now computes E[(x - mean)^2] there.
    layer = kaa.RestrictedLayerNormalization(axis=1, epsilon=0.0625, dtype="bfloat16")
    assert np.all(np.isfinite(values(layer(np.array([[1e30]], "float32")))))
    layer = kaa.SparsifiedMLP(1, zeroth_bias=False, residual=False, epsilon=0.0625, dtype="bfloat16")
    assert np.all(np.isfinite(values(layer(np.array([[[1e30]]], "float32")))))


@pytest.mark.xfail(
    ON_TORCH,
    strict=True,
    reason="Keras 3.15's torch layer_normalization overflows to NaN where x^2 does not fit float32 "
    "(|x| above about 1e19): SparsifiedMLP(norm='layer') uses keras.layers.LayerNormalization as is",
)
def test_sparsified_mlp_with_keras_layer_normalization_of_huge_inputs_is_finite():
    layer = kaa.SparsifiedMLP(1, norm="layer", zeroth_bias=False, residual=False, epsilon=0.0625)
    assert np.all(np.isfinite(values(layer(np.array([[[1e30]]], "float32")))))


def test_nanil_with_zero_noise_scale_draws_no_noise_in_float16():
    # Hypothesis: NoisyHardTanh(noise="input_learned", c=0.0, dtype="float16") trained on
    # [[0.12573022, 6e4]] gave NaN for 6e4: p * |delta| / (|xi| + 1e-10) overflows float16 where
    # |xi| is small (1e-10 itself is 0 in float16), softplus(inf) is inf and c * inf = 0 * inf is NaN.
    # c = 0 is where NoiseAnnealing ends. The ratio is now capped at the dtype's largest value.
    for x in (np.array([[0.12573022, 6e4]], "float32"), np.full((1, 64), 6e4, "float32")):
        layer = kaa.NoisyHardTanh(
            noise="input_learned",
            c=0.0,
            p_initializer=keras.initializers.Constant(1.0),
            seed=0,
            dtype="float16",
        )
        np.testing.assert_array_equal(values(layer(x, training=True)), values(layer(x, training=False)))


def test_nanil_in_float16_with_a_zero_noise_draw_in_the_linear_regime_is_finite():
    # Noted with the float16 fix above: the paper's |xi| + 1e-10 is |xi| + 0 in float16, so a draw
    # of exactly 0 where delta = 0 (the linear regime) gave 0 / 0 = NaN. The output is h(x) there.
    x = np.array([[0.5, -0.25, 3.0]], "float16")
    xi = np.array([[0.0, 0.0, 0.0]], "float16")
    p = np.ones((3,), "float16")
    out = values(noisy_input(x, np.float16(1.0), xi, base="tanh", mode="input_learned", p=p))
    np.testing.assert_array_equal(out, np.clip(x, -1, 1))
