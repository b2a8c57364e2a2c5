"""Activation-sparsity fine-tuning of a trained ReLU MLP on scikit-learn's digits.

The recipe of the activation-sparsity paper, on a small scale: train a ReLU network (the
"checkpoint"), then fine-tune a copy in which every ReLU is a `MixedActivation("relu",
"j_squared_relu")` that the `ActivationMixing` callback moves from ReLU (t = 0) to J-SquaredReLU
(t = 1), with an `ActivationL1` penalty on the activations (an `ActivitySparsity` layer after each
one). The copy starts as exactly the checkpoint. `measure_sparsity` gives the fraction of
exactly-zero activations on the test set, in inference mode, before and after fine-tuning.

    python examples/sparsity_finetuning.py            # full run: about 30 s on 2 CPU cores
    python examples/sparsity_finetuning.py --quick    # about 10 s

Data: the 1797 8x8 digits bundled with scikit-learn (the `examples` extra), no download.
"""

import argparse
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import numpy as np

from keras_adaptive_acts import ActivitySparsity, MixedActivation, measure_sparsity
from keras_adaptive_acts.callbacks import ActivationMixing
from keras_adaptive_acts.compare import load_dataset
from keras_adaptive_acts.regularizers import ActivationL1


def build_mlp(make_activation, penalty=None):
    """64 -> 256 -> 256 -> 10; the activations are named act1 and act2 in every variant."""
    inputs = keras.Input((64,))
    x = inputs
    for i in (1, 2):
        x = keras.layers.Dense(256, name=f"dense{i}")(x)
        x = make_activation(f"act{i}")(x)
        if penalty is not None:
            x = ActivitySparsity(penalty, name=f"penalty{i}")(x)  # passes x through, adds the loss
    outputs = keras.layers.Dense(10, name="head")(x)
    return keras.Model(inputs, outputs)


def compile_model(model):
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss, metrics=["accuracy"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny run of a few seconds")
    parser.add_argument("--strength", type=float, default=1e-3, help="ActivationL1 strength (per example)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    train_epochs, finetune_epochs, mixing_epochs = (5, 3, 2) if args.quick else (40, 30, 10)

    x_train, y_train, x_test, y_test = load_dataset("digits")  # 8x8 digits in [0, 1], fixed 75/25 split

    # 1. The checkpoint: a plain ReLU MLP.
    keras.utils.set_random_seed(args.seed)
    relu_model = build_mlp(lambda name: keras.layers.ReLU(name=name))
    compile_model(relu_model)
    relu_model.fit(x_train, y_train, batch_size=32, epochs=train_epochs, verbose=0)
    _, accuracy_before = relu_model.evaluate(x_test, y_test, verbose=0)
    before = measure_sparsity(relu_model, x_test)

    # 2. The same network with MixedActivation at t = 0 (exactly ReLU) and an L1 penalty.
    tuned = build_mlp(
        lambda name: MixedActivation("relu", "j_squared_relu", name=name), ActivationL1(args.strength)
    )
    for name in ("dense1", "dense2", "head"):
        tuned.get_layer(name).set_weights(relu_model.get_layer(name).get_weights())
    start_gap = np.abs(tuned.predict(x_test, verbose=0) - relu_model.predict(x_test, verbose=0)).max()

    compile_model(tuned)
    mixing = ActivationMixing(duration=mixing_epochs, unit="epoch")  # t: 0 -> 1 over mixing_epochs
    history = tuned.fit(
        x_train, y_train, batch_size=32, epochs=finetune_epochs, verbose=0, callbacks=[mixing]
    )
    _, accuracy_after = tuned.evaluate(x_test, y_test, verbose=0)  # this loss includes the penalty
    after = measure_sparsity(tuned, x_test)

    print(f"max |fine-tuned model - checkpoint| before fine-tuning: {start_gap:.3g}")
    print("mixing t per epoch: " + " ".join(f"{t:.3g}" for t in history.history["mixing_t"]))
    for name in before:
        print(f"{name} zero fraction: before {before[name]:.4f} after {after[name]:.4f}")
    print(f"mean zero fraction before: {np.mean(list(before.values())):.4f}")
    print(f"mean zero fraction after: {np.mean(list(after.values())):.4f}")
    print(f"test accuracy before: {accuracy_before:.4f}")
    print(f"test accuracy after: {accuracy_after:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
