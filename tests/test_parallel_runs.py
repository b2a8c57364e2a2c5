"""The suite's own set-up for pytest-xdist (`-n auto`), in tests/conftest.py.

The README's test command and CI's jobs run `pytest -n auto`: these check that it starts one worker
per usable core up to the cap, that the report still counts the slow tests it left out when the
workers, not the process that prints the report, did the collecting, and that each test's random
draws do not depend on which tests ran before it on its worker.
"""

import os
import random
from types import SimpleNamespace

import conftest
import keras
import numpy as np
import pytest


@pytest.mark.parametrize(("usable_cores", "workers"), [(1, 1), (2, 2), (4, 4), (64, 4)])
def test_auto_starts_one_worker_per_usable_core_up_to_four(monkeypatch, usable_cores, workers):
    if not hasattr(os, "sched_getaffinity"):
        pytest.skip(
            "os.sched_getaffinity is Linux's; elsewhere the count is os.cpu_count(), not patched here"
        )
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(usable_cores)))
    assert conftest.MOST_WORKERS == 4
    assert conftest.pytest_xdist_auto_num_workers(config=None) == workers


def fake_config(**attributes):
    return SimpleNamespace(stash=pytest.Stash(), **attributes)


def test_the_slow_tests_a_worker_left_out_reach_the_report():
    # A worker's collection left 7 slow tests out; its session hands the count to xdist's output.
    worker_config = fake_config(workeroutput={})
    worker_config.stash[conftest.SLOW_LEFT_OUT] = 7
    conftest.pytest_sessionfinish(SimpleNamespace(config=worker_config))
    assert worker_config.workeroutput == {"slow_left_out": 7}

    # The controller collected nothing itself; each worker going down reports the same count.
    controller_config = fake_config()
    for _ in range(2):
        node = SimpleNamespace(config=controller_config, workeroutput=dict(worker_config.workeroutput))
        conftest.pytest_testnodedown(node, error=None)
    assert controller_config.stash[conftest.SLOW_LEFT_OUT] == 7

    lines = []
    reporter = SimpleNamespace(write_line=lines.append)
    conftest.pytest_terminal_summary(reporter, controller_config)
    assert lines and lines[0].startswith("7 slow tests (marked slow) were not run")


def test_a_run_without_workers_hands_nothing_on():
    # A plain `pytest` (no -n) has no `workeroutput`: its own report prints the count.
    config = fake_config()
    config.stash[conftest.SLOW_LEFT_OUT] = 3
    conftest.pytest_sessionfinish(SimpleNamespace(config=config))
    assert not hasattr(config, "workeroutput")
    assert config.stash[conftest.SLOW_LEFT_OUT] == 3


def unseeded_draws():
    """One draw from each source a test may use without a seed, by source, as plain Python values."""
    initial_weights = keras.initializers.GlorotUniform()((3, 2))
    # A layer's noise: Dropout without a seed makes its own SeedGenerator, seeded from Python's random.
    dropped = keras.layers.Dropout(0.5)(keras.ops.ones((1, 64)), training=True)
    return {
        "python": random.random(),
        # NumPy's legacy global generator on purpose: it is the state an unseeded test inherits.
        "numpy": float(np.random.random()),  # noqa: NPY002
        "initializer": tuple(np.ravel(keras.ops.convert_to_numpy(initial_weights)).tolist()),
        "dropout_mask": tuple(np.flatnonzero(keras.ops.convert_to_numpy(dropped)).tolist()),
    }


def test_a_tests_draws_do_not_depend_on_what_ran_before_it():
    node_id = "tests/test_example.py::test_draws[case]"
    conftest.seed_for_test(node_id)
    alone = unseeded_draws()

    # Another test ran first on this worker: it seeded itself and drew, moving every generator.
    conftest.seed_for_test("tests/test_other.py::test_before")
    unseeded_draws()
    np.random.random(1000)  # noqa: NPY002
    conftest.seed_for_test(node_id)
    assert unseeded_draws() == alone

    # Different tests draw differently: the seed is the test's, not one shared by all.
    conftest.seed_for_test("tests/test_example.py::test_draws[other_case]")
    other = unseeded_draws()
    assert all(other[source] != alone[source] for source in alone), (other, alone)


def test_this_test_started_from_its_own_seed(request):
    # The fixture is autouse: this test's first draws are those its node id gives.
    first = unseeded_draws()
    conftest.seed_for_test(request.node.nodeid)
    assert unseeded_draws() == first
