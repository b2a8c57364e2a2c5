"""A noisy LSTM (`NoisyLSTMCell` in `keras.layers.RNN`) with annealed noise, against Keras' LSTM.

The task is the noisy-activations paper's: count the distinct integers in a sequence. Each sample is
a sequence of `length` integers drawn from `0 .. vocabulary - 1`, generated here; the label is the
number of distinct values in it, framed as classification. Two models with the same embedding and
head are trained: one with Keras' plain `LSTM`, one with `RNN(NoisyLSTMCell(...))`, whose gates and
tanh units are noisy hard units. The `NoiseAnnealing` callback lowers their noise scale `c` from
large to small over the epochs (the paper anneals it on this task). At inference the noisy cell
computes its deterministic expectation. Prints the test accuracy of both models, the majority-class
baseline and the noise scale of each epoch.

    python examples/noisy_lstm.py            # full run: about 3 minutes on 2 CPU cores
    python examples/noisy_lstm.py --quick    # about 20 s: 1500 sequences, 2 epochs (a smoke run)
"""

import argparse
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import numpy as np

from keras_adaptive_acts import NoisyLSTMCell
from keras_adaptive_acts.callbacks import NoiseAnnealing


def make_counting_task(n_samples, length, vocabulary, seed):
    """Sequences of random integers, labelled by how many distinct integers each holds."""
    x = np.random.default_rng(seed).integers(0, vocabulary, size=(n_samples, length))
    y = np.array([len(set(row)) for row in x])
    return x.astype("int32"), y.astype("int32")


def build_model(recurrent_layer, length, vocabulary):
    return keras.Sequential(
        [
            keras.Input((length,), dtype="int32"),
            keras.layers.Embedding(vocabulary, 16),
            recurrent_layer,
            keras.layers.Dense(length + 1),  # classes 0 .. length distinct values
        ]
    )


def train(model, data, epochs, callbacks=()):
    (x_train, y_train), (x_test, y_test) = data
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    history = model.fit(x_train, y_train, batch_size=64, epochs=epochs, verbose=0, callbacks=list(callbacks))
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    return accuracy, history.history


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny run of a few seconds")
    parser.add_argument("--epochs", type=int, default=None, help="default 20 (2 with --quick)")
    parser.add_argument("--length", type=int, default=10, help="integers per sequence")
    parser.add_argument(
        "--vocabulary", type=int, default=10, help="integers are drawn from 0 .. vocabulary-1"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    epochs = args.epochs or (2 if args.quick else 20)
    n_train = 1500 if args.quick else 10000

    train_data = make_counting_task(n_train, args.length, args.vocabulary, seed=args.seed)
    test_data = make_counting_task(2000, args.length, args.vocabulary, seed=args.seed + 1)
    data = (train_data, test_data)
    majority = np.bincount(train_data[1]).argmax()
    baseline = float(np.mean(test_data[1] == majority))
    print(f"counting distinct integers: {n_train} train / 2000 test sequences of length {args.length}")

    keras.utils.set_random_seed(args.seed)
    plain = build_model(keras.layers.LSTM(64), args.length, args.vocabulary)
    plain_accuracy, _ = train(plain, data, epochs)

    keras.utils.set_random_seed(args.seed)
    noisy = build_model(keras.layers.RNN(NoisyLSTMCell(64, seed=args.seed)), args.length, args.vocabulary)
    # c from 5 down to 0.5, geometrically (the paper: 30 -> 0.5 on longer runs); the last epoch at c_end.
    annealing = NoiseAnnealing(5.0, 0.5, duration=max(epochs - 1, 1), schedule="exponential", unit="epoch")
    noisy_accuracy, history = train(noisy, data, epochs, callbacks=[annealing])

    # Inference is the noisy units' expectation: the same input gives the same output.
    sample = test_data[0][:256]
    deterministic = np.array_equal(noisy.predict(sample, verbose=0), noisy.predict(sample, verbose=0))

    print("noise c per epoch: " + " ".join(f"{c:.4g}" for c in history["noise_c"]))
    print(f"majority-class baseline accuracy: {baseline:.4f}")
    print(f"lstm test accuracy: {plain_accuracy:.4f}")
    print(f"noisy_lstm test accuracy: {noisy_accuracy:.4f}")
    print(f"noisy_lstm inference deterministic: {deterministic}")
    if args.quick:
        # Two epochs on 1500 sequences are too few for either model to pass the majority baseline.
        print(
            "smoke run (--quick): too short to learn the task; the accuracies only show that it runs. "
            "Run without --quick (about 3 minutes) to compare the models."
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
