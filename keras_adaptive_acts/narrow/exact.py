"""Exact Gaussian facts about ReLU: Hermite coefficients, the arc-cosine kernel, population errors.

Every formula here is closed form, so the errors it gives carry no sampling noise.
"""

from __future__ import annotations

import math

import numpy as np

from keras_adaptive_acts.narrow.network import ReLUNetwork

__all__ = [
    "arccos_kernel",
    "population_mse",
    "population_variance",
    "relative_population_mse",
    "relu_hermite_coefficients",
]

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def relu_hermite_coefficients(max_degree: int) -> np.ndarray:
    """The Hermite coefficients `c_l = E[relu(z) He_l(z)]`, `z ~ N(0, 1)`, for `l = 0 .. max_degree`.

    `He_l` are the probabilists' Hermite polynomials (`E[He_l(z)^2] = l!`):

    ```
    c_0 = 1 / sqrt(2 pi),   c_1 = 1 / 2,   c_l = He_{l-2}(0) / sqrt(2 pi)  for l >= 2,
    ```

    so every odd coefficient from `c_3` on is zero, and the degree-3 moment tensor of a ReLU network vanishes.

    Examples:

    >>> relu_hermite_coefficients(4).round(6).tolist()
    [0.398942, 0.5, 0.398942, 0.0, -0.398942]
    """
    if isinstance(max_degree, bool) or not isinstance(max_degree, (int, np.integer)) or max_degree < 0:
        raise ValueError(f"`max_degree` must be an integer >= 0. Received: max_degree={max_degree!r}")
    coefficients = np.zeros(max_degree + 1)
    coefficients[0] = _INV_SQRT_2PI
    if max_degree >= 1:
        coefficients[1] = 0.5
    hermite_at_zero = 1.0  # He_0(0); He_{n+2}(0) = -(n + 1) He_n(0), He_odd(0) = 0
    for degree in range(2, max_degree + 1, 2):
        coefficients[degree] = hermite_at_zero * _INV_SQRT_2PI
        hermite_at_zero *= -(degree - 1)
    return coefficients


def arccos_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`E[relu(<a, x>) relu(<b, x>)]` for `x ~ N(0, I)`: the degree-1 arc-cosine kernel.

    ```
    k(a, b) = |a| |b| (sin(theta) + (pi - theta) cos(theta)) / (2 pi),   theta = angle(a, b)
    ```

    Args:
        a: vectors, shape `(m, d)` (or `(d,)`).
        b: vectors, shape `(n, d)` (or `(d,)`).

    Returns:
        The `(m, n)` matrix of kernel values (squeezed like the inputs). A zero vector gives 0.

    Examples:

    >>> round(float(arccos_kernel(np.array([1.0, 0.0]), np.array([1.0, 0.0]))), 6)  # E[relu(z)^2]
    0.5
    """
    a2, b2 = np.atleast_2d(np.asarray(a, dtype=np.float64)), np.atleast_2d(np.asarray(b, dtype=np.float64))
    norm_a, norm_b = np.linalg.norm(a2, axis=1), np.linalg.norm(b2, axis=1)
    norms = np.outer(norm_a, norm_b)
    with np.errstate(invalid="ignore", divide="ignore"):
        cosine = np.where(norms > 0, (a2 @ b2.T) / norms, 1.0)
    cosine = np.clip(cosine, -1.0, 1.0)
    theta = np.arccos(cosine)
    kernel = norms * (np.sqrt(1.0 - cosine**2) + (math.pi - theta) * cosine) / (2.0 * math.pi)
    if np.ndim(a) == 1 and np.ndim(b) == 1:
        return kernel[0, 0]
    if np.ndim(a) == 1:
        return kernel[0]
    if np.ndim(b) == 1:
        return kernel[:, 0]
    return kernel


def _moments(network: ReLUNetwork) -> tuple[float, float]:
    """`(E[f(x)], E[f(x)^2])` of a network under `x ~ N(0, I)`."""
    weights, outputs = network.hidden_weights, network.output_weights
    mean = float(outputs @ np.linalg.norm(weights, axis=1)) * _INV_SQRT_2PI + network.bias
    second = float(outputs @ arccos_kernel(weights, weights) @ outputs)
    second += 2.0 * network.bias * (mean - network.bias) + network.bias**2
    return mean, second


def population_mse(target: ReLUNetwork, estimate: ReLUNetwork) -> float:
    """The exact `E[(target(x) - estimate(x))^2]` for `x ~ N(0, I_d)`: no sampling noise.

    Both networks are `x -> sum_j mu_j relu(<w_j, x>) + bias`; the difference is one such network, whose
    second moment follows from `arccos_kernel` and `E[relu(<w, x>)] = |w| / sqrt(2 pi)`.

    The quadratic form cancels between the two networks' terms, so in float64 an error below about
    `1e-16` to `4e-16` of the target's variance is lost in rounding; and rounding a network's weights to
    float32 (as a Keras model holds them) alone gives `1e-15` to `4e-15`. Relative errors near `1e-15`
    mean "exact to float32", not a measured `1e-16`.

    Examples:

    >>> net = ReLUNetwork(np.eye(2), np.array([1.0, -1.0]))
    >>> population_mse(net, net)
    0.0
    """
    if target.input_dim != estimate.input_dim:
        raise ValueError(
            "Both networks need the same input dimension. "
            f"Received: target.input_dim={target.input_dim}, estimate.input_dim={estimate.input_dim}"
        )
    difference = ReLUNetwork(
        np.concatenate([target.hidden_weights, estimate.hidden_weights]),
        np.concatenate([target.output_weights, -estimate.output_weights]),
        target.bias - estimate.bias,
    )
    return max(0.0, _moments(difference)[1])  # rounding can leave -1e-17 for identical networks


def population_variance(network: ReLUNetwork) -> float:
    """The exact `Var[f(x)]` of a network for `x ~ N(0, I_d)`."""
    mean, second = _moments(network)
    return max(0.0, second - mean**2)


def relative_population_mse(target: ReLUNetwork, estimate: ReLUNetwork) -> float:
    """`population_mse(target, estimate) / population_variance(target)`: 1.0 is as bad as predicting the mean.

    Examples:

    >>> target = ReLUNetwork(np.eye(3), np.array([1.0, -1.0, 0.5]))
    >>> relative_population_mse(target, ReLUNetwork(np.eye(3), np.zeros(3), bias=0.5 / np.sqrt(2 * np.pi)))
    1.0
    """
    variance = population_variance(target)
    if variance == 0.0:
        raise ValueError("The target network is constant (zero variance): a relative error is undefined.")
    return population_mse(target, estimate) / variance
