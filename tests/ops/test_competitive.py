"""The CAReLU op against a NumPy reference, finite differences and autodiff of the plain formula."""

import keras
import numpy as np
import pytest
from keras import ops
from layer_testing import away_from_zero, float64_tolerance, numeric_vjp, vjp

from keras_adaptive_acts.ops import competition_share, competitive_relu, competitive_scale

COMPETITIONS = ("energy", "l1", "count")


def reference_share(z, competition, eps, axes):
    """p per slice, NumPy float64, straight from the spec."""
    pos = np.maximum(z, 0)
    if competition == "energy":
        return np.sum(pos**2, axis=axes, keepdims=True) / (np.sum(z**2, axis=axes, keepdims=True) + eps)
    if competition == "l1":
        return np.sum(pos, axis=axes, keepdims=True) / (np.sum(np.abs(z), axis=axes, keepdims=True) + eps)
    return np.mean(z > 0, axis=axes, keepdims=True)


def reference(x, alpha, beta, source=None, competition="energy", scale_bound=2.0, eps=1e-6, axes=None):
    """CAReLU per the spec: relu(K * tanh(alpha * p + beta) * x) with K = scale_bound, NumPy float64."""
    x = np.asarray(x, dtype="float64")
    z = x if source is None else np.asarray(source, dtype="float64")
    axes = tuple(range(1, x.ndim)) if axes is None else axes
    s = scale_bound * np.tanh(alpha * reference_share(z, competition, eps, axes) + beta)
    return np.maximum(s * x, 0)


def plain_formula(x, alpha, beta, competition, scale_bound, eps, axes):
    """The same formula in keras.ops with no custom gradient: what autodiff makes of it."""
    pos = ops.relu(x)
    if competition == "energy":
        p = ops.sum(pos**2, axes, keepdims=True) / (ops.sum(x**2, axes, keepdims=True) + eps)
    else:
        p = ops.sum(pos, axes, keepdims=True) / (ops.sum(ops.abs(x), axes, keepdims=True) + eps)
    return ops.relu(scale_bound * ops.tanh(alpha * p + beta) * x)


CASES = [  # (shape, axis, normalised axes)
    ((4, 6), None, (1,)),
    ((3, 4, 5), -1, (2,)),
    ((3, 4, 5), None, (1, 2)),
    ((2, 3, 4, 5), (1, 2), (1, 2)),
    ((2, 3, 4, 5), (-3, -1), (1, 3)),
    ((2, 3, 4, 5), None, (1, 2, 3)),
]


@pytest.mark.parametrize("competition", COMPETITIONS)
@pytest.mark.parametrize(("shape", "axis", "axes"), CASES)
def test_forward_matches_numpy_reference(competition, shape, axis, axes):
    rng = np.random.default_rng(0)
    x = rng.normal(size=shape).astype("float32")
    x[0] *= 0.1  # slices of different scales
    for alpha, beta in [(1.7, -0.3), (-2.0, 0.5), (0.0, 0.5493)]:
        out = competitive_relu(x, alpha, beta, competition=competition, axis=axis)
        expected = reference(x, alpha, beta, competition=competition, axes=axes)
        np.testing.assert_allclose(ops.convert_to_numpy(out), expected, rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("competition", COMPETITIONS)
def test_share_and_scale_match_reference(competition):
    x = np.random.default_rng(1).normal(size=(5, 3, 7)).astype("float32")
    p = competition_share(x, competition, axis=-1)
    np.testing.assert_allclose(p, reference_share(x.astype("float64"), competition, 1e-6, (2,)), rtol=1e-6)
    s = competitive_scale(x, 1.5, -0.25, competition, scale_bound=3.0, axis=-1)
    expected = 3.0 * np.tanh(1.5 * reference_share(x.astype("float64"), competition, 1e-6, (2,)) - 0.25)
    np.testing.assert_allclose(s, expected, rtol=1e-6, atol=1e-7)


def test_l1_share_of_large_slices_is_within_rounding_of_its_scale_and_in_the_unit_interval():
    # Where the sums are products with ones (XLA on CPUs), the l1 share is (sum(z) + sum(|z|)) /
    # (2 sum(|z|)): its error is a rounding of the sums, so it is bounded absolutely (relative to
    # p's scale, 1), not relative to p. Slices from all negative to all positive, 65536 entries.
    rng = np.random.default_rng(3)
    magnitudes = np.abs(rng.normal(size=(9, 16, 16, 256)))
    positive_fraction = np.linspace(0.0, 1.0, 9).reshape(-1, 1, 1, 1)
    signs = np.where(rng.uniform(size=magnitudes.shape) < positive_fraction, 1.0, -1.0)
    x = (signs * magnitudes).astype("float32")
    x[1, 0, 0, 0] = 1e-3  # a nearly all-negative slice: p about 2e-8
    p = ops.convert_to_numpy(competition_share(x, "l1"))
    expected = reference_share(x.astype("float64"), "l1", 1e-6, (1, 2, 3))
    np.testing.assert_allclose(p, expected, rtol=0, atol=1e-6)
    assert np.all((p >= 0) & (p <= 1)), p.ravel()
    assert p[0].item() == 0.0  # all negative: sum(z) == -sum(|z|) exactly, so no share at all


def test_share_and_scale_measure_integer_inputs_in_float32():
    x = np.array([[3, -1, 2, 0], [-4, -2, 1, 5]], dtype="int32")
    expected_p = reference_share(x.astype("float64"), "energy", 1e-6, (1,))
    p = competition_share(x)
    s = competitive_scale(x, 1.5, -0.25, "energy", 3.0)  # scale_bound is the fifth positional argument
    assert keras.backend.standardize_dtype(p.dtype) == keras.backend.standardize_dtype(s.dtype) == "float32"
    np.testing.assert_allclose(ops.convert_to_numpy(p), expected_p, rtol=1e-6)
    np.testing.assert_allclose(ops.convert_to_numpy(s), 3.0 * np.tanh(1.5 * expected_p - 0.25), rtol=1e-6)


def test_negative_scale_lets_the_negatives_win():
    x = np.array([[-3.0, -1.0, 0.5]], dtype="float32")  # p_energy small: negatives dominate
    out = ops.convert_to_numpy(competitive_relu(x, 4.0, -2.0))
    s = 2 * np.tanh(4 * (0.25 / 10.25) - 2)
    assert s < 0
    np.testing.assert_allclose(out, [[-3.0 * s, -1.0 * s, 0.0]], rtol=1e-6)


def _float64_case(shape, seed):
    rng = np.random.default_rng(seed)
    return away_from_zero(rng.normal(size=shape)), rng.normal(size=shape)


@pytest.mark.parametrize("competition", COMPETITIONS)
@pytest.mark.parametrize(("shape", "axis", "axes"), [((3, 5), None, (1,)), ((2, 3, 4), -1, (2,))])
@pytest.mark.parametrize(("alpha", "beta"), [(1.3, -0.2), (-1.1, 0.4)])
def test_gradient_matches_finite_differences(competition, shape, axis, axes, alpha, beta):
    x, upstream = _float64_case(shape, seed=2)

    def op(x, a, b):
        return competitive_relu(x, a, b, competition=competition, axis=axis)

    _, grads = vjp(op, [x, np.float64(alpha), np.float64(beta)], upstream)
    expected = numeric_vjp(
        lambda x, a, b: reference(x, a, b, competition=competition, axes=axes),
        [x, alpha, beta],
        upstream,
    )
    for actual, numeric in zip(grads, expected, strict=True):
        np.testing.assert_allclose(actual, numeric, **float64_tolerance(1e-6, 1e-7))


@pytest.mark.parametrize("competition", ["energy", "l1"])
@pytest.mark.parametrize("axis", [None, -1, (1, 2)])
def test_gradient_matches_autodiff_of_the_plain_formula(competition, axis):
    x, upstream = _float64_case((3, 4, 5), seed=3)
    inputs = [x, np.float64(0.8), np.float64(-0.1)]
    axes = {None: (1, 2), -1: (2,), (1, 2): (1, 2)}[axis]
    out, grads = vjp(
        lambda x, a, b: competitive_relu(x, a, b, competition=competition, axis=axis), inputs, upstream
    )
    auto_out, auto_grads = vjp(
        lambda x, a, b: plain_formula(x, a, b, competition, 2.0, 1e-6, axes), inputs, upstream
    )
    np.testing.assert_allclose(out, auto_out, **float64_tolerance(1e-12, 1e-14))
    for actual, autodiff in zip(grads, auto_grads, strict=True):
        np.testing.assert_allclose(actual, autodiff, **float64_tolerance(1e-10, 1e-12))


@pytest.mark.parametrize("competition", COMPETITIONS)
def test_second_input_gradients_match_finite_differences(competition):
    x, upstream = _float64_case((3, 6), seed=4)
    source = away_from_zero(np.random.default_rng(5).normal(size=(3, 6)) + 0.3)

    def op(x, source, a, b):
        return competitive_relu(x, a, b, source, competition=competition)

    _, grads = vjp(op, [x, source, np.float64(1.2), np.float64(0.1)], upstream)
    expected = numeric_vjp(
        lambda x, src, a, b: reference(x, a, b, src, competition=competition),
        [x, source, 1.2, 0.1],
        upstream,
    )
    for actual, numeric in zip(grads, expected, strict=True):
        np.testing.assert_allclose(actual, numeric, **float64_tolerance(1e-6, 1e-7))
    if competition == "count":
        np.testing.assert_array_equal(grads[1], 0.0)  # no gradient through the count


@pytest.mark.parametrize("competition", COMPETITIONS)
def test_all_zero_input_gives_zero_output_and_finite_zero_gradients(competition):
    x = np.zeros((2, 3, 4), dtype="float32")
    upstream = np.ones_like(x)
    out, grads = vjp(
        lambda x, a, b: competitive_relu(x, a, b, competition=competition),
        [x, np.float32(2.0), np.float32(-1)],
        upstream,
    )
    np.testing.assert_array_equal(out, 0.0)
    for grad in grads:
        assert np.all(np.isfinite(grad))
        np.testing.assert_array_equal(grad, 0.0)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("competition", COMPETITIONS)
def test_a_non_finite_sample_does_not_touch_the_others(bad, competition):
    rng = np.random.default_rng(6)
    x, upstream = rng.normal(size=(4, 10)).astype("float32"), rng.normal(size=(4, 10)).astype("float32")
    x[1, 3] = bad
    inputs = [x, np.float32(1.5), np.float32(-0.5)]

    def op(x, a, b):
        return competitive_relu(x, a, b, competition=competition)

    out, grads = vjp(op, inputs, upstream)
    clean = [0, 2, 3]
    clean_out, clean_grads = vjp(op, [x[clean], *inputs[1:]], upstream[clean])
    np.testing.assert_array_equal(out[clean], clean_out)
    np.testing.assert_array_equal(grads[0][clean], clean_grads[0])
    if competition != "count":
        assert np.all(np.isnan(out[1]))


@pytest.mark.parametrize("products", [True, False], ids=["sums-as-products", "reductions"])
@pytest.mark.parametrize("competition", COMPETITIONS)
def test_an_entry_of_minus_inf_only_loses_in_the_gradients_too(competition, products, monkeypatch):
    # The forward pass lets -inf lose (docs/bad-input.md). Its gradient is ReLU's: 0 there, and the
    # sample's other entries and the weights' gradients finite and exact, on either layout of the
    # sums (products with ones on XLA CPUs, reductions on GPUs and PyTorch). Both layouts gave NaN
    # once (a 0 of the mask times -inf).
    from keras_adaptive_acts.ops import competitive_paths

    if products and not competitive_paths._sums_as_products():
        pytest.skip("the sums are products with ones only on TensorFlow and JAX with CPUs alone")
    monkeypatch.setattr(competitive_paths, "_sums_as_products", lambda: products)
    rng = np.random.default_rng(8)
    x, upstream = rng.normal(size=(3, 6)).astype("float32"), rng.normal(size=(3, 6)).astype("float32")
    x[1, 2] = -np.inf
    alpha, beta, bound = 1.5, 0.25, 2.0  # s > 0: the negatives lose

    def op(x, a, b):
        return competitive_relu(x, a, b, competition=competition, scale_bound=bound)

    out, (dx, d_alpha, d_beta) = vjp(op, [x, np.float32(alpha), np.float32(beta)], upstream)
    # The reference for the sample with -inf, NumPy float64: p is constant around it (0 for energy
    # and l1, whose sums are infinite; the count counts), so d out / d x is s where x wins, and the
    # weights' gradient is that of s through its winners' sum of g * x.
    row, g = x[1].astype("float64"), upstream[1].astype("float64")
    p = reference_share(row[None], competition, 1e-6, (1,))[0, 0]
    s = bound * np.tanh(alpha * p + beta)
    wins = row * s > 0
    np.testing.assert_allclose(ops.convert_to_numpy(out)[1], np.maximum(row * s, 0.0), rtol=1e-6)
    np.testing.assert_allclose(ops.convert_to_numpy(dx)[1], np.where(wins, g * s, 0.0), rtol=1e-6)
    d_pre = np.sum(np.where(wins, g * row, 0.0)) * (bound - s * s / bound)
    clean = [0, 2]  # the other samples' share of the weights' gradients, and their own gradients
    _, (clean_dx, clean_alpha, clean_beta) = vjp(
        op, [x[clean], np.float32(alpha), np.float32(beta)], upstream[clean]
    )
    np.testing.assert_array_equal(ops.convert_to_numpy(dx)[clean], ops.convert_to_numpy(clean_dx))
    np.testing.assert_allclose(float(d_alpha), float(clean_alpha) + d_pre * p, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(d_beta), float(clean_beta) + d_pre, rtol=1e-5)


@pytest.mark.parametrize("competition", COMPETITIONS)
def test_an_infinite_upstream_gradient_where_the_entry_lost_is_dropped_like_relus(competition):
    # Where relu(s * x) is cut, the upstream gradient does not reach x, even if it is infinite
    # (as TensorFlow's ReLU gradient: a select, not a product with 0, which would give NaN and,
    # through the slice's sum, spread it over the whole sample).
    x = np.array([[-1.0, 2.0, 3.0], [2.0, -0.5, 1.0]], dtype="float32")
    upstream = np.array([[np.inf, 1.0, -1.0], [1.0, -np.inf, 2.0]], dtype="float32")
    # s = 2 tanh(1.5 p - 0.5) > 0 for every measure (p > 1/3 in both samples): the negatives lose
    inputs = [x, np.float32(1.5), np.float32(-0.5)]

    def op(x, a, b):
        return competitive_relu(x, a, b, competition=competition)

    _, grads = vjp(op, inputs, upstream)
    _, clean_grads = vjp(op, inputs, np.where(np.isfinite(upstream), upstream, 0.0))
    np.testing.assert_array_equal(grads[0], clean_grads[0])
    assert np.all(np.isfinite(grads[0])) and np.isfinite(grads[1]) and np.isfinite(grads[2])


def test_half_precision_statistics_do_not_overflow():
    # 64 entries of magnitude 300: the sum of squares (5.8e6) overflows float16 (max 65504).
    x = np.where(np.arange(64) % 3 == 0, -300.0, 300.0).reshape(1, 64)
    for dtype in ("float16", "bfloat16"):
        out = competitive_relu(ops.cast(x, dtype), 2.0, -1.0)
        assert keras.backend.standardize_dtype(out.dtype) == dtype
        expected = reference(ops.convert_to_numpy(ops.cast(x, dtype)).astype("float64"), 2.0, -1.0)
        np.testing.assert_allclose(ops.convert_to_numpy(ops.cast(out, "float32")), expected, rtol=1e-2)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"competition": "energie"}, "competition='energie'"),
        ({"scale_bound": 0.0}, "scale_bound=0.0"),
        ({"scale_bound": -1}, "scale_bound=-1"),
        ({"eps": 0.0}, "eps=0.0"),
        ({"eps": float("nan")}, "eps=nan"),
        ({"axis": 0}, "axis=0"),
        ({"axis": 3}, "axis=3"),
        ({"axis": -3}, "axis=-3"),
        ({"axis": (1, -2)}, "same axis twice"),
        ({"axis": ()}, r"axis=\(\)"),
        ({"axis": 1.0}, "axis=1.0"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_value(kwargs, match):
    x = np.ones((2, 3, 4), dtype="float32")
    with pytest.raises(ValueError, match=match):
        competitive_relu(x, 0.0, 0.5, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"scale_bound": -1}, "scale_bound=-1"),
        ({"scale_bound": 0.0}, "scale_bound=0.0"),
        ({"eps": 0}, "eps=0"),
    ],
)
def test_competitive_scale_checks_its_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        competitive_scale(np.ones((1, 3), "float32"), 0.0, 0.5, **kwargs)


def test_bad_inputs_raise_value_error():
    with pytest.raises(ValueError, match="rank=1"):
        competitive_relu(np.ones(3, "float32"), 0.0, 0.5)
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(2, 4\)"):
        competitive_relu(np.ones((2, 3), "float32"), 0.0, 0.5, np.ones((2, 4), "float32"))
    with pytest.raises(ValueError, match="floating"):
        competitive_relu(np.ones((2, 3), "int32"), 0.0, 0.5)


@pytest.mark.parametrize("competition", COMPETITIONS)
def test_an_empty_slice_gives_zero_share_and_finite_zero_gradients(competition):
    # A slice with no entries (input shape (2, 0)): a plain mean for the count was 0 / 0, NaN gradients
    # for alpha and beta; all three measures now give p = 0 there, as energy and l1 always did.
    x = np.zeros((2, 0), "float32")
    share = ops.convert_to_numpy(competition_share(x, competition))
    np.testing.assert_array_equal(share, np.zeros((2, 1)))

    def function(x, alpha, beta):
        return competitive_relu(x, alpha, beta, competition=competition)

    output, gradients = vjp(function, [x, np.float32(2.0), np.float32(-1.0)], np.zeros((2, 0), "float32"))
    assert output.shape == (2, 0)
    assert gradients[0].shape == (2, 0)
    np.testing.assert_array_equal([gradients[1], gradients[2]], [0.0, 0.0])


def _numeric_diagonal(function, x, delta=1e-6):
    """d function(x)[i] / d x[i] for every entry, by central differences in float64."""
    diagonal = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[index] = delta
        diagonal[index] = (function(x + step)[index] - function(x - step)[index]) / (2 * delta)
    return diagonal


@pytest.mark.parametrize("competition", COMPETITIONS)
@pytest.mark.parametrize(("alpha", "beta"), [(1.3, -0.2), (-1.1, 0.4), (0.0, -0.5)])
def test_input_derivative_is_the_jacobian_diagonal_by_finite_differences(competition, alpha, beta):
    """`CompetitiveReLU.input_derivative`: each output entry's derivative w.r.t. its own input entry.

    Negative beta with alpha 0 makes s < 0: the negative entries win, and the derivative is zero
    on the positive ones.
    """
    from keras_adaptive_acts import CompetitiveReLU

    x, _ = _float64_case((3, 5), seed=4)
    layer = CompetitiveReLU(competition=competition, dtype="float64")
    layer.build(x.shape)
    layer.alpha.assign(alpha)
    layer.beta.assign(beta)
    actual = ops.convert_to_numpy(layer.input_derivative(x))
    expected = _numeric_diagonal(lambda v: reference(v, alpha, beta, competition=competition, axes=(1,)), x)
    np.testing.assert_allclose(actual, expected, **float64_tolerance(1e-6, 1e-8))
    winners = reference(x, alpha, beta, competition=competition, axes=(1,)) > 0
    assert np.all(actual[~winners] == 0.0)  # exactly zero where the entry lost or was cut
    assert np.all(actual[winners] != 0.0)


@pytest.mark.parametrize("competition", COMPETITIONS)
def test_input_derivative_with_a_second_input_leaves_out_the_share(competition):
    """With `p` measured on a second input, the entry's own output depends on it only through `s * x`."""
    from keras_adaptive_acts import CompetitiveReLU

    x, source = _float64_case((2, 6), seed=5)
    layer = CompetitiveReLU(competition=competition, dtype="float64")
    layer.build([x.shape, source.shape])
    layer.alpha.assign(0.9)
    layer.beta.assign(0.3)
    actual = ops.convert_to_numpy(layer.input_derivative([x, source]))
    expected = _numeric_diagonal(
        lambda v: reference(v, 0.9, 0.3, source=source, competition=competition, axes=(1,)), x
    )
    np.testing.assert_allclose(actual, expected, **float64_tolerance(1e-6, 1e-8))
