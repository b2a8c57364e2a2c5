"""Draws docs/assets/j-squared-relu.png from the package's own layers.

Run from anywhere (the TensorFlow backend is set here; the derivatives use its GradientTape):

    python docs/scripts/plot_j_squared_relu.py

Two panels over x in [-2, 2]:

(a) the outputs of `JSquaredReLU`, of ReLU, and of `MixedActivation("relu", "j_squared_relu")` at
    t = 0.25, 0.5 and 0.75 (the blend `ActivationMixing` walks through when fine-tuning);
(b) their derivatives, obtained by differentiating the layers (autodiff through the package), not
    from the formulas.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import matplotlib

matplotlib.use("Agg")

import keras
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf

import keras_adaptive_acts as kaa

OUTPUT = Path(__file__).resolve().parent.parent / "assets" / "j-squared-relu.png"
POINTS = 401
MIX = (0.25, 0.5, 0.75)


def value_and_derivative(layer: keras.layers.Layer, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`layer(x)` and its elementwise derivative, by automatic differentiation of the layer."""
    inputs = tf.constant(x[None, :])
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        outputs = layer(inputs)
    derivative = tape.gradient(outputs, inputs)  # elementwise layer: d sum(out) / dx_i = f'(x_i)
    return np.asarray(outputs)[0], np.asarray(derivative)[0]


def main() -> None:
    x = np.linspace(-2.0, 2.0, POINTS, dtype="float32")
    curves = {"ReLU": value_and_derivative(keras.layers.ReLU(), x)}
    for t in MIX:
        layer = kaa.MixedActivation("relu", "j_squared_relu", t=t)
        curves[f"MixedActivation, t = {t:g}"] = value_and_derivative(layer, x)
    curves["J-SquaredReLU"] = value_and_derivative(kaa.JSquaredReLU(), x)

    styles = {"ReLU": {"color": "0.45", "linestyle": "--", "linewidth": 1.6}}
    blues = plt.cm.Blues(np.linspace(0.35, 0.7, len(MIX)))
    for t, color in zip(MIX, blues, strict=True):
        styles[f"MixedActivation, t = {t:g}"] = {"color": color, "linewidth": 1.2}
    styles["J-SquaredReLU"] = {"color": "tab:red", "linewidth": 2.2}

    fig, (left, right) = plt.subplots(1, 2, figsize=(10.5, 4.0))
    for name, (value, derivative) in curves.items():
        left.plot(x, value, label=name, **styles[name])
        right.plot(x, derivative, label=name, **styles[name])
    left.plot([-1, 0, 1, 2], [0, 0, 1.5, 4], "o", color="tab:red", markersize=4, label="check values")
    left.set_title("(a) output: relu(x) + 0.5 relu(x)$^2$", fontsize=10)
    left.set_ylabel("output")
    right.set_title("(b) derivative (autodiff through the layers): (x + 1) 1[x >= 0]", fontsize=10)
    right.set_ylabel("derivative")
    for ax in (left, right):
        ax.set_xlabel("input x")
        ax.set_xlim(x[0], x[-1])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUTPUT, dpi=90)
    print(f"wrote {OUTPUT} ({OUTPUT.stat().st_size / 1024:.0f} kB)")


if __name__ == "__main__":
    main()
