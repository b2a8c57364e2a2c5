"""Draws docs/assets/competitive-relu.png from the package's own CompetitiveReLU.

Run from anywhere (KERAS_BACKEND=tensorflow is the default backend):

    python docs/scripts/plot_competitive_relu.py

Panel (a): the scale s as a function of the share p, for a few (alpha, beta) with K=2.
Panel (b): the response relu(s * z) of one entry z under the "competition" preset, with p held
fixed through the layer's second input (the tensor p is measured on).
Every value is computed by `keras_adaptive_acts`; nothing of the formula is re-implemented here.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

import keras_adaptive_acts as kaa

OUTPUT = Path(__file__).resolve().parent.parent / "assets" / "competitive-relu.png"
K = 2.0

# (alpha, beta, label, line style) for panel (a)
SETTINGS = [
    (0.0, float(np.arctanh(1.0 / K)), "alpha=0, beta=atanh(1/K)  (init='relu')", "-"),
    (2.0, -1.0, "alpha=2, beta=-1  (init='competition')", "-"),
    (4.0, -2.0, "alpha=4, beta=-2", "--"),
    (-2.0, 1.0, "alpha=-2, beta=1", ":"),
]


def shares_and_inputs(n: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Rows of n entries, row k with k positive entries: the count share of row k is exactly k/n."""
    x = -np.ones((n + 1, n), dtype="float32")
    for k in range(n + 1):
        x[k, :k] = 1.0
    p = np.asarray(kaa.ops.competition_share(x, competition="count"))[:, 0]
    return p, x


def scale_panel(ax) -> None:
    p, x = shares_and_inputs()
    for alpha, beta, label, style in SETTINGS:
        # s depends on p only, so any measure gives the same curve; "count" makes p exact.
        s = np.asarray(kaa.ops.competitive_scale(x, alpha, beta, competition="count", scale_bound=K))[:, 0]
        ax.plot(p, s, style, label=label, linewidth=1.8)
    ax.axhline(0.0, color="0.6", linewidth=0.8)
    ax.axhline(K, color="0.8", linewidth=0.8, linestyle=":")
    ax.axhline(-K, color="0.8", linewidth=0.8, linestyle=":")
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(-K - 0.2, K + 0.2)
    ax.set_xlabel("share p won by the positive entries")
    ax.set_ylabel("scale s = K tanh(alpha p + beta)")
    ax.set_title("(a) scale s against p, K = 2")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)


def response_panel(ax) -> None:
    z = np.linspace(-3.0, 3.0, 241, dtype="float32")
    layer = kaa.CompetitiveReLU(init="competition")
    # The entry z sits in a slice of two; p is measured on `source`, so it stays fixed while z moves.
    inputs = np.stack([z, np.zeros_like(z)], axis=1)
    ax.plot(z, np.maximum(z, 0.0), color="0.55", linestyle="--", linewidth=1.5, label="ReLU")
    for p in (0.2, 0.5, 0.8):
        row = np.array([np.sqrt(p), -np.sqrt(1.0 - p)], dtype="float32")  # energy share p
        source = np.tile(row, (len(z), 1))
        out = np.asarray(layer([inputs, source]))[:, 0]
        s = float(np.asarray(kaa.ops.competitive_scale(row[None], 2.0, -1.0, scale_bound=K))[0, 0])
        s = round(s, 2) + 0.0  # no "-0.00" in the legend
        ax.plot(z, out, linewidth=1.8, zorder=3 if p == 0.5 else 2, label=f"p = {p:.1f}  (s = {s:+.2f})")
    ax.set_xlim(-3.0, 3.0)
    ax.set_xlabel("entry z")
    ax.set_ylabel("output relu(s z)")
    ax.set_title("(b) response, init='competition'")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)


def main() -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(10.0, 4.6))
    scale_panel(left)
    response_panel(right)
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUTPUT, dpi=100)
    print(f"wrote {OUTPUT} ({OUTPUT.stat().st_size / 1024:.0f} kB)")


if __name__ == "__main__":
    main()
