"""NoisyHardTanh and NoisyHardSigmoid: references, statistics, gradients, training, serialisation."""

import keras
import numpy as np
import pytest
from keras import ops
from layer_testing import jit_call, layer_vjp, run_layer_test, vjp, weight_values
from noisy_reference import h, input_noise, output_noise

from keras_adaptive_acts import NoisyHardSigmoid, NoisyHardTanh

LAYERS = {"tanh": NoisyHardTanh, "sigmoid": NoisyHardSigmoid}
MODES = ["output", "input", "input_saturated", "input_learned"]


def make(base, **kwargs):
    return LAYERS[base](**kwargs)


def reference(layer, x, xi):
    """The layer's output by the NumPy reference, with its own p, c and defaults."""
    p = ops.convert_to_numpy(layer.p) if layer.uses_p else None
    c = float(ops.convert_to_numpy(layer.c))
    if layer.noise == "output":
        return output_noise(x, p, c, xi, layer.base, layer.alpha, layer.half_normal, layer.clip_output)
    return input_noise(x, c, xi, layer.base, layer.noise, layer.threshold, p)


def sample_input(shape=(8, 6), scale=3.0, seed=0):
    return (np.random.default_rng(seed).normal(size=shape) * scale).astype("float32")


@pytest.mark.parametrize("base", sorted(LAYERS))
@pytest.mark.parametrize("noise", MODES)
def test_inference_and_training_match_the_reference(base, noise):
    x = sample_input()
    layer = make(base, noise=noise, seed=3)
    np.testing.assert_allclose(
        ops.convert_to_numpy(layer(x)), reference(layer, x, None), rtol=1e-6, atol=1e-6
    )
    # The layer's first draw is the first draw of a plain SeedGenerator with the same seed.
    xi = ops.convert_to_numpy(keras.random.normal(x.shape, seed=keras.random.SeedGenerator(3)))
    np.testing.assert_allclose(
        ops.convert_to_numpy(layer(x, training=True)), reference(layer, x, xi), rtol=1e-5, atol=1e-6
    )


def test_defaults_follow_the_spec():
    tanh, sigmoid = NoisyHardTanh(), NoisyHardSigmoid()
    assert (tanh.alpha, tanh.initial_c, tanh.half_normal, tanh.threshold) == (1.15, 0.5, False, 1.0)
    assert (sigmoid.alpha, sigmoid.initial_c, sigmoid.half_normal, sigmoid.threshold) == (
        1.1,
        0.15,
        True,
        2.0,
    )
    assert [NoisyHardTanh(noise=m).initial_c for m in MODES[1:]] == [0.05, 0.25, 0.25]
    layer = NoisyHardTanh()
    layer.build((None, 400))
    p = ops.convert_to_numpy(layer.p)
    assert p.shape == (400,) and p.min() >= -1 and p.max() <= 1 and p.std() > 0.4  # uniform [-1, 1]
    # c (a variable, for schedules) and the noise stream position (saved with the layer)
    assert sorted(w.name for w in layer.non_trainable_weights) == ["c", "noise_stream_position"]


@pytest.mark.parametrize("base", sorted(LAYERS))
@pytest.mark.parametrize("half_normal", [False, True])
def test_training_statistics(base, half_normal):
    scale = 1.0 if base == "tanh" else 2.0  # where the linear regime ends
    units = np.array([-3.0, -1.5, -0.5, 0.3, 1.2, 4.0]) * scale
    n = 20000
    x = np.tile(units, (n, 1)).astype("float32")
    layer = make(base, c=5.0, half_normal=half_normal, p_initializer=keras.initializers.Constant(1.0), seed=1)
    train = ops.convert_to_numpy(layer(x, training=True)).astype("float64")
    infer = ops.convert_to_numpy(layer(units[None].astype("float32")))[0]
    delta = h(units, base) - (units if base == "tanh" else 0.25 * units + 0.5)
    sigma = 5.0 * (1 / (1 + np.exp(-delta)) - 0.5) ** 2
    noise_std = sigma * (np.sqrt(1 - 2 / np.pi) if half_normal else 1.0)
    linear = np.abs(units) <= scale
    np.testing.assert_array_equal(train[:, linear], np.tile(h(units[linear], base), (n, 1)).astype("float32"))
    np.testing.assert_array_equal(infer[linear], h(units[linear], base).astype("float32"))
    saturated = ~linear
    mean, std = train.mean(0), train.std(0)
    assert np.all(np.abs(mean - infer)[saturated] < 5 * noise_std[saturated] / np.sqrt(n))
    np.testing.assert_allclose(std[saturated], noise_std[saturated], rtol=0.05)
    if half_normal:  # the noise points along d(x) = -sign(x) * sign(1 - alpha)
        deterministic = layer.alpha * h(units, base) + (1 - layer.alpha) * (
            units if base == "tanh" else 0.25 * units + 0.5
        )
        d = -np.sign(units) * np.sign(1 - layer.alpha)
        assert np.all(((train - deterministic) * d)[:, saturated] >= -1e-6)


@pytest.mark.parametrize("noise", ["input", "input_saturated", "input_learned"])
def test_input_noise_statistics(noise):
    units = np.array([-2.5, -0.5, 0.0, 0.5, 2.5], dtype="float32")
    x = np.tile(units, (5000, 1))
    layer = NoisyHardTanh(noise=noise, c=0.3, seed=2)
    train = ops.convert_to_numpy(layer(x, training=True))
    std = train.std(0)
    if noise == "input_saturated":  # noise only where |x| > 1
        np.testing.assert_array_equal(std[1:4], 0.0)
        assert np.all(std[[0, 4]] == 0.0)  # h(x + c xi) stays saturated this far out, c = 0.3
    else:
        assert np.all(std[1:4] > 0.05)  # NANI and NANIL add noise in the linear regime by definition


def test_inference_is_deterministic_and_independent_of_the_batch():
    """Bit-identical across calls and batch sizes within one execution mode (eager, or XLA).

    Eager and XLA may differ in the last bit: XLA fuses multiply-adds.
    """
    x = sample_input((64, 16), seed=4)
    for layer in (NoisyHardTanh(seed=0), NoisyHardSigmoid(noise="input_learned", seed=0)):
        eager = ops.convert_to_numpy(layer(x))
        compiled = ops.convert_to_numpy(jit_call(layer, x))
        np.testing.assert_allclose(compiled, eager, rtol=3e-7, atol=1e-7)
        for rows in (1, 7, 64):
            np.testing.assert_array_equal(ops.convert_to_numpy(layer(x[:rows])), eager[:rows])
            np.testing.assert_array_equal(ops.convert_to_numpy(jit_call(layer, x[:rows])), compiled[:rows])
        np.testing.assert_array_equal(ops.convert_to_numpy(jit_call(layer, x)), compiled)


def test_noise_at_inference_is_an_explicit_opt_in():
    x = sample_input(seed=5)
    plain = NoisyHardTanh(seed=0)
    monte_carlo = NoisyHardTanh(seed=0, noise_at_inference=True, p_initializer="ones")
    np.testing.assert_array_equal(ops.convert_to_numpy(plain(x)), ops.convert_to_numpy(plain(x)))
    draws = [ops.convert_to_numpy(monte_carlo(x)) for _ in range(2)]
    assert not np.array_equal(draws[0], draws[1])


def test_same_seed_same_stream_different_seed_different_stream():
    x = sample_input(seed=6)

    def stream(seed):
        layer = NoisyHardSigmoid(seed=seed, p_initializer="ones")
        return [ops.convert_to_numpy(layer(x, training=True)) for _ in range(3)]

    a, b, c = stream(11), stream(11), stream(12)
    for first, second in zip(a, b, strict=True):
        np.testing.assert_array_equal(first, second)
    assert not np.array_equal(a[0], c[0]) and not np.array_equal(a[0], a[1])


def test_gradients_flow_through_p_and_the_saturated_region():
    x = np.array([[-3.0, -2.0, 0.5, 2.0, 3.0]], dtype="float32")
    layer = NoisyHardTanh(c=2.0, p_initializer="ones", seed=0)
    saturated = np.abs(x[0]) > 1
    for training in (True, False):
        _, dx, weight_grads = layer_vjp(layer, x, np.ones_like(x), training=training)
        assert np.all(dx[0][saturated] != 0), "h' is zero there; the noisy unit must still pass a gradient"
    _, _, weight_grads = layer_vjp(layer, x, np.ones_like(x), training=True)
    dp = weight_grads[layer.p.path]
    assert np.all(dp[[0, 1, 3, 4]] != 0) and dp[2] == 0  # no noise, hence no p-gradient, where linear


def test_gradient_matches_finite_differences_in_training_mode():
    x = np.array([[-2.5, -1.3, 0.4, 1.7, 3.1]])
    layer = NoisyHardSigmoid(c=1.0, dtype="float64", seed=0, p_initializer=keras.initializers.Constant(0.8))
    layer.build(x.shape)
    xi = ops.convert_to_numpy(
        keras.random.normal(x.shape, dtype="float64", seed=keras.random.SeedGenerator(0))
    )
    upstream = np.ones_like(x)
    _, (dx,) = vjp(lambda v: layer(v, training=True), [x], upstream)
    step = 1e-6
    numeric = [
        (reference(layer, x + step * e, xi) - reference(layer, x - step * e, xi)).sum() / (2 * step)
        for e in np.eye(5)[:, None, :]
    ]
    np.testing.assert_allclose(dx[0], numeric, rtol=1e-5, atol=1e-8)


def test_jit_compiled_fit_learns_p_and_keeps_c():
    keras.utils.set_random_seed(0)
    x = sample_input((256, 8), seed=7)
    y = np.tanh(x[:, :1]).astype("float32")
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16),
            NoisyHardTanh(seed=1),
            keras.layers.Dense(8),
            NoisyHardSigmoid(seed=2),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse", jit_compile=True)
    before = {**weight_values(model.layers[1]), **weight_values(model.layers[3])}
    history = model.fit(x, y, epochs=5, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    after = {**weight_values(model.layers[1]), **weight_values(model.layers[3])}
    assert all(not np.array_equal(after[k], before[k]) for k in before)  # p moved in both layers
    assert float(model.layers[1].c.numpy()) == 0.5 and float(model.layers[3].c.numpy()) == pytest.approx(0.15)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_draws_noise_in_the_compute_dtype(policy, dtype_policy):
    dtype_policy(policy)
    layer = NoisyHardTanh(seed=0)
    x = sample_input(seed=8)
    out = layer(x, training=True)
    dtype = policy.split("_")[1]
    assert keras.backend.standardize_dtype(out.dtype) == dtype
    assert keras.backend.standardize_dtype(layer.standard_normal(x).dtype) == dtype
    assert layer.p.dtype == "float32" and layer.c.dtype == "float32"
    expected = reference(layer, ops.convert_to_numpy(ops.cast(ops.cast(x, dtype), "float32")), None)
    np.testing.assert_allclose(ops.convert_to_numpy(ops.cast(layer(x), "float32")), expected, atol=2e-2)


@pytest.mark.parametrize("base", sorted(LAYERS))
@pytest.mark.parametrize("noise", MODES)
def test_passes_the_layer_test_harness(base, noise, tmp_path):
    # No seed: the stream position, a weight of the layer (with c, which the harness moves off its
    # initial value as an annealing schedule would), carries the stream through every copy.
    run_layer_test(
        LAYERS[base],
        {"noise": noise},
        input_shape=(8, 6),
        stochastic=True,
        expected_num_trainable_weights=1 if make(base, noise=noise).uses_p else 0,
        expected_num_non_trainable_weights=2,  # c and the noise stream position
        supports_masking=True,
        tmp_path=tmp_path,
    )


def test_every_argument_survives_config_and_keras_file_round_trips(tmp_path):
    result = run_layer_test(
        NoisyHardSigmoid,
        {
            "noise": "input_saturated",
            "alpha": 1.3,
            "c": 0.4,
            "half_normal": False,
            "threshold": 1.5,
            "clip_output": True,
            "seed": 9,
            "noise_at_inference": False,
            "p_regularizer": "l2",
            "name": "noisy",
        },
        input_shape=(8, 6),
        stochastic=True,
        policies=(),
        tmp_path=tmp_path,
    )
    for layer in (result.clone, result.loaded_layer):
        assert (layer.noise, layer.alpha, layer.initial_c, layer.threshold, layer.seed) == (
            "input_saturated",
            1.3,
            0.4,
            1.5,
            9,
        )
        assert layer.clip_output and not layer.half_normal
        assert isinstance(layer.p_regularizer, keras.regularizers.L2)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"c": -0.1}, "c=-0.1"),
        ({"c": float("nan")}, "c=nan"),
        ({"alpha": 0.0}, "alpha=0.0"),
        ({"alpha": float("inf")}, "alpha=inf"),
        ({"noise": "gaussian"}, "noise='gaussian'"),
        ({"threshold": -1.0}, "threshold=-1.0"),
        ({"half_normal": "yes"}, "half_normal='yes'"),
        ({"clip_output": 1}, "clip_output=1"),
        ({"seed": 1.5}, "seed=1.5"),
        ({"noise_at_inference": None}, "noise_at_inference=None"),
    ],
)
def test_bad_arguments(kwargs, match):
    for cls in LAYERS.values():
        with pytest.raises(ValueError, match=match):
            cls(**kwargs)


def test_non_finite_inputs():
    x = np.array([[np.nan, np.inf, -np.inf, 0.5]], dtype="float32")
    layer = NoisyHardTanh(p_initializer="ones", seed=0)
    infer = ops.convert_to_numpy(layer(x))
    assert np.isnan(infer[0, 0]) and infer[0, 3] == 0.5
    expected = reference(layer, x.astype("float64"), None)
    np.testing.assert_array_equal(np.isnan(infer), np.isnan(expected))
    np.testing.assert_allclose(infer[~np.isnan(infer)], expected[~np.isnan(expected)])


@pytest.mark.parametrize("noise", MODES)
def test_scalar_inputs_need_no_units_axis_unless_the_mode_has_p(noise):
    for cls in LAYERS.values():
        layer = cls(noise=noise, seed=0)
        if layer.uses_p:
            with pytest.raises(ValueError, match=f"noise='{noise}' needs inputs of rank >= 1.*shape=\\(\\)"):
                layer(np.float32(3.0))
        else:
            expected = ops.convert_to_numpy(layer(np.array([3.0], "float32")))
            np.testing.assert_array_equal(ops.convert_to_numpy(layer(np.float32(3.0))), expected[0])
