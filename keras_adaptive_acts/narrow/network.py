"""`ReLUNetwork`: the one-hidden-layer ReLU network the learner fits, evaluated in NumPy."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

__all__ = ["ReLUNetwork"]

# Rows evaluated at once by `ReLUNetwork.__call__`: bounds its working memory to O(batch * width).
EVALUATION_BATCH = 65536


@dataclasses.dataclass(frozen=True)
class ReLUNetwork:
    """`f(x) = sum_j output_weights[j] * relu(<hidden_weights[j], x>) + bias`, in NumPy.

    Args:
        hidden_weights: shape `(width, input_dim)`, one row per hidden unit.
        output_weights: shape `(width,)`.
        bias: the output bias.

    Examples:

    >>> net = ReLUNetwork(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([2.0, -1.0]))
    >>> net(np.array([[1.0, 3.0], [-1.0, -1.0]])).tolist()
    [-1.0, 0.0]
    """

    hidden_weights: np.ndarray
    output_weights: np.ndarray
    bias: float = 0.0

    def __post_init__(self) -> None:
        hidden = np.array(self.hidden_weights, dtype=np.float64)
        outputs = np.array(self.output_weights, dtype=np.float64).reshape(-1)
        if hidden.ndim != 2 or hidden.shape[0] != outputs.shape[0]:
            raise ValueError(
                "`hidden_weights` must have shape (width, input_dim) and `output_weights` shape (width,). "
                f"Received: hidden_weights.shape={hidden.shape}, output_weights.shape={outputs.shape}"
            )
        if not (np.all(np.isfinite(hidden)) and np.all(np.isfinite(outputs)) and math.isfinite(self.bias)):
            raise ValueError("A `ReLUNetwork` needs finite weights and bias.")
        object.__setattr__(self, "hidden_weights", hidden)
        object.__setattr__(self, "output_weights", outputs)
        object.__setattr__(self, "bias", float(self.bias))

    @property
    def width(self) -> int:
        return self.hidden_weights.shape[0]

    @property
    def input_dim(self) -> int:
        return self.hidden_weights.shape[1]

    def __call__(self, inputs: np.ndarray) -> np.ndarray:
        """Evaluates the network on `inputs` of shape `(n, input_dim)`, in batches; returns shape `(n,)`."""
        if np.ndim(inputs) != 2 or np.shape(inputs)[1] != self.input_dim:
            raise ValueError(
                f"Expected inputs of shape (n, {self.input_dim}). Received: inputs.shape={np.shape(inputs)}"
            )
        outputs = np.empty(len(inputs))
        for start in range(0, len(inputs), EVALUATION_BATCH):
            rows = np.asarray(inputs[start : start + EVALUATION_BATCH], dtype=np.float64)
            outputs[start : start + len(rows)] = (
                np.maximum(rows @ self.hidden_weights.T, 0.0) @ self.output_weights
            )
        return outputs + self.bias
