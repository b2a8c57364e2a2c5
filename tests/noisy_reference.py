"""NumPy references of the noisy activations, straight from the spec (float64)."""

import numpy as np

HALF_NORMAL_MEAN = np.sqrt(2 / np.pi)


def h(x, base):
    return np.clip(x, -1, 1) if base == "tanh" else np.clip(0.25 * x + 0.5, 0, 1)


def u(x, base):
    return x if base == "tanh" else 0.25 * x + 0.5


def sigmoid(v):
    # Below about -709, exp(-v) overflows to inf and the result is 0: the sigmoid's value there to
    # float64 precision, so the overflow is expected and not warned about.
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-v))


def output_noise(x, p, c, xi, base, alpha, half_normal, clip=False):
    """xi None: inference (expectation of the noise)."""
    x = np.asarray(x, "float64")
    delta = h(x, base) - u(x, base)
    d = -np.sign(x) * np.sign(1 - alpha)
    sigma = c * (sigmoid(p * delta) - 0.5) ** 2
    if xi is None:
        eps = HALF_NORMAL_MEAN if half_normal else 0.0
    else:
        eps = np.abs(xi) if half_normal else xi
    phi = alpha * h(x, base) + (1 - alpha) * u(x, base) + d * sigma * eps
    return np.clip(phi, *((-1, 1) if base == "tanh" else (0, 1))) if clip else phi


def input_noise(x, c, xi, base, mode, threshold, p=None):
    x = np.asarray(x, "float64")
    if xi is None:
        return h(x, base)
    if mode == "input":
        return h(x + c * xi, base)
    if mode == "input_saturated":
        return np.where(np.abs(x) > threshold, h(x + c * xi, base), h(x, base))
    delta = h(x, base) - u(x, base)
    # logaddexp(0, v): softplus without overflowing exp for large v
    return h(x + c * np.logaddexp(0.0, p * np.abs(delta) / (np.abs(xi) + 1e-10)) * xi, base)
