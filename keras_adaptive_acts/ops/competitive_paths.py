"""How CompetitiveReLU's per-slice sums are laid out on each backend: the one place that chooses.

Every choice here computes the same sums, in another order of additions (float32 rounding); the
figures behind them are in docs/benchmarks.md ("CompetitiveReLU: verdict against the targets").

- TensorFlow and JAX where every device they see is a CPU. Where the slices are the trailing axes,
  each sum's term (`z**2`, `g * z`, ...) is viewed as (rows, slice size) and multiplied by a column
  of ones. XLA:CPU writes such a term out in full before reducing it either way (it splits any
  reduced axis longer than 32 into windows, and a reduction it leaves whole runs one add after
  another), and reads it back faster as a matrix-vector product: on the op alone, 0.8x the time
  of the plain reduction on JAX, and on TensorFlow as part of the round that brought the op to 0.87x
  to 0.90x. Only the term is viewed so: the op's input, output and gradient keep their own shape,
  so that XLA still fuses them with the layers around them (a convolution's bias, a max-pool);
  viewing those flat as well made the small CNN's training step 1.32x ReLU's instead of 1.15x.
- Elsewhere (GPUs and TPUs, whose float32 products may round their inputs to TF32 or bfloat16 and
  whose XLA fuses the term into the reduction anyway; PyTorch): reductions over the slice's own
  axes, as written.
"""

from __future__ import annotations

import functools
import math

import keras
from keras import backend, ops

__all__ = ["masked_product_sums", "sums_are_products", "sums_over_slices"]


def sums_over_slices(term, axes):
    """The sum of `term` over `axes` (keepdims), in the form this backend and device run fastest.

    `axes` are normalised reduction axes (sorted, positive, never the batch axis 0).
    """
    view = _flat_view(term.shape, axes) if _sums_as_products() else None
    if view is None:  # sums_are_products(term.shape, axes) is False exactly here
        return ops.sum(term, axis=axes, keepdims=True)
    slice_size, keepdims_shape = view
    rows = ops.reshape(term, (-1, slice_size))  # copies nothing
    return ops.reshape(ops.matmul(rows, ops.ones((slice_size, 1), term.dtype)), keepdims_shape)


def masked_product_sums(mask, first, second, axes):
    """The sum over `axes` (keepdims) of `first * second` where `mask` holds, 0 elsewhere.

    Outside the mask either factor may be infinite (CompetitiveReLU's upstream gradient, or its
    input of -inf, where an entry lost): it is dropped, and never multiplies a 0 into NaN.

    The term is written as this backend reads it back fastest. Where the sums are reductions it
    ends in a select: XLA:CPU hands a large reduction to its fast library only if its input does
    not end in a product. Where they are products with ones it stays a product, of the factors
    each selected: with the select last, the count's per-sample CNN step measured 1.13x to 1.15x
    ReLU's instead of 1.08x.
    """
    if sums_are_products(first.shape, axes):
        return sums_over_slices(ops.where(mask, first, 0.0) * ops.where(mask, second, 0.0), axes)
    return sums_over_slices(ops.where(mask, first * second, 0.0), axes)


def sums_are_products(shape, axes) -> bool:
    """Whether `sums_over_slices` sums a term of `shape` over `axes` as a product with ones.

    Asked where the best way to write a term depends on it: on XLA:CPU a reduction's term should
    end in a select rather than a product (see `_shrunk_share` in `competitive.py` and
    `masked_product_sums`).
    """
    return _sums_as_products() and _flat_view(shape, axes) is not None


def _flat_view(shape, axes):
    """`(slice size, keepdims shape)` of the (rows, slice size) view, or None where there is none.

    There is one where `axes` are the trailing axes and every axis but the first (the batch, whose
    size may be unknown) has a static size. Empty tensors with an axis of size 0 besides the batch
    are summed as they are: a reshape cannot infer a size of -1 beside a size of 0.
    """
    kept = len(shape) - len(axes)
    if axes != tuple(range(kept, len(shape))) or any(size is None for size in shape[1:]):
        return None
    if 0 in shape[1:]:
        return None
    return math.prod(shape[kept:]), (-1, *shape[1:kept], *(1,) * len(axes))


def _sums_as_products() -> bool:
    """Whether the sums are products with ones: XLA's backends, where they see only CPUs."""
    return backend.backend() in ("tensorflow", "jax") and _only_cpus_visible()


@functools.cache
def _only_cpus_visible() -> bool:
    # Keras lists the accelerators if there are any, else the CPUs. The devices are fixed once the
    # backend's runtime has started, which running any op does: asked once per process.
    return all(device.startswith("cpu") for device in keras.distribution.list_devices())
