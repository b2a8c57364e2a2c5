"""The package's public layers, one per module."""

from keras_adaptive_acts.layers.competitive_relu import CompetitiveReLU

__all__ = ["CompetitiveReLU"]
