"""A model with one of every layer of the package, shared by the export, backend and distribution tests."""

from __future__ import annotations

import os

import keras
import numpy as np

import keras_adaptive_acts as kaa
from keras_adaptive_acts.regularizers import ActivationL1

STEPS, FEATURES, CLASSES = 6, 4, 3


def every_layer(deterministic: bool = False) -> list[keras.layers.Layer]:
    """One instance of every layer of the package, in an order that accepts (batch, STEPS, FEATURES).

    `deterministic` turns each layer's noise off by its own arguments: `c=0` multiplies the noise of
    every noisy unit by 0 (it is still drawn: the streams advance) and `lower == upper` fixes RReLU's
    slope.
    """
    c = {"c": 0.0} if deterministic else {}
    cell = {"gate_c": 0.0, "activation_c": 0.0} if deterministic else {}
    slope = {"lower": 0.2, "upper": 0.2} if deterministic else {}
    return [
        keras.layers.Dense(8),
        kaa.RestrictedLayerNormalization(),
        kaa.CompetitiveReLU(axis=-1),
        kaa.ZerothBias(max_len=STEPS),
        kaa.SparsifiedMLP(hidden_units=8, max_len=STEPS),
        kaa.MixedActivation(t=0.5),
        kaa.JSquaredReLU(),
        kaa.LiSHT(),
        kaa.Snake(),
        kaa.TLU(affine=True),
        kaa.ActivitySparsity(ActivationL1(0.01)),
        kaa.RReLU(seed=1, **slope),
        keras.layers.RNN(kaa.NoisyLSTMCell(8, seed=2, **cell), return_sequences=True),
        keras.layers.RNN(kaa.NoisyGRUCell(8, seed=3, **cell)),
        kaa.NoisyHardTanh(seed=4, **c),
        keras.layers.Dense(8),
        kaa.NoisyHardSigmoid(seed=5, **c),
        keras.layers.Dense(CLASSES, name="scores"),
    ]


def functional_model(**kwargs) -> keras.Model:
    """`every_layer(**kwargs)` as a Functional model with the input named "sequence"."""
    inputs = keras.Input((STEPS, FEATURES), name="sequence")
    outputs = inputs
    for layer in every_layer(**kwargs):
        outputs = layer(outputs)
    return keras.Model(inputs, outputs, name="every_layer")


def sample(rows: int = 5, scale: float = 1.0, seed: int = 0) -> np.ndarray:
    """Standard normal inputs of shape (rows, STEPS, FEATURES), float32."""
    return (scale * np.random.default_rng(seed).standard_normal((rows, STEPS, FEATURES))).astype("float32")


def conversion_cases() -> dict[str, keras.Sequential]:
    """Every layer of the package alone between two Dense layers, by the name a converter table uses.

    The rows of the serving guide's conversion tables (LiteRT, ONNX): the recurrent layers also
    unrolled, as converters treat the two forms apart. Input "sequence", output "scores".
    """

    def name_of(layer):
        if isinstance(layer, keras.layers.RNN):
            return f"{type(layer.cell).__name__} (RNN, unroll={layer.unroll})"
        return type(layer).__name__

    layers = [layer for layer in every_layer() if not isinstance(layer, keras.layers.Dense)]
    layers += [
        keras.layers.RNN(kaa.NoisyLSTMCell(8), unroll=True),
        keras.layers.RNN(kaa.NoisyGRUCell(8), unroll=True),
    ]
    return {
        name_of(layer): keras.Sequential(
            [
                keras.Input((STEPS, FEATURES), name="sequence"),
                keras.layers.Dense(8),
                layer,
                keras.layers.Dense(3, name="scores"),
            ]
        )
        for layer in layers
    }


def subclassed_model() -> keras.Model:
    """A built subclassed model (one Dense, input (batch, 3)): what the exporters must refuse."""

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    model = Subclassed()
    model(np.zeros((1, 3), "float32"))
    return model


def small_model() -> keras.Model:
    """A small Functional model with named input ("features") and output ("logits"): an export's unit."""
    inputs = keras.Input((4,), name="features")
    return keras.Model(inputs, keras.layers.Dense(2, name="logits")(kaa.CompetitiveReLU()(inputs)))


def subprocess_env() -> dict[str, str]:
    """The environment of a fresh process the export tests start: TensorFlow, its log lines off."""
    return {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
