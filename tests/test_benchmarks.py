"""The narrow-learner benchmark runs end to end in its quick mode (a fresh process, as a user runs it)."""

import json
import math
import os
import pathlib
import subprocess
import sys

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
