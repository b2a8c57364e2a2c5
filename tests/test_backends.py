"""The backends: a `.keras` file saved on this test run's backend loads on every other installed one.

Run the suite once per backend (`tox -e py311-tensorflow,py311-jax,py311-torch`, or
`KERAS_BACKEND=jax python -m pytest tests/layers ...`) to cover every direction. The loading side
runs in a fresh process with its own `KERAS_BACKEND`.
"""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from every_layer_model import CLASSES, functional_model, sample
from layer_testing import BACKEND, JIT_COMPILE

BACKEND_MODULES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
OTHER_BACKENDS = [name for name in BACKEND_MODULES if name != BACKEND]

# The same float32 weights and inputs through 15 layers (an LSTM and a GRU among them): the backends'
# kernels sum in different orders, so outputs agree to a few float32 roundings, not to the bit.
RTOL, ATOL = 1e-5, 1e-6

LOAD_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import keras
    import keras_adaptive_acts  # registers the layers

    model_path, data_path = sys.argv[1:3]
    data = np.load(data_path)
    model = keras.saving.load_model(model_path, safe_mode=True)
    first = keras.ops.convert_to_numpy(model(data["x"], training=False))
    second = model.predict(data["x"], verbose=0)
    print(json.dumps({
        "backend": keras.backend.backend(),
        "outputs": first.tolist(),
        "predicted": second.tolist(),
        "layers": [type(layer).__name__ for layer in model.layers],
    }))
    """
)


def is_installed(backend):
    return importlib.util.find_spec(BACKEND_MODULES[backend]) is not None


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """The every-layer model trained for a few steps here, saved with its inputs and outputs."""
    keras.utils.set_random_seed(0)
    model = functional_model()
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=JIT_COMPILE,
    )
    x = sample(rows=32, seed=1)
    y = np.random.default_rng(2).integers(0, CLASSES, size=32)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    directory = tmp_path_factory.mktemp("backends")
    model_path, data_path = directory / "model.keras", directory / "data.npz"
    model.save(model_path)
    x_test = sample(rows=7, seed=3)
    expected = keras.ops.convert_to_numpy(model(x_test, training=False))
    np.savez(data_path, x=x_test)
    return model, model_path, data_path, expected


def load_on(backend, model_path, data_path):
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, str(model_path), str(data_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_training_moved_every_layer_off_its_initial_state(saved_model):
    model, *_ = saved_model
    zeroth_bias = next(layer for layer in model.layers if type(layer).__name__ == "ZerothBias")
    # b0 starts at zero: a loaded file with equal outputs then proves the trained weights travelled.
    assert np.any(keras.ops.convert_to_numpy(zeroth_bias.b0) != 0)


@pytest.mark.slow
@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_keras_file_saved_here_loads_on_another_backend_with_equal_outputs(saved_model, backend):
    if not is_installed(backend):
        pytest.skip(f"the {backend} backend is not installed here ({BACKEND_MODULES[backend]!r} not found)")
    model, model_path, data_path, expected = saved_model
    loaded = load_on(backend, model_path, data_path)
    assert loaded["backend"] == backend
    assert loaded["layers"] == [type(layer).__name__ for layer in model.layers]
    for outputs in (loaded["outputs"], loaded["predicted"]):  # eager call, and predict's compiled loop
        np.testing.assert_allclose(np.array(outputs), expected, rtol=RTOL, atol=ATOL)
