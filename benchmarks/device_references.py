"""Float64 NumPy references for `benchmarks/device_speed.py`, and the comparisons that judge against them.

Every function here is NumPy in float64, written from the papers' formulas as the layers' docstrings
state them, never from the package's code, so that a device's float32 result checked against it is
checked against something independent. The noisy activations' formulas are the tests' own
(`tests/noisy_reference.py`, loaded from the file); the others are written out below.

Gradients come in three kinds, in this order of preference:

- analytic vector-Jacobian products written out by hand (CompetitiveReLU, layer normalization, the
  Hoyer-square penalty), each checked against finite differences by `self_check`;
- for elementwise functions, the derivative of every entry by central differences
  (`elementwise_derivative`): two more evaluations of the function, so it scales to any size;
- for everything else (the MLP block, the recurrent cells), the gradient entry by entry by central
  differences of `sum(upstream * f(x))` (`finite_difference_gradient`), on a small input.

Where a function has a kink (ReLU at 0, a clip at its bounds), the two one-sided differences
disagree at an entry within one step of it; such entries are left out of the comparison and
counted, rather than compared against a difference quotient that straddles the kink.

No module of the package, Keras, JAX or TensorFlow is imported here.
"""

from __future__ import annotations

import importlib.util
import math
import pathlib
from collections.abc import Callable, Sequence

import numpy as np

__all__ = [
    "FINITE_DIFFERENCE_STEP",
    "KINK_THRESHOLD",
    "TOLERANCES",
    "check_vjp",
    "comparison",
    "competitive_relu",
    "competitive_relu_vjp",
    "elementwise_derivative",
    "finite_difference_gradient",
    "gru_sequence",
    "hoyer_square_gradient",
    "j_squared_relu",
    "layer_normalization",
    "layer_normalization_vjp",
    "lisht",
    "lstm_sequence",
    "noisy_unit",
    "relative_error",
    "relu",
    "rrelu",
    "self_check",
    "snake",
    "sparsified_mlp",
    "tlu",
]

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Relative errors ||actual - reference|| / ||reference|| that a float32 computation is held to.
# float32 rounds to 6e-8; a few roundings per entry, and sums of up to 2^16 terms per sample, stay
# within about 1e-6, so 1e-5 leaves a margin of ten and still fails any wrong formula (a wrong sign
# or factor anywhere gives errors of 1e-3 and up). Gradients of the recurrent cells and of the MLP
# block pass through a chain of float32 matrix products (up to 5 steps) and are held to 1e-4.
TOLERANCES = {
    "forward": 1e-5,
    "gradient": 1e-5,
    "forward, matrix products": 1e-5,
    "gradient, matrix products": 1e-4,
    # The hand-written gradients against finite differences, both in float64.
    "reference self-check": 1e-7,
}
FINITE_DIFFERENCE_STEP = 1e-6
# One-sided differences that disagree by more than this (relative to the derivative, plus 1) mark a
# kink within one step. Smooth functions disagree by about step * |f''|, that is ~1e-6.
KINK_THRESHOLD = 1e-3


# ---------------------------------------------------------------------------------------------
# Comparisons
# ---------------------------------------------------------------------------------------------


def relative_error(actual, reference, mask=None) -> float:
    """||actual - reference|| / ||reference|| in float64 over the entries `mask` keeps (all by default).

    NaN when `actual` holds a NaN or an infinity anywhere in the kept entries: such a result never
    passes. The absolute error when the reference is all zero.
    """
    actual = np.asarray(actual, dtype="float64")
    reference = np.asarray(reference, dtype="float64")
    if actual.shape != reference.shape:
        raise ValueError(f"shapes differ: actual {actual.shape}, reference {reference.shape}")
    if mask is not None:
        actual, reference = actual[mask], reference[mask]
    if not np.all(np.isfinite(actual)):
        return math.nan
    difference = float(np.linalg.norm(actual - reference))
    norm = float(np.linalg.norm(reference))
    return difference / norm if norm > 0 else difference


def comparison(actual, reference, tolerance: float, mask=None) -> dict:
    """The verdict on one result: its relative error, the tolerance, how many entries were compared.

    `passed` is False for an error above the tolerance and for NaN (a `NaN <= tolerance` is False).
    """
    error = relative_error(actual, reference, mask)
    size = int(np.size(reference))
    compared = size if mask is None else int(np.count_nonzero(mask))
    return {
        "relative_error": error,
        "tolerance": tolerance,
        "passed": bool(error <= tolerance),
        "entries": size,
        "left_out_at_kinks": size - compared,
    }


# ---------------------------------------------------------------------------------------------
# Finite differences
# ---------------------------------------------------------------------------------------------


def _kink_free(forward, backward, central):
    return np.abs(forward - backward) <= KINK_THRESHOLD * (1.0 + np.abs(central))


def elementwise_derivative(function: Callable, x, step: float = FINITE_DIFFERENCE_STEP):
    """(f'(x), mask): the derivative of an elementwise `function` at every entry, by central
    differences in float64, and a mask of the entries that are not within one step of a kink."""
    x = np.asarray(x, dtype="float64")
    above, middle, below = function(x + step), function(x), function(x - step)
    central = (above - below) / (2.0 * step)
    return central, _kink_free((above - middle) / step, (middle - below) / step, central)


def finite_difference_gradient(objective: Callable, x, step: float = FINITE_DIFFERENCE_STEP):
    """(gradient, mask): d objective / d x entry by entry by central differences in float64, and a mask
    of the entries whose one-sided differences agree (no kink within one step). `objective` maps a
    float64 array of `x`'s shape to a number; it is evaluated 2 * x.size + 1 times."""
    x = np.array(x, dtype="float64")
    middle = objective(x)
    gradient, mask = np.zeros_like(x), np.ones(x.shape, dtype=bool)
    for index in np.ndindex(x.shape):
        original = x[index]
        x[index] = original + step
        above = objective(x)
        x[index] = original - step
        below = objective(x)
        x[index] = original
        gradient[index] = (above - below) / (2.0 * step)
        mask[index] = _kink_free((above - middle) / step, (middle - below) / step, gradient[index])
    return gradient, mask


# ---------------------------------------------------------------------------------------------
# Elementwise activations
# ---------------------------------------------------------------------------------------------


def _load_noisy_reference():
    """The tests' NumPy formulas of the noisy activations (tests/noisy_reference.py), from the file."""
    path = ROOT / "tests" / "noisy_reference.py"
    spec = importlib.util.spec_from_file_location("noisy_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


NOISY_REFERENCE = _load_noisy_reference()


def relu(x):
    return np.maximum(x, 0.0)


def j_squared_relu(x):
    """relu(x) + relu(x)**2 / 2 (Peng et al.)."""
    positive = np.maximum(x, 0.0)
    return positive + 0.5 * positive**2


def lisht(x):
    return x * np.tanh(x)


def snake(x, frequency):
    """x + sin(frequency * x)**2 / frequency (Ziyin et al.), for a frequency other than 0."""
    return x + np.sin(frequency * x) ** 2 / frequency


def tlu(x, tau, alpha=None):
    """max(x, tau), or max(x, alpha * x + tau) (Singh and Krishnan); parameters broadcast on the last axis."""
    return np.maximum(x, tau if alpha is None else alpha * x + tau)


def rrelu(x, slope):
    return np.where(x >= 0, x, slope * x)


def noisy_unit(base: str, noise: str, alpha: float, half_normal: bool, clip_output: bool, p, c) -> Callable:
    """A noisy activation's deterministic function (inference, or training with noise scale 0).

    Output noise: `alpha * h + (1 - alpha) * u + d * sigma * E[eps]` (tests/noisy_reference.py); at
    `c = 0`, sigma is 0 and this is also the training function. Input noise: `h(x)`.
    """
    if noise == "output":
        return lambda x: NOISY_REFERENCE.output_noise(x, p, c, None, base, alpha, half_normal, clip_output)
    return lambda x: NOISY_REFERENCE.h(x, base)


# ---------------------------------------------------------------------------------------------
# CompetitiveReLU (Chen and Pan, arXiv 2407.19441)
# ---------------------------------------------------------------------------------------------


def _share(z, competition, eps, axes):
    """p per slice and its derivative dp/dz (zero for "count", through which no gradient flows)."""
    positive = np.maximum(z, 0.0)
    if competition == "energy":
        denominator = np.sum(z**2, axis=axes, keepdims=True) + eps
        p = np.sum(positive**2, axis=axes, keepdims=True) / denominator
        return p, 2.0 * (positive - p * z) / denominator
    if competition == "l1":
        denominator = np.sum(np.abs(z), axis=axes, keepdims=True) + eps
        p = np.sum(positive, axis=axes, keepdims=True) / denominator
        return p, ((z > 0).astype("float64") - p * np.sign(z)) / denominator
    return np.mean(z > 0, axis=axes, keepdims=True), np.zeros_like(z)


def competitive_relu(x, alpha, beta, competition, scale_bound, eps, axes):
    """relu(s * x), s = scale_bound * tanh(alpha * p + beta), p the share of the slice over `axes`."""
    x = np.asarray(x, dtype="float64")
    p, _ = _share(x, competition, eps, axes)
    return np.maximum(scale_bound * np.tanh(alpha * p + beta) * x, 0.0)


def competitive_relu_vjp(x, upstream, alpha, beta, competition, scale_bound, eps, axes):
    """d sum(upstream * competitive_relu(x)) / dx, written out:

    ```
    dx = g * s * [s x > 0]  +  (sum_A g * x * [s x > 0]) * ds/dp * dp/dx
    ds/dp = scale_bound * alpha * (1 - tanh(alpha p + beta)**2)
    ```
    """
    x = np.asarray(x, dtype="float64")
    p, dp_dx = _share(x, competition, eps, axes)
    t = np.tanh(alpha * p + beta)
    s = scale_bound * t
    active = (s * x > 0).astype("float64")
    through_scale = np.sum(upstream * x * active, axis=axes, keepdims=True)
    ds_dp = scale_bound * alpha * (1.0 - t**2)
    return upstream * s * active + through_scale * ds_dp * dp_dx


# ---------------------------------------------------------------------------------------------
# Layer normalization (over the last axis) and the Hoyer-square penalty
# ---------------------------------------------------------------------------------------------


def layer_normalization(x, gamma, epsilon, beta=None):
    x = np.asarray(x, dtype="float64")
    mean = x.mean(axis=-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    out = (x - mean) / np.sqrt(variance + epsilon) * gamma
    return out if beta is None else out + beta


def layer_normalization_vjp(x, upstream, gamma, epsilon):
    """The input gradient of `layer_normalization`, written out:

    ```
    dx = r * (dn - mean(dn) - n * mean(dn * n))
    n = (x - mean) * r,  r = 1 / sqrt(var + eps),  dn = g * gamma
    ```
    """
    x = np.asarray(x, dtype="float64")
    mean = x.mean(axis=-1, keepdims=True)
    inverse_deviation = 1.0 / np.sqrt(((x - mean) ** 2).mean(axis=-1, keepdims=True) + epsilon)
    normalized = (x - mean) * inverse_deviation
    d_normalized = upstream * gamma
    return inverse_deviation * (
        d_normalized
        - d_normalized.mean(axis=-1, keepdims=True)
        - normalized * (d_normalized * normalized).mean(axis=-1, keepdims=True)
    )


def hoyer_square(x, eps=1e-12):
    """The mean over the batch of (sum|a|)**2 / (sum a**2 + eps), each example divided by its max |a|."""
    rows = np.asarray(x, dtype="float64").reshape(len(x), -1)
    largest = np.abs(rows).max(axis=1, keepdims=True)
    rows = rows / np.where(largest > 0, largest, 1.0)
    return float(np.mean(np.abs(rows).sum(axis=1) ** 2 / ((rows**2).sum(axis=1) + eps)))


def hoyer_square_gradient(x, eps=1e-12):
    """d hoyer_square(x) / dx. The divisor (each example's max |a|) carries no gradient, as the
    penalty is scale-invariant but for `eps`:

    ```
    r = a / m,  H = L1**2 / S,  L1 = sum|r|,  S = sum r**2 + eps
    dH/da = (2 L1 sign(r) / S - 2 L1**2 r / S**2) / m,   divided by the batch size for the mean
    ```
    """
    x = np.asarray(x, dtype="float64")
    rows = x.reshape(len(x), -1)
    largest = np.abs(rows).max(axis=1, keepdims=True)
    divisor = np.where(largest > 0, largest, 1.0)
    r = rows / divisor
    l1 = np.abs(r).sum(axis=1, keepdims=True)
    squares = (r**2).sum(axis=1, keepdims=True) + eps
    gradient = (2.0 * l1 * np.sign(r) / squares - 2.0 * l1**2 * r / squares**2) / divisor
    return (gradient / len(x)).reshape(x.shape)


# ---------------------------------------------------------------------------------------------
# The MLP block and the recurrent cells (forward only: their gradients are finite differences)
# ---------------------------------------------------------------------------------------------


def sparsified_mlp(x, gamma, epsilon, zeroth_bias, kernel1, bias1, activation, kernel2, bias2):
    """x + fc2(act(fc1(norm(x) + b0[:L]))): Peng et al.'s block, zeroth bias at the input, no beta."""
    x = np.asarray(x, dtype="float64")
    hidden = layer_normalization(x, gamma, epsilon) + zeroth_bias[: x.shape[1]]
    return x + activation(hidden @ kernel1 + bias1) @ kernel2 + bias2


def lstm_sequence(x, kernel, recurrent_kernel, bias, units: Sequence[Callable]):
    """Every step's h of an LSTM from zero states, gates in Keras' order (i, f, c, o).

    `units` are the five activation functions: input gate, forget gate, candidate, output gate, cell
    output (the noisy cell's NoisyHardSigmoid and NoisyHardTanh units).
    """
    input_gate, forget_gate, candidate, output_gate, cell_output = units
    x = np.asarray(x, dtype="float64")
    size = recurrent_kernel.shape[0]
    h = np.zeros((x.shape[0], size))
    c = np.zeros((x.shape[0], size))
    outputs = []
    for step in range(x.shape[1]):
        z = x[:, step] @ kernel + h @ recurrent_kernel + bias
        z_i, z_f, z_c, z_o = np.split(z, 4, axis=1)
        c = forget_gate(z_f) * c + input_gate(z_i) * candidate(z_c)
        h = output_gate(z_o) * cell_output(c)
        outputs.append(h)
    return np.stack(outputs, axis=1)


def gru_sequence(x, kernel, recurrent_kernel, bias, units: Sequence[Callable]):
    """Every step's h of a GRU from a zero state, Keras' `reset_after=True` form, gates (z, r, h).

    `bias` has two rows, the input's and the recurrent one; `units` are the update gate, the reset
    gate and the candidate's activation.
    """
    update_gate, reset_gate, candidate = units
    x = np.asarray(x, dtype="float64")
    h = np.zeros((x.shape[0], recurrent_kernel.shape[0]))
    outputs = []
    for step in range(x.shape[1]):
        x_z, x_r, x_h = np.split(x[:, step] @ kernel + bias[0], 3, axis=1)
        h_z, h_r, h_h = np.split(h @ recurrent_kernel + bias[1], 3, axis=1)
        z, r = update_gate(x_z + h_z), reset_gate(x_r + h_r)
        h = z * h + (1.0 - z) * candidate(x_h + r * h_h)
        outputs.append(h)
    return np.stack(outputs, axis=1)


# ---------------------------------------------------------------------------------------------
# The hand-written gradients against finite differences
# ---------------------------------------------------------------------------------------------


def check_vjp(name, function, vjp, x, upstream) -> dict:
    """A hand-written `vjp(x, upstream)` against central differences of sum(upstream * function(x))."""
    gradient, mask = finite_difference_gradient(lambda v: float(np.sum(upstream * function(v))), x)
    return {
        "reference": name,
        **comparison(vjp(x, upstream), gradient, TOLERANCES["reference self-check"], mask),
    }


def self_check(seed: int = 0) -> list[dict]:
    """Each hand-written gradient above against central differences of its own forward function, on
    small random inputs (float64 throughout). A failure means the reference, not the device, is wrong."""
    rng = np.random.default_rng(seed)
    results = []
    image = rng.standard_normal((2, 3, 4, 5))
    upstream = rng.standard_normal(image.shape)
    for competition in ("energy", "l1", "count"):
        for axes in ((1, 2, 3), (1, 2)):
            arguments = (1.5, 0.2, competition, 2.0, 1e-6, axes)
            results.append(
                check_vjp(
                    f"CompetitiveReLU({competition}, axes={axes})",
                    lambda v, a=arguments: competitive_relu(v, *a),
                    lambda v, g, a=arguments: competitive_relu_vjp(v, g, *a),
                    image,
                    upstream,
                )
            )
    gamma = rng.uniform(1.0, 2.0, size=image.shape[-1])
    results.append(
        check_vjp(
            "layer normalization",
            lambda v: layer_normalization(v, gamma, 1e-3),
            lambda v, g: layer_normalization_vjp(v, g, gamma, 1e-3),
            image,
            upstream,
        )
    )
    results.append(
        check_vjp(
            "Hoyer-square penalty",
            lambda v: np.full(v.shape, hoyer_square(v)) / v.size,  # sum(g * this) = mean(g) * H
            lambda v, g: np.mean(g) * hoyer_square_gradient(v),
            image,
            upstream,
        )
    )
    return results
