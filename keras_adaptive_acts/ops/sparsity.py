"""Math of activation sparsity (Peng et al., arXiv 2309.03004) and sparsity penalties.

J-SquaredReLU, the zero fraction, and the per-example penalties behind the regularizers.
Penalties are computed in float32 (float64 for float64 inputs), whatever the compute dtype.
They need a batch axis (inputs of rank >= 1) and are 0 for an empty batch on every backend: an
empty batch adds no loss (as Keras' `sum_over_batch_size` losses divide by the batch size with
`divide_no_nan`), rather than a NaN that would poison the training step.
"""

from __future__ import annotations

import math

from keras import ops

from keras_adaptive_acts.ops.competitive import Tensor, floating_tensor, statistics_dtype
from keras_adaptive_acts.ops.dtype_preserving import divide_no_nan
from keras_adaptive_acts.ops.serializable import activation_function
from keras_adaptive_acts.validation import check_number


@activation_function
def j_squared_relu(x: Tensor) -> Tensor:
    """J-SquaredReLU: `relu(x) + 0.5 * relu(x)**2`; derivative `(x + 1) * 1[x > 0]` (0 at x = 0, as ReLU's).

    `x` must be a floating tensor: integers raise `ValueError` (cast them first; the
    `JSquaredReLU` layer casts its inputs to its compute dtype).

    Examples:
        >>> import numpy as np
        >>> import keras
        >>> keras.ops.convert_to_numpy(j_squared_relu(np.array([-1.0, 0.0, 1.0, 2.0]))).tolist()
        [0.0, 0.0, 1.5, 4.0]
    """
    positive = ops.relu(floating_tensor(x))
    # Factored as r * (r/2 + 1): the product overflows only where the true value does. The plain
    # r + r**2 / 2 squares first and overflows at sqrt(max), about 256 in float16 and 1.8e19 in
    # float32, though its value fits up to sqrt(2 * max) (361 and 2.6e19; docs/guides/mixed-precision.md).
    return positive * (0.5 * positive + 1.0)


def zero_fraction(x: Tensor) -> Tensor:
    """The fraction of entries of `x` that are exactly zero (a float32 scalar; NaN is not zero).

    Examples:
        >>> import numpy as np
        >>> import keras
        >>> float(zero_fraction(np.array([[0.0, 1.0], [0.0, -2.0]])))
        0.5
    """
    x = ops.convert_to_tensor(x)
    return ops.mean(ops.cast(ops.equal(x, 0), "float32"))


def _check_batch_axis(x) -> None:
    if len(x.shape) < 1:
        raise ValueError(
            "Sparsity penalties need inputs of rank >= 1 with the batch first (a scalar has no examples). "
            f"Received: input rank={len(x.shape)}"
        )


def _statistics_tensor(x):
    """`x` as a tensor of rank >= 1 in float32 (float64 for float64 inputs)."""
    x = ops.convert_to_tensor(x)
    _check_batch_axis(x)
    dtype = statistics_dtype(x.dtype) if "float" in str(x.dtype) else "float32"
    return ops.cast(x, dtype)


def _per_example(x):
    """`x` as float32 (or float64) rows, one per example: (batch, everything else).

    The row size is the product of the non-batch axes, not `-1`, which JAX and PyTorch cannot
    infer for an empty batch; `-1` only where a non-batch axis has no static size (TensorFlow).
    """
    x = _statistics_tensor(x)
    rest = x.shape[1:]
    size = -1 if any(dim is None for dim in rest) else math.prod(rest)
    return ops.reshape(x, (ops.shape(x)[0], size))


def _batch_mean(values):
    """The mean of per-example `values` over the batch; 0 for an empty batch."""
    return divide_no_nan(ops.sum(values), ops.cast(ops.shape(values)[0], values.dtype))


def l1_penalty(x: Tensor) -> Tensor:
    """`sum|a| / B`: the L1 norm of each example's activations, averaged over the batch (0 if `B = 0`)."""
    return _batch_mean(ops.sum(ops.abs(_per_example(x)), axis=1))


def hoyer_square_penalty(x: Tensor, eps: float = 1e-12) -> Tensor:
    """Hoyer-square `(sum|a|)**2 / sum(a**2)` of each example, averaged over the batch (0 if `B = 0`).

    Scale-invariant; between 1 (one active entry) and n (all entries equal in size); 0 for an
    all-zero example. Each example is first divided by its largest `|a|`, so the sums neither
    overflow (float32 squares above about 1e19) nor underflow; `eps`, added to the sum of squares
    of the divided example (>= 1 unless the example is all zero), only keeps an all-zero example
    finite. A NaN or an infinity in an example makes its value NaN.
    """
    rows = _per_example(x)
    largest = ops.max(ops.abs(rows), axis=1, keepdims=True, initial=0.0)  # `initial`: empty rows too
    # Exactly scale-invariant, so no gradient needs to flow through the divisor.
    divisor = ops.stop_gradient(ops.where(largest > 0, largest, ops.ones_like(largest)))
    rows = rows / divisor
    l1 = ops.sum(ops.abs(rows), axis=1)
    return _batch_mean(ops.square(l1) / (ops.sum(ops.square(rows), axis=1) + eps))


def check_rho(rho: float) -> float:
    """Raises `ValueError` unless `rho`, a KL sparsity target, is a number in (0, 1); returns it as float."""
    value = check_number("rho", rho, minimum=0, strict=True)
    if value >= 1:
        raise ValueError(f"`rho` must be in (0, 1). Received: rho={rho!r}")
    return value


def kl_sparsity_penalty(x: Tensor, rho: float, eps: float = 1e-7) -> Tensor:
    """`sum_j KL(rho || rho_hat_j)`, `rho_hat_j` the mean activation of unit `j` (last axis).

    The mean is over the batch and every other non-unit axis. Activations are meant to lie in
    [0, 1] (after a sigmoid); `rho_hat` is clipped to `[eps, 1 - eps]`, so activations outside
    that range give a finite, clipped penalty rather than NaN. `rho` must be in (0, 1). Inputs
    need rank >= 1 (batch first); an empty input (no examples) gives 0.
    """
    rho = check_rho(rho)
    x = _statistics_tensor(x)
    leading = x.shape[:-1]  # an explicit row count: JAX cannot infer -1 for an empty input
    rows = -1 if any(dim is None for dim in leading) else math.prod(leading)
    units = ops.reshape(x, (rows, ops.shape(x)[-1]))
    count = ops.cast(ops.shape(units)[0], units.dtype)
    rho_hat = ops.clip(divide_no_nan(ops.sum(units, axis=0), count), eps, 1.0 - eps)
    # The rho-only terms in Python floats: a rho below float32's smallest normal number flushes to 0
    # in a tensor, and 0 * log(0 / rho_hat) is NaN.
    constant = rho * math.log(rho) + (1.0 - rho) * math.log1p(-rho)
    kl = constant - rho * ops.log(rho_hat) - (1.0 - rho) * ops.log(1.0 - rho_hat)
    return ops.where(count > 0, ops.sum(kl), ops.zeros((), kl.dtype))
