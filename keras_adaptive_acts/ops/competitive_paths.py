"""How CompetitiveReLU's per-slice sums are laid out on each backend: the one place that chooses.

Every choice here computes the same sums, in another order of additions (float32 rounding); the
figures behind them are in docs/benchmarks.md ("CompetitiveReLU: verdict against the targets").

- TensorFlow. Slices that are the trailing axes are reduced over a (rows, slice size) view: XLA
  compiles single-axis reductions far better than multi-axis ones there (about 1.6x per step on
  CPU). Where every device TensorFlow sees is a CPU, each sum over that view is also a product with
  a column of ones: XLA:CPU writes a reduction's elementwise term (`z**2`, `g * z`) out in full
  either way, and reads it back faster as a matrix-vector product than as its reduce-window and
  reduce (1.9x against 2.7x a plain sum of the input in the reductions table). Not on a GPU or TPU,
  whose float32 products may round their inputs (TF32, bfloat16 passes) and whose XLA fuses the
  term into the reduction anyway.
- JAX and PyTorch: reductions over the slice's own axes, as written (JAX's XLA fuses the term into
  the reduction; a flat view was slower there).
"""

from __future__ import annotations

import functools

import keras
from keras import backend, ops

__all__ = ["sums_over_slices", "uses_flat_slices"]


def uses_flat_slices() -> bool:
    """Whether trailing-axis slices are reduced over a (rows, slice size) view on this backend."""
    return backend.backend() == "tensorflow"


def sums_over_slices(term, axes):
    """The sum of `term` over `axes` (keepdims), in the form this backend and device run fastest."""
    is_flat_view = axes == (1,) and len(term.shape) == 2 and term.shape[1] is not None
    if is_flat_view and backend.backend() == "tensorflow" and _only_cpus_visible():
        return ops.matmul(term, ops.ones((term.shape[1], 1), term.dtype))
    return ops.sum(term, axis=axes, keepdims=True)


@functools.cache
def _only_cpus_visible() -> bool:
    # Keras lists the accelerators if there are any, else the CPUs. The devices are fixed once the
    # backend's runtime has started, which running any op does: asked once per process.
    return all(device.startswith("cpu") for device in keras.distribution.list_devices())
