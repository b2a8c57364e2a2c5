"""Backend-agnostic math of the package's activations (pure functions on `keras.ops`)."""

from keras_adaptive_acts.ops.competitive import (
    competition_share,
    competitive_relu,
    competitive_scale,
)

__all__ = ["competition_share", "competitive_relu", "competitive_scale"]
