"""Speed of NoisyHardTanh (and RReLU) against the naive ways of getting the same kind of noise.

Two measurements on a (64, 32, 32, 64) float32 tensor drawn as `2 * N(0, 1)`, so that about 62% of
the entries lie in the saturated part of hard tanh (|x| > 1). TensorFlow backend, every candidate
compiled alone with `tf.function(jit_compile=True)`:

1. Training: the forward pass with `training=True` and the gradients with respect to the input and
   the layer's trainable weights (NoisyHardTanh's `p`), for a fixed upstream gradient. Baseline:
   Keras `GaussianNoise(stddev=0.5)` followed by `keras.ops.clip(x, -1, 1)`, the naive way to get
   noise only while training (0.5 is NoisyHardTanh's default `c`). RReLU is timed against Keras
   `LeakyReLU` at RReLU's mean slope, for reference.
2. Inference: the forward pass with `training=False`. Baseline: `keras.ops.clip(x, -1, 1)`; RReLU
   against `LeakyReLU(negative_slope=(lower + upper) / 2)`, which computes the same function.

Targets: NoisyHardTanh training <= 1.0x the naive pipeline; inference <= 1.3x hard tanh.
The timing helpers and the machine description come from `activation_speed.py` beside this file.

Usage:
    python benchmarks/noisy_speed.py [--repeats N] [--warmup N] [--quick] [--json PATH] [--markdown PATH]

`--quick` shrinks everything for a smoke run; its figures mean nothing.
"""

from __future__ import annotations

import math
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
    targets_lines,
    time_interleaved,
    timing_parser,
    training_step_runner,
    verdict,
)
from keras import ops

import keras_adaptive_acts as kaa
from keras_adaptive_acts.layers import noise

FULL = {"shape": (64, 32, 32, 64)}
QUICK = {"shape": (8, 8, 8, 16)}
INPUT_SCALE = 2.0  # x = 2 * N(0, 1): P(|x| > 1) = P(|z| > 0.5), about 62% saturated
NAIVE_STDDEV = 0.5  # NoisyHardTanh's default c
RRELU_LOWER, RRELU_UPPER = 1.0 / 8.0, 1.0 / 3.0  # RReLU's defaults
RRELU_MEAN_SLOPE = (RRELU_LOWER + RRELU_UPPER) / 2.0
TARGETS = {"training_vs_naive": 1.0, "inference_vs_hard_tanh": 1.3}

# The candidate whose ratio is the target, per table; the other NoisyHardTanh rows get one too.
NAIVE = "naive: GaussianNoise(0.5) + clip"
NAIVE_PHILOX = "naive, Philox draws: x + 0.5 * xi, clip"
HARD_TANH = "hard tanh: clip(x, -1, 1)"
LEAKY = f"LeakyReLU({RRELU_MEAN_SLOPE:.4f})"
NAH = "NoisyHardTanh(half_normal=True) (NAH)"
# NAH's expectation needs one transcendental per entry (its noise scale is a tanh of the entry's
# distance to the linear regime); this is the least any exact formulation reads, writes and computes.
TANH_FLOOR = "floor: clip(x, -1, 1) + tanh(x)"
SPEC_NAH = "NAH as the spec writes it (sigmoid, sign)"
# RReLU's training step draws one uniform slope per entry; this row draws them as RReLU does and
# multiplies the input by them: the draws and one product per entry, the least RReLU's formula needs.
UNIFORM_DRAWS = "floor: x * u, u ~ U(1/8, 1/3) drawn as RReLU draws"


class HardTanh(keras.layers.Layer):
    """`keras.ops.clip(x, -1, 1)`: no noise, no weights."""

    def call(self, inputs, training=False):
        return ops.clip(inputs, -1.0, 1.0)


class SpecFormNAH(keras.layers.Layer):
    """NAH's inference written as the spec writes it: `h - (1 - alpha) * delta + d * sigma * sqrt(2/pi)`
    with `sigma = c * (sigmoid(p * delta) - 0.5)**2` and `d = sign(x)` (alpha = 1.15, c = 0.5, a
    per-unit `p` of ones): the operations the op ran before its exact tanh reformulation, timed
    beside it."""

    def build(self, input_shape):
        self.p = self.add_weight(shape=(input_shape[-1],), name="p", initializer="ones")

    def call(self, inputs, training=False):
        h = ops.clip(inputs, -1.0, 1.0)
        delta = h - inputs
        sigma = 0.5 * ops.square(ops.sigmoid(ops.cast(self.p, inputs.dtype) * delta) - 0.5)
        return h + 0.15 * delta + ops.sign(inputs) * sigma * math.sqrt(2.0 / math.pi)


class ClipPlusTanh(keras.layers.Layer):
    """`clip(x, -1, 1) + tanh(x)`: one read, one write and one tanh per entry (NAH's floor)."""

    def call(self, inputs, training=False):
        return ops.clip(inputs, -1.0, 1.0) + ops.tanh(inputs)


class NaiveNoisyHardTanh(keras.layers.Layer):
    """Keras `GaussianNoise` (active only when `training=True`), then `clip(x, -1, 1)`."""

    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.noise = keras.layers.GaussianNoise(stddev, seed=seed)

    def call(self, inputs, training=False):
        return ops.clip(self.noise(inputs, training=training), -1.0, 1.0)


class PhiloxNaiveNoisyHardTanh(keras.layers.Layer):
    """The naive pipeline drawing its noise as the package does (`keras_adaptive_acts.layers.noise`).

    Keras' `GaussianNoise` draws through `keras.random`, which XLA on CPU compiles slowly; this
    baseline separates that cost from the cost of the noisy function itself.
    """

    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.stddev = stddev
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=False):
        if training:
            xi = noise.normal(ops.shape(inputs), inputs.dtype, self.seed_generator)
            inputs = inputs + self.stddev * xi
        return ops.clip(inputs, -1.0, 1.0)


class UniformDraws(keras.layers.Layer):
    """`x * u` with `u` drawn as RReLU draws its slopes (`noise.uniform`, Philox on TensorFlow), in
    training; `x` at inference. RReLU's floor: its draws, and one product per entry."""

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=False):
        if not training:
            return inputs
        slopes = noise.uniform(ops.shape(inputs), RRELU_LOWER, RRELU_UPPER, inputs.dtype, self.seed_generator)
        return inputs * slopes


def noisy_candidates(quick):
    """NoisyHardTanh variants compared with the baselines: name -> layer factory."""
    candidates = {
        "NoisyHardTanh() (NAN)": lambda: kaa.NoisyHardTanh(seed=1),
        NAH: lambda: kaa.NoisyHardTanh(half_normal=True, seed=1),
        'NoisyHardTanh(noise="input") (NANI)': lambda: kaa.NoisyHardTanh(noise="input", seed=1),
    }
    if not quick:
        candidates['NoisyHardTanh(noise="input_saturated") (NANIS)'] = lambda: kaa.NoisyHardTanh(
            noise="input_saturated", seed=1
        )
        candidates['NoisyHardTanh(noise="input_learned") (NANIL)'] = lambda: kaa.NoisyHardTanh(
            noise="input_learned", seed=1
        )
    return candidates


def training_candidates(quick):
    return {
        NAIVE: lambda: NaiveNoisyHardTanh(NAIVE_STDDEV, seed=1),
        NAIVE_PHILOX: lambda: PhiloxNaiveNoisyHardTanh(NAIVE_STDDEV, seed=1),
        **noisy_candidates(quick),
        LEAKY: lambda: keras.layers.LeakyReLU(negative_slope=RRELU_MEAN_SLOPE),
        UNIFORM_DRAWS: lambda: UniformDraws(seed=1),
        "RReLU()": lambda: kaa.RReLU(seed=1),
    }


def inference_candidates(quick):
    return {
        HARD_TANH: HardTanh,
        TANH_FLOOR: ClipPlusTanh,
        SPEC_NAH: SpecFormNAH,
        **noisy_candidates(quick),
        LEAKY: lambda: keras.layers.LeakyReLU(negative_slope=RRELU_MEAN_SLOPE),
        "RReLU()": lambda: kaa.RReLU(seed=1),
    }


# ---------------------------------------------------------------------------------------------
# Runners: zero-argument callables that return once the compiled work is done
# ---------------------------------------------------------------------------------------------


def inference_runner(layer, x):
    """Forward only, `training=False`."""
    import tensorflow as tf

    layer(x)

    @tf.function(jit_compile=True)
    def forward(x):
        return layer(x, training=False)

    def run():
        return forward(x)[0, 0, 0, 0].numpy()

    return run


def bench(shape, repeats, warmup, quick):
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # one tf.function per candidate, each traced once
    rng = np.random.default_rng(0)
    x = tf.constant(INPUT_SCALE * rng.standard_normal(shape, dtype=np.float32))
    g = tf.constant(rng.standard_normal(shape, dtype=np.float32))
    saturated = float(np.mean(np.abs(x.numpy()) > 1.0))

    results = {"shape": list(shape), "saturated_fraction": saturated}
    for part, candidates, runner in (
        ("training", training_candidates(quick), lambda layer: training_step_runner(layer, x, g)),
        ("inference", inference_candidates(quick), lambda layer: inference_runner(layer, x)),
    ):
        runs = {name: runner(make()) for name, make in candidates.items()}
        times = time_interleaved(runs, repeats, warmup)
        results[part] = {
            "times_ms": {name: [1000.0 * t for t in seconds] for name, seconds in times.items()},
            "median_ms": {name: median_ms(seconds) for name, seconds in times.items()},
        }
    return results


# ---------------------------------------------------------------------------------------------
# Targets and report
# ---------------------------------------------------------------------------------------------


def baseline_of(name, part):
    """The baseline a candidate is divided by in its table."""
    if name.startswith("RReLU") or name in (LEAKY, UNIFORM_DRAWS):
        return LEAKY
    return NAIVE if part == "training" else HARD_TANH


def evaluate_targets(results):
    """(what, ratio, limit, PASS/MISS) for every NoisyHardTanh variant, training and inference."""
    checks = []
    for part, limit in (
        ("training", TARGETS["training_vs_naive"]),
        ("inference", TARGETS["inference_vs_hard_tanh"]),
    ):
        med = results[part]["median_ms"]
        for name, ms in med.items():
            if name.startswith("NoisyHardTanh"):
                base = baseline_of(name, part)
                ratio = ms / med[base]
                checks.append((f"{part}: {name} / {base}", ratio, limit, verdict(ratio, limit)))
                if part == "training":  # the same target against a baseline with equally fast draws
                    ratio = ms / med[NAIVE_PHILOX]
                    checks.append((f"{part}: {name} / {NAIVE_PHILOX}", ratio, limit, verdict(ratio, limit)))
                if part == "inference" and name == NAH:  # and against what one tanh per entry costs
                    ratio = ms / med[TANH_FLOOR]
                    checks.append((f"{part}: {name} / {TANH_FLOOR}", ratio, limit, verdict(ratio, limit)))
    return checks


def markdown_report(report):
    m, res = report["machine"], report["results"]
    lines = [
        "## NoisyHardTanh and RReLU: speed",
        "",
        f"Machine: {m['cpu']}, {m['cpu_count']} cores; Python {m['python']}, TensorFlow {m['tensorflow']}, "
        f"Keras {m['keras']}, keras-adaptive-acts {m['keras_adaptive_acts']}.",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Input {tuple(res['shape'])} float32, `{INPUT_SCALE:g} * N(0, 1)` "
        f"({100 * res['saturated_fraction']:.0f}% of the entries saturated, |x| > 1). Each candidate is "
        f"compiled alone with `tf.function(jit_compile=True)`. Median of {report['repeats']} interleaved "
        f"repetitions after {report['warmup']} warm-up calls.",
    ]
    titles = {
        "training": (
            "Training: forward (`training=True`) + gradients w.r.t. the input and the weights",
            "Fixed upstream gradient. The naive pipeline is Keras `GaussianNoise(stddev=0.5)` then "
            "`keras.ops.clip(x, -1, 1)`; RReLU is divided by `LeakyReLU` at its mean slope, and so is the "
            "floor that only draws RReLU's uniform slopes and multiplies the input by them.",
        ),
        "inference": (
            "Inference: forward only (`training=False`)",
            "NoisyHardTanh is divided by `keras.ops.clip(x, -1, 1)`, RReLU by `LeakyReLU` at its mean "
            "slope (the same function). The floor row is the least an exact NAH can cost: its one "
            "read and one write per entry, and the one tanh its noise scale needs.",
        ),
    }
    for part in ("training", "inference"):
        title, note = titles[part]
        med = res[part]["median_ms"]
        lines += [
            "",
            f"### {title}",
            "",
            note,
            "",
            "| candidate | median ms | / baseline |",
            "|---|---:|---:|",
        ]
        for name, ms in med.items():
            base = baseline_of(name, part)
            ratio = "" if base == name else f"{ms / med[base]:.2f}"
            lines.append(f"| {name} | {ms:.3f} | {ratio} |")
    lines += targets_lines(report["targets"])
    return "\n".join(lines) + "\n"


def parse_args():
    parser = timing_parser(__doc__)
    args = check_timing_args(parser, parser.parse_args())
    if not args.quick and args.repeats < 20:
        print("note: fewer than 20 repetitions; the medians are less reliable", file=sys.stderr)
    return args


def main():
    args = parse_args()
    sizes = QUICK if args.quick else FULL
    report = {
        "command": shlex.join(["python", *sys.argv]),
        "quick": args.quick,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "machine": machine_description(),
        "results": bench(sizes["shape"], args.repeats, args.warmup, args.quick),
    }
    report["targets"] = evaluate_targets(report["results"])
    publish(markdown_report(report), report, args)


if __name__ == "__main__":
    main()
