"""The derivative of an elementwise function, entry by entry, through the backend's own autodiff.

`keras.ops` has no gradient operation: each backend differentiates its own way (a TensorFlow
`GradientTape`, `jax.vjp`, `torch.autograd`). This module is the one place that knows the three,
so that measuring derivative sparsity reads the same derivative that training's backward pass
uses (custom gradients, the derivative a backend picks at a kink such as ReLU's at 0, underflow
in the compute dtype), rather than a formula written a second time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
from keras import ops

__all__ = ["elementwise_derivative"]


def elementwise_derivative(function: Callable[[Any], Any], inputs: Any) -> Any:
    """`d function(inputs)[i] / d inputs[i]` for every entry `i`, for an elementwise `function`.

    For an elementwise function the Jacobian is diagonal, so its diagonal is the gradient of
    `sum(function(inputs))`: one backward pass. For a function that mixes entries (softmax, the
    per-slice competition of `CompetitiveReLU`) that gradient is not the diagonal; callers must
    not pass one. Variable updates inside `function` (a noise layer advancing its seed) run as
    they would in a forward pass, except on JAX, where they are discarded (a traced function
    cannot write a variable); callers that must keep the model unchanged restore its state.

    Returns a tensor of the shape and dtype of `inputs`; where `function` does not depend on an
    entry at all (no gradient path), the derivative is 0.
    """
    inputs = ops.convert_to_tensor(inputs)
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(inputs)
            outputs = function(inputs)
        derivative = tape.gradient(outputs, inputs)  # the gradient of the sum of the outputs
        return ops.zeros_like(inputs) if derivative is None else derivative
    if backend == "jax":
        import jax

        def stateless(values):
            # Inside a jax transformation a variable cannot be written: the scope records the
            # writes (a noise layer's seed) and drops them.
            with keras.StatelessScope():
                return function(values)

        outputs, pullback = jax.vjp(stateless, inputs)
        return pullback(ops.ones_like(outputs))[0]
    if backend == "torch":
        import torch

        watched = inputs.detach().requires_grad_(True)
        with torch.enable_grad():
            outputs = function(watched)
        if not outputs.requires_grad:  # a function that ignores its input
            return ops.zeros_like(inputs)
        return torch.autograd.grad(outputs.sum(), watched)[0]
    raise ValueError(
        f"Derivatives are computed with the TensorFlow, JAX or PyTorch backend. Current backend: {backend!r}"
    )
