"""Training under tf.distribute, in fresh processes that run tests/distribution_worker.py.

MirroredStrategy on two logical CPU devices, MultiWorkerMirroredStrategy with two worker processes on
localhost, and keras.callbacks.BackupAndRestore across a killed process, with the model that has every
layer of the package (`every_layer_model.every_layer`); and the examples of docs/guides/distribution.md.
"""

import inspect
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

if keras.backend.backend() != "tensorflow":
    pytest.skip("tf.distribute is TensorFlow-only", allow_module_level=True)

import distribution_worker as worker

import keras_adaptive_acts as kaa

WORKER = Path(worker.__file__)
TIMEOUT_S = 300  # for all the processes (about 85 s of CPU in all); a lost worker's peer would wait for ever

# float32 rounding: a replica sums the loss and gradients of its 4 rows, the all-reduce adds the two
# halves, one device sums the 8 rows in one go. Measured after 12 Adam steps: the logged losses (5.4 down
# to 1.5) equal (mirrored) or within 1e-7 relatively (multi-worker), weights within 2.1e-7. 1e-5 leaves
# a margin of about 50; a real fault is far larger (ActivitySparsity's penalty, about 3 at first, would
# double if each replica counted it whole).
LOSS_RTOL = WEIGHT_ATOL = 1e-5
# A model reloaded in this process computes the same float32 ops as the worker did on its CPU device.
PREDICTION_ATOL = 1e-6


def launch(name, base, mode, *args, env=None):
    """Starts `distribution_worker.py MODE OUT_DIR ARGS`; its output goes to BASE/NAME.txt."""
    out_dir = base / ("backup" if mode == "backup" else name)
    out_dir.mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    with open(base / f"{name}.txt", "w") as output:
        command = [sys.executable, str(WORKER), mode, str(out_dir), *map(str, args)]
        return subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=environment)


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


class Runs:
    """The processes of this module, started together (they are independent) to share the cores.

    `mirrored`; `guide`, the guide's example; `worker0` and `worker1`, one MultiWorkerMirroredStrategy;
    `killed`, a BackupAndRestore run ended in epoch 1 by `os._exit(17)`, then `resumed` in a new
    process. All are killed after TIMEOUT_S, and a worker at once when the other fails (it would wait
    for it for ever).
    """

    WORKERS = ("worker0", "worker1")

    def __init__(self, base):
        self.base, self.failures = base, {}
        cluster = {"worker": [f"localhost:{port}" for port in free_ports(2)]}
        pending = {name: launch(name, base, name) for name in ("mirrored", "guide")}
        pending["killed"] = launch("killed", base, "backup", 1)
        for index, name in enumerate(self.WORKERS):
            tf_config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
            pending[name] = launch(name, base, "worker", env={"TF_CONFIG": json.dumps(tf_config)})
        deadline = time.monotonic() + TIMEOUT_S
        while pending:
            for name, process in list(pending.items()):
                if process.poll() is None:
                    continue
                del pending[name]
                expected = 17 if name == "killed" else 0
                if process.returncode != expected:
                    self.failures[name] = f"exit code {process.returncode}, expected {expected}"
                    peers = [peer for peer in self.WORKERS if peer in pending] if name in self.WORKERS else []
                    for peer in peers:  # it would wait for the failed worker until the deadline
                        pending[peer].kill()
                        pending.pop(peer).wait()
                        self.failures[peer] = f"killed: {name} failed"
                elif name == "killed":
                    pending["resumed"] = launch("resumed", base, "backup")
            if time.monotonic() > deadline:
                for name, process in pending.items():
                    process.kill()
                    process.wait()
                    self.failures[name] = f"killed: not done after {TIMEOUT_S} s"
                break
            time.sleep(0.2)

    def result(self, name):
        path = self.base / ("backup" if name == "resumed" else name) / "result.json"
        if name in self.failures or not path.exists():
            log = self.base / f"{name}.txt"
            failure = self.failures.get(name, "no result")
            pytest.fail(f"{name}: {failure}\n{log.read_text()[-5000:] if log.exists() else ''}")
        return json.loads(path.read_text())

    def path(self, name):
        return self.base / name


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return Runs(tmp_path_factory.mktemp("distribution"))


def assert_weights(actual, expected, atol=0.0):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=0, atol=atol)


def reload_on_one_device(keras_file, weights_file):
    """The checkpoint loaded here, in this single-device process: from the .keras file and into `build()`."""
    from_file = keras.saving.load_model(keras_file)
    from_weights = worker.build()
    from_weights.optimizer.build(from_weights.trainable_variables)  # to load its state too
    from_weights.load_weights(weights_file)
    return from_file, from_weights


# ----------------------------------------------------------------------------------------------
# MirroredStrategy, two logical CPU devices


@pytest.mark.slow
def test_mirrored_fit_matches_training_on_one_device(runs):
    result = runs.result("mirrored")
    assert result["replicas"] == 2
    single, mirrored = result["single"], result["mirrored"]
    assert len(mirrored["losses"]) == worker.EPOCHS * worker.ROWS // worker.BATCH
    assert mirrored["losses"][-1] < 0.5 * mirrored["losses"][0]  # it learns
    np.testing.assert_allclose(mirrored["losses"], single["losses"], rtol=LOSS_RTOL)
    assert_weights(mirrored["weights"], single["weights"], atol=WEIGHT_ATOL)


@pytest.mark.slow
def test_mirrored_checkpoints_restore_under_the_strategy_and_on_one_device(runs):
    result, out_dir = runs.result("mirrored"), runs.path("mirrored")
    trained = result["mirrored"]["weights"]
    for reloaded in result["reloaded"]:  # .weights.h5 and .keras, reloaded under the strategy
        assert_weights(reloaded["weights"], trained)
        assert reloaded["seeds"] == result["seeds"]
        np.testing.assert_array_equal(reloaded["predictions"], result["predictions"])
    x_test = worker.data()[0][:5]
    for model in reload_on_one_device(out_dir / "mirrored.keras", out_dir / "mirrored.weights.h5"):
        assert_weights(model.get_weights(), trained)
        assert worker.seed_states(model) == result["seeds"]
        np.testing.assert_allclose(model(x_test), result["predictions"], rtol=0, atol=PREDICTION_ATOL)


@pytest.mark.slow
def test_each_replica_draws_its_own_noise(runs):
    result = runs.result("mirrored")
    # Different noise differs by 0.009 (NoisyHardSigmoid) to 0.6 (RReLU) here; the same noise by 0.
    same_0, same_1 = result["deterministic_on_replicas"]
    np.testing.assert_array_equal(same_0, same_1)  # no noise: the replicas agree
    for name, (replica_0, replica_1) in result["noise"].items():
        difference = np.max(np.abs(np.subtract(replica_0, replica_1)))
        if name.startswith("control"):
            assert difference == 0, name  # Keras' plain SeedGenerator: the same noise on both replicas
        else:
            assert difference > 1e-4, f"{name}: both replicas drew the same noise"


@pytest.mark.slow
def test_a_noisy_layer_called_outside_its_replicas_draws_as_on_one_device(runs):
    """Built in `strategy.scope()`, called in it and after it (not through `fit` or `strategy.run`):
    the draws are one device's, and every replica's copy of the stream advances alike."""
    result = runs.result("mirrored")["cross_replica"]
    np.testing.assert_array_equal(result["outputs"], result["one_device"])
    assert result["positions"] == [[7, 2], [7, 2]]  # seed 7, two draws, on both replicas


@pytest.mark.slow
def test_backup_and_restore_resumes_under_mirrored_strategy(runs):
    result = runs.result("mirrored")
    backup, uninterrupted = result["backup"], result["mirrored"]
    assert backup["interrupted"]
    assert backup["epochs"] == [1, 2]  # epoch 0 came from the backup; the broken epoch 1 is run again
    steps = worker.ROWS // worker.BATCH
    assert backup["losses"] == uninterrupted["losses"][steps:]  # same process, same ops: exact
    assert_weights(backup["weights"], uninterrupted["weights"])
    assert backup["seeds"] == result["seeds"]  # the noise streams continued where the backup left them


# ----------------------------------------------------------------------------------------------
# MultiWorkerMirroredStrategy, two worker processes


@pytest.mark.slow
def test_multi_worker_training_matches_one_device_and_the_workers_agree(runs):
    chief, other = runs.result("worker0"), runs.result("worker1")
    single = runs.result("mirrored")["single"]  # fit on one device, in the mirrored process
    assert chief["replicas"] == other["replicas"] == 2
    assert chief["losses"] == other["losses"]  # the loss of each global batch, all-reduced
    # fit logs the running mean of the epoch's batch losses: the same from the loop's batch losses.
    steps = worker.ROWS // worker.BATCH
    running = np.cumsum(np.reshape(chief["losses"], (-1, steps)), axis=1) / np.arange(1, steps + 1)
    np.testing.assert_allclose(running.ravel(), single["losses"], rtol=LOSS_RTOL)
    assert_weights(chief["weights"], other["weights"])  # one synchronous update on both workers
    assert_weights(chief["weights"], single["weights"], atol=WEIGHT_ATOL)
    assert chief["seeds"] == other["seeds"]


@pytest.mark.slow
def test_each_worker_draws_its_own_noise_the_noise_of_its_replica_number(runs):
    chief, other = runs.result("worker0"), runs.result("worker1")
    mirrored = runs.result("mirrored")["noise"]
    for name in mirrored:
        (on_chief,), (on_other,) = chief["noise"][name], other["noise"][name]
        if name.startswith("control"):
            np.testing.assert_array_equal(on_chief, on_other)
        else:
            assert np.max(np.abs(np.subtract(on_chief, on_other))) > 1e-4, (
                f"{name}: same noise on both workers"
            )
        # Replica k draws the same noise in both strategies (and in both processes): the seeds decide.
        np.testing.assert_array_equal(on_chief, mirrored[name][0])
        np.testing.assert_array_equal(on_other, mirrored[name][1])


@pytest.mark.slow
def test_the_chiefs_checkpoint_restores_on_one_device(runs):
    chief, out_dir = runs.result("worker0"), runs.path("worker0")
    x_test = worker.data()[0][:5]
    for model in reload_on_one_device(out_dir / "chief.keras", out_dir / "chief.weights.h5"):
        assert_weights(model.get_weights(), chief["weights"])
        assert worker.seed_states(model) == chief["seeds"]
        np.testing.assert_allclose(model(x_test), chief["predictions"], rtol=0, atol=PREDICTION_ATOL)


@pytest.mark.slow
def test_keras_fit_still_fails_under_multi_worker_strategy(runs):
    # Keras 3's fit reduces a PerReplica batch in a way MultiWorkerMirroredStrategy rejects, with any
    # model (keras-team/keras#20585). When this fails, Keras has fixed it: test fit, update the guide.
    for result in (runs.result("worker0"), runs.result("worker1")):
        assert result["fit_error"] is not None and "PerReplica" in result["fit_error"], result["fit_error"]


# ----------------------------------------------------------------------------------------------
# BackupAndRestore across processes, and the saved noise position it relies on


@pytest.mark.slow
def test_backup_and_restore_resumes_a_killed_process_at_its_epoch_and_noise_position(runs):
    # The noisy model (noise on everywhere): the resumed weights match only if the noise continues.
    resumed = runs.result("resumed")  # after `killed` ended with os._exit(17) in epoch 1
    events = [json.loads(line) for line in (runs.path("backup") / "events.jsonl").read_text().splitlines()]
    assert [(e["event"], e["epoch"]) for e in events] == [
        *[("begin", 0), ("end", 0), ("begin", 1)],  # killed
        *[("begin", 1), ("end", 1), ("begin", 2), ("end", 2)],  # resumed
    ]
    # The resumed run starts from the noise position after epoch 0, not from the start of the stream.
    assert events[3]["seeds"] == events[1]["seeds"] != events[0]["seeds"]
    assert resumed["epochs"] == [1, 2]
    assert resumed["reference"]["epochs"] == [0, 1, 2]
    assert_weights(resumed["weights"], resumed["reference"]["weights"])
    assert resumed["seeds"] == resumed["reference"]["seeds"]
    assert not (runs.path("backup") / "backup").exists()  # deleted when fit completes
    # A Keras quirk: BackupAndRestore leaves the model's initial epoch set, so the same model's next
    # fit(epochs=3) starts at epoch 1 too.
    assert resumed["epochs_of_the_next_fit"] == [1, 2]


def test_the_noise_position_is_saved_with_the_weights(tmp_path):
    x = -3.0 * np.ones((2, 4), "float32")  # saturated: every draw shows
    model = keras.Sequential([keras.Input((4,)), kaa.RReLU(seed=1)])
    for _ in range(3):
        model(x, training=True)
    position = worker.seed_states(model)
    assert position == [[1, 3]]
    model.save(tmp_path / "m.keras")
    model.save_weights(tmp_path / "m.weights.h5")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    into = keras.Sequential([keras.Input((4,)), kaa.RReLU(seed=1)])
    into.load_weights(tmp_path / "m.weights.h5")
    expected = np.asarray(model(x, training=True))  # the next draw
    for reloaded in (loaded, into):
        assert worker.seed_states(reloaded) == position
        np.testing.assert_array_equal(reloaded(x, training=True), expected)
    # Files written before the position was a weight of the layer: tests/layers/test_noise.py.


# ----------------------------------------------------------------------------------------------
# The guide shows the tested code


@pytest.mark.slow
def test_the_guides_mirrored_strategy_example_runs(runs):
    assert runs.result("guide")["printed"].split() == ["2"]  # strategy.num_replicas_in_sync


def test_the_guide_shows_the_tested_training_loop_and_callback():
    text = worker.GUIDE.read_text()
    source = inspect.getsource(worker.train_loop)
    body = source[source.index("    def step") : source.index("    # Endless")]
    for line in body.splitlines():
        code = line.split("  #")[0].strip()
        if code and not code.startswith("#"):
            assert code in text, f"the guide lacks this line of the tested loop: {code}"
    assert "callbacks=[keras.callbacks.BackupAndRestore(" in text
    assert '"task": {"type": "worker", "index": 0}' in text
