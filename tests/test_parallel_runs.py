"""The suite's own set-up for pytest-xdist (`-n auto`), in tests/conftest.py.

The README's test command and every CI job run `pytest -n auto`: these check that it starts one worker
per usable core up to the cap, and that the report still counts the slow tests it left out when the
workers, not the process that prints the report, did the collecting.
"""

import os
from types import SimpleNamespace

import conftest
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
