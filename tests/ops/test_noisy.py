"""The noisy-activation ops and RReLU against NumPy references of the spec."""

import numpy as np
import pytest
from keras import ops
from layer_testing import float64_tolerance, vjp
from noisy_reference import h, input_noise, output_noise

from keras_adaptive_acts.ops import hard_sigmoid, hard_tanh, noisy_input, noisy_output, rrelu

RNG = np.random.default_rng(0)
X = (RNG.normal(size=(6, 5)) * 3).astype("float32")
XI = RNG.normal(size=(6, 5)).astype("float32")
P = RNG.uniform(-1, 1, size=(5,)).astype("float32")


def test_base_functions_are_the_papers():
    x = np.linspace(-6, 6, 49).astype("float32")
    np.testing.assert_array_equal(ops.convert_to_numpy(hard_tanh(x)), np.clip(x, -1, 1))
    np.testing.assert_allclose(
        ops.convert_to_numpy(hard_sigmoid(x)), np.clip(0.25 * x + 0.5, 0, 1), rtol=1e-7
    )
    # not Keras' relu6(x + 3) / 6: at x = 1 the paper's gives 0.75, Keras' 0.6667
    assert float(hard_sigmoid(np.float32(1.0))) == 0.75


@pytest.mark.parametrize("base", ["tanh", "sigmoid"])
@pytest.mark.parametrize("half_normal", [False, True])
@pytest.mark.parametrize("alpha", [1.15, 0.9, 1.0])
@pytest.mark.parametrize("clip", [False, True])
@pytest.mark.parametrize("train", [False, True])
def test_output_noise_matches_reference(base, half_normal, alpha, clip, train):
    xi = XI if train else None
    out = noisy_output(X, P, 0.5, xi, base=base, alpha=alpha, half_normal=half_normal, clip_output=clip)
    expected = output_noise(X, P, 0.5, xi, base, alpha, half_normal, clip)
    np.testing.assert_allclose(ops.convert_to_numpy(out), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("base", ["tanh", "sigmoid"])
@pytest.mark.parametrize("mode", ["input", "input_saturated", "input_learned"])
@pytest.mark.parametrize("train", [False, True])
def test_input_noise_matches_reference(base, mode, train):
    xi = XI if train else None
    threshold = 1.0 if base == "tanh" else 2.0
    out = noisy_input(X, 0.25, xi, base=base, mode=mode, threshold=threshold, p=P)
    expected = input_noise(X, 0.25, xi, base, mode, threshold, P)
    np.testing.assert_allclose(ops.convert_to_numpy(out), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("base", ["tanh", "sigmoid"])
def test_output_noise_is_exactly_h_in_the_linear_regime(base):
    limit = 1.0 if base == "tanh" else 2.0
    x = np.linspace(-limit, limit, 101).astype("float32")
    exact = ops.convert_to_numpy(hard_tanh(x) if base == "tanh" else hard_sigmoid(x))
    for xi in (None, np.full_like(x, 3.0)):
        for half_normal in (False, True):
            out = noisy_output(x, np.float32(0.7), 5.0, xi, base=base, alpha=1.3, half_normal=half_normal)
            np.testing.assert_array_equal(ops.convert_to_numpy(out), exact)
    np.testing.assert_allclose(exact, h(x.astype("float64"), base), rtol=1e-7)


def test_rrelu_op():
    slope = np.full_like(X, 0.2)
    np.testing.assert_allclose(ops.convert_to_numpy(rrelu(X, slope)), np.where(X >= 0, X, 0.2 * X), rtol=1e-7)
    np.testing.assert_allclose(ops.convert_to_numpy(rrelu(X, 0.3)), np.where(X >= 0, X, 0.3 * X), rtol=1e-7)


@pytest.mark.parametrize("op", [hard_tanh, hard_sigmoid])
def test_base_functions_reject_integers(op):
    with pytest.raises(ValueError, match=r"`x` must be a floating tensor \(cast integers first\)"):
        op(np.array([-3, 0, 3]))


def test_noisy_ops_check_base_and_mode():
    x = np.array([[3.0]], "float32")
    with pytest.raises(
        ValueError, match=r"`base` must be one of \('tanh', 'sigmoid'\). Received: base='relu'"
    ):
        noisy_output(x, 1.0, 0.5, base="relu")
    with pytest.raises(ValueError, match="Received: base='relu'"):
        noisy_input(x, 0.5, base="relu")
    for mode in ("gaussian", "output"):  # output noise is `noisy_output`'s
        with pytest.raises(ValueError, match=f"`mode` must be one of .*Received: mode='{mode}'"):
            noisy_input(x, 0.5, np.ones((1, 1), "float32"), mode=mode)


def test_input_learned_needs_p_also_at_inference():
    x = np.array([[3.0]], "float32")
    for xi in (np.ones((1, 1), "float32"), None):
        with pytest.raises(ValueError, match=r"needs the per-unit parameter `p`\. Received: p=None"):
            noisy_input(x, 0.5, xi, mode="input_learned")
    out = noisy_input(x, 0.5, None, mode="input_learned", p=np.ones((1,), "float32"))
    np.testing.assert_array_equal(ops.convert_to_numpy(out), [[1.0]])


@pytest.mark.parametrize("base", ["tanh", "sigmoid"])
@pytest.mark.parametrize("half_normal", [False, True])
def test_output_noise_at_inference_matches_the_float64_reference_over_the_whole_range(base, half_normal):
    """Every float32 magnitude from 1e-30 to 1e30 and both signs, saturated and not.

    The op evaluates the noise scale as tanh(p * delta / 2)**2 / 4 (faster under XLA), the
    reference as the spec writes it, (sigmoid(p * delta) - 1/2)**2, in float64: the two must agree
    to float32 rounding of the terms, whose size is that of `max(1, |x|)` (where alpha * h and
    (1 - alpha) * x cancel, near |x| = 7.7 for tanh, the output is smaller than its terms).
    """
    magnitudes = np.concatenate([np.geomspace(1e-30, 1e30, 2000), np.linspace(0.0, 12.0, 1201)])
    x = np.concatenate([magnitudes, -magnitudes]).astype("float32")
    p = np.float32(0.7)
    out = ops.convert_to_numpy(noisy_output(x, p, 0.5, None, base=base, half_normal=half_normal))
    expected = output_noise(x.astype("float64"), 0.7, 0.5, None, base, 1.15, half_normal)
    term_size = np.maximum(1.0, np.abs(x)).astype("float32")
    spacing = np.spacing(term_size).astype("float64")  # one float32 ulp of the terms
    assert np.all(np.abs(out - expected) <= 2 * spacing)


NOISES_WITH_P = [
    pytest.param(dict(noise="output", half_normal=False), id="NAN"),
    pytest.param(dict(noise="output", half_normal=True), id="NAH"),
    pytest.param(dict(noise="input_learned"), id="NANIL"),
]


def _noisy_with_p(x, p, xi, base, noise, half_normal=False):
    """The training form (noise `xi`) of an activation with the per-unit `p` (NumPy or backend arrays)."""
    if noise == "output":
        return noisy_output(x, p, 0.5, xi, base=base, alpha=1.15, half_normal=half_normal)
    return noisy_input(x, 0.25, xi, base=base, mode=noise, p=p)


def _reference_with_p(x, p, xi, base, noise, half_normal=False):
    if noise == "output":
        return output_noise(x, p, 0.5, xi, base, 1.15, half_normal)
    return input_noise(x, 0.25, xi, base, noise, 1.0, p)


@pytest.mark.parametrize("base", ["tanh", "sigmoid"])
@pytest.mark.parametrize("kind", NOISES_WITH_P)
def test_the_gradient_of_p_matches_finite_differences_of_the_reference(base, kind):
    # Linear and saturated entries in every unit: p's gradient sums over both, and is 0 on the
    # linear ones (no noise there).
    x = np.array([[-3.1, -0.4, 2.2, 5.0, -7.5], [0.3, -2.6, -0.9, 1.4, 4.4], [2.9, 0.8, -4.7, -0.2, -1.8]])
    x = x * (1.0 if base == "tanh" else 4.0)
    xi = np.random.default_rng(1).normal(size=x.shape)
    p = np.array([0.7, -1.3, 0.4, 1.9, -0.6])
    upstream = np.random.default_rng(2).normal(size=x.shape)
    _, (dp,) = vjp(lambda p_: _noisy_with_p(x, p_, xi, base, **kind), [p], upstream)
    step = 1e-6
    numeric = [
        np.sum(
            upstream
            * (
                _reference_with_p(x, p + step * e, xi, base, **kind)
                - _reference_with_p(x, p - step * e, xi, base, **kind)
            )
        )
        / (2 * step)
        for e in np.eye(p.size)
    ]
    np.testing.assert_allclose(ops.convert_to_numpy(dp), numeric, **float64_tolerance(1e-6, 1e-9))
