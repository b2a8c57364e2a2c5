"""Math of the competition-based adaptive ReLU (CAReLU, arXiv 2407.19441).

Pure functions on `keras.ops`; the hand-written gradient lives here. The public functions
(`competitive_relu`, `competition_share`, `competitive_scale`) check their arguments once and then
call the unchecked functions below them. The layer in `keras_adaptive_acts.layers` checks its
arguments in `__init__` and `build`, owns `alpha`/`beta`, and calls the unchecked functions directly:
nothing is checked twice, and the statistics the layer reports are computed by the code its forward
pass runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from keras import backend, ops

from keras_adaptive_acts.ops.competitive_paths import masked_product_sums, sums_are_products, sums_over_slices
from keras_adaptive_acts.ops.dtype_preserving import divide_no_nan, maximum
from keras_adaptive_acts.validation import check_choice, check_number

__all__ = ["competition_share", "competitive_relu", "competitive_scale"]

COMPETITIONS = ("energy", "l1", "count")

Tensor = Any  # a backend tensor, a NumPy array or anything `keras.ops.convert_to_tensor` takes


def statistics_dtype(dtype) -> str:
    """The dtype the per-slice statistics are computed in.

    float32 for float16/bfloat16 inputs (a float16 sum of squares overflows at 256),
    otherwise the input's own floating dtype.
    """
    dtype = backend.standardize_dtype(dtype)
    return "float32" if dtype in ("float16", "bfloat16") else dtype


# ----------------------------------------------------------------------------------------------
# Argument checks (run once, where the user passes the arguments)


def check_competition_args(competition: str, eps: float, scale_bound: float | None = None) -> None:
    """Raises `ValueError` for an unknown measure or a non-positive / non-finite `eps` or `scale_bound`."""
    check_choice("competition", competition, COMPETITIONS)
    check_number("eps", eps, minimum=0, strict=True)
    if scale_bound is not None:
        check_number("scale_bound", scale_bound, minimum=0, strict=True)


def axis_tuple(axis: int | Sequence[int] | None) -> tuple[int, ...] | None:
    """Checks what can be checked of `axis` without the input's rank; returns it as a tuple."""
    if axis is None:
        return None
    axes = (axis,) if isinstance(axis, int) else tuple(axis) if isinstance(axis, (tuple, list)) else ()
    if not axes or any(isinstance(a, bool) or not isinstance(a, int) for a in axes):
        raise ValueError(f"`axis` must be None, an int or a non-empty tuple of ints. Received: axis={axis!r}")
    if 0 in axes:
        raise ValueError(
            "`axis` must not include the batch axis 0: outputs must not depend on other samples. "
            f"Received: axis={axis!r}"
        )
    return axes


def reduction_axes(ndim: int, axis: int | Sequence[int] | None) -> tuple[int, ...]:
    """Normalises `axis` to sorted positive axes; `None` means every non-batch axis.

    Raises `ValueError` for rank < 2, an axis out of range, a repeated axis or the batch axis.
    """
    if ndim < 2:
        raise ValueError(
            "CompetitiveReLU needs inputs of rank >= 2 (batch, features, ...): the competition "
            f"is measured per sample. Received: input rank={ndim}"
        )
    axes = axis_tuple(axis)
    if axes is None:
        return tuple(range(1, ndim))
    if any(not -ndim <= a < ndim for a in axes):
        raise ValueError(f"`axis` is out of range for inputs of rank {ndim}. Received: axis={axis!r}")
    normalized = [a % ndim for a in axes]
    if 0 in normalized:
        raise ValueError(
            f"`axis` must not include the batch axis: {axis!r} names axis 0 of a rank-{ndim} input. "
            f"Received: axis={axis!r}"
        )
    if len(set(normalized)) != len(normalized):
        raise ValueError(f"`axis` names the same axis twice. Received: axis={axis!r}")
    return tuple(sorted(normalized))


def check_same_shape(x_shape, source_shape) -> None:
    """Raises `ValueError` unless the two shapes agree wherever both are known."""
    x_shape, source_shape = tuple(x_shape), tuple(source_shape)
    compatible = len(x_shape) == len(source_shape) and all(
        a is None or b is None or a == b for a, b in zip(x_shape, source_shape, strict=False)
    )
    if not compatible:
        raise ValueError(
            "The second input (the tensor `p` is measured on) must have the shape of the first. "
            f"Received: shapes={x_shape} and {source_shape}"
        )


def _is_float(dtype) -> bool:
    return "float" in backend.standardize_dtype(dtype)


def floating_tensor(x: Tensor) -> Tensor:
    """`x` as a tensor; raises `ValueError` unless it is floating (integers must be cast first)."""
    x = ops.convert_to_tensor(x)
    if not _is_float(x.dtype):
        raise ValueError(f"`x` must be a floating tensor (cast integers first). Received: dtype={x.dtype}")
    return x


def relu_identity_beta(scale_bound: float) -> float:
    """The `beta` at which `scale_bound * tanh(beta) == 1`: the layer equals ReLU when `alpha == 0`.

    Defined for `scale_bound > 1` only (`s` ranges over (-scale_bound, scale_bound)); 0.0 otherwise.
    """
    return math.atanh(1.0 / scale_bound) if scale_bound > 1 else 0.0


# ----------------------------------------------------------------------------------------------
# The math (arguments already checked)


def _slice_size(z, axes):
    """The number of entries of each slice of `z` over `axes`, as a tensor of `z`'s dtype."""
    size = 1
    for axis in axes:
        size = size * ops.shape(z)[axis]  # a tensor where the size is only known at run time
    return ops.cast(size, z.dtype)


def _slice_shrink(z, axes):
    """What each slice of `z` is multiplied by before its sums: `1 / largest |z|` where that is above 1.

    The share `p` is bounded, but its sums are not: a float32 square overflows above about 1.8e19.
    Shrinking a slice so that its largest entry is about 1 keeps them finite. Only large slices are
    shrunk (the factor is <= 1), and the factor stops at the dtype's smallest normal number (whose
    reciprocal is below its largest, 8.5e37 in float32), as CPUs flush subnormal factors to zero; the
    largest entry is then at most 4, still safe. Slices with an infinity or a NaN are left as they
    are, so +inf and NaN still give NaN and -inf still only loses. A product, not a division per
    entry: cheaper. `p` depends on the factor only through `eps` (shrunk alongside), so no gradient
    flows through it.
    """
    # max(|z|) as max(max(z), -min(z)): two reductions that read `z` itself, where XLA:CPU would
    # first write |z| out in full and read it back (it does not fuse an elementwise producer into
    # a reduction). `initial`: empty slices.
    largest = maximum(
        ops.max(z, axis=axes, keepdims=True, initial=0.0), -ops.min(z, axis=axes, keepdims=True, initial=0.0)
    )
    usable = ops.logical_and(largest > 1.0, ops.isfinite(largest))
    smallest_normal = float(np.finfo(backend.standardize_dtype(z.dtype)).tiny)
    shrink = maximum(1.0 / ops.where(usable, largest, ops.ones_like(largest)), smallest_normal)
    return ops.stop_gradient(shrink)


def _share_and_derivative_scales(z, competition, eps, axes):
    """The positive entries' share `p` of each slice, and per-slice `(shrink, multiplier)` for its derivative.

    `p` is the same function of `z` whatever the slice's size; an empty slice gets `p = 0` for all
    three measures (the count divides by the slice size with `divide_no_nan`: a plain mean would be
    0 / 0 and make the gradients of `alpha` and `beta` NaN).

    The sums are taken of `z` itself first. Only if one of them is not finite (a square above the
    float32 range, a sum above it, or an infinity or NaN in the input) is the share computed again
    on shrunk slices (`_slice_shrink`), by a conditional that runs one branch: the overflow guard's
    two extra reductions over the input cost about a tenth of the training step on XLA:CPU, and
    finite sums need no guard (the shrunk form is the same function, to rounding).
    """
    if competition == "count":
        positives = sums_over_slices(ops.where(z > 0, ops.ones_like(z), 0.0), axes)  # see _shrunk_share
        return divide_no_nan(positives, _slice_size(z, axes)), None  # no gradient
    p, denominator = _shrunk_share(z, None, competition, eps, axes)
    # The numerator is at most the denominator (relu(z)**2 <= z**2, relu(z) <= |z|): one check.
    finite = ops.isfinite(denominator)
    # 1 wherever it is used (the first branch runs only where every sum is finite; the second
    # keeps it only there), computed from the data rather than `ones_like`: TensorFlow moves a
    # constant into the branch that returns it, which is then no longer empty (see below). Where
    # the sums are reductions (per channel on a CPU, every slice on a GPU), XLA then ran the
    # guard's second branch on every step: per channel on a CPU, 1.3x to 1.5x the op's time.
    unshrunk = ops.cast(finite, denominator.dtype)

    def as_they_are():
        # Only passes values through: XLA turns a conditional whose branches hold only cheap
        # instructions (reductions count as cheap) into a select that runs both branches, but never
        # one with such an empty branch. Three distinct values: tf2onnx cannot convert a branch that
        # returns one tensor twice.
        return p, denominator, unshrunk

    def shrunk_where_needed():
        # Slices whose sums were finite keep them, so that one bad sample changes no other
        # sample's result, not even by rounding.
        shrink = _slice_shrink(z, axes)
        shrunk_p, shrunk_denominator = _shrunk_share(z, shrink, competition, eps, axes)
        return (
            ops.where(finite, p, shrunk_p),
            ops.where(finite, denominator, shrunk_denominator),
            ops.where(finite, unshrunk, shrink),
        )

    p, denominator, shrink = ops.cond(ops.all(finite), as_they_are, shrunk_where_needed)
    # dp/dz is an expression in `z * shrink` times shrink / denominator (`_share_derivative`).
    return p, (shrink, shrink / denominator)


def _shrunk_share(z, shrink, competition, eps, axes):
    """`(p, denominator)` of the slices of `z * shrink` (`shrink` per slice, or None for 1).

    p = sum(num(z)) / (sum(total(z)) + eps), with each term multiplied by shrink**2 (energy) or
    shrink, eps too: the same `p` for any shrink.
    """
    shrunk, shrunk_eps = z, eps
    if shrink is not None:
        shrunk = z * shrink
        shrunk_eps = eps * shrink * shrink if competition == "energy" else eps * shrink
    if competition == "energy":
        # Each term ends in a select, not a product (the same share p, NaN included): XLA:CPU hands
        # a large reduction to its fast library only if its input does not end in a product (or a
        # convert). That matters where the sums are reductions (slices that are not the trailing
        # axes, such as `axis=(1, 2)`); the l1 terms end in a maximum and an abs already.
        square = shrunk * shrunk
        numerator, total = ops.where(shrunk > 0, square, 0.0), ops.where(shrunk != 0, square, 0.0)
    elif shrink is None and sums_are_products(z.shape, axes):
        # sum(relu(z)) == (sum(z) + sum(|z|)) / 2. Read by a product with ones, sum(z) needs no term
        # written out (the product reads `z` itself), where sum(relu(z)) did: 0.8x the op's time on
        # TensorFlow and JAX. Its error is that of the sums, a rounding of p's scale (1), not of p
        # itself: a nearly all-negative slice of 65536 entries measured p = 3.7e-8 for a true
        # 1.9e-8 (an all-negative one gets exactly 0: sum(z) == -sum(|z|) term by term). Halves
        # first: the two sums may add up above the dtype's largest value. Not for shrunk slices: the
        # guard reaches them only with a sum that is not finite, where an entry of -inf must still
        # only lose (sum(z) + sum(|z|) would be -inf + inf, NaN).
        total = sums_over_slices(ops.abs(z), axes)
        numerator = 0.5 * sums_over_slices(z, axes) + 0.5 * total
        return numerator / (total + eps), total + eps
    else:
        numerator, total = ops.relu(shrunk), ops.abs(shrunk)
    denominator = sums_over_slices(total, axes) + shrunk_eps
    return sums_over_slices(numerator, axes) / denominator, denominator


def _share_derivative(z, p, derivative_scales, competition):
    """Elementwise dp/dz of `_share_and_derivative_scales`, given the per-slice scalars it returned.

    The shrunk slice is computed again rather than kept, so the backward pass holds no
    intermediate of the input's size.
    """
    shrink, multiplier = derivative_scales
    shrunk = z * shrink
    if competition == "energy":
        # An entry of -inf only loses: its slice's share is 0 and its multiplier 0 (an infinite
        # sum), so its derivative is 0; as the lowest finite number it is, where -inf gave
        # 0 * -inf, NaN. (l1's sign(-inf) is finite already.)
        shrunk = maximum(shrunk, float(np.finfo(backend.standardize_dtype(shrunk.dtype)).min))
        return 2.0 * (ops.relu(shrunk) - p * shrunk) * multiplier
    return (ops.cast(shrunk > 0, shrunk.dtype) - p * ops.sign(shrunk)) * multiplier


def _scale(p, alpha, beta, scale_bound):
    """s = K * tanh(alpha * p + beta) with K = scale_bound, written around x0 = relu_identity_beta(K).

    By the tanh addition formula K*tanh(x) = (K*th + 1) / (1 + th/K) with th = tanh(x - x0), so
    s is exactly 1 when alpha*p + beta == x0 (the ReLU initialisation), whatever the rounding of
    a backend's tanh. For K <= 1 there is no such point and this is plainly K*tanh(x).
    """
    x0 = relu_identity_beta(scale_bound)
    th = ops.tanh(alpha * p + (beta - x0))
    if scale_bound > 1:
        return (scale_bound * th + 1.0) / (1.0 + th / scale_bound)
    return scale_bound * th


def _statistics(x, source, alpha, beta, competition, scale_bound, eps, axes, stats):
    """`(p, derivative scales of p, s)` of each slice: the one computation of the statistics.

    `p` is measured on `source` if given, else on `x`, in the dtype `stats`. Both the forward pass
    of the op and `unchecked_statistics` (behind `CompetitiveReLU.competition_statistics`) run it.
    """
    z = ops.cast(x if source is None else source, stats)
    p, derivative_scales = _share_and_derivative_scales(z, competition, eps, axes)
    return p, derivative_scales, _scale(p, alpha, beta, scale_bound)


def unchecked_statistics(x, alpha, beta, source=None, *, competition, scale_bound, eps, axes):
    """`(p, s)` per slice (keepdims, statistics dtype) for arguments that were checked already.

    `x` (and `source`) are floating tensors, `axes` are normalised reduction axes
    (`reduction_axes`), `alpha` and `beta` are in the statistics dtype of `x`.
    """
    stats = statistics_dtype(x.dtype)
    p, _, s = _statistics(x, source, alpha, beta, competition, scale_bound, eps, axes, stats)
    return p, s


def unchecked_competitive_relu(x, alpha, beta, source=None, *, competition, scale_bound, eps, axes):
    """`competitive_relu` for arguments that were checked already (see `unchecked_statistics`).

    `source`, if given, has the shape and dtype of `x`.
    """
    stats = statistics_dtype(x.dtype)
    tensors = (x,) if source is None else (x, source)
    # The op keeps the input's own shape: how each per-slice sum is laid out is chosen per backend
    # in competitive_paths, on the sum's term alone.
    return _make_op(competition, scale_bound, eps, axes, stats, source is not None)(*tensors, alpha, beta)


def unchecked_input_derivative(x, alpha, beta, source=None, *, competition, scale_bound, eps, axes):
    """`d y[i] / d x[i]` for every entry: the diagonal of the Jacobian of `unchecked_competitive_relu`.

    With `y = relu(s * x)` and `s = K * tanh(alpha * p + beta)` per slice (K = scale_bound):

    ```
    dy[i]/dx[i] = [s * x[i] > 0] * (s + x[i] * (K - s**2 / K) * alpha * dp/dx[i])
    ```

    The second term is the entry's own pull on its slice's share `p`; it is absent where `p` is
    measured on `source` or counts signs (no gradient). The formulas are those of the op's
    backward pass (`_make_op`), with a one-hot upstream gradient at entry `i`: what pruning the
    backward pass would drop is exactly where this is zero. In `x`'s dtype.
    """
    stats = statistics_dtype(x.dtype)
    p, derivative_scales, s = _statistics(x, source, alpha, beta, competition, scale_bound, eps, axes, stats)
    xs = ops.cast(x, stats)
    winners = ops.cast(xs * s > 0, stats)
    derivative = s
    if competition != "count" and source is None:
        own_pull = _share_derivative(xs, p, derivative_scales, competition)
        derivative = s + xs * (scale_bound - s * s / scale_bound) * alpha * own_pull
    return ops.cast(winners * derivative, x.dtype)


def _make_op(competition, scale_bound, eps, axes, stats, separate_source):
    """A custom-gradient function of (x, alpha, beta) or (x, source, alpha, beta)."""

    @ops.custom_gradient
    def carelu(*args):
        if separate_source:
            x, source, alpha, beta = args
        else:
            (x, alpha, beta), source = args, None
        p, derivative_scales, s = _statistics(
            x, source, alpha, beta, competition, scale_bound, eps, axes, stats
        )
        out = ops.relu(x * ops.cast(s, x.dtype))

        def grad(*upstream_args, upstream=None):
            g = ops.cast(upstream_args[0] if upstream is None else upstream, stats)
            xs = ops.cast(x, stats)
            winners = xs * s > 0  # where relu passes
            # d s / d(alpha * p + beta) = K * (1 - tanh**2) = K - s**2 / K; the sum is that of the
            # upstream gradient of the winners times x.
            d_pre = masked_product_sums(winners, g, xs, axes) * (scale_bound - s * s / scale_bound)
            d_alpha = ops.sum(d_pre * p)
            d_beta = ops.sum(d_pre)
            # A select, not `g * winners * s`: XLA:CPU hands a large reduction of its input (a
            # convolution's bias gradient) to its fast library only if that input does not end in
            # a product; the count's `dx` is only this term (12% of a small CNN's step).
            dx = ops.where(winners, g * s, 0.0)
            dp = None
            if competition != "count":
                zs = xs if source is None else ops.cast(source, stats)
                dp = (d_pre * alpha) * _share_derivative(zs, p, derivative_scales, competition)
            if source is None:
                dx = dx if dp is None else dx + dp
                return ops.cast(dx, x.dtype), d_alpha, d_beta
            d_source = ops.zeros_like(source) if dp is None else ops.cast(dp, source.dtype)
            return ops.cast(dx, x.dtype), d_source, d_alpha, d_beta

        return out, grad

    return carelu


# ----------------------------------------------------------------------------------------------
# The public functions: check, then compute


def _checked_inputs(x, source, axis):
    """`x` (and `source`) as floating tensors of one shape and dtype, and the normalised axes."""
    x = floating_tensor(x)
    axes = reduction_axes(len(x.shape), axis)
    if source is not None:
        source = ops.convert_to_tensor(source)
        check_same_shape(x.shape, source.shape)
        source = ops.cast(source, x.dtype)
    return x, source, axes


def _measurable(x):
    """`x` as a floating tensor: the statistics alone may be measured on integers (in float32)."""
    x = ops.convert_to_tensor(x)
    return x if _is_float(x.dtype) else ops.cast(x, "float32")


def _weights(alpha, beta, dtype):
    """`alpha` and `beta` as tensors in the statistics dtype of inputs of `dtype`.

    A Python number converts straight to that dtype: through a float32 tensor first (what
    `convert_to_tensor` without a dtype gives), `beta = relu_identity_beta(K)` would miss the exact
    identity point of `_scale` in float64.
    """
    stats = statistics_dtype(dtype)

    def convert(value):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return ops.convert_to_tensor(value, dtype=stats)
        return ops.cast(ops.convert_to_tensor(value), stats)

    return convert(alpha), convert(beta)


def competition_share(
    x: Tensor, competition: str = "energy", eps: float = 1e-6, axis: int | Sequence[int] | None = None
) -> Tensor:
    """The share `p` of each slice won by the positive entries (keepdims, statistics dtype).

    Useful to monitor whether the competition is degenerate (`p` stuck near 0.5 after BatchNorm).
    Integer inputs are measured in float32.

    Examples:
        >>> import numpy as np
        >>> import keras
        >>> x = np.array([[-1.0, 0.5, 2.0]], dtype="float32")  # p = 4.25 / 5.25
        >>> np.round(keras.ops.convert_to_numpy(competition_share(x)), 4).tolist()
        [[0.8095]]
    """
    check_competition_args(competition, eps)
    x = _measurable(x)
    axes = reduction_axes(len(x.shape), axis)
    return _share_and_derivative_scales(ops.cast(x, statistics_dtype(x.dtype)), competition, eps, axes)[0]


def competitive_scale(
    x: Tensor,
    alpha: Tensor | float,
    beta: Tensor | float,
    competition: str = "energy",
    scale_bound: float = 2.0,
    eps: float = 1e-6,
    axis: int | Sequence[int] | None = None,
) -> Tensor:
    """The per-slice scale `s = K * tanh(alpha * p + beta)` (keepdims, statistics dtype).

    `K` is `scale_bound` (> 0); the other arguments are those of `competitive_relu`. Integer inputs
    are measured in float32.

    Examples:
        >>> import numpy as np
        >>> import keras
        >>> x = np.array([[-1.0, 0.5, 2.0]], dtype="float32")  # s = 2 tanh(2 p - 1), p = 4.25 / 5.25
        >>> np.round(keras.ops.convert_to_numpy(competitive_scale(x, 2.0, -1.0)), 4).tolist()
        [[1.101]]
    """
    check_competition_args(competition, eps, scale_bound)
    x = _measurable(x)
    axes = reduction_axes(len(x.shape), axis)
    alpha, beta = _weights(alpha, beta, x.dtype)
    options = {"competition": competition, "scale_bound": scale_bound, "eps": eps, "axes": axes}
    return unchecked_statistics(x, alpha, beta, **options)[1]


def competitive_relu(
    x: Tensor,
    alpha: Tensor | float,
    beta: Tensor | float,
    source: Tensor | None = None,
    *,
    competition: str = "energy",
    scale_bound: float = 2.0,
    eps: float = 1e-6,
    axis: int | Sequence[int] | None = None,
) -> Tensor:
    """CAReLU(x) = relu(s * x), s = K * tanh(alpha * p + beta), p measured per slice, K = scale_bound.

    ```
    p_energy = sum_A(relu(z)**2) / (sum_A(z**2) + eps)
    p_l1     = sum_A(relu(z))    / (sum_A(|z|) + eps)
    p_count  = mean_A(z > 0)                    # no gradient
    ```

    `z` is `source` if given (the BN-aware variant: measure on the tensor before BatchNorm, scale
    `x`), else `x`. `A` is `axis` (default: every non-batch axis). Statistics are computed in
    float32 for half-precision inputs. The gradient is hand-written: the backward pass keeps only
    the inputs and per-slice scalars, never an intermediate of the input's size.

    Args:
        x: floating tensor of rank >= 2.
        alpha: scalar multiplying `p` (tensor or float).
        beta: scalar offset inside the tanh (tensor or float).
        source: optional tensor of `x`'s shape on which `p` is measured.
        competition: "energy", "l1" or "count".
        scale_bound: `K`, the bound of `|s|`, > 0.
        eps: added to the denominator of `p`, > 0.
        axis: the reduction axes; never the batch axis.

    Returns:
        A tensor of `x`'s shape and dtype.

    Examples:
        >>> import numpy as np
        >>> import keras
        >>> x = np.array([[-1.0, 0.5, 2.0]], dtype="float32")
        >>> np.round(keras.ops.convert_to_numpy(competitive_relu(x, 2.0, -1.0)), 4).tolist()
        [[0.0, 0.5505, 2.2019]]
    """
    check_competition_args(competition, eps, scale_bound)
    x, source, axes = _checked_inputs(x, source, axis)
    alpha, beta = _weights(alpha, beta, x.dtype)
    options = {"competition": competition, "scale_bound": scale_bound, "eps": eps, "axes": axes}
    return unchecked_competitive_relu(x, alpha, beta, source, **options)
