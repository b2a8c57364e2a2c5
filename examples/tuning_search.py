"""Search the activation (and its own hyper-parameters) with KerasTuner, on scikit-learn's digits.

`ActivationHyperModel` turns a `build(hp, activation)` function into a KerasTuner `HyperModel`:
wherever the model calls `activation()`, it gets a new layer of the trial's choice (ReLU,
CompetitiveReLU, the noisy hard units, RReLU, J-SquaredReLU), with that layer's own
hyper-parameters searched too (e.g. `competition` and `scale_bound` of CompetitiveReLU). A `RandomSearch`
runs a few trials and prints KerasTuner's `results_summary` and the best hyper-parameters.

    python examples/tuning_search.py            # full run: about 2 minutes on 2 CPU cores (10 trials)
    python examples/tuning_search.py --quick    # about 15 s: 2 trials of 1 epoch

Needs the `tuner` extra (keras-tuner) and the `examples` extra (scikit-learn, for the digits). The
trials are written to `--directory` (default: a temporary directory, deleted at the end).
"""

import argparse
import os
import tempfile

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras

from keras_adaptive_acts.compare import load_dataset
from keras_adaptive_acts.extras import require

keras_tuner = require("keras_tuner", "tuner", "This example")

from keras_adaptive_acts.tuning import ActivationHyperModel  # noqa: E402 (needs KerasTuner)


def build(hp, activation):
    """An MLP for the 8x8 digits; `activation()` is the searched layer, a new one at each call."""
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(hp.Choice("units", [64, 128])),  # a hyper-parameter of our own
            activation(),
            keras.layers.Dense(64),
            activation(),
            keras.layers.Dense(10),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 trials of 1 epoch")
    parser.add_argument("--directory", default=None, help="where KerasTuner writes its trials")
    parser.add_argument("--seed", type=int, default=1, help="KerasTuner reads seed=0 as 'no seed'")
    args = parser.parse_args(argv)
    max_trials, epochs = (2, 1) if args.quick else (10, 20)

    x_train, y_train, x_val, y_val = load_dataset("digits")  # 8x8 digits in [0, 1], fixed 75/25 split

    keras.utils.set_random_seed(args.seed)
    with tempfile.TemporaryDirectory(prefix="kaa-tuning-") as temporary:
        tuner = keras_tuner.RandomSearch(
            # or ActivationHyperModel(build, choices=["relu", "competitive_relu"])
            ActivationHyperModel(build),
            objective="val_accuracy",
            max_trials=max_trials,
            seed=args.seed,
            directory=args.directory or temporary,
            project_name="activations",
            overwrite=True,
        )
        tuner.search(x_train, y_train, validation_data=(x_val, y_val), epochs=epochs, verbose=0)

        tuner.results_summary(num_trials=max_trials)
        completed = [t for t in tuner.oracle.trials.values() if t.status == "COMPLETED"]
        best = tuner.get_best_hyperparameters(1)[0]
        print()
        print(f"completed trials: {len(completed)} of {max_trials}")
        print("best hyper-parameters: " + ", ".join(f"{name}={value}" for name, value in best.values.items()))
        print(f"best val_accuracy: {tuner.oracle.get_best_trials(1)[0].score:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
