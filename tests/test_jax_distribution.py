"""Keras' JAX distribution API: `DataParallel` on two CPU devices, in a fresh process that runs
tests/jax_distribution_worker.py (XLA splits the CPU into two devices only before JAX starts).

Runs on any backend where JAX is installed: CI's JAX job runs it.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("jax", reason="keras.distribution on JAX: needs the jax extra (CI's JAX job runs it)")

WORKER = Path(__file__).with_name("jax_distribution_worker.py")
GUIDE = Path(__file__).resolve().parents[1] / "docs" / "guides" / "distribution.md"
TIMEOUT_S = 300  # about 50 s of CPU: the every-layer model traced twice for training, once to predict

# float32 rounding: each device sums the loss and gradients of its 4 rows and XLA adds the halves,
# where one device sums the 8 rows in one go. Measured after 4 Adam steps: losses within 1e-7
# relatively, weights within 1.8e-7. Other noise is far further away: the noise moves the first
# epoch's loss by about 1e-3 (measured with 32 rows: 2.8128 with it, 2.8119 with `c=0`).
LOSS_RTOL = WEIGHT_ATOL = 1e-5


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("jax_distribution")
    # XLA makes two devices of the CPU only if told before JAX starts: in the worker's environment.
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2".strip()
    environment = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3", "XLA_FLAGS": flags}
    run = subprocess.run(
        [sys.executable, str(WORKER), str(out_dir)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        env=environment,
        cwd=WORKER.parent,
    )
    assert run.returncode == 0, run.stderr[-5000:]
    return json.loads((out_dir / "result.json").read_text())


def assert_weights(actual, expected, atol):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=0, atol=atol)


def test_data_parallel_spreads_the_batch_and_copies_the_weights_on_two_devices(result):
    assert result["devices"] == ["cpu:0", "cpu:1"]
    assert result["weight_devices"] == 2  # a copy of each weight on each device
    assert result["batch_shards"] == [2, 2]  # a batch of 4 rows: 2 on each device


def test_data_parallel_trains_the_noisy_model_as_one_device_does_noise_included(result):
    """The noisy layers draw their noise for the whole (global) batch, as on one device: the two
    devices do not draw the same noise for their halves, and the training run is the same."""
    single, parallel = result["single"], result["data_parallel"]
    np.testing.assert_allclose(parallel["losses"], single["losses"], rtol=LOSS_RTOL)
    assert_weights(parallel["weights"], single["weights"], WEIGHT_ATOL)


def test_a_model_saved_under_data_parallel_reloads_on_one_device(result):
    # Every weight (the noise streams' positions too) exactly; predictions to float32 rounding.
    assert_weights(result["reloaded_weights"], result["data_parallel"]["weights"], 0.0)
    np.testing.assert_allclose(result["reloaded_predictions"], result["predictions"], rtol=1e-6, atol=1e-6)


def test_a_batch_the_devices_do_not_divide_fails_and_loses_the_weights_as_the_guide_says(result):
    assert result["five_rows_error"] == "IndivisibleError"
    # Keras' bug, which the guide warns of: when this passes, Keras has fixed it; the guide changes.
    assert result["weights_after_the_error"] == "TypeError"


def test_the_guide_shows_the_tested_distribution():
    """The guide's block is compiled, not run (no JAX in the docs' job): its lines are the worker's."""
    section = GUIDE.read_text().split("## On the JAX backend: DataParallel", 1)[1].split("\n## ", 1)[0]
    block = section.split("```python\n", 1)[1].split("```", 1)[0]
    line = next(line for line in block.splitlines() if "set_distribution" in line)
    assert line in WORKER.read_text()
    assert "IndivisibleError" in section and "2e-7" in section
