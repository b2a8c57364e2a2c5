"""Math of activation sparsity (Peng et al., arXiv 2309.03004) and sparsity penalties.

J-SquaredReLU, the zero fraction, and the per-example penalties behind the regularizers.
Penalties are computed in float32 (float64 for float64 inputs), whatever the compute dtype.
"""

from __future__ import annotations

from keras import ops

from keras_adaptive_acts.ops.competitive import Tensor, statistics_dtype


def j_squared_relu(x: Tensor) -> Tensor:
    """J-SquaredReLU: `relu(x) + 0.5 * relu(x)**2`; derivative `(x + 1) * 1[x > 0]` (0 at x = 0, as ReLU's).

    Examples:
        >>> import numpy as np
        >>> np.asarray(j_squared_relu(np.array([-1.0, 0.0, 1.0, 2.0]))).tolist()
        [0.0, 0.0, 1.5, 4.0]
    """
    positive = ops.relu(x)
    return positive + 0.5 * ops.square(positive)


def zero_fraction(x: Tensor) -> Tensor:
    """The fraction of entries of `x` that are exactly zero (a float32 scalar; NaN is not zero).

    Examples:
        >>> import numpy as np
        >>> float(zero_fraction(np.array([[0.0, 1.0], [0.0, -2.0]])))
        0.5
    """
    x = ops.convert_to_tensor(x)
    return ops.mean(ops.cast(ops.equal(x, 0), "float32"))


def _per_example(x):
    """`x` as float32 (or float64) rows, one per example: (batch, everything else)."""
    x = ops.convert_to_tensor(x)
    dtype = statistics_dtype(x.dtype) if "float" in str(x.dtype) else "float32"
    return ops.reshape(ops.cast(x, dtype), (ops.shape(x)[0], -1))


def l1_penalty(x: Tensor) -> Tensor:
    """`sum|a| / B`: the L1 norm of each example's activations, averaged over the batch."""
    return ops.mean(ops.sum(ops.abs(_per_example(x)), axis=1))


def hoyer_square_penalty(x: Tensor, eps: float = 1e-12) -> Tensor:
    """Hoyer-square `(sum|a|)**2 / sum(a**2)` of each example, averaged over the batch.

    Scale-invariant; between 1 (one active entry) and n (all entries equal in size); 0 for an
    all-zero example (`eps` keeps it finite).
    """
    rows = _per_example(x)
    l1 = ops.sum(ops.abs(rows), axis=1)
    return ops.mean(ops.square(l1) / (ops.sum(ops.square(rows), axis=1) + eps))


def kl_sparsity_penalty(x: Tensor, rho: float, eps: float = 1e-7) -> Tensor:
    """`sum_j KL(rho || rho_hat_j)`, `rho_hat_j` the mean activation of unit `j` (last axis).

    The mean is over the batch and every other non-unit axis. Activations are meant to lie in
    [0, 1] (after a sigmoid); `rho_hat` is clipped to `[eps, 1 - eps]`, so activations outside
    that range give a finite, clipped penalty rather than NaN.
    """
    x = ops.convert_to_tensor(x)
    dtype = statistics_dtype(x.dtype) if "float" in str(x.dtype) else "float32"
    units = ops.reshape(ops.cast(x, dtype), (-1, ops.shape(x)[-1]))
    rho_hat = ops.clip(ops.mean(units, axis=0), eps, 1.0 - eps)
    kl = rho * ops.log(rho / rho_hat) + (1.0 - rho) * ops.log((1.0 - rho) / (1.0 - rho_hat))
    return ops.sum(kl)
