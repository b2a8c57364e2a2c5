"""Math of the noisy activation functions (Gulcehre et al., ICML 2016, arXiv 1603.00391) and RReLU.

Pure, deterministic functions: the noise `xi` (standard normal draws) is an argument, drawn by
the layer. Base functions are the paper's, not Keras' (`keras.ops.hard_sigmoid` is relu6(x+3)/6).
"""

from __future__ import annotations

import math

import numpy as np
from keras import ops

from keras_adaptive_acts.ops.competitive import Tensor

BASES = ("tanh", "sigmoid")
NOISE_MODES = ("output", "input", "input_saturated", "input_learned")
INPUT_NOISE_C = {"input": 0.05, "input_saturated": 0.25, "input_learned": 0.25}  # the spec's defaults
HALF_NORMAL_MEAN = math.sqrt(2.0 / math.pi)  # E|xi| for xi ~ N(0, 1)


def hard_tanh(x: Tensor) -> Tensor:
    """clip(x, -1, 1)."""
    return ops.clip(x, -1.0, 1.0)


def hard_sigmoid(x: Tensor) -> Tensor:
    """The paper's hard sigmoid, clip(0.25 * x + 0.5, 0, 1) (not Keras' relu6(x + 3) / 6)."""
    return ops.clip(0.25 * x + 0.5, 0.0, 1.0)


def linearization(x, base: str):
    """u(x): the first-order Taylor expansion of the base function at 0 (not clipped)."""
    return x if base == "tanh" else 0.25 * x + 0.5


def hard_function(x, base: str):
    """h(x) for base "tanh" or "sigmoid"."""
    return hard_tanh(x) if base == "tanh" else hard_sigmoid(x)


def _as_tensors(x, *values):
    """`x` as a tensor, and the NumPy arrays among `values` as tensors of its dtype.

    PyTorch cannot multiply a NumPy array by a tensor; scalars and tensors pass unchanged.
    """
    x = ops.convert_to_tensor(x)
    return (x, *(ops.convert_to_tensor(v, x.dtype) if isinstance(v, np.ndarray) else v for v in values))


def output_range(base: str) -> tuple[float, float]:
    return (-1.0, 1.0) if base == "tanh" else (0.0, 1.0)


def noisy_output(
    x: Tensor,
    p: Tensor | float,
    c: Tensor | float,
    xi: Tensor | None = None,
    *,
    base: str = "tanh",
    alpha: float = 1.15,
    half_normal: bool = False,
    clip_output: bool = False,
) -> Tensor:
    """Output-noise activation (NAN with normal noise, NAH with half-normal noise).

    ```
    delta = h(x) - u(x)                       # 0 in the linear regime
    d     = -sign(x) * sign(1 - alpha)
    sigma = c * (sigmoid(p * delta) - 0.5)**2
    phi   = alpha * h + (1 - alpha) * u + d * sigma * eps
    ```

    with `eps = xi` (normal) or `|xi|` (half-normal) in training, and `eps = E[eps]` (0 or
    sqrt(2/pi)) when `xi` is None: the paper's inference form, the expectation of training.
    `alpha*h + (1-alpha)*u` is evaluated as `h - (1-alpha)*delta`, so the result is exactly `h(x)`
    wherever `delta == 0`. Terms that are exactly zero (`alpha == 1`, where `d == 0`; normal noise
    at inference) are skipped, so they cost nothing and turn no `0 * inf` into NaN.

    Args:
        x: input tensor.
        p: per-unit parameter, broadcast against `x` (its last axis).
        c: noise scale (scalar).
        xi: standard normal noise of `x`'s shape, or None for the inference form.
        base: "tanh" or "sigmoid".
        alpha: the mixing of h and u; `alpha != 1` moves the output off `h` where saturated.
        half_normal: use `|xi|` (NAH) instead of `xi` (NAN).
        clip_output: clip the result to the range of `h`.

    Returns:
        A tensor of `x`'s shape and dtype.
    """
    x, p, c, xi = _as_tensors(x, p, c, xi)
    h = hard_function(x, base)
    if alpha == 1:  # d == 0: no noise, and alpha*h + (1-alpha)*u == h
        return h
    delta = h - linearization(x, base)
    phi = h - (1.0 - alpha) * delta
    if xi is not None or half_normal:
        direction = -ops.sign(x) * math.copysign(1.0, 1.0 - alpha)
        sigma = c * ops.square(ops.sigmoid(p * delta) - 0.5)
        if xi is None:
            eps = HALF_NORMAL_MEAN
        else:
            eps = ops.abs(xi) if half_normal else xi
        phi = phi + direction * sigma * eps
    return ops.clip(phi, *output_range(base)) if clip_output else phi


def noisy_input(
    x: Tensor,
    c: Tensor | float,
    xi: Tensor | None = None,
    *,
    base: str = "tanh",
    mode: str = "input",
    threshold: float = 1.0,
    p: Tensor | float | None = None,
) -> Tensor:
    """Input-noise activation: NANI (`mode="input"`), NANIS (`"input_saturated"`), NANIL (`"input_learned"`).

    ```
    NANI:  phi = h(x + c * xi)
    NANIS: phi = h(x + c * xi) where |x| > threshold, else h(x)
    NANIL: phi = h(x + c * softplus(p * |delta| / (|xi| + 1e-10)) * xi),  delta = h(x) - u(x)
    ```

    With `xi` None (inference) the noise term is removed: `phi = h(x)`.

    Args:
        x: input tensor.
        c: noise scale (scalar).
        xi: standard normal noise of `x`'s shape, or None for inference.
        base: "tanh" or "sigmoid".
        mode: "input", "input_saturated" or "input_learned".
        threshold: `input_saturated` only: noise where `|x| > threshold`.
        p: `input_learned` only: per-unit parameter, broadcast against `x`.

    Returns:
        A tensor of `x`'s shape and dtype.
    """
    x, c, xi, p = _as_tensors(x, c, xi, p)
    if xi is None:
        return hard_function(x, base)
    if mode == "input":
        return hard_function(x + c * xi, base)
    if mode == "input_saturated":
        noisy = hard_function(x + c * xi, base)
        return ops.where(ops.abs(x) > threshold, noisy, hard_function(x, base))
    delta = hard_function(x, base) - linearization(x, base)
    scale = ops.softplus(p * ops.abs(delta) / (ops.abs(xi) + 1e-10))
    return hard_function(x + c * scale * xi, base)


def rrelu(x: Tensor, slope: Tensor | float) -> Tensor:
    """Randomized leaky ReLU: `x` where `x >= 0`, else `slope * x` (`slope` a tensor or a float)."""
    return ops.where(x >= 0, x, slope * x)
