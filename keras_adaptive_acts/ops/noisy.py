"""Math of the noisy activation functions (Gulcehre et al., ICML 2016, arXiv 1603.00391) and RReLU.

Pure, deterministic functions: the noise `xi` (standard normal draws) is an argument, drawn by
the layer. Base functions are the paper's, not Keras' (`keras.ops.hard_sigmoid` is relu6(x+3)/6).
"""

from __future__ import annotations

import math

import numpy as np
from keras import ops

from keras_adaptive_acts.ops.competitive import Tensor, floating_tensor
from keras_adaptive_acts.ops.parameter_gradients import parameter_where_nonzero
from keras_adaptive_acts.ops.serializable import activation_function
from keras_adaptive_acts.validation import check_choice

BASES = ("tanh", "sigmoid")
NOISE_MODES = ("output", "input", "input_saturated", "input_learned")
INPUT_NOISE_MODES = NOISE_MODES[1:]  # the modes of `noisy_input`
INPUT_NOISE_C = {"input": 0.05, "input_saturated": 0.25, "input_learned": 0.25}  # the spec's defaults
HALF_NORMAL_MEAN = math.sqrt(2.0 / math.pi)  # E|xi| for xi ~ N(0, 1)


@activation_function
def hard_tanh(x: Tensor) -> Tensor:
    """clip(x, -1, 1).

    `x` must be a floating tensor: integers raise `ValueError` (cast them first; the layers cast
    their inputs to their compute dtype).
    """
    return ops.clip(floating_tensor(x), -1.0, 1.0)


@activation_function
def hard_sigmoid(x: Tensor) -> Tensor:
    """The paper's hard sigmoid, clip(0.25 * x + 0.5, 0, 1) (not Keras' relu6(x + 3) / 6).

    `x` must be a floating tensor: integers raise `ValueError`, as for `hard_tanh`.
    """
    return ops.clip(0.25 * floating_tensor(x) + 0.5, 0.0, 1.0)


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
    wherever `delta == 0`. `sigma` is evaluated as `c * tanh(p * delta / 2)**2 / 4`, the same
    function (`sigmoid(z) - 1/2 == tanh(z / 2) / 2`): XLA computes one tanh faster than a sigmoid,
    and the difference of the sigmoid and 1/2 loses digits near 0 that the tanh keeps; `d * sigma`
    is evaluated without `sign(x)` (see the code). Both make NAH's inference cheaper under XLA.
    Terms that are exactly zero (`alpha == 1`, where `d == 0`; normal noise at inference) are
    skipped, so they cost nothing and turn no `0 * inf` into NaN.

    Args:
        x: floating input tensor.
        p: per-unit parameter, broadcast against `x` (its last axis).
        c: noise scale (scalar).
        xi: standard normal noise of `x`'s shape, or None for the inference form.
        base: "tanh" or "sigmoid" (anything else raises `ValueError`).
        alpha: the mixing of h and u; `alpha != 1` moves the output off `h` where saturated.
        half_normal: use `|xi|` (NAH) instead of `xi` (NAN).
        clip_output: clip the result to the range of `h`.

    Returns:
        A tensor of `x`'s shape and dtype.
    """
    x, p, c, xi = _as_tensors(x, p, c, xi)
    check_choice("base", base, BASES)
    h = hard_function(x, base)
    if alpha == 1:  # d == 0: no noise, and alpha*h + (1-alpha)*u == h
        return h
    delta = h - linearization(x, base)
    phi = h - (1.0 - alpha) * delta
    if xi is not None or half_normal:
        # d * sigma == sign(1 - alpha) * (c / 4) * t * |t| with t = tanh(|p| * delta / 2): where
        # delta != 0, sign(x) == -sign(delta) == -sign(t) (tanh is odd), and where delta == 0 both
        # are 0. One sign per entry fewer than the spec's form, the same function.
        p_magnitude = abs(p) if isinstance(p, (int, float)) else ops.abs(p)  # a number stays weakly typed
        half_p = 0.5 * p_magnitude
        if xi is not None:  # training: p's gradient is wanted (at inference the select would cost NAH time)
            # Without it, the output-noise training step (NAN, NAH) of the noisy_speed benchmark
            # took 1.3x to 1.4x its time on XLA:CPU.
            half_p = parameter_where_nonzero(half_p, delta)
        t = ops.tanh(half_p * delta)
        signed_scale = math.copysign(0.25, 1.0 - alpha) * c  # d * sigma == signed_scale * t * |t|
        if xi is None:
            # The expectation E|xi| joins the per-layer scale: one product per entry fewer.
            phi = phi + (signed_scale * HALF_NORMAL_MEAN) * (t * ops.abs(t))
        else:
            phi = phi + signed_scale * (t * ops.abs(t)) * (ops.abs(xi) if half_normal else xi)
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
        x: floating input tensor.
        c: noise scale (scalar).
        xi: standard normal noise of `x`'s shape, or None for inference.
        base: "tanh" or "sigmoid".
        mode: "input", "input_saturated" or "input_learned" (anything else raises `ValueError`).
        threshold: `input_saturated` only: noise where `|x| > threshold`.
        p: `input_learned` only, and required there (`ValueError` if None, also at inference):
            per-unit parameter, broadcast against `x`.

    Returns:
        A tensor of `x`'s shape and dtype.
    """
    x, c, xi, p = _as_tensors(x, c, xi, p)
    check_choice("base", base, BASES)
    check_choice("mode", mode, INPUT_NOISE_MODES)
    if mode == "input_learned" and p is None:
        raise ValueError('`mode="input_learned"` needs the per-unit parameter `p`. Received: p=None')
    if xi is None:
        return hard_function(x, base)
    if mode == "input":
        return hard_function(x + c * xi, base)
    if mode == "input_saturated":
        noisy = hard_function(x + c * xi, base)
        return ops.where(ops.abs(x) > threshold, noisy, hard_function(x, base))
    delta = hard_function(x, base) - linearization(x, base)
    # The paper's 1e-10 is 0 in float16, where xi = 0 would give 0 / 0: its smallest subnormal instead.
    tiny = _TINY.get(ops.dtype(xi), 1e-10)
    ratio = parameter_where_nonzero(p, delta) * ops.abs(delta) / (ops.abs(xi) + tiny)
    # A finite ratio can overflow (float16: |xi| below p * |delta| / 65504): capped at the dtype's
    # largest value, so that c = 0 adds no noise rather than 0 * inf = NaN. NaN stays NaN.
    largest = _LARGEST.get(ops.dtype(ratio)) or float(np.finfo(ops.dtype(ratio)).max)
    scale = ops.softplus(ops.where(ratio > largest, largest, ratio))
    return hard_function(x + c * scale * xi, base)


_LARGEST = {"bfloat16": 3.3895313892515355e38}  # NumPy's finfo does not know bfloat16
_TINY = {"float16": 2.0**-24}


def rrelu(x: Tensor, slope: Tensor | float) -> Tensor:
    """Randomized leaky ReLU: `x` where `x >= 0`, else `slope * x` (`slope` a tensor or a float)."""
    return ops.where(x >= 0, x, slope * x)
