"""Cost curves: the speed ratios of the adaptive activations for inputs from 2^10 to 2^26 elements,
and the batch-1 inference latency a serving request sees.

TensorFlow backend, float32, every candidate compiled alone with `tf.function(jit_compile=True)`.

1. The ratios of `activation_speed.py` and `noisy_speed.py`, at every even power of two from 2^10 to
   2^26 elements, on image-like inputs (batch, side, side, 64): batch 1 with the side growing from 4
   to 32 up to 2^16 elements, then side 32 with the batch growing from 4 to 1024 (2^22 is the
   (64, 32, 32, 64) input of those two scripts). Per size, two groups, each timed interleaved:
   - training: `CompetitiveReLU` (competitions energy, l1, count) forward and the gradients with
     respect to the input and the weights, against Keras `ReLU` forward and backward, exactly as
     `activation_speed.training_step_runner` does it; input N(0, 1), fixed upstream gradient;
   - inference: `NoisyHardTanh(half_normal=True)` (NAH) with `training=False` against
     `keras.ops.clip(x, -1, 1)`, exactly as `noisy_speed.inference_runner` does it; input 2 * N(0, 1).
   A ratio is the candidate's median time over its baseline's median time in the same group.
2. Batch-1 inference latency: the small CNN of `activation_speed.build_cnn` (three conv blocks, 32x32x3
   images) at batch 1, forward only (`training=False`) under `tf.function(jit_compile=True)`, with
   ReLU, CompetitiveReLU(energy) and NAH as its activation; and the activation alone on a
   (1, 32, 32, 64) input, forward only, with `clip(x, -1, 1)` as NAH's baseline.

Repetitions: `--repeats N` (default 30) for every size up to 2^22, half of it (rounded up) at 2^24 and
a quarter at 2^26, where one call takes tens to hundreds of milliseconds; the batch-1 latencies take
4 N (a call takes about a millisecond there). `--warmup` untimed calls per candidate first.

Targets (issue 2 and issue 3): CompetitiveReLU training <= 1.7x ReLU; NAH inference <= 1.3x hard tanh.
The timing helpers, the CNN and the machine description come from `activation_speed.py` and
`noisy_speed.py` beside this file.

Usage:
    python benchmarks/cost_curves.py [--repeats N] [--warmup N] [--sizes 10 12 ...] [--quick]
        [--json PATH] [--markdown PATH] [--plot PATH | --no-plot]

`--quick` runs 2^10, 2^12 and 2^14 elements with the energy competition only, and draws no figure
unless `--plot` is given: a smoke run whose figures mean nothing.
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
    COMPETITIONS,
    build_cnn,
    check_timing_args,
    machine_description,
    median_ms,
    publish,
    time_interleaved,
    timing_parser,
    training_step_runner,
)
from noisy_speed import INPUT_SCALE, HardTanh, inference_runner

import keras_adaptive_acts as kaa

SIZES = tuple(range(10, 27, 2))  # log2 of the element counts
QUICK_SIZES = (10, 12, 14)
CHANNELS, SIDE = 64, 32  # inputs (batch, side, side, CHANNELS); side 32 once the batch grows
LATENCY_IMAGE = 32  # the CNN's 32x32x3 images, and the activation's (1, 32, 32, 64) input
LATENCY_REPEAT_FACTOR = 4
TARGETS = {"CompetitiveReLU": 1.7, "NAH": 1.3}
DEFAULT_PLOT = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "docs", "assets", "cost-curves.png"
)

RELU, CLIP, NAH = "ReLU", "clip(x, -1, 1)", "NoisyHardTanh(half_normal=True) (NAH)"


def competitive_name(competition):
    return f"CompetitiveReLU({competition})"


def shape_for(log2):
    """(batch, side, side, 64) with 2**log2 elements: batch 1 up to side 32, then side 32."""
    per_position = 2**log2 // CHANNELS
    if per_position <= SIDE * SIDE:
        side = math.isqrt(per_position)
        if side * side != per_position:
            raise ValueError(f"2^{log2} elements is not (1, s, s, {CHANNELS}). Received: log2={log2}")
        return (1, side, side, CHANNELS)
    return (per_position // (SIDE * SIDE), SIDE, SIDE, CHANNELS)


def repeats_for(log2, base):
    """`base` repetitions up to 2^22 elements, base / 2 at 2^24, base / 4 at 2^26 (rounded up)."""
    return max(1, math.ceil(base / 2 ** max(0, (log2 - 22) // 2)))


def competitions(quick):
    return ("energy",) if quick else COMPETITIONS


# ---------------------------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------------------------


def _timed(runs, repeats, warmup):
    times = time_interleaved(runs, repeats, warmup)
    return {
        "times_ms": {name: [1000.0 * t for t in seconds] for name, seconds in times.items()},
        "median_ms": {name: median_ms(seconds) for name, seconds in times.items()},
    }


def bench_size(log2, repeats, warmup, quick):
    """The training group (ReLU, CompetitiveReLU) and the inference group (clip, NAH) at one size."""
    import tensorflow as tf

    shape = shape_for(log2)
    rng = np.random.default_rng(log2)
    x = tf.constant(rng.standard_normal(shape, dtype=np.float32))
    g = tf.constant(rng.standard_normal(shape, dtype=np.float32))
    x_noisy = tf.constant(INPUT_SCALE * rng.standard_normal(shape, dtype=np.float32))

    training = {RELU: training_step_runner(keras.layers.ReLU(), x, g)}
    for c in competitions(quick):
        training[competitive_name(c)] = training_step_runner(kaa.CompetitiveReLU(competition=c), x, g)
    inference = {
        CLIP: inference_runner(HardTanh(), x_noisy),
        NAH: inference_runner(kaa.NoisyHardTanh(half_normal=True, seed=1), x_noisy),
    }
    result = {"log2": log2, "elements": 2**log2, "shape": list(shape), "repeats": repeats}
    result["training"] = _timed(training, repeats, warmup)
    result["inference"] = _timed(inference, repeats, warmup)
    result["ratios"] = size_ratios(result)
    return result


def size_ratios(result):
    """name -> candidate median / baseline median, both from the same interleaved group."""
    train, infer = result["training"]["median_ms"], result["inference"]["median_ms"]
    ratios = {name: ms / train[RELU] for name, ms in train.items() if name != RELU}
    ratios[NAH] = infer[NAH] / infer[CLIP]
    return ratios


def latency_activations():
    return {
        RELU: keras.layers.ReLU,
        competitive_name("energy"): kaa.CompetitiveReLU,
        NAH: lambda: kaa.NoisyHardTanh(half_normal=True, seed=1),
    }


def cnn_runner(model, images):
    import tensorflow as tf

    @tf.function(jit_compile=True)
    def forward(images):
        return model(images, training=False)

    return lambda: forward(images)[0, 0].numpy()


def bench_latency(repeats, warmup):
    """Batch 1: the CNN's forward pass per activation, and the activation alone on (1, 32, 32, 64)."""
    import tensorflow as tf

    rng = np.random.default_rng(1)
    images = tf.constant(rng.standard_normal((1, LATENCY_IMAGE, LATENCY_IMAGE, 3), dtype=np.float32))
    cnn_runs = {}
    for name, activation in latency_activations().items():
        keras.utils.set_random_seed(0)  # the same conv and dense weights for every model
        cnn_runs[name] = cnn_runner(build_cnn(activation, LATENCY_IMAGE), images)

    shape = (1, LATENCY_IMAGE, LATENCY_IMAGE, CHANNELS)
    x = tf.constant(rng.standard_normal(shape, dtype=np.float32))
    x_noisy = tf.constant(INPUT_SCALE * rng.standard_normal(shape, dtype=np.float32))
    alone = {name: inference_runner(make(), x) for name, make in latency_activations().items() if name != NAH}
    alone[CLIP] = inference_runner(HardTanh(), x_noisy)
    alone[NAH] = inference_runner(latency_activations()[NAH](), x_noisy)
    return {
        "repeats": repeats,
        "image": LATENCY_IMAGE,
        "activation_shape": list(shape),
        "cnn": _timed(cnn_runs, repeats, warmup),
        "activation": _timed(alone, repeats, warmup),
    }


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def target_of(name):
    return TARGETS["NAH"] if name == NAH else TARGETS["CompetitiveReLU"]


def baseline_name(name):
    return CLIP if name == NAH else RELU


def short(name):
    return "NAH" if name == NAH else name.replace("CompetitiveReLU", "CAReLU")


def power(log2):
    return f"2^{log2}"


def repeats_text(sizes):
    """The repetitions per size, runs of equal counts merged: "30 (2^10 to 2^22), 15 (2^24)"."""
    groups = []  # [count, first log2, last log2]
    for s in sizes:
        if groups and groups[-1][0] == s["repeats"]:
            groups[-1][2] = s["log2"]
        else:
            groups.append([s["repeats"], s["log2"], s["log2"]])
    return ", ".join(
        f"{count} ({power(first)}{'' if first == last else f' to {power(last)}'})"
        for count, first, last in groups
    )


def target_rows(sizes):
    """Per ratio: the sizes within its target, and its range over the sizes."""
    rows = []
    for name in sizes[0]["ratios"]:
        ratios = [(s["log2"], s["ratios"][name]) for s in sizes]
        limit = target_of(name)
        met = [power(log2) for log2, ratio in ratios if ratio <= limit]
        low, high = min(r for _, r in ratios), max(r for _, r in ratios)
        rows.append(
            f"| {name} / {baseline_name(name)} | <= {limit:g} | {low:.2f} - {high:.2f} | "
            f"{', '.join(met) if met else 'none'} |"
        )
    return rows


def markdown_report(report):
    m, sizes, latency = report["machine"], report["sizes"], report["latency"]
    names = list(sizes[0]["training"]["median_ms"])[1:]
    repeats = repeats_text(sizes)
    lines = [
        "## Cost curves: the ratios by input size, and batch-1 latency",
        "",
        f"Machine: {m['cpu']}, {m['cpu_count']} cores; Python {m['python']}, TensorFlow {m['tensorflow']}, "
        f"Keras {m['keras']}, keras-adaptive-acts {m['keras_adaptive_acts']}.",
        "",
        f"Command: `{report['command']}`",
        "",
        "### Ratios by input size",
        "",
        "float32 inputs (batch, side, side, 64), every candidate compiled alone with "
        "`tf.function(jit_compile=True)`. CAReLU: `CompetitiveReLU` forward and the gradients w.r.t. "
        "the input and its weights, divided by Keras `ReLU` forward and backward (fixed upstream "
        f"gradient, input N(0, 1)). NAH: `NoisyHardTanh(half_normal=True)` with `training=False`, "
        f"divided by `keras.ops.clip(x, -1, 1)` (input {INPUT_SCALE:g} * N(0, 1)). Each group is timed "
        f"interleaved at its size; medians after {report['warmup']} warm-up calls, repetitions: {repeats}.",
        "",
        "| elements | shape | ReLU ms | "
        + " | ".join(f"{short(n)} ms | / ReLU" for n in names)
        + " | clip ms | NAH ms | / clip |",
        "|---|---|" + "---:|" * (1 + 2 * len(names) + 3),
    ]
    for s in sizes:
        train, infer = s["training"]["median_ms"], s["inference"]["median_ms"]
        cells = [power(s["log2"]), str(tuple(s["shape"])), f"{train[RELU]:.3f}"]
        for name in names:
            cells += [f"{train[name]:.3f}", f"{s['ratios'][name]:.2f}"]
        cells += [f"{infer[CLIP]:.3f}", f"{infer[NAH]:.3f}", f"{s['ratios'][NAH]:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "| ratio | target | measured (smallest - largest) | sizes within the target |",
        "|---|---:|---:|---|",
        *target_rows(sizes),
    ]
    if report["plot"] == os.path.normpath(DEFAULT_PLOT):  # the figure the docs page shows
        lines += [
            "",
            "![The ratios against the number of input elements (log scale, 2^10 to 2^26): CompetitiveReLU "
            "training step over ReLU's per competition, NAH inference over clip, with the targets 1.7 and "
            "1.3 as dashed lines.](assets/cost-curves.png)",
        ]
    cnn, alone = latency["cnn"]["median_ms"], latency["activation"]["median_ms"]
    image = latency["image"]
    lines += [
        "",
        "### Batch-1 inference latency (what a serving request sees)",
        "",
        f"Forward only (`training=False`) under `tf.function(jit_compile=True)`, batch 1, median of "
        f"{latency['repeats']} interleaved repetitions after {report['warmup']} warm-up calls. The CNN is "
        f"`activation_speed.build_cnn` (Conv 32/64/128 -> activation -> max-pool, three blocks, global "
        f"average pooling, Dense(10)) on one {image}x{image}x3 image, with the same conv and dense weights "
        "for every activation; NAH changes the function the network computes, not its cost structure.",
        "",
        "| CNN activation | median ms | / ReLU |",
        "|---|---:|---:|",
    ]
    for name, ms in cnn.items():
        lines.append(f"| {name} | {ms:.3f} | {ms / cnn[RELU]:.2f} |")
    lines += [
        "",
        f"The activation alone on a {tuple(latency['activation_shape'])} input (N(0, 1); "
        f"{INPUT_SCALE:g} * N(0, 1) for clip and NAH):",
        "",
        "| activation | median ms | / ReLU | / baseline |",
        "|---|---:|---:|---|",
    ]
    for name, ms in alone.items():
        base = baseline_name(name)
        vs_base = f"{ms / alone[base]:.2f} (/ {base})" if name not in (RELU, CLIP) else ""
        lines.append(f"| {name} | {ms:.3f} | {ms / alone[RELU]:.2f} | {vs_base} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Plot
# ---------------------------------------------------------------------------------------------


def draw_plot(report, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = report["sizes"]
    elements = [s["elements"] for s in sizes]
    fig, ax = plt.subplots(figsize=(9.0, 5.5))
    competitive_colors = iter(("tab:blue", "tab:cyan", "tab:purple"))
    for name in sizes[0]["ratios"]:
        color = "tab:red" if name == NAH else next(competitive_colors)
        label = "NAH inference / clip(x, -1, 1)" if name == NAH else f"{name} training step / ReLU"
        marker = "s" if name == NAH else "o"
        ax.plot(elements, [s["ratios"][name] for s in sizes], color=color, marker=marker, lw=1.8, label=label)
    ax.axhline(
        TARGETS["CompetitiveReLU"], color="tab:blue", ls="--", lw=1, label="target CompetitiveReLU 1.7"
    )
    ax.axhline(TARGETS["NAH"], color="tab:red", ls="--", lw=1, label="target NAH 1.3")
    ax.axhline(1.0, color="grey", ls=":", lw=1)
    ax.set_xscale("log", base=2)
    ax.set_xticks(elements)
    ax.set_xticklabels([f"$2^{{{s['log2']}}}$\n" + "x".join(map(str, s["shape"])) for s in sizes], fontsize=8)
    ax.minorticks_off()
    top = max(max(s["ratios"].values()) for s in sizes)
    ax.set_ylim(0.0, max(top, TARGETS["CompetitiveReLU"]) * 1.1)
    ax.set_xlabel("input elements (shape: batch, side, side, channels), float32")
    ax.set_ylabel("median time / median time of the baseline")
    smoke = " (smoke run: figures mean nothing)" if report["quick"] else ""
    ax.set_title(
        f"Cost ratios by input size, TensorFlow + XLA on {report['machine']['cpu_count']} CPU cores{smoke}",
        fontsize=10,
    )
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------


def parse_args():
    parser = timing_parser(__doc__)
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        choices=SIZES,
        metavar="LOG2",
        help="log2 of the element counts to run, even, 10 to 26 (default: all; quick: 10 12 14)",
    )
    parser.add_argument(
        "--plot",
        metavar="PATH",
        default=None,
        help="write the figure here (default: docs/assets/cost-curves.png; with --quick none, so that a "
        "smoke run never replaces the docs' figure)",
    )
    parser.add_argument("--no-plot", action="store_true", help="draw no figure")
    args = check_timing_args(parser, parser.parse_args())
    args.sizes = sorted(set(args.sizes or (QUICK_SIZES if args.quick else SIZES)))
    if args.plot is None and not args.quick:
        args.plot = DEFAULT_PLOT
    return args


def main():
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # one tf.function per candidate, each traced once
    args = parse_args()
    report = {
        "command": shlex.join(["python", *sys.argv]),
        "quick": args.quick,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "targets": TARGETS,
        "machine": machine_description(include_jax=False),
        "plot": None if args.no_plot or args.plot is None else os.path.normpath(args.plot),
    }
    report["sizes"] = []
    for log2 in args.sizes:
        repeats = repeats_for(log2, args.repeats)
        print(f"cost_curves: 2^{log2} elements, {repeats} repetitions", file=sys.stderr, flush=True)
        report["sizes"].append(bench_size(log2, repeats, args.warmup, args.quick))
    print("cost_curves: batch-1 latency", file=sys.stderr, flush=True)
    report["latency"] = bench_latency(LATENCY_REPEAT_FACTOR * args.repeats, args.warmup)
    if report["plot"]:
        draw_plot(report, report["plot"])
    publish(markdown_report(report), report, args)


if __name__ == "__main__":
    main()
