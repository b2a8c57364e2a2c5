"""Backend-agnostic math of the package's activations (pure functions on `keras.ops`)."""

from keras_adaptive_acts.ops.addons import lisht, snake, tlu
from keras_adaptive_acts.ops.competitive import competition_share, competitive_relu, competitive_scale
from keras_adaptive_acts.ops.noisy import hard_sigmoid, hard_tanh, noisy_input, noisy_output, rrelu
from keras_adaptive_acts.ops.sparsity import (
    hoyer_square_penalty,
    j_squared_relu,
    kl_sparsity_penalty,
    l1_penalty,
    zero_fraction,
)

__all__ = [
    "competition_share",
    "competitive_relu",
    "competitive_scale",
    "hard_sigmoid",
    "hard_tanh",
    "hoyer_square_penalty",
    "j_squared_relu",
    "kl_sparsity_penalty",
    "l1_penalty",
    "lisht",
    "noisy_input",
    "noisy_output",
    "rrelu",
    "snake",
    "tlu",
    "zero_fraction",
]
