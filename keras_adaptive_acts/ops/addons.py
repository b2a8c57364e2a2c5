"""Math of the activations tensorflow-addons offered and Keras 3 lacks: LiSHT, Snake and TLU.

Each is elementwise and returns a tensor of its input's shape and dtype. Parameters (a Snake
frequency, a TLU threshold and slope) are tensors or numbers that broadcast against `x`; a layer
passes its weights in, cast to its compute dtype. Infinite inputs give the function's limit, never
NaN from a `0 * inf`; NaN stays NaN.

`lisht`, `snake` and `tlu` are registered Keras functions, so `keras.layers.Dense(8, activation=lisht)`
saves to a `.keras` file and loads again after `import keras_adaptive_acts`.
"""

from __future__ import annotations

from keras import ops

from keras_adaptive_acts.ops.competitive import Tensor, floating_tensor
from keras_adaptive_acts.ops.dtype_preserving import maximum
from keras_adaptive_acts.ops.parameter_gradients import parameter_where_nonzero
from keras_adaptive_acts.ops.serializable import activation_function


@activation_function
def lisht(x: Tensor) -> Tensor:
    """LiSHT, the linearly scaled hyperbolic tangent: `x * tanh(x)`.

    ```
    lisht(x)  = x * tanh(x)
    lisht'(x) = tanh(x) + x * (1 - tanh(x)**2)
    ```

    Even and non-negative; `+inf` for `x = +-inf`. The Keras 3 replacement of
    `tfa.activations.lisht`. `x` must be a floating tensor (integers raise `ValueError`).

    Examples:
        >>> import keras
        >>> import numpy as np
        >>> np.round(keras.ops.convert_to_numpy(lisht(np.array([-1.0, 0.0, 1.0]))), 6).tolist()
        [0.761594, 0.0, 0.761594]

    Reference:
        S. K. Roy, S. Manna, S. R. Dubey, B. B. Chaudhuri, "LiSHT: Non-Parametric Linearly Scaled
        Hyperbolic Tangent Activation Function for Neural Networks",
        [arXiv:1901.05894](https://arxiv.org/abs/1901.05894).
    """
    x = floating_tensor(x)
    return x * ops.tanh(x)


@activation_function
def snake(x: Tensor, frequency: Tensor | float = 1.0) -> Tensor:
    """Snake, a periodic activation: `x + sin(frequency * x)**2 / frequency`.

    ```
    snake(x, f) = x + sin(f * x)**2 / f  =  x + (1 - cos(2 * f * x)) / (2 * f)
    snake(x, 0) = x                      # the limit as f -> 0
    ```

    Computed in the `sin**2` form, which keeps its precision in float16 where `1 - cos` cancels.
    At `frequency = 0` the value is the limit `x`, and the frequency gradient is that of the limit
    (`x**2`), so a trainable frequency can leave 0. `+-inf` gives `+-inf` (the periodic part is
    bounded), and a finite `x` whose phase `frequency * x` overflows (float16) gives `x`. The Keras 3
    replacement of `tfa.activations.snake`, with the same default.

    Args:
        x: a floating tensor (integers raise `ValueError`).
        frequency: a number or a tensor that broadcasts against `x`. Default 1.

    Examples:
        >>> import keras
        >>> import numpy as np
        >>> np.round(keras.ops.convert_to_numpy(snake(np.array([-1.0, 0.0, 1.0]))), 6).tolist()
        [-0.291927, 0.0, 1.708073]

    Reference:
        L. Ziyin, T. Hartwig, M. Ueda, "Neural Networks Fail to Learn Periodic Functions and How to
        Fix It", [arXiv:2006.08195](https://arxiv.org/abs/2006.08195).
    """
    x = floating_tensor(x)
    trainable = not isinstance(frequency, (int, float))  # a number has no gradient to sum
    frequency = _like(frequency, x, "frequency")
    if trainable:
        # Spread over `x` first: every use below is then elementwise, and the frequency's gradient
        # one sum of a select instead of three sums of products (see parameter_gradients; the
        # training step took 0.66x the time on XLA:CPU). Where x == 0 every term is 0 either way.
        frequency = parameter_where_nonzero(frequency, x)
    at_zero = ops.equal(frequency, 0)
    # Two branches, each safe where the other is chosen (no 0 / 0, so no NaN gradient either).
    safe_frequency = ops.where(at_zero, ops.ones_like(frequency), frequency)
    phase = safe_frequency * x
    # A phase that overflows (float16: |f * x| > 65504) has no meaningful sine; the periodic part is
    # bounded by 1 / |f|, below the spacing of such large x, so 0 stands in for it (not NaN).
    phase = ops.where(ops.isfinite(phase), phase, ops.zeros_like(phase))
    periodic = ops.square(ops.sin(phase)) / safe_frequency
    # The f -> 0 limit of the periodic part, f * x**2, as (f * x) * x: 0 for any finite x.
    limit = (frequency * x) * x
    outputs = x + ops.where(at_zero, limit, periodic)
    return ops.where(ops.isinf(x), x, outputs)


def _like(value: Tensor | float, x: Tensor, name: str) -> Tensor:
    """`value` in `x`'s dtype; a Python number directly so (not through float32 first).

    A string or a bool is refused by name: the backend's cast would fail with its own message (or,
    for a bool, quietly become 0 or 1).
    """
    if isinstance(value, (str, bytes, bool)) or value is None:
        raise ValueError(f"`{name}` must be a number or a tensor. Received: {name}={value!r}")
    if isinstance(value, (int, float)):
        return ops.convert_to_tensor(value, dtype=x.dtype)
    return ops.cast(value, x.dtype)


@activation_function
def tlu(x: Tensor, tau: Tensor | float = 0.0, alpha: Tensor | float | None = None) -> Tensor:
    """TLU, the thresholded linear unit: `max(x, tau)`, or `max(x, alpha * x + tau)` (TLU-affine).

    ```
    tlu(x, tau)        = max(x, tau)
    tlu(x, tau, alpha) = max(x, alpha * x + tau)
    ```

    `tau = 0` (and `alpha = 0`) is ReLU. For `x = +-inf` the affine form takes its limit (the line
    is `tau` where `alpha = 0`), so an infinite input never gives NaN from `0 * inf`; NaN stays NaN.

    Args:
        x: a floating tensor (integers raise `ValueError`).
        tau: the threshold, a number or a tensor that broadcasts against `x`.
        alpha: None for the plain form, else the slope of the affine form (broadcasting as `tau`).

    Examples:
        >>> import keras
        >>> import numpy as np
        >>> keras.ops.convert_to_numpy(tlu(np.array([-2.0, 0.0, 3.0]), tau=-1.0)).tolist()
        [-1.0, 0.0, 3.0]
        >>> keras.ops.convert_to_numpy(tlu(np.array([-2.0, 0.0, 3.0]), tau=0.0, alpha=0.5)).tolist()
        [-1.0, 0.0, 3.0]

    Reference:
        S. Singh, S. Krishnan, "Filter Response Normalization Layer: Eliminating Batch Dependence in
        the Training of Deep Neural Networks", [arXiv:1911.09737](https://arxiv.org/abs/1911.09737).
    """
    x = floating_tensor(x)
    tau = _like(tau, x, "tau")
    if alpha is None:
        return maximum(x, tau)
    trainable = not isinstance(alpha, (int, float))  # a number has no gradient to sum
    alpha = _like(alpha, x, "alpha")
    infinite = ops.isinf(x)
    finite_x = ops.where(infinite, ops.zeros_like(x), x)  # no alpha * inf below, in values or gradients
    # alpha's gradient summed from a select (see parameter_gradients; the training step took 0.38x
    # the time on XLA:CPU). tau's is already: it reaches tau through the maximum's select.
    slope = parameter_where_nonzero(alpha, finite_x) if trainable else alpha
    outputs = maximum(x, slope * finite_x + tau)
    # At x = +-inf the line alpha * x + tau is sign(alpha) * x, or tau where alpha = 0.
    line_at_infinity = ops.where(ops.equal(alpha, 0), tau, ops.sign(alpha) * ops.where(infinite, x, 1))
    return ops.where(infinite, maximum(x, line_at_infinity), outputs)
