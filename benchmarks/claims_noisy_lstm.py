"""A small-scale test of the noisy-activations paper's claim: noise in saturated units helps an LSTM learn.

Gulcehre et al. (ICML 2016, arXiv 1603.00391) put noisy hard-sigmoid / hard-tanh units in LSTM
gates and report that they train better than the deterministic units, and that annealing the noise
scale `c` (from 30 down to 0.5) beats constant noise on a task where saturation hurts: counting the
unique integers of a sequence. This script runs that comparison at laptop scale:

- **Task.** Sequences of 10 to 20 integers (length uniform), each uniform in 0..9; the target is
  the number of distinct values (1..10), as 10-way classification. Inputs are tokens 1..10 (the
  integer + 1) padded with 0 to length 20 and embedded (`Embedding(11, 16, mask_zero=True)`: the
  padding is masked). 20000 training and 2000 test sequences from `np.random.default_rng(0)`,
  the same for every run.
- **Model.** `Embedding -> keras.layers.RNN(NoisyLSTMCell(64, seed=seed, ...)) -> Dense(10)`.
  Every configuration uses that same cell; only its noise differs:

      deterministic   gate_c=0, activation_c=0: the same units (alpha = 1.1 gates, 1.15 tanh
                      units) with noise scale 0, so the output is alpha*h + (1-alpha)*u in
                      training and inference, and the per-unit p gets no gradient
      noisy           the defaults: gates NAH with c = 0.15, tanh units NAN with c = 0.5
      annealed        the defaults, and `NoiseAnnealing(30, 0.5, schedule="exponential")` over
                      all training steps: every unit's c goes from 30 down to 0.5 (the paper's
                      schedule; the gates thus end at 0.5 rather than their default 0.15)
      hard            a reference: gate_alpha=1, activation_alpha=1, i.e. the plain hard sigmoid
                      and hard tanh (there is then no noise term at all, whatever c)

- **Training.** `keras.utils.set_random_seed(seed)` before building (the same initial weights for
  every configuration of a seed: the noisy units' `p` are drawn from the cell's seed, and the
  kernels from the global seed) and the same batch order. Adam, learning rate 1e-2 with cosine
  decay to 0, gradient norm clipped at 1, batch 64, 10 epochs, `jit_compile=True`, 25 steps per execution
  (so the annealed c changes every 25 steps).
- **Reported.** Test accuracy and loss (inference mode: the noise replaced by its expectation)
  after the last epoch, mean ± standard deviation over the seeds, and the paired difference to
  the deterministic configuration per seed. Also the accuracy on 4000 training sequences in
  inference mode (is a difference one of optimisation or of generalisation?) and the test
  accuracy after half of the epochs (speed of learning).

The paired statistics, the tables and the training loop are those of `claims_competitive_relu.py`.

Usage:
    python benchmarks/claims_noisy_lstm.py [--seeds 0 1 2 3 4] [--epochs N] [--configs ...]
        [--quick] [--out PATH] [--markdown PATH]

`--quick` trains 2 seeds for 1 epoch on 128 sequences, executed eagerly (no compilation): a
smoke run whose figures mean nothing.
"""

from __future__ import annotations

import hashlib
import os
import time
import warnings

os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
from activation_speed import publish
from claims_competitive_relu import (
    batches,
    check_claims_args,
    claims_parser,
    fit_and_evaluate,
    grid_results,
    logits_metrics,
    machine_line,
    mean_std,
    per_seed_table,
    pm,
    run_grid,
    runs_of,
    signed_pm,
    summarise,
    summary_table,
)

import keras_adaptive_acts as kaa

# With alpha = 1 (the "hard" reference) the units' p takes no part in the output: Keras warns that it
# gets no gradient, which is expected here.
warnings.filterwarnings("ignore", message="Gradients do not exist for variables", category=UserWarning)

VOCAB, MIN_LENGTH, MAX_LENGTH = 10, 10, 20  # integers 0..9, sequences of 10 to 20 of them
DATA_SEED, N_TRAIN, N_TEST, N_TRAIN_EVAL = 0, 20000, 2000, 4000
EMBEDDING, UNITS = 16, 64
BATCH, LEARNING_RATE, CLIPNORM, STEPS_PER_EXECUTION = 64, 1e-2, 1.0, 25
ANNEAL_START, ANNEAL_END = 30.0, 0.5  # the paper's schedule for this task
DEFAULT_EPOCHS, DEFAULT_SEEDS = 10, (0, 1, 2, 3, 4)
QUICK = {"epochs": 1, "seeds": (0, 1), "n_train": 128, "n_test": 64}

CONFIGS = {
    "deterministic": ("deterministic: c = 0", {"gate_c": 0.0, "activation_c": 0.0}),
    "noisy": ("noisy: default c (gates 0.15, tanh units 0.5)", {}),
    "annealed": (f"noisy: c annealed {ANNEAL_START:g} -> {ANNEAL_END:g}", {}),
    "hard": ("reference: plain hard functions (alpha = 1)", {"gate_alpha": 1.0, "activation_alpha": 1.0}),
}
BASELINE = "deterministic"


# ---------------------------------------------------------------------------------------------
# Data and model
# ---------------------------------------------------------------------------------------------


def make_sequences(n, rng):
    """`n` sequences as (tokens (n, MAX_LENGTH) int32, labels (n,) int32): tokens are the integers
    + 1, padded with 0 after the sequence; a label is the number of distinct integers minus 1."""
    lengths = rng.integers(MIN_LENGTH, MAX_LENGTH + 1, size=n)
    values = rng.integers(0, VOCAB, size=(n, MAX_LENGTH))
    valid = np.arange(MAX_LENGTH)[None, :] < lengths[:, None]
    tokens = np.where(valid, values + 1, 0).astype("int32")
    counts = np.array([len(np.unique(row[:length])) for row, length in zip(values, lengths, strict=True)])
    return tokens, (counts - 1).astype("int32")


def load_data(quick=False):
    """(x_train, x_test, y_train, y_test) from `np.random.default_rng(DATA_SEED)`: training sequences
    first, then test sequences, so the quick mode's data are a prefix of the full run's."""
    rng = np.random.default_rng(DATA_SEED)
    x_train, y_train = make_sequences(N_TRAIN, rng)
    x_test, y_test = make_sequences(N_TEST, rng)
    if quick:
        n, m = QUICK["n_train"], QUICK["n_test"]
        return x_train[:n], x_test[:m], y_train[:n], y_test[:m]
    return x_train, x_test, y_train, y_test


def steps_per_execution(steps, jit_compile):
    """STEPS_PER_EXECUTION under XLA (fewer Python round trips), 1 when executing eagerly."""
    return min(STEPS_PER_EXECUTION, steps) if jit_compile else 1


def build_model(config, seed, steps, jit_compile=True):
    """Embedding -> RNN(NoisyLSTMCell) -> Dense(10), compiled for `steps` training steps."""
    inputs = keras.Input((MAX_LENGTH,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(VOCAB + 1, EMBEDDING, mask_zero=True, name="embedding")(inputs)
    cell = kaa.NoisyLSTMCell(UNITS, seed=seed, **CONFIGS[config][1])
    x = keras.layers.RNN(cell, name="lstm")(x)
    outputs = keras.layers.Dense(VOCAB, name="logits")(x)
    model = keras.Model(inputs, outputs, name=f"counter_{config}")
    schedule = keras.optimizers.schedules.CosineDecay(LEARNING_RATE, decay_steps=steps)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule, clipnorm=CLIPNORM),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=jit_compile,
        run_eagerly=not jit_compile,
        steps_per_execution=steps_per_execution(steps, jit_compile),
    )
    return model, cell


# ---------------------------------------------------------------------------------------------
# The experiment
# ---------------------------------------------------------------------------------------------


def run_one(config, seed, data, epochs, jit_compile):
    x_train, x_test, y_train, y_test = data
    steps = epochs * (len(x_train) // BATCH)
    keras.utils.set_random_seed(seed)
    model, cell = build_model(config, seed, steps, jit_compile)
    digest = hashlib.sha256()  # every trainable weight: all but the noise scales c, which differ
    for weight in model.trainable_weights:
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)).tobytes())
    callbacks = []
    if config == "annealed":
        # c changes once per execution of `k` steps: the last execution starts at step
        # `(steps - 1) // k * k`, and is the first to run at c_end.
        k = steps_per_execution(steps, jit_compile)
        duration = max(1, (steps - 1) // k * k)
        callbacks.append(
            kaa.NoiseAnnealing(
                ANNEAL_START, ANNEAL_END, duration=duration, schedule="exponential", unit="step"
            )
        )
    result = fit_and_evaluate(
        model, batches(x_train, y_train, seed, BATCH), epochs, x_test, y_test, callbacks
    )
    history = result.pop("history")
    if "noise_c" in history:
        result["curve"]["noise_c"] = [float(c) for c in history["noise_c"]]
    n = min(N_TRAIN_EVAL, len(x_train))
    train_accuracy, train_loss = logits_metrics(
        model.predict(x_train[:n], batch_size=500, verbose=0), y_train[:n]
    )
    return {
        "config": config,
        "seed": seed,
        **result,
        "train_accuracy": train_accuracy,
        "train_loss": train_loss,
        "final_c": {unit.name: float(keras.ops.convert_to_numpy(unit.c)) for unit in cell.noisy_units},
        "initial_weights_sha256": digest.hexdigest(),
    }


def majority_accuracy(data):
    """Test accuracy of always answering the most frequent training label: the floor to beat."""
    _, _, y_train, y_test = data
    return float(np.mean(y_test == np.bincount(y_train).argmax()))


def markdown_report(results):
    summary, machine, runs, epochs = (
        results["summary"],
        results["machine"],
        results["runs"],
        results["epochs"],
    )
    labels = {config: CONFIGS[config][0] for config in results["configs"]}
    quick = " **Smoke run (`--quick`): these figures mean nothing.**" if results["quick"] else ""
    xla = "`jit_compile=True`" if results["jit_compile"] else "eager execution (`run_eagerly=True`)"
    half = max(1, epochs // 2)
    lines = [
        "## Noisy activations in an LSTM: counting unique integers",
        "",
        machine_line(machine),
        "",
        f"Command: `{results['command']}` ({results['total_seconds'] / 60:.1f} minutes in all).{quick}",
        "",
        f"Setup: sequences of {MIN_LENGTH}-{MAX_LENGTH} integers from 0..{VOCAB - 1}, target the number of "
        f"distinct values (10-way classification); {results['n_train']} train / {results['n_test']} test "
        f"sequences from `np.random.default_rng({DATA_SEED})`. Model: Embedding(11, {EMBEDDING}, masked "
        f"padding) -> `RNN(NoisyLSTMCell({UNITS}, seed=seed, ...))` -> Dense(10); only the cell's noise "
        f"settings differ between rows. Adam, learning rate {LEARNING_RATE:g} with cosine decay to 0, "
        f"clipnorm {CLIPNORM:g}, batch {BATCH}, {epochs} epochs, {xla}; seeds "
        f"{', '.join(map(str, results['seeds']))} (`keras.utils.set_random_seed` before building: the "
        "same initial weights and batch order for every configuration of a seed, checked). Test metrics in "
        "inference mode after the last epoch; mean ± standard deviation over the seeds; the difference "
        "to the deterministic cell is paired by seed. Always answering the most frequent training count "
        f"scores {100 * results['majority_accuracy']:.1f}% on the test set.",
        "",
        *summary_table(summary, labels, BASELINE, "deterministic"),
        "",
        f"Optimisation and speed: accuracy on the first {results['n_train_eval']} training sequences in "
        f"inference mode after training, and test accuracy after epoch {half} of {epochs}:",
        "",
        "| configuration | train accuracy % | test accuracy % after epoch " + f"{half} |",
        "|---|---:|---:|",
    ]
    for config in results["configs"]:
        config_runs = runs_of(runs, config)
        train = mean_std(run["train_accuracy"] for run in config_runs)
        early = mean_std(run["curve"]["test_accuracy"][half - 1] for run in config_runs)
        lines.append(f"| {labels[config]} | {pm(train)} | {pm(early)} |")
    if "hard" in results["configs"]:
        against_hard = summarise(runs, results["configs"], "hard")
        lines += [
            "",
            "Paired difference to the plain hard functions (the reference row), in points of test accuracy:",
            "",
            "| configuration | difference (points) | wins / losses / ties |",
            "|---|---:|---:|",
        ]
        for config, entry in against_hard.items():
            if config != "hard":
                record = f"{entry['wins']} / {entry['losses']} / {entry['ties']}"
                lines.append(f"| {labels[config]} | {signed_pm(entry['diff_points'])} | {record} |")
    lines += ["", "Test accuracy % per seed:", "", *per_seed_table(runs, results["configs"], labels)]
    annealed = runs_of(runs, "annealed")
    if annealed:
        values = annealed[0]["curve"]["noise_c"]
        lines += [
            "",
            "Annealed c at the end of each epoch: " + ", ".join(f"{c:.3g}" for c in values) + ".",
        ]
    return "\n".join(lines) + "\n"


def parse_args():
    parser = claims_parser(__doc__, CONFIGS, DEFAULT_SEEDS, DEFAULT_EPOCHS, QUICK)
    return check_claims_args(
        parser, parser.parse_args(), CONFIGS, BASELINE, DEFAULT_SEEDS, DEFAULT_EPOCHS, QUICK
    )


def main():
    args = parse_args()
    begin = time.perf_counter()
    data = load_data(args.quick)

    def describe(config, seed, run):
        return (
            f"{config:>14} seed {seed}: test accuracy {run['accuracy']:.4f}, loss {run['loss']:.4f}, "
            f"train accuracy {run['train_accuracy']:.4f}, {run['seconds']:.1f} s"
        )

    runs, jit_compile = run_grid(args, data, run_one, describe)
    results = grid_results(
        args,
        data,
        runs,
        jit_compile,
        CONFIGS,
        BASELINE,
        begin,
        n_train_eval=min(N_TRAIN_EVAL, len(data[0])),
        majority_accuracy=majority_accuracy(data),
    )
    publish(markdown_report(results), results, args)


if __name__ == "__main__":
    main()
