"""Backend-agnostic math of the package's activations (pure functions on `keras.ops`)."""

from keras_adaptive_acts.ops.competitive import competition_share, competitive_relu, competitive_scale
from keras_adaptive_acts.ops.noisy import hard_sigmoid, hard_tanh, noisy_input, noisy_output, rrelu

__all__ = [
    "competition_share",
    "competitive_relu",
    "competitive_scale",
    "hard_sigmoid",
    "hard_tanh",
    "noisy_input",
    "noisy_output",
    "rrelu",
]
