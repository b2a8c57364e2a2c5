"""A `.keras` file of a model with every public layer, written on one Keras and checked on another.

Keras promises that a file saved by an older Keras loads on a newer one; this package must keep that
promise for its own layers. `.ci/run` writes the file on the floor Keras this package declares and
checks it (`KAA_FLOOR_FILE=DIR pytest tests/test_floor_file.py`) on the newest Keras and on
keras-nightly; `tests/test_floor_file.py` also checks the copy committed under
`tests/data/every_layer_keras_3_10/` (written by Keras 3.10 with TensorFlow 2.19) on whatever Keras
runs the tests.

    python tests/floor_file.py write DIR   # on the old Keras
    python tests/floor_file.py check DIR   # on the new Keras: exits 1 with the reason if it fails

The file holds a model trained for one step, after three more training-mode calls, so that its
weights, its BatchNorm-free statistics and its noise streams are all away from their initial values.
Next to it: the inputs, the inference outputs, and the outputs of the next training-mode call
(which depend on the saved noise-stream positions), and the Keras / backend versions that wrote them.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras
import numpy as np
from every_layer_model import functional_model, sample

import keras_adaptive_acts  # noqa: F401 (registers the layers for loading)

MODEL_FILE = "every_layer.keras"


def write(folder: Path) -> None:
    """Trains, saves and records the model in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(0)
    model = functional_model()
    x = sample(rows=8, scale=2.0, seed=1)
    y = np.random.default_rng(2).integers(0, 3, size=8)
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    for _ in range(3):
        model(x, training=True)  # advance every noise stream
    model.save(folder / MODEL_FILE)
    np.save(folder / "inputs.npy", x)
    np.save(folder / "inference.npy", keras.ops.convert_to_numpy(model(x, training=False)))
    np.save(folder / "next_training_call.npy", keras.ops.convert_to_numpy(model(x, training=True)))
    versions = {"keras": keras.__version__, "backend": keras.backend.backend()}
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        versions["tensorflow"] = tf.__version__
    (folder / "versions.json").write_text(json.dumps(versions, indent=2) + "\n")


def check(folder: Path) -> dict[str, str]:
    """Loads the file with `safe_mode=True` and compares; returns the problems found by kind.

    Kinds: "inference" (the outputs at inference differ) and "noise" (the next training-mode call
    draws other noise than the writer's next call did). No entry: that part passed.
    """
    written = json.loads((folder / "versions.json").read_text())
    model = keras.saving.load_model(folder / MODEL_FILE, safe_mode=True)
    x = np.load(folder / "inputs.npy")
    problems = {}
    got = keras.ops.convert_to_numpy(model(x, training=False))
    expected = np.load(folder / "inference.npy")
    if not np.allclose(got, expected, rtol=1e-5, atol=1e-6):
        problems["inference"] = (
            f"inference outputs differ: max abs error {np.max(np.abs(got - expected)):.3g}"
        )
    # The noise streams continue where they were saved. Each backend has its own random generator,
    # so the draws only repeat on the backend that wrote the file.
    if written["backend"] == keras.backend.backend():
        got = keras.ops.convert_to_numpy(model(x, training=True))
        expected = np.load(folder / "next_training_call.npy")
        if not np.allclose(got, expected, rtol=1e-5, atol=1e-6):
            error = np.max(np.abs(got - expected))
            problems["noise"] = f"the next training-mode call draws other noise: max abs error {error:.3g}"
    return problems


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("write", "check"):
        sys.exit(__doc__)
    command, target = sys.argv[1], Path(sys.argv[2])
    if command == "write":
        write(target)
        print(f"wrote {target / MODEL_FILE} with Keras {keras.__version__}")
    else:
        found = check(target)
        written = json.loads((target / "versions.json").read_text())["keras"]
        for problem in found.values():
            print(f"FAILED: file from Keras {written} on Keras {keras.__version__}: {problem}")
        if found:
            sys.exit(1)
        print(f"the file written by Keras {written} loads on Keras {keras.__version__} with equal outputs")
