"""Exact Gaussian facts against quadrature and Monte Carlo: Hermite coefficients, kernel, population error."""

import math

import numpy as np
import pytest
from numpy.polynomial.hermite_e import HermiteE
from scipy import integrate

from keras_adaptive_acts.narrow import (
    ReLUNetwork,
    population_mse,
    population_variance,
    relative_population_mse,
)
from keras_adaptive_acts.narrow.exact import arccos_kernel, relu_hermite_coefficients


def gaussian_density(z):
    return math.exp(-z * z / 2.0) / math.sqrt(2.0 * math.pi)


def hermite(degree):
    return HermiteE([0.0] * degree + [1.0])


@pytest.mark.parametrize("degree", range(9))
def test_hermite_coefficients_match_quadrature(degree):
    he = hermite(degree)
    expected, _ = integrate.quad(lambda z: z * he(z) * gaussian_density(z), 0.0, 40.0, limit=200)
    assert relu_hermite_coefficients(8)[degree] == pytest.approx(expected, abs=1e-9)


def test_hermite_coefficients_match_the_papers_values_and_monte_carlo():
    coefficients = relu_hermite_coefficients(8)
    # Values stated in the spec (and the paper): c_l = He_{l-2}(0)/sqrt(2 pi) for even l >= 2.
    stated = {2: 0.398942, 4: -0.398942, 6: 1.196827, 8: -5.984134}
    for degree, value in stated.items():
        assert coefficients[degree] == pytest.approx(value, abs=1e-6)
    assert np.all(coefficients[3::2] == 0.0)
    z = np.random.default_rng(0).standard_normal(2_000_000)
    for degree in range(5):
        samples = np.maximum(z, 0.0) * hermite(degree)(z)
        standard_error = samples.std() / math.sqrt(len(z))
        assert abs(samples.mean() - coefficients[degree]) < 5 * standard_error


@pytest.mark.parametrize("bad", [-1, 2.5, True, "3"])
def test_hermite_coefficients_reject_bad_degrees(bad):
    with pytest.raises(ValueError, match="max_degree"):
        relu_hermite_coefficients(bad)


def kernel_by_quadrature(a2, b2):
    """E[relu(<a,x>) relu(<b,x>)] for 2-D a, b, in polar coordinates (E[rho^2] = 2 in 2-D)."""

    def integrand(phi):
        e = np.array([math.cos(phi), math.sin(phi)])
        return max(a2 @ e, 0.0) * max(b2 @ e, 0.0)

    kinks = [math.atan2(v[1], v[0]) + sign * math.pi / 2 for v in (a2, b2) for sign in (-1, 1)]
    kinks = sorted(k % (2.0 * math.pi) for k in kinks)
    value, _ = integrate.quad(integrand, 0.0, 2.0 * math.pi, points=kinks, limit=200, epsabs=1e-13)
    return value * 2.0 / (2.0 * math.pi)


@pytest.mark.parametrize("angle", [0.0, 0.3, math.pi / 2, 2.0, math.pi - 1e-3, math.pi])
def test_arccos_kernel_matches_quadrature(angle):
    rng = np.random.default_rng(1)
    u, w = np.linalg.qr(rng.standard_normal((5, 2)))[0].T
    a2 = np.array([1.7, 0.0])
    b2 = 0.6 * np.array([math.cos(angle), math.sin(angle)])
    a, b = a2[0] * u + a2[1] * w, b2[0] * u + b2[1] * w  # the same pair, in 5-D
    assert arccos_kernel(a, b) == pytest.approx(kernel_by_quadrature(a2, b2), abs=1e-9)


def test_arccos_kernel_matrix_matches_monte_carlo_and_handles_zero_vectors():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((2, 4))
    b[1] = 0.0
    x = rng.standard_normal((1_000_000, 4))
    products = np.maximum(x @ a.T, 0.0)[:, :, None] * np.maximum(x @ b.T, 0.0)[:, None, :]
    standard_error = products.std(axis=0) / math.sqrt(len(x))
    kernel = arccos_kernel(a, b)
    assert kernel.shape == (3, 2)
    assert np.all(np.abs(kernel - products.mean(axis=0)) <= 5 * standard_error + 1e-12)
    assert np.all(kernel[:, 1] == 0.0)
    assert arccos_kernel(a[0], b).shape == (2,) and arccos_kernel(a, b[0]).shape == (3,)


def random_network(rng, width, dim, bias=0.0):
    return ReLUNetwork(rng.standard_normal((width, dim)), rng.standard_normal(width), bias)


def test_population_mse_matches_monte_carlo():
    rng = np.random.default_rng(3)
    target, estimate = random_network(rng, 3, 5), random_network(rng, 4, 5, bias=0.4)
    x = rng.standard_normal((2_000_000, 5))
    squared = (target(x) - estimate(x)) ** 2
    assert population_mse(target, estimate) == pytest.approx(squared.mean(), abs=5 * squared.std() / 1414.2)
    values = target(x)
    assert population_variance(target) == pytest.approx(values.var(), rel=0.01)


def test_population_mse_properties():
    rng = np.random.default_rng(4)
    target, estimate = random_network(rng, 3, 6), random_network(rng, 2, 6, bias=-1.0)
    # Zero up to the rounding of two equal float64 sums that cancel; how much is left depends on the BLAS
    # kernel (OpenBLAS picks one per CPU), so the bound is relative to the network's own second moment.
    second_moment = population_mse(target, ReLUNetwork(np.zeros((1, 6)), np.zeros(1)))  # E[target(x)^2]
    assert 0.0 <= population_mse(target, target) <= 1e-12 * second_moment
    assert population_mse(target, estimate) == pytest.approx(population_mse(estimate, target), rel=1e-12)
    # The best constant predictor (the mean) has relative error exactly 1.
    mean = float(target.output_weights @ np.linalg.norm(target.hidden_weights, axis=1)) / math.sqrt(
        2 * math.pi
    )
    constant = ReLUNetwork(np.zeros((1, 6)), np.zeros(1), bias=mean)
    assert relative_population_mse(target, constant) == pytest.approx(1.0, rel=1e-12)
    with pytest.raises(ValueError, match="input dimension"):
        population_mse(target, random_network(rng, 2, 5))
    with pytest.raises(ValueError, match="constant"):
        relative_population_mse(constant, target)
