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
