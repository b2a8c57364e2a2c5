"""The experiment benchmarks run end to end in their quick mode (a fresh process, as a user runs it)."""

import itertools
import json
import math
import os
import pathlib
import statistics
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_narrow_relu_benchmark_quick_run_writes_consistent_results(tmp_path):
    command = [sys.executable, "benchmarks/narrow_relu.py", "--quick", "--configs", "d20k2", "--no-plot"]
    command += ["--json", str(tmp_path / "r.json"), "--markdown", str(tmp_path / "r.md")]
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = json.loads((tmp_path / "r.json").read_text())["runs"]["d20k2"]
    assert set(runs) == {"moments", "random-2k", "random-k"}
    for route, fits in runs.items():
        assert [fit["seed"] for fit in fits] == [0, 1], route
        assert all(math.isfinite(fit["final_error"]) and fit["final_error"] >= 0 for fit in fits)
    for fit in runs["moments"]:
        assert fit["final_error"] < fit["readout_error"]  # refinement improved on the moment estimate
    report = (tmp_path / "r.md").read_text()
    assert report.startswith("## Narrow ReLU learner") and "| d=20, k=2 |" in report


def _summary_rows(report):
    """The rows of the first Markdown table whose header starts with `| configuration | test accuracy %`,
    as {first cell: [cells]}."""
    lines = report.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| configuration | test accuracy %"))
    rows = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        rows[cells[0]] = cells
    return rows


def _mean_and_std(cell):
    mean, std = cell.split(" ± ")
    return float(mean), float(std)


def _check_claims_quick_run(tmp_path, script, baseline):
    """Runs a claims benchmark with `--quick` and checks its JSON against itself and its table."""
    command = [sys.executable, script, "--quick", "--out", str(tmp_path / "r.json")]
    command += ["--markdown", str(tmp_path / "r.md")]
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((tmp_path / "r.json").read_text())
    configs, seeds, runs = results["configs"], results["seeds"], results["runs"]
    assert baseline in configs and len(configs) >= 3 and len(seeds) >= 2
    # every configuration x seed ran exactly once
    assert sorted((run["config"], run["seed"]) for run in runs) == sorted(itertools.product(configs, seeds))
    for run in runs:
        assert 0.0 <= run["accuracy"] <= 1.0 and math.isfinite(run["loss"]) and run["loss"] >= 0.0
        curve = run["curve"]
        assert len(curve["test_accuracy"]) == len(curve["loss"]) == results["epochs"]
        assert all(0.0 <= value <= 1.0 for value in curve["test_accuracy"] + curve["accuracy"])
    report = (tmp_path / "r.md").read_text()
    assert report.strip() in result.stdout  # printed as well as written
    # the table's figures, recomputed from the JSON runs (rounded to 2 decimals in the table)
    rows = _summary_rows(report)
    accuracy = {(run["config"], run["seed"]): 100.0 * run["accuracy"] for run in runs}
    for config in configs:
        cells = rows[results["labels"][config]]
        values = [accuracy[(config, seed)] for seed in seeds]
        mean, std = _mean_and_std(cells[1])
        assert mean == pytest.approx(statistics.fmean(values), abs=0.0051), config
        assert std == pytest.approx(statistics.stdev(values), abs=0.0051), config
        loss_mean, _ = _mean_and_std(cells[3])
        losses = [run["loss"] for run in runs if run["config"] == config]
        assert loss_mean == pytest.approx(statistics.fmean(losses), abs=0.000051), config
        if config == baseline:
            continue
        differences = [accuracy[(config, seed)] - accuracy[(baseline, seed)] for seed in seeds]
        difference_mean, difference_std = _mean_and_std(cells[4])
        assert difference_mean == pytest.approx(statistics.fmean(differences), abs=0.0051), config
        assert difference_std == pytest.approx(statistics.stdev(differences), abs=0.0051), config
        wins, losses, ties = (int(n) for n in cells[5].split(" / "))
        assert (wins, losses, ties) == (
            sum(d > 0 for d in differences),
            sum(d < 0 for d in differences),
            sum(d == 0 for d in differences),
        ), config
    return results, report


@pytest.mark.slow
def test_competitive_relu_claims_quick_run_writes_consistent_results(tmp_path):
    results, report = _check_claims_quick_run(tmp_path, "benchmarks/claims_competitive_relu.py", "relu")
    assert set(results["configs"]) == {"relu", "prelu", "competitive_relu", "competitive_relu_competition"}
    assert report.startswith("## CompetitiveReLU against ReLU and PReLU")
    # a seed gives every activation the same initial conv / BN / Dense weights
    for seed in results["seeds"]:
        digests = {run["initial_weights_sha256"] for run in results["runs"] if run["seed"] == seed}
        assert len(digests) == 1
    for run in results["runs"]:
        if run["config"].startswith("competitive_relu"):
            assert len(run["competition"]) == 7  # every CompetitiveReLU layer was monitored


@pytest.mark.slow
def test_noisy_lstm_claims_quick_run_writes_consistent_results(tmp_path):
    results, report = _check_claims_quick_run(tmp_path, "benchmarks/claims_noisy_lstm.py", "deterministic")
    assert set(results["configs"]) == {"deterministic", "noisy", "annealed", "hard"}
    assert report.startswith("## Noisy activations in an LSTM")
    for seed in results["seeds"]:  # a seed gives every configuration the same trainable weights
        assert len({run["initial_weights_sha256"] for run in results["runs"] if run["seed"] == seed}) == 1
    for run in results["runs"]:
        assert 0.0 <= run["train_accuracy"] <= 1.0
        if run["config"] == "deterministic":
            assert set(run["final_c"].values()) == {0.0}  # noise scales 0: the deterministic baseline
        if run["config"] == "annealed":
            assert run["curve"]["noise_c"][-1] == pytest.approx(0.5)  # annealed down to c_end
