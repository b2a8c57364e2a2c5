"""Sparsity math against NumPy: J-SquaredReLU (the spec's check values), zero fraction, penalties."""

import numpy as np
import pytest
from keras import ops
from layer_testing import float64_tolerance, numeric_vjp, vjp

from keras_adaptive_acts.ops import (
    hoyer_square_penalty,
    j_squared_relu,
    kl_sparsity_penalty,
    l1_penalty,
    zero_fraction,
)


def test_j_squared_relu_check_values_and_derivatives_from_the_spec():
    x = np.array([-1.0, 0.0, 1.0, 2.0])
    np.testing.assert_allclose(ops.convert_to_numpy(j_squared_relu(x)), [0.0, 0.0, 1.5, 4.0])
    points = np.array([-1.0, 1e-9, 1.0, 2.0, -0.5])  # f'(0+) = 1, f'(1) = 2, f'(2) = 3, 0 below zero
    _, (grad,) = vjp(j_squared_relu, [points], np.ones_like(points))
    np.testing.assert_allclose(grad, [0.0, 1.0, 2.0, 3.0, 0.0], atol=1e-8)


def test_zero_fraction():
    x = np.array([[0.0, 1.0, -0.0, np.nan], [2.0, 0.0, 3.0, 4.0]])
    assert float(zero_fraction(x)) == 3 / 8
    assert float(zero_fraction(np.zeros((3, 2), "int32"))) == 1.0


def numpy_hoyer(a):
    rows = a.reshape(len(a), -1)
    l1 = np.abs(rows).sum(1)
    return np.mean(l1**2 / ((rows**2).sum(1) + 1e-12))


def numpy_kl(a, rho):
    rho_hat = np.clip(a.reshape(-1, a.shape[-1]).mean(0), 1e-7, 1 - 1e-7)
    return np.sum(rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat)))


@pytest.mark.parametrize("shape", [(4, 6), (3, 2, 5)])
def test_penalties_and_their_gradients_match_numpy(shape):
    rng = np.random.default_rng(0)
    a = rng.normal(size=shape)
    probabilities = rng.uniform(0.01, 0.99, size=shape)
    cases = [
        (l1_penalty, lambda v: np.abs(v.reshape(len(v), -1)).sum(1).mean(), a),
        (hoyer_square_penalty, numpy_hoyer, a),
        (lambda v: kl_sparsity_penalty(v, 0.05), lambda v: numpy_kl(v, 0.05), probabilities),
    ]
    for op, reference, x in cases:
        value, (grad,) = vjp(op, [x], np.float64(1.0))
        np.testing.assert_allclose(value, reference(x), **float64_tolerance(1e-10))
        (numeric,) = numeric_vjp(reference, [x], 1.0)
        np.testing.assert_allclose(grad, numeric, **float64_tolerance(1e-5, 1e-8))


def test_hoyer_bounds_and_zero_rows():
    one_hot = np.eye(5)[:1]
    uniform = np.ones((1, 5))
    assert float(hoyer_square_penalty(one_hot)) == pytest.approx(1.0)
    assert float(hoyer_square_penalty(uniform)) == pytest.approx(5.0)
    assert float(hoyer_square_penalty(np.zeros((2, 5)))) == 0.0
    np.testing.assert_allclose(float(hoyer_square_penalty(uniform * 1e3)), 5.0, rtol=1e-6)  # scale-invariant


def test_kl_is_finite_outside_the_unit_interval():
    value = float(kl_sparsity_penalty(np.array([[-1.0, 2.0], [-3.0, 5.0]]), 0.05))
    assert np.isfinite(value) and value > 0


def test_penalties_use_float32_under_half_precision():
    a = np.full((2, 4096), 300.0, "float16")  # squares overflow float16
    assert np.isfinite(float(hoyer_square_penalty(a)))
    np.testing.assert_allclose(float(hoyer_square_penalty(a)), 4096, rtol=1e-4)


def test_j_squared_relu_rejects_integers():
    with pytest.raises(ValueError, match=r"`x` must be a floating tensor \(cast integers first\)"):
        j_squared_relu(np.array([-3, 0, 3]))


@pytest.mark.parametrize("scale", [1e30, 1e-30])
def test_hoyer_is_scale_invariant_far_outside_the_float32_square_range(scale):
    a = np.array([[1.0, -2.0, 0.0, 0.5], [3.0, 3.0, 3.0, 0.0]], "float32")
    expected = float(hoyer_square_penalty(a))
    np.testing.assert_allclose(expected, numpy_hoyer(a.astype("float64")), rtol=1e-6)
    np.testing.assert_allclose(float(hoyer_square_penalty(a * np.float32(scale))), expected, rtol=1e-6)
    # The gradient scales as 1 / scale (degree -1 homogeneous); it stays finite.
    _, (grad,) = vjp(hoyer_square_penalty, [a * np.float32(scale)], np.float32(1.0))
    _, (unit_grad,) = vjp(hoyer_square_penalty, [a], np.float32(1.0))
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad * scale, unit_grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", [(0, 3), (0, 2, 3), (0,)])
def test_penalties_are_zero_for_an_empty_batch_on_every_backend(shape):
    empty = np.zeros(shape, "float32")
    for op in (l1_penalty, hoyer_square_penalty, lambda v: kl_sparsity_penalty(v, 0.05)):
        value, (grad,) = vjp(op, [empty], np.float32(1.0))
        assert float(value) == 0.0
        assert grad.shape == shape


@pytest.mark.parametrize(
    "op",
    [l1_penalty, hoyer_square_penalty, lambda v: kl_sparsity_penalty(v, 0.05)],
    ids=["l1", "hoyer", "kl"],
)
def test_penalties_need_a_batch_axis(op):
    with pytest.raises(ValueError, match=r"rank >= 1 with the batch first.*rank=0"):
        op(np.float32(2.0))
    assert np.isfinite(float(op(np.array([0.2, 0.5], "float32"))))  # rank 1: one value per example


@pytest.mark.parametrize(("rho", "match"), [(0.0, "> 0"), (1.0, r"in \(0, 1\)"), (float("nan"), "finite")])
def test_kl_checks_rho(rho, match):
    with pytest.raises(ValueError, match=match):
        kl_sparsity_penalty(np.full((2, 2), 0.5), rho)
