"""A small RandomSearch over the activations, run as its own process by tests/test_tuning.py.

Each trial appends `{"tuner_id", "trial_id", "values"}` to `--log` as it starts. `--crash-at-trial ID`
kills the process (`os._exit`) when that trial starts, as an interruption would. `--wait-for-tuners N`
holds every trial until N tuners have started one, so that distributed trials are spread over
workers. KerasTuner's distribution variables (KERASTUNER_TUNER_ID, ...) come from the environment.
"""

import argparse
import json
import os
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import keras_tuner
import numpy as np

from keras_adaptive_acts.tuning import ActivationHyperModel

CHOICES = ["relu", "competitive_relu", "noisy_hard_tanh", "rrelu"]


def data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((96, 6)).astype("float32")
    y = (x[:, :1] * x[:, 1:2] + np.abs(x[:, 2:3])).astype("float32")
    return x[:64], y[:64], x[64:], y[64:]


def build(hp, activation):
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(hp.Choice("units", [8, 16])),
            activation(),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    return model


def started_tuners(log):
    with open(log) as file:
        return {json.loads(line)["tuner_id"] for line in file}


class LoggingSearch(keras_tuner.RandomSearch):
    def __init__(self, *args, log, crash_at_trial=None, wait_for_tuners=1, **kwargs):
        super().__init__(*args, **kwargs)
        self.log, self.crash_at_trial, self.wait_for_tuners = log, crash_at_trial, wait_for_tuners

    def run_trial(self, trial, *args, **kwargs):
        values = trial.hyperparameters.values
        record = {"tuner_id": self.tuner_id, "trial_id": trial.trial_id, "values": values}
        with open(self.log, "a") as file:
            file.write(json.dumps(record) + "\n")
        if trial.trial_id == self.crash_at_trial:
            os._exit(3)
        deadline = time.monotonic() + 120
        while len(started_tuners(self.log)) < self.wait_for_tuners and time.monotonic() < deadline:
            time.sleep(0.2)
        return super().run_trial(trial, *args, **kwargs)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--directory", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--max-trials", type=int, default=3)
    parser.add_argument("--crash-at-trial")
    parser.add_argument("--wait-for-tuners", type=int, default=1)
    args = parser.parse_args()

    tuner = LoggingSearch(
        ActivationHyperModel(build, choices=CHOICES),
        objective="val_loss",
        max_trials=args.max_trials,
        seed=1,
        directory=args.directory,
        project_name="search",
        overwrite=False,
        log=args.log,
        crash_at_trial=args.crash_at_trial,
        wait_for_tuners=args.wait_for_tuners,
    )
    x, y, x_val, y_val = data()
    tuner.search(x, y, validation_data=(x_val, y_val), epochs=2, batch_size=16, verbose=0)


if __name__ == "__main__":
    main()
