"""Draws docs/assets/noisy-activations.png from the package's own noisy layers.

Run from anywhere (KERAS_BACKEND=tensorflow is the default backend):

    python docs/scripts/plot_noisy_activations.py

Three panels, each drawn from one layer of `keras_adaptive_acts`:

(a) NoisyHardTanh with its defaults (output noise, normal, alpha = 1.15, c = 0.5) and p fixed at 1;
(b) NoisyHardSigmoid with its defaults (output noise, half-normal, alpha = 1.1, c = 0.15), p = 1;
(c) RReLU with its defaults (lower = 1/8, upper = 1/3).

Each panel shows the inference output (`training=False`), the band between the 5% and 95% quantiles
of DRAWS training-mode outputs at every x, and their mean. Panels (a) and (b) also show the paper's
base function h(x). The layers compute every value; nothing of the formulas is re-implemented here.
The hard functions h are taken from `keras_adaptive_acts.ops`.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import keras
import matplotlib.pyplot as plt
import numpy as np

import keras_adaptive_acts as kaa

OUTPUT = Path(__file__).resolve().parent.parent / "assets" / "noisy-activations.png"
DRAWS = 2000
POINTS = 321
QUANTILES = (5.0, 95.0)
P_FIXED = 1.0


def responses(layer: keras.layers.Layer, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The inference curve of `layer` over `x`, and DRAWS training-mode curves (one per row).

    Each grid point is a unit of its own (the last axis), so `p` has one entry per point; with a
    constant `p_initializer` every point sees the same `p`.
    """
    grid = x[None, :].astype("float32")
    inference = np.asarray(layer(grid, training=False))[0]
    draws = np.asarray(layer(np.repeat(grid, DRAWS, axis=0), training=True))
    return inference, draws


def draw_panel(ax, x, inference, draws, *, reference=None, reference_label=None, title=""):
    low, high = np.percentile(draws, QUANTILES, axis=0)
    ax.fill_between(
        x, low, high, color="tab:orange", alpha=0.35, linewidth=0, label="training: 5-95% of 2000 draws"
    )
    if reference is not None:
        ax.plot(x, reference, color="0.45", linestyle="--", linewidth=1.4, label=reference_label)
    ax.plot(x, inference, color="tab:blue", linewidth=1.9, label="inference (training=False)")
    every = max(1, len(x) // 24)
    ax.plot(
        x[::every],
        draws.mean(axis=0)[::every],
        "o",
        color="tab:red",
        markersize=3,
        label="training: mean of the draws",
    )
    ax.set_xlim(x[0], x[-1])
    ax.set_xlabel("input x")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7.5, loc="upper left")


def zoom_inset(ax, x, inference, draws, x_range, bounds):
    """The band minus the inference curve over `x_range`, in an inset of `ax` at `bounds` (axes fraction).

    Subtracting the inference curve magnifies a band too narrow to see at the panel's scale.
    """
    keep = (x >= x_range[0]) & (x <= x_range[1])
    low, high = np.percentile(draws[:, keep], QUANTILES, axis=0)
    inset = ax.inset_axes(bounds)
    inset.fill_between(x[keep], low - inference[keep], high - inference[keep], color="tab:orange", alpha=0.35)
    inset.axhline(0.0, color="tab:blue", linewidth=1.5)
    inset.set_xlim(*x_range)
    inset.tick_params(labelsize=7)
    inset.grid(alpha=0.3)
    inset.set_title("training minus inference", fontsize=7.5)


def main() -> None:
    fixed_p = keras.initializers.Constant(P_FIXED)
    fig, axes = plt.subplots(1, 3, figsize=(13.5, 4.4))

    x = np.linspace(-4.0, 4.0, POINTS, dtype="float32")
    inference, draws = responses(kaa.NoisyHardTanh(p_initializer=fixed_p, seed=1), x)
    draw_panel(
        axes[0],
        x,
        inference,
        draws,
        reference=np.asarray(kaa.ops.hard_tanh(x)),
        reference_label="h(x) = clip(x, -1, 1)",
        title="(a) NoisyHardTanh, output noise (NAN)\ndefaults alpha=1.15, c=0.5; p fixed at 1",
    )
    axes[0].set_ylabel("output")

    x = np.linspace(-8.0, 8.0, POINTS, dtype="float32")
    inference, draws = responses(kaa.NoisyHardSigmoid(p_initializer=fixed_p, seed=2), x)
    draw_panel(
        axes[1],
        x,
        inference,
        draws,
        reference=np.asarray(kaa.ops.hard_sigmoid(x)),
        reference_label="h(x) = clip(0.25 x + 0.5, 0, 1)",
        title="(b) NoisyHardSigmoid, output noise (NAH)\ndefaults alpha=1.1, c=0.15; p fixed at 1",
    )
    # With the default c = 0.15 the band is narrow: magnify the right saturated side.
    zoom_inset(axes[1], x, inference, draws, (2.0, 8.0), [0.6, 0.12, 0.37, 0.33])

    x = np.linspace(-4.0, 4.0, POINTS, dtype="float32")
    inference, draws = responses(kaa.RReLU(seed=3), x)
    draw_panel(
        axes[2],
        x,
        inference,
        draws,
        reference=np.asarray(keras.ops.relu(x)),
        reference_label="ReLU",
        title="(c) RReLU, defaults\nslope ~ U(1/8, 1/3) where x < 0",
    )

    fig.tight_layout()
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUTPUT, dpi=100)
    print(f"wrote {OUTPUT} ({OUTPUT.stat().st_size / 1024:.0f} kB)")


if __name__ == "__main__":
    main()
