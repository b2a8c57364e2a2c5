"""Speed of Snake and the affine TLU against ReLU and against the least their formulas can cost.

One measurement on a (64, 32, 32, 64) float32 tensor drawn as `N(0, 1)`: the forward pass and the
gradients with respect to the input and the layer's trainable weights, for a fixed upstream
gradient (the training step of `noisy_speed.py`). TensorFlow backend, every candidate compiled
alone with `tf.function(jit_compile=True)`. Rows:

- `ReLU`: Keras' layer, the baseline of every ratio.
- `Snake()`, and its floor `x + sin(f * x)`: one sine forward, its cosine backward, and the sum of
  the scalar frequency's gradient, with none of Snake's edges (frequency 0, an overflowing phase,
  an infinite input). Snake's own `x + sin(f * x)**2 / f` needs at least that; on this CPU the sine
  and cosine, not memory, set the time.
- `TLU(affine=True)` (a slope and a threshold per channel), and the plain formula a user would
  write, `max(x, a * x + t)`, with none of TLU's handling of an infinite input. Not a floor: XLA:CPU
  sums the slope's gradient from that product in a slow loop of its own, where TLU sums it from a
  select (`keras_adaptive_acts/ops/parameter_gradients.py`).

No target: the ratios say what these layers cost where a user puts one in a model, and how each
compares with its formula written plainly.

Usage:
    python benchmarks/addon_speed.py [--repeats N] [--warmup N] [--quick] [--json PATH] [--markdown PATH]

`--quick` shrinks everything for a smoke run; its figures mean nothing.
"""

from __future__ import annotations

import os
import shlex
import sys

os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras
import numpy as np
from activation_speed import (
    check_timing_args,
    machine_description,
    median_ms,
    publish,
    time_interleaved,
    timing_parser,
    training_step_runner,
)
from keras import ops

import keras_adaptive_acts as kaa

FULL = {"shape": (64, 32, 32, 64)}
QUICK = {"shape": (4, 8, 8, 8)}
SNAKE_FLOOR = "floor: x + sin(f * x)"
TLU_PLAIN = "plain: max(x, a * x + t)"
REFERENCE_OF = {"Snake()": SNAKE_FLOOR, "TLU(affine=True)": TLU_PLAIN}


class SineFloor(keras.layers.Layer):
    """`x + sin(f * x)` with a trainable scalar `f`: the least work of a periodic activation with one
    sine per entry (a reference row, not a layer of the package)."""

    def build(self, input_shape):
        self.frequency = self.add_weight(shape=(), initializer="ones", name="frequency")

    def call(self, inputs):
        return inputs + ops.sin(self.frequency * inputs)


class AffineMaximum(keras.layers.Layer):
    """`max(x, a * x + t)` with a per-channel slope and threshold, written plainly, without TLU's
    handling of infinite inputs (a reference row)."""

    def build(self, input_shape):
        self.slope = self.add_weight(shape=(input_shape[-1],), initializer="zeros", name="slope")
        self.threshold = self.add_weight(shape=(input_shape[-1],), initializer="zeros", name="threshold")

    def call(self, inputs):
        return ops.maximum(inputs, self.slope * inputs + self.threshold)


def candidates():
    """name -> layer factory, baseline first."""
    return {
        "ReLU": keras.layers.ReLU,
        "Snake()": kaa.Snake,
        SNAKE_FLOOR: SineFloor,
        "TLU(affine=True)": lambda: kaa.TLU(affine=True),
        TLU_PLAIN: AffineMaximum,
    }


def bench(shape, repeats, warmup):
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal(shape, dtype=np.float32))
    upstream = tf.constant(rng.standard_normal(shape, dtype=np.float32))
    runs = {name: training_step_runner(make(), x, upstream) for name, make in candidates().items()}
    times = time_interleaved(runs, repeats, warmup)
    return {
        "shape": list(shape),
        "times_ms": {name: [1000.0 * t for t in seconds] for name, seconds in times.items()},
        "median_ms": {name: median_ms(seconds) for name, seconds in times.items()},
    }


def markdown_report(report):
    machine, results = report["machine"], report["results"]
    medians = results["median_ms"]
    lines = [
        "## Snake and TLU: speed",
        "",
        f"Machine: {machine['cpu']}, {machine['cpu_count']} cores; Python {machine['python']}, "
        f"TensorFlow {machine['tensorflow']}, Keras {machine['keras']}, "
        f"keras-adaptive-acts {machine['keras_adaptive_acts']}.",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Input {tuple(results['shape'])} float32, `N(0, 1)`. Forward + gradients w.r.t. the input and the "
        "weights, for a fixed upstream gradient; each candidate compiled alone with "
        f"`tf.function(jit_compile=True)`. Median of {report['repeats']} interleaved repetitions after "
        f"{report['warmup']} warm-up calls. Snake's floor is the least its formula costs: one sine "
        "forward, one cosine backward, without Snake's edge cases. TLU's plain row is its formula "
        "written plainly, without its handling of infinite inputs.",
        "",
        "| candidate | median ms | / ReLU | / its floor or plain formula |",
        "|---|---:|---:|---:|",
    ]
    for name, milliseconds in medians.items():
        reference = REFERENCE_OF.get(name)
        to_reference = f"{milliseconds / medians[reference]:.2f}" if reference else ""
        lines.append(
            f"| {name} | {milliseconds:.3f} | {milliseconds / medians['ReLU']:.2f} | {to_reference} |"
        )
    return "\n".join(lines) + "\n"


def main():
    parser = timing_parser(__doc__)
    args = check_timing_args(parser, parser.parse_args())
    sizes = QUICK if args.quick else FULL
    report = {
        "command": shlex.join(["python", *sys.argv]),
        "quick": args.quick,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "machine": machine_description(include_jax=False),
        "results": bench(sizes["shape"], args.repeats, args.warmup),
    }
    publish(markdown_report(report), report, args)


if __name__ == "__main__":
    main()
