"""A trainable parameter spread over a large tensor so that XLA sums its gradient fast.

A parameter that broadcasts against an activation's input (a per-unit `p`, a per-channel slope, a
scalar frequency) gets a gradient that is a sum over the broadcast axes. XLA:CPU hands such a sum
to its fast reduction library only if the sum's term ends in a select, not in a product or a
convert; a broadcast product's gradient ends in a product, and XLA then sums it in a loop of its
own (a reduce-window), several times slower. `parameter_where_nonzero` puts the select in.
"""

from __future__ import annotations

from keras import ops

__all__ = ["parameter_where_nonzero"]


def parameter_where_nonzero(parameter, factor):
    """`where(factor != 0, parameter, 0)`: `parameter` at each entry of `factor`, 0 where `factor` is 0.

    For an expression in which the parameter's every use at an entry vanishes where `factor` is 0
    (it multiplies `factor`, or the entry's result is 0 there whatever the parameter): the
    expression keeps its values wherever the parameter is finite, and the parameter's gradient
    becomes the sum of `where(factor != 0, upstream, 0)`, a select (see the module docstring).
    A Python number is returned as it is: it has no gradient to sum.
    """
    if isinstance(parameter, (int, float)):
        return parameter
    # A zero of the parameter's own dtype: PyTorch promotes a 0-d float16 parameter and the 0-d
    # float32 tensor Keras makes of a literal 0.0 to float32, and the layer's output with it.
    return ops.where(factor != 0, parameter, ops.zeros_like(parameter))
