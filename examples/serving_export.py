"""Export a model with noisy layers for TF Serving, verify it, and make Monte Carlo predictions.

Trains a small MLP with a `NoisyHardTanh` layer (noise in its saturated region while training, its
expectation at inference) on scikit-learn's digits, then:

1. `export_for_serving(model, path, monte_carlo=True)` writes a SavedModel with two signatures:
   `serving_default` (deterministic: the noisy layers at their expectation) and `monte_carlo`
   (the noise kept on, new noise at every call).
2. `verify_serving` checks `serving_default` as TF Serving would run it: a fresh Python process that
   cannot import keras_adaptive_acts, and `saved_model_cli`; the report is printed.
3. The SavedModel is reloaded with plain `tf.saved_model.load`, and the `monte_carlo` signature is
   called N times on the same test images: the mean and the spread of the N predictions.

    python examples/serving_export.py --out serving/digits/1   # full run: about 1 min on 2 CPU cores
    python examples/serving_export.py --quick                  # about 30 s (verification runs subprocesses)

Needs the TensorFlow backend and the `examples` extra (scikit-learn). Without `--out`, the SavedModel
goes to a temporary directory that is deleted at the end; an existing `--out` is replaced.
"""

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import numpy as np
import tensorflow as tf

from keras_adaptive_acts import NoisyHardTanh
from keras_adaptive_acts.compare import load_dataset
from keras_adaptive_acts.export import export_for_serving, verify_serving


def build_model():
    inputs = keras.Input((64,), name="pixels")  # clients send the input by this name
    x = keras.layers.Dense(64)(inputs)
    x = NoisyHardTanh(seed=0)(x)
    x = keras.layers.Dense(64)(x)
    x = NoisyHardTanh(seed=1)(x)
    outputs = keras.layers.Dense(10, name="logits")(x)  # the name of the output in responses
    return keras.Model(inputs, outputs)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short training run")
    parser.add_argument("--out", default=None, help="the SavedModel directory (default: temporary)")
    parser.add_argument("--draws", type=int, default=100, help="Monte Carlo calls per input")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    epochs = 3 if args.quick else 30

    x_train, y_train, x_test, y_test = load_dataset("digits")  # 8x8 digits in [0, 1], fixed 75/25 split
    keras.utils.set_random_seed(args.seed)
    model = build_model()
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(x_train, y_train, batch_size=32, epochs=epochs, verbose=0)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"keras model test accuracy: {accuracy:.4f}")

    with tempfile.TemporaryDirectory(prefix="kaa-serving-") as temporary:
        path = Path(args.out) if args.out else Path(temporary) / "digits" / "1"
        export_for_serving(model, path, monte_carlo=True, overwrite=True)
        print(f"exported to {path}")

        report = verify_serving(path, x_test[:16], model)  # raises ServingVerificationError on failure
        print(report)

        loaded = tf.saved_model.load(str(path))  # what TF Serving loads; this package is not needed
        serve = loaded.signatures["serving_default"]
        monte_carlo = loaded.signatures["monte_carlo"]
        inputs = tf.constant(x_test)
        deterministic = serve(pixels=inputs)["logits"].numpy()
        draws = np.stack([monte_carlo(pixels=inputs)["logits"].numpy() for _ in range(args.draws)])
        mean, spread = draws.mean(axis=0), draws.std(axis=0)

        gap = np.abs(mean - deterministic).mean()
        print(f"monte carlo draws: {args.draws} on {len(x_test)} test images")
        print(f"monte carlo spread: mean {spread.mean():.4g}, max {spread.max():.4g} (std of the logits)")
        print(f"monte carlo mean vs serving_default: {gap:.4g} (mean |difference| of the logits)")
        print(f"serving_default test accuracy: {np.mean(deterministic.argmax(-1) == y_test):.4f}")
        print(f"monte carlo mean test accuracy: {np.mean(mean.argmax(-1) == y_test):.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
