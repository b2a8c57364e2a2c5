"""Activation sparsity on real data: ReLU against sparsity regularizers and Peng et al.'s modules.

The data are scikit-learn's bundled digits (1797 images of 8x8 pixels, no download), read as a
sequence of 8 row-tokens of 8 pixels each (scaled to [0, 1]), with one fixed stratified split:
75% train, 25% test (`random_state=0`). The model is a small pre-norm transformer:

    tokens (8, 8) -> Dense(32) + learned position embedding
    2 x [ x + MultiHeadAttention(2 heads, key_dim 16)(LayerNorm(x))
          x + MLP(x) ]                       # the MLP block: the only part that differs
    -> mean over tokens -> Dense(10)

and the MLP block is the computation of `SparsifiedMLP` (hidden width 128, residual, no dropout),
written out as separate layers of the Functional model so that `measure_sparsity` can read the
activation layer's output (it reads layers of the model's graph, and the activation inside a
`SparsifiedMLP` is not one). At start-up the script checks that this block computes exactly what
`SparsifiedMLP` computes with the same weights.

    h = norm(x)                 # LayerNormalization, or RestrictedLayerNormalization(mode="scratch")
    h = h + b0[:L]              # ZerothBias(clip=0.1, reference_norm=norm), only in "full recipe"
    a = act(fc1(h))             # ReLU or J-SquaredReLU; the measured activation
    a -> ActivitySparsity(reg)  # only in the regularizer configurations (adds a loss, passes a on)
    out = x + fc2(a)

Configurations (everything else identical: data, split, architecture, optimizer, epochs, batch):

    relu            ReLU, LayerNormalization (the baseline)
    relu+l1         ReLU + ActivationL1 on each MLP's hidden activations
    relu+hoyer      ReLU + HoyerSquare on each MLP's hidden activations
    jsrelu          J-SquaredReLU, LayerNormalization
    jsrelu+zb+rln   J-SquaredReLU + zeroth bias + restricted LayerNorm (the paper's full recipe)
    attention-only  a reference, only on request (--configs): the model without its MLP blocks,
                    to tell how much the task needs the MLPs at all

Training: AdamW (learning rate 1e-3, weight decay 0.1), batch 32, 80 epochs by default, from
`keras.utils.set_random_seed(seed)` for every seed, `jit_compile=True` (the zeroth bias's clip
and the restricted norm's floor are variable constraints, which XLA steps apply). Reported per
configuration, as mean +- standard deviation over the seeds: test accuracy; the fraction of
exactly-zero hidden activations of each MLP on the test set in inference mode
(`measure_sparsity`); the fraction of dead hidden units (zero on every test token); the
relative change of the active fraction against the baseline (its magnitude is the paper's
"sparsity improvement", `1 - (1 - zf) / (1 - zf_relu)`); and the training time.

`--sweep [STRENGTH ...]` trains ReLU + ActivationL1 and ReLU + HoyerSquare at each strength
(default 1e-5 1e-4 1e-3; seeds 0 1 2) beside the baseline instead: how the default strengths
were chosen.

Usage:
    python benchmarks/sparsity_experiment.py [--seeds 0 1 2 ...] [--epochs N] [--configs ...]
        [--l1 S] [--hoyer S] [--sweep [S ...]] [--quick] [--json PATH] [--markdown PATH]

`--quick` trains 2 seeds for 2 epochs: a smoke run whose figures mean nothing.
"""

from __future__ import annotations

import argparse
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
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import keras_adaptive_acts as kaa
from keras_adaptive_acts.measurement import measure_sparsity
from keras_adaptive_acts.regularizers import ActivationL1, HoyerSquare

# Every run builds a new model, so Keras traces new functions by design: TF's retracing warning is noise.
tf.get_logger().setLevel("ERROR")

SEQUENCE, TOKEN = 8, 8  # 8 row-tokens of 8 pixels
D_MODEL, HIDDEN, HEADS, BLOCKS = 32, 128, 2, 2
EPSILON = 1e-6  # SparsifiedMLP's default; used by every LayerNorm of the model
CLIP = 0.1  # the zeroth bias's clip factor (the paper's)
BATCH, LEARNING_RATE, WEIGHT_DECAY = 32, 1e-3, 0.1  # AdamW, decay on every weight (Keras' default)
STEPS_PER_EXECUTION = 42  # one call per epoch (1347 // 32 = 42 steps): little Python overhead per step
DEFAULT_EPOCHS, DEFAULT_SEEDS = 80, (0, 1, 2, 3, 4)
# Strengths of the regularizers (per example, see their docstrings), chosen with `--sweep` (seeds
# 0-2, strengths 1e-5, 1e-4, 1e-3): at 1e-4 both keep the accuracy within the seeds' spread and
# silence almost no unit entirely; at 1e-3 about a quarter of the hidden units never fire.
DEFAULT_STRENGTHS = {"l1": 1e-4, "hoyer": 1e-4}
SWEEP_STRENGTHS, SWEEP_SEEDS = (1e-5, 1e-4, 1e-3), (0, 1, 2)

CONFIGS = {
    "relu": {"activation": "relu", "norm": "layer", "zeroth_bias": False, "regularizer": None},
    "relu+l1": {"activation": "relu", "norm": "layer", "zeroth_bias": False, "regularizer": "l1"},
    "relu+hoyer": {"activation": "relu", "norm": "layer", "zeroth_bias": False, "regularizer": "hoyer"},
    "jsrelu": {"activation": "j_squared_relu", "norm": "layer", "zeroth_bias": False, "regularizer": None},
    "jsrelu+zb+rln": {
        "activation": "j_squared_relu",
        "norm": "restricted",
        "zeroth_bias": True,
        "regularizer": None,
    },
    # A reference, not run by default: the same model without its MLP blocks. It tells how much
    # the task needs the MLPs at all (a penalty can silence an MLP the task does not need).
    "attention-only": {"mlp": False},
}
DEFAULT_CONFIGS = ("relu", "relu+l1", "relu+hoyer", "jsrelu", "jsrelu+zb+rln")
BASELINE = "relu"
DESCRIPTIONS = {
    "relu": "ReLU, LayerNorm (baseline)",
    "relu+l1": "ReLU + ActivationL1({l1:g})",
    "relu+hoyer": "ReLU + HoyerSquare({hoyer:g})",
    "jsrelu": "J-SquaredReLU, LayerNorm",
    "jsrelu+zb+rln": "J-SquaredReLU + zeroth bias + restricted LN",
    "attention-only": "no MLP blocks (reference)",
}


# ---------------------------------------------------------------------------------------------
# Data and model
# ---------------------------------------------------------------------------------------------


def load_data():
    """Digits as (n, 8 rows, 8 pixels) float32 in [0, 1]; a stratified 75/25 split, random_state=0."""
    digits = load_digits()
    x = (digits.images / 16.0).astype("float32")
    y = digits.target.astype("int32")
    return train_test_split(x, y, test_size=0.25, stratify=y, random_state=0)


@keras.saving.register_keras_serializable(package="sparsity_experiment")
class PositionEmbedding(keras.layers.Layer):
    """Adds a learned vector per token position: `x + p[:L]`, `p` of shape (L, d_model)."""

    def build(self, input_shape):
        self.positions = self.add_weight(
            shape=tuple(input_shape[1:]),
            name="positions",
            initializer=keras.initializers.RandomNormal(0, 0.02),
        )

    def call(self, inputs):
        return inputs + keras.ops.cast(self.positions, inputs.dtype)


def make_regularizer(name, strengths):
    if name is None:
        return None
    return {"l1": ActivationL1, "hoyer": HoyerSquare}[name](strengths[name])


def mlp_block(x, config, prefix, strengths=DEFAULT_STRENGTHS):
    """The computation of `SparsifiedMLP(HIDDEN, dropout=0)` as graph layers; returns (output, act layer)."""
    if config["norm"] == "restricted":
        norm = kaa.RestrictedLayerNormalization(mode="scratch", epsilon=EPSILON, name=f"{prefix}_norm")
    else:
        norm = keras.layers.LayerNormalization(epsilon=EPSILON, name=f"{prefix}_norm")
    h = norm(x)
    if config["zeroth_bias"]:
        h = kaa.ZerothBias(max_len=SEQUENCE, clip=CLIP, reference_norm=norm, name=f"{prefix}_zeroth_bias")(h)
    h = keras.layers.Dense(HIDDEN, name=f"{prefix}_fc1")(h)
    if config["activation"] == "relu":
        act = keras.layers.Activation("relu", name=f"{prefix}_act")
    else:
        act = kaa.JSquaredReLU(name=f"{prefix}_act")
    h = act(h)
    regularizer = make_regularizer(config["regularizer"], strengths)
    if regularizer is not None:
        h = kaa.ActivitySparsity(regularizer, name=f"{prefix}_penalty")(h)
    h = keras.layers.Dense(x.shape[-1], name=f"{prefix}_fc2")(h)
    return keras.layers.Add(name=f"{prefix}_residual")([x, h]), act


def build_model(config, strengths=DEFAULT_STRENGTHS):
    """The transformer of the module docstring; returns (compiled model, [MLP activation layers])."""
    inputs = keras.Input((SEQUENCE, TOKEN), name="rows")
    x = keras.layers.Dense(D_MODEL, name="embed")(inputs)
    x = PositionEmbedding(name="positions")(x)
    acts = []
    for i in range(BLOCKS):
        h = keras.layers.LayerNormalization(epsilon=EPSILON, name=f"block{i}_attention_norm")(x)
        h = keras.layers.MultiHeadAttention(HEADS, D_MODEL // HEADS, name=f"block{i}_attention")(h, h)
        x = keras.layers.Add(name=f"block{i}_attention_residual")([x, h])
        if config.get("mlp", True):
            x, act = mlp_block(x, config, f"block{i}_mlp", strengths)
            acts.append(act)
    x = keras.layers.GlobalAveragePooling1D(name="mean_pool")(x)
    outputs = keras.layers.Dense(10, name="logits")(x)
    model = keras.Model(inputs, outputs, name="digits_transformer")
    model.compile(
        optimizer=keras.optimizers.AdamW(LEARNING_RATE, weight_decay=WEIGHT_DECAY),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=True,
        steps_per_execution=STEPS_PER_EXECUTION,
    )
    return model, acts


def check_block_matches_sparsified_mlp():
    """Asserts that `mlp_block` computes what `SparsifiedMLP` does, for each norm / zeroth-bias setting.

    Both get the same random weights (a non-zero zeroth bias and a gamma >= 1 included); the
    outputs must agree to float32 rounding.
    """
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, SEQUENCE, D_MODEL)).astype("float32")
    for name, config in CONFIGS.items():
        if not config.get("mlp", True) or config["regularizer"] is not None:
            continue  # (the penalty layer passes its input through unchanged)
        block = kaa.SparsifiedMLP(
            HIDDEN,
            activation=config["activation"],
            norm=config["norm"],
            zeroth_bias=config["zeroth_bias"],
            max_len=SEQUENCE,
            clip=CLIP,
            epsilon=EPSILON,
        )
        expected_model = keras.Sequential([keras.Input((SEQUENCE, D_MODEL)), block])
        inputs = keras.Input((SEQUENCE, D_MODEL))
        outputs, _ = mlp_block(inputs, config, "check")
        ours = keras.Model(inputs, outputs)
        parts = {"norm": block.norm, "zeroth_bias": block.zeroth_bias, "fc1": block.fc1, "fc2": block.fc2}
        for part, layer in parts.items():
            if layer is None:
                continue
            values = [rng.normal(size=w.shape).astype("float32") for w in layer.weights]
            if part == "norm":
                values = [1.0 + np.abs(v) for v in values]  # a gamma a restricted norm accepts
            layer.set_weights(values)
            ours.get_layer(f"check_{part}").set_weights(values)
        difference = np.max(np.abs(np.asarray(ours(x)) - np.asarray(expected_model(x))))
        if difference > 1e-4:
            raise AssertionError(f"{name}: the experiment's block differs from SparsifiedMLP by {difference}")


# ---------------------------------------------------------------------------------------------
# The experiment
# ---------------------------------------------------------------------------------------------


def run_one(config, seed, data, epochs, strengths):
    x_train, x_test, y_train, y_test = data
    keras.utils.set_random_seed(seed)
    model, acts = build_model(config, strengths)
    # Reshuffled every epoch; the last 1347 % 32 = 3 samples of each epoch's order are left out,
    # so that every step has one shape and XLA compiles the step once.
    batches = (
        tf.data.Dataset.from_tensor_slices((x_train, y_train))
        .shuffle(len(x_train), seed=seed, reshuffle_each_iteration=True)
        .batch(BATCH, drop_remainder=True)
    )
    start = time.perf_counter()
    model.fit(batches, epochs=epochs, verbose=0, shuffle=False)  # the dataset shuffles itself
    seconds = time.perf_counter() - start
    accuracy = test_accuracy(model, x_test, y_test)
    run = {"seed": seed, "accuracy": accuracy, "seconds": seconds}
    if acts:
        run["zero_fraction"] = measure_sparsity(model, x_test, layers=acts, batch_size=256)
        run["zero_fraction_train_set"] = measure_sparsity(model, x_train, layers=acts, batch_size=256)
        run["dead_units"] = dead_units(model, acts, x_test)
    return run


def dead_units(model, acts, x):
    """Per activation layer: the fraction of its hidden units that are zero for every token of every
    example of `x` (inference mode). High values mean the MLP is switched off rather than sparse."""
    probe = keras.Model(model.input, [act.output for act in acts])
    outputs = probe(x, training=False)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    return {
        act.name: float(np.mean(np.all(np.asarray(out).reshape(-1, out.shape[-1]) == 0, axis=0)))
        for act, out in zip(acts, outputs, strict=True)
    }


def test_accuracy(model, x, y):
    logits = np.asarray(model(x, training=False))
    return float(np.mean(np.argmax(logits, axis=1) == y))


def mean_std(values):
    values = list(values)
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else math.nan)


def summarise(runs):
    """Per configuration: means and standard deviations over seeds, and the change against the baseline.

    Zero fractions are per MLP activation layer (the names are the same in every configuration)
    and, under "mean", averaged over the layers (they have the same size). A configuration without
    MLPs has accuracy only.
    """
    layers = list(runs[BASELINE][0]["zero_fraction"])

    def mean_zero(run):
        return statistics.fmean(run["zero_fraction"].values())

    base_zero = {
        layer: mean_std(run["zero_fraction"][layer] for run in runs[BASELINE])[0] for layer in layers
    }
    base_mean_zeros = [mean_zero(run) for run in runs[BASELINE]]
    base_accuracy = mean_std(run["accuracy"] for run in runs[BASELINE])[0]
    summary = {}
    for name, config_runs in runs.items():
        accuracy = mean_std(run["accuracy"] for run in config_runs)
        entry = {
            "accuracy": accuracy,
            "accuracy_change_points": 100.0 * (accuracy[0] - base_accuracy),
            "seconds": sum(run["seconds"] for run in config_runs),
        }
        summary[name] = entry
        if "zero_fraction" not in config_runs[0]:
            continue
        entry.update(zero_fraction={}, active_reduction={}, dead_units={})
        for layer in layers:
            zeros = [run["zero_fraction"][layer] for run in config_runs]
            entry["zero_fraction"][layer] = mean_std(zeros)
            entry["active_reduction"][layer] = mean_std(
                1.0 - (1.0 - z) / (1.0 - base_zero[layer]) for z in zeros
            )
            entry["dead_units"][layer] = mean_std(run["dead_units"][layer] for run in config_runs)
        mean_zeros = [mean_zero(run) for run in config_runs]
        base_active = 1.0 - statistics.fmean(base_mean_zeros)
        entry["zero_fraction"]["mean"] = mean_std(mean_zeros)
        entry["active_reduction"]["mean"] = mean_std(1.0 - (1.0 - z) / base_active for z in mean_zeros)
        entry["zero_fraction_rise_standard_errors"] = _standard_errors(mean_zeros, base_mean_zeros)
    return summary


def _standard_errors(values, baseline):
    """(mean(values) - mean(baseline)) in units of the standard error of that difference (Welch)."""
    n, m = len(values), len(baseline)
    if n < 2 or m < 2:
        return math.nan
    error = math.sqrt(statistics.variance(values) / n + statistics.variance(baseline) / m)
    difference = statistics.fmean(values) - statistics.fmean(baseline)
    return math.inf if error == 0 and difference > 0 else difference / error if error else 0.0


def meets_goal(entry):
    """The goal: zero fraction up clearly (> 2 standard errors, and by >= 10% relative fewer active
    units) at an accuracy loss of at most 1 point."""
    return (
        entry["zero_fraction_rise_standard_errors"] > 2.0
        and entry["active_reduction"]["mean"][0] >= 0.10
        and entry["accuracy_change_points"] >= -1.0
    )


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def signed(value, digits=1):
    """`value` with its sign, and "+0.0" rather than "-0.0" for what rounds to zero."""
    rounded = round(value, digits)
    return f"{rounded if rounded != 0 else 0.0:+.{digits}f}"


def pm(pair, scale=1.0, digits=1):
    mean, std = pair
    return f"{scale * mean:.{digits}f} ± {scale * std:.{digits}f}"


def markdown_report(results):
    summary, machine = results["summary"], results["machine"]
    baseline = summary[BASELINE]
    layers = [layer for layer in baseline["zero_fraction"] if layer != "mean"]
    seeds = results["seeds"]
    names = {name: DESCRIPTIONS[name].format(**results["strengths"]) for name in summary}
    header = ["configuration", "test accuracy %"]
    header += [f"zero fraction {layer} %" for layer in layers]
    header += ["dead units %", "active units vs ReLU", "train time s"]
    lines = [
        "## Activation sparsity on digits",
        "",
        f"Machine: {machine['cpu']}, {machine['cpu_count']} cores; Python {machine['python']}, "
        f"TensorFlow {machine['tensorflow']}, Keras {machine['keras']}, "
        f"keras-adaptive-acts {machine['keras_adaptive_acts']}.",
        "",
        f"Command: `{results['command']}` ({results['total_seconds'] / 60:.1f} minutes in all)",
        "",
        "Setup: scikit-learn digits as 8 row-tokens of 8 pixels in [0, 1]; stratified split, "
        f"{results['n_train']} train / {results['n_test']} test (`random_state=0`). A pre-norm "
        f"transformer: Dense({D_MODEL}) embedding + learned positions, {BLOCKS} blocks of "
        f"[{HEADS}-head attention, MLP {D_MODEL} -> {HIDDEN} -> {D_MODEL}], mean pool, Dense(10). Only "
        "the MLP blocks differ between rows; each MLP is `SparsifiedMLP`'s computation (no dropout) laid "
        "out as layers of the Functional model, so that `measure_sparsity` can read its activation. "
        f"AdamW (learning rate {LEARNING_RATE:g}, weight decay {WEIGHT_DECAY:g} on every weight), batch "
        f"{BATCH}, {results['epochs']} epochs, `jit_compile=True`; seeds {', '.join(map(str, seeds))} "
        "(`keras.utils.set_random_seed`). The regularizers are `ActivitySparsity` layers after each "
        "MLP's activation. Figures are mean ± standard deviation over the seeds.",
        "",
        "Zero fraction: exactly-zero entries of each MLP's hidden activation (8 tokens x 128 units per "
        "image) on the test set, in inference mode (`measure_sparsity`; without dropout the "
        "training-mode value is the same). Dead units: hidden units that are zero for every token of "
        "every test image, averaged over both MLPs. Active units vs ReLU: the relative change of the "
        "non-zero fraction (averaged over both MLPs) against the baseline's mean, "
        "`(1 - zf) / (1 - zf_relu) - 1`; negative is sparser, and its magnitude is what the paper calls "
        "the sparsity improvement.",
        "",
        "| " + " | ".join(header) + " |",
        "|---" + "|---:" * (len(header) - 1) + "|",
    ]
    for name, entry in summary.items():
        cells = [names[name], pm(entry["accuracy"], 100.0)]
        if "zero_fraction" in entry:
            reduction = entry["active_reduction"]["mean"]
            dead = mean_std(statistics.fmean(run["dead_units"].values()) for run in results["runs"][name])
            cells += [pm(entry["zero_fraction"][layer], 100.0) for layer in layers]
            cells.append(pm(dead, 100.0))
            cells.append(
                "—" if name == BASELINE else f"{-100.0 * reduction[0]:+.0f}% ± {100.0 * reduction[1]:.0f}"
            )
        else:
            cells += ["—"] * (len(layers) + 2)
        cells.append(f"{entry['seconds']:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    goal = [
        f"| {names[name]} | {signed(entry['accuracy_change_points'])} | "
        f"{entry['zero_fraction_rise_standard_errors']:+.1f} | {'yes' if meets_goal(entry) else 'no'} |"
        for name, entry in summary.items()
        if name != BASELINE and "zero_fraction" in entry
    ]
    if goal:
        lines += [
            "",
            "Against the goal (zero fraction clearly up: by more than 2 standard errors of the difference "
            "of the means and by at least 10% fewer active units, at a mean accuracy loss of at most "
            "1 point):",
            "",
            "| configuration | accuracy change (points) | zero-fraction rise (standard errors) | goal met |",
            "|---|---:|---:|---|",
            *goal,
        ]
    return "\n".join(lines) + "\n"


def parse_args():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (default 0 1 2 3 4)")
    parser.add_argument("--epochs", type=int, default=None, help=f"epochs (default {DEFAULT_EPOCHS})")
    parser.add_argument(
        "--configs",
        nargs="+",
        choices=list(CONFIGS),
        default=None,
        help="configurations to run (default: all but attention-only)",
    )
    parser.add_argument("--l1", type=float, default=DEFAULT_STRENGTHS["l1"], help="ActivationL1 strength")
    parser.add_argument(
        "--hoyer", type=float, default=DEFAULT_STRENGTHS["hoyer"], help="HoyerSquare strength"
    )
    parser.add_argument(
        "--sweep",
        type=float,
        nargs="*",
        default=None,
        help="instead of the comparison: train ReLU + ActivationL1 and ReLU + HoyerSquare at each of "
        f"these strengths (default {' '.join(f'{v:g}' for v in SWEEP_STRENGTHS)}) with the baseline",
    )
    parser.add_argument("--quick", action="store_true", help="2 seeds, 2 epochs: a smoke run")
    add_output_arguments(parser)
    args = parser.parse_args()
    if args.sweep is not None and not args.sweep:
        args.sweep = list(SWEEP_STRENGTHS)
    if args.seeds is None:
        args.seeds = [0, 1] if args.quick else list(SWEEP_SEEDS if args.sweep else DEFAULT_SEEDS)
    if args.epochs is None:
        args.epochs = 2 if args.quick else DEFAULT_EPOCHS
    if args.epochs < 1:
        parser.error("--epochs must be >= 1")
    if len(set(args.seeds)) != len(args.seeds):
        parser.error("--seeds must be distinct")
    configs = args.configs or list(DEFAULT_CONFIGS)
    if BASELINE not in configs:
        configs = [BASELINE, *configs]  # every comparison is against the baseline of the same run
    args.configs = [name for name in CONFIGS if name in configs]
    return args


def train_all(plan, seeds, data, epochs):
    """Runs `plan` ({key: (configuration name, strengths)}) for every seed; {key: [run, ...]}."""
    runs = {}
    for key, (name, strengths) in plan.items():
        runs[key] = []
        for seed in seeds:
            run = run_one(CONFIGS[name], seed, data, epochs, strengths)
            runs[key].append(run)
            zeros = ", ".join(f"{value:.3f}" for value in run.get("zero_fraction", {}).values())
            print(
                f"{key:>20} seed {seed}: accuracy {run['accuracy']:.4f}, zero fraction [{zeros}], "
                f"{run['seconds']:.1f} s",
                file=sys.stderr,
                flush=True,
            )
    return runs


def sweep_report(results):
    """The strength sweep: one row per (regularizer, strength), against the baseline of the run."""
    summary = results["summary"]
    lines = [
        "## Choosing the regularizers' strengths",
        "",
        f"Command: `{results['command']}` ({results['total_seconds'] / 60:.1f} minutes in all). Same "
        f"setup as the main table, {results['epochs']} epochs, seeds "
        f"{', '.join(map(str, results['seeds']))}; mean ± standard deviation over the seeds. Zero "
        "fraction and dead units are averaged over both MLPs.",
        "",
        "| regularizer | strength | test accuracy % | accuracy change (points) | zero fraction % "
        "| dead units % |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, entry in summary.items():
        name, strength = key.split("@") if "@" in key else (key, "—")
        regularizer = {"relu+l1": "ActivationL1", "relu+hoyer": "HoyerSquare"}.get(name, "none (ReLU)")
        dead = mean_std(statistics.fmean(run["dead_units"].values()) for run in results["runs"][key])
        lines.append(
            f"| {regularizer} | {strength} | {pm(entry['accuracy'], 100.0)} | "
            f"{signed(entry['accuracy_change_points'])} | {pm(entry['zero_fraction']['mean'], 100.0)} | "
            f"{pm(dead, 100.0)} |"
        )
    return "\n".join(lines) + "\n"


def main():
    args = parse_args()
    begin = time.perf_counter()
    check_block_matches_sparsified_mlp()
    data = load_data()
    strengths = {"l1": args.l1, "hoyer": args.hoyer}
    if args.sweep:
        plan = {BASELINE: (BASELINE, strengths)}
        for name, regularizer in (("relu+l1", "l1"), ("relu+hoyer", "hoyer")):
            for strength in args.sweep:
                plan[f"{name}@{strength:g}"] = (name, {**strengths, regularizer: strength})
    else:
        plan = {name: (name, strengths) for name in args.configs}
    runs = train_all(plan, args.seeds, data, args.epochs)
    results = {
        "command": shlex.join(["python", *sys.argv]),
        "quick": args.quick,
        "seeds": args.seeds,
        "epochs": args.epochs,
        "n_train": len(data[0]),
        "n_test": len(data[1]),
        "strengths": strengths,
        "machine": machine_description(include_jax=False),
        "runs": runs,
        "summary": summarise(runs),
        "total_seconds": time.perf_counter() - begin,
    }
    publish(sweep_report(results) if args.sweep else markdown_report(results), results, args)


if __name__ == "__main__":
    main()
