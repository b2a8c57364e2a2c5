"""The experiment benchmarks run end to end in their quick mode (a fresh process, as a user runs it), and
`benchmarks/run_all.py` splices their sections into docs/benchmarks.md."""

import itertools
import json
import math
import os
import pathlib
import re
import statistics
import subprocess
import sys

import benchmark_modules
import pytest
from layer_testing import tensorflow_or_skip

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Why a test skips without TensorFlow: the CPU benchmarks run on the TensorFlow backend.
TENSORFLOW_BENCHMARK = "a benchmark of the TensorFlow backend"


@pytest.mark.slow
def test_cli_startup_benchmark_times_every_command_and_finds_them_quiet(tmp_path):
    tensorflow_or_skip("kaa's start-up is timed on the TensorFlow backend")
    command = [sys.executable, "benchmarks/cli_startup.py", "--quick", "--repeats", "1", "--warmup", "0"]
    command += ["--json", str(tmp_path / "r.json"), "--markdown", str(tmp_path / "r.md")]
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    raw = json.loads((tmp_path / "r.json").read_text())
    rows = [line for line in (tmp_path / "r.md").read_text().splitlines() if line.startswith("| `")]
    assert len(rows) == len(raw["results"]) == 8
    for name, timing in raw["results"].items():
        assert len(timing["seconds"]) == 1
        if not name.startswith("baseline"):
            # kaa itself prints nothing of TensorFlow's (the argument error prints its one line).
            assert timing["stderr_lines"] == 0, name
            assert timing["exit_codes"] == ([2] if "argument error" in name else [0]), name


def test_export_verify_benchmark_times_each_form_in_every_round_and_reports_against_the_slowest():
    export_verify = benchmark_modules.load("export_verify")
    # Cheap stand-ins for the loaders: the timing and the report do not depend on what runs.
    commands = {name: [sys.executable, "-c", "pass"] for name in ("first", "second", "third")}
    seconds = export_verify.time_rounds(
        commands, repeats=3, warmup=1, baseline=[sys.executable, "-c", "pass"]
    )
    assert set(seconds) == {
        *commands,
        export_verify.SIDE_BY_SIDE,
        export_verify.ONE_AFTER_ANOTHER,
        export_verify.BASELINE,
    }
    assert all(len(values) == 3 and min(values) > 0 for values in seconds.values())  # the warm-up not counted
    for round_ in range(3):  # one after another: the three alone, end to end
        alone = sum(seconds[name][round_] for name in commands)
        assert seconds[export_verify.ONE_AFTER_ANOTHER][round_] == pytest.approx(alone, rel=1e-12)
    result = export_verify.summary(seconds, list(commands))
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    assert result["floor_seconds"] == max(medians[name] for name in commands)
    side_by_side = medians[export_verify.SIDE_BY_SIDE]
    assert result["side_by_side_over_floor"] == pytest.approx(side_by_side / result["floor_seconds"])
    machine = {
        "cpu": "a CPU",
        "cpu_count": 2,
        "python": "3",
        "keras": "3",
        "tensorflow": "2",
        "load_average": [0.5],
    }
    report = export_verify.markdown_report(
        {
            "machine": machine,
            "command": "python benchmarks/export_verify.py",
            "repeats": 3,
            "warmup": 1,
            "quick": False,
            "seconds": seconds,
            "summary": result,
        }
    )
    rows = [line for line in report.splitlines() if line.startswith("| ") and not line.startswith("| what")]
    assert len(rows) == 6 and rows[0].startswith(f"| side by side | {side_by_side:.2f} |")
    assert f"| `first` | {medians['first']:.2f} |" in report


@pytest.mark.slow
def test_narrow_relu_benchmark_quick_run_writes_consistent_results(tmp_path):
    tensorflow_or_skip(TENSORFLOW_BENCHMARK)
    command = [sys.executable, "benchmarks/narrow_relu.py", "--quick", "--configs", "d20k2", "--no-plot"]
    command += ["--json", str(tmp_path / "r.json"), "--markdown", str(tmp_path / "r.md")]
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = json.loads((tmp_path / "r.json").read_text())["runs"]["d20k2"]
    assert set(runs) == {"contraction", "random-2k", "random-k"}  # the learner's default method
    for route, fits in runs.items():
        assert [fit["seed"] for fit in fits] == [0, 1], route
        assert all(math.isfinite(fit["final_error"]) and fit["final_error"] >= 0 for fit in fits)
    for fit in runs["contraction"]:
        assert fit["final_error"] < fit["readout_error"]  # refinement improved on the moment estimate
    for route, fits in runs.items():
        for fit in fits:
            # The learning curve ends at the final network: it measures the model in the targets' units
            # (the learner trains on centred, scaled targets, and the curve once measured those).
            assert fit["curve_errors"][-1] == pytest.approx(fit["final_error"], rel=1e-6), route
    report = (tmp_path / "r.md").read_text()
    assert report.startswith("## Narrow ReLU learner") and "| d=20, k=2 |" in report


@pytest.mark.slow
def test_narrow_scale_benchmark_quick_run_writes_consistent_results(tmp_path):
    tensorflow_or_skip(TENSORFLOW_BENCHMARK)
    command = [sys.executable, "benchmarks/narrow_scale.py", "--quick", "--plot", str(tmp_path / "r.png")]
    command += ["--json", str(tmp_path / "r.json"), "--markdown", str(tmp_path / "r.md")]
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    raw = json.loads((tmp_path / "r.json").read_text())
    assert [(entry["d"], entry["k"]) for entry in raw["grid"]] == [(20, 2), (20, 4)]
    for entry in raw["grid"] + raw["n_sweep"]:
        assert [run["seed"] for run in entry["runs"]] == [0, 1]
        assert all(run["samples"] == entry["samples"] >= 20_000 for run in entry["runs"])
        assert entry["peak_rss_mib"] > 100  # TensorFlow alone holds more than that
        summary = entry["summary"]
        assert summary["successes"] == sum(run["final_error"] < 1e-3 for run in entry["runs"])
        assert summary["max_seconds"] == max(run["seconds"] for run in entry["runs"])
    goal = raw["goal"]
    assert goal["fits"] == 4 and goal["verdict"] == ("PASS" if goal["successes"] == 4 else "MISS")
    report = (tmp_path / "r.md").read_text()
    assert report.startswith("## Narrow ReLU learner at scale") and "| 20 | 4 | 25,600 | " in report
    assert 'method="contraction"' in report  # the learner as a user gets it: its default method
    assert (tmp_path / "r.png").stat().st_size > 10_000


@pytest.mark.slow
def test_addon_speed_benchmark_quick_run_writes_consistent_results(tmp_path):
    tensorflow_or_skip(TENSORFLOW_BENCHMARK)
    command = [sys.executable, "benchmarks/addon_speed.py", "--quick", "--repeats", "3", "--warmup", "1"]
    command += ["--json", str(tmp_path / "r.json"), "--markdown", str(tmp_path / "r.md")]
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    raw = json.loads((tmp_path / "r.json").read_text())
    medians = raw["results"]["median_ms"]
    assert list(medians) == [
        "ReLU",
        "Snake()",
        "floor: x + sin(f * x)",
        "TLU(affine=True)",
        "plain: max(x, a * x + t)",
    ]
    assert all(len(times) == 3 for times in raw["results"]["times_ms"].values())
    assert raw["quick"] is True and raw["results"]["shape"] == [4, 8, 8, 8]
    report = (tmp_path / "r.md").read_text()
    # Each ratio is the row's median over its reference's, from the same run.
    snake = medians["Snake()"]
    to_relu, to_floor = snake / medians["ReLU"], snake / medians["floor: x + sin(f * x)"]
    assert f"| Snake() | {snake:.3f} | {to_relu:.2f} | {to_floor:.2f} |" in report


def test_cost_curves_benchmark_quick_run_writes_consistent_results(tmp_path):
    tensorflow_or_skip(TENSORFLOW_BENCHMARK)
    command = [sys.executable, "benchmarks/cost_curves.py", "--quick", "--repeats", "3", "--warmup", "1"]
    command += ["--json", str(tmp_path / "r.json"), "--markdown", str(tmp_path / "r.md")]
    command += ["--plot", str(tmp_path / "r.png")]
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    raw = json.loads((tmp_path / "r.json").read_text())
    assert raw["quick"] is True and [s["log2"] for s in raw["sizes"]] == [10, 12, 14]
    nah = "NoisyHardTanh(half_normal=True) (NAH)"
    for size in raw["sizes"]:
        assert math.prod(size["shape"]) == size["elements"] == 2 ** size["log2"]
        assert size["shape"][0] == 1 and size["shape"][-1] == 64 and size["repeats"] == 3
        train, infer = size["training"], size["inference"]
        assert set(train["median_ms"]) == {"ReLU", "CompetitiveReLU(energy)"}
        assert set(infer["median_ms"]) == {"clip(x, -1, 1)", nah}
        assert all(len(times) == 3 for times in [*train["times_ms"].values(), *infer["times_ms"].values()])
        # a ratio is the candidate's median over its own baseline's, from the same group
        assert size["ratios"]["CompetitiveReLU(energy)"] == pytest.approx(
            train["median_ms"]["CompetitiveReLU(energy)"] / train["median_ms"]["ReLU"]
        )
        assert size["ratios"][nah] == pytest.approx(
            infer["median_ms"][nah] / infer["median_ms"]["clip(x, -1, 1)"]
        )
    latency = raw["latency"]
    assert set(latency["cnn"]["median_ms"]) == {"ReLU", "CompetitiveReLU(energy)", nah}
    assert set(latency["activation"]["median_ms"]) == {
        "ReLU",
        "CompetitiveReLU(energy)",
        "clip(x, -1, 1)",
        nah,
    }
    assert latency["repeats"] == 12 and latency["activation_shape"] == [1, 32, 32, 64]
    report = (tmp_path / "r.md").read_text()
    assert report.startswith("## Cost curves") and report.strip() in result.stdout
    assert "| 2^12 | (1, 8, 8, 64) |" in report and "repetitions: 3 (2^10 to 2^14)" in report
    assert "](assets/cost-curves.png)" not in report  # the docs' figure only for the default path
    assert (tmp_path / "r.png").read_bytes().startswith(b"\x89PNG")


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
    tensorflow_or_skip(TENSORFLOW_BENCHMARK)
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


# ---------------------------------------------------------------------------------------------
# benchmarks/run_all.py
# ---------------------------------------------------------------------------------------------


run_all = benchmark_modules.load("run_all")


def _markers(name, body):
    return f"<!-- run_all: begin {name} -->\n\n{body}\n\n<!-- run_all: end {name} -->\n"


PAGE = (
    "# Benchmarks\n\nHand-written prose.\n\n## Good\n\n"
    + _markers("good", "old good table")
    + "\nGood verdict, by hand.\n\n## Bad\n\n"
    + _markers("bad", "old bad table")
    + "\n## Other\n\n"
    + _markers("other", "old other table")
    + "\nThe end.\n"
)

# A stand-in benchmark script: writes its report (with the environment it saw) or fails.
FAKE_SCRIPT = """
import argparse, json, os, sys
parser = argparse.ArgumentParser()
parser.add_argument("--quick", action="store_true")
parser.add_argument("--json")
parser.add_argument("--markdown")
parser.add_argument("--plot")
args = parser.parse_args()
if os.path.basename(__file__) == "bad.py":
    print("boom: the benchmark broke")
    sys.exit(3)
env = {key: os.environ.get(key) for key in ("KERAS_BACKEND", "CUDA_VISIBLE_DEVICES", "JAX_PLATFORMS")}
json.dump({"env": env, "quick": args.quick}, open(args.json, "w"))
report = f"## Fake heading\\n\\nnew table, quick={args.quick}, env={json.dumps(env, sort_keys=True)}\\n"
open(args.markdown, "w").write(report)
"""


def _fake_benchmarks(tmp_path, gpu=False):
    benchmarks = {}
    for name in ("good", "bad", "other"):
        script = tmp_path / f"{name}.py"
        script.write_text(FAKE_SCRIPT)
        benchmarks[name] = run_all.Benchmark(str(script), "speed", 0.1, f"fake {name}", gpu=gpu)
    return benchmarks


def _outside(text, name):
    """`text` with the inside of `name`'s markers cut out."""
    start, end = run_all.marker_span(text, name)
    return text[:start] + text[end:]


def test_run_all_splice_replaces_one_section_and_nothing_else():
    spliced = run_all.splice(PAGE, "good", "new table\n")
    assert "new table" in spliced and "old good table" not in spliced
    assert _outside(spliced, "good") == _outside(PAGE, "good")  # prose and other sections untouched
    assert "old bad table" in spliced and "old other table" in spliced
    assert run_all.splice(spliced, "good", "new table") == spliced  # splicing is idempotent
    # blank lines keep the body out of the comments' HTML block
    assert "<!-- run_all: begin good -->\n\nnew table\n\n<!-- run_all: end good -->" in spliced


@pytest.mark.parametrize(
    ("page", "message"),
    [
        (PAGE.replace("<!-- run_all: end bad -->", ""), "no '<!-- run_all: end bad -->' line"),
        (PAGE + _markers("bad", "again"), "2 '<!-- run_all: begin bad -->' lines"),
        (
            PAGE.replace("<!-- run_all: begin bad -->", "@@")
            .replace("<!-- run_all: end bad -->", "<!-- run_all: begin bad -->")
            .replace("@@", "<!-- run_all: end bad -->"),
            "comes before its begin marker",
        ),
        ("no markers at all", "no '<!-- run_all: begin bad -->' line"),
    ],
)
def test_run_all_splice_names_a_missing_or_misplaced_marker(page, message):
    with pytest.raises(run_all.SpliceError, match=re.escape(message)):
        run_all.splice(page, "bad", "x")


def test_run_all_section_body_drops_the_scripts_heading_only():
    assert (
        run_all.section_body("## Title\n\nMachine: x\n\n### Sub\n\n| a |\n")
        == "Machine: x\n\n### Sub\n\n| a |"
    )
    assert run_all.section_body("Machine: x\n") == "Machine: x"


def test_run_all_the_page_has_markers_for_every_benchmark():
    page = (ROOT / "docs" / "benchmarks.md").read_text()
    sections = list(run_all.BENCHMARKS)
    sections += [f"{name}-gpu" for name, benchmark in run_all.BENCHMARKS.items() if benchmark.gpu]
    run_all.check_markers(page, sections)
    assert all((ROOT / "benchmarks" / b.script).is_file() for b in run_all.BENCHMARKS.values())


def test_run_all_list_names_every_benchmark():
    command = [sys.executable, "benchmarks/run_all.py", "--list"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    listed = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()}
    assert listed == {name: benchmark.kind for name, benchmark in run_all.BENCHMARKS.items()}
    assert listed["activation_speed"] == "speed" and listed["claims_noisy_lstm"] == "quality"


def test_run_all_keeps_a_failed_benchmarks_section_and_exits_nonzero(tmp_path, capsys):
    page = tmp_path / "page.md"
    page.write_text(PAGE)
    results = tmp_path / "results"
    argv = ["--only", "bad", "good", "--output", str(page), "--results-dir", str(results), "--device", "cpu"]
    status = run_all.main(argv, benchmarks=_fake_benchmarks(tmp_path))
    assert status == 1
    text = page.read_text()
    assert "old good table" not in text and "new table, quick=False" in text  # ran after the failure
    assert "Fake heading" not in text  # the script's heading gives way to the page's
    start, end = run_all.marker_span(text, "good")
    first = text[start:end].strip().splitlines()[0]
    assert (
        first.startswith("*Written by `python benchmarks/run_all.py --only bad good")
        and "on the CPU" in first
    )
    env = json.loads((results / "good.json").read_text())["env"]
    assert env == {"KERAS_BACKEND": "tensorflow", "CUDA_VISIBLE_DEVICES": "", "JAX_PLATFORMS": "cpu"}
    assert _outside(text, "good") == _outside(PAGE, "good")  # the failed and the unselected ones kept
    assert "boom: the benchmark broke" in (results / "bad.log").read_text()
    assert "bad on the CPU FAILED (exit status 3)" in capsys.readouterr().err
    summary = json.loads((results / "run_all.json").read_text())
    assert {run["name"]: run["status"] for run in summary["runs"]} == {"bad": "failed", "good": "ok"}


def test_run_all_checks_every_marker_before_running_anything(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(PAGE.replace("<!-- run_all: begin other -->", ""))
    argv = ["--output", str(page), "--results-dir", str(tmp_path / "results"), "--device", "cpu"]
    assert run_all.main(argv, benchmarks=_fake_benchmarks(tmp_path)) == 2
    assert page.read_text() == PAGE.replace("<!-- run_all: begin other -->", "")
    assert not (tmp_path / "results" / "good.log").exists()  # nothing ran


def test_run_all_gpu_runs_go_to_their_own_sections(tmp_path):
    """The GPU path with a fake device list (no GPU here): a CPU run with GPUs hidden, a GPU run without."""
    page = tmp_path / "page.md"
    page.write_text(PAGE + "\n## Good (GPU)\n\n" + _markers("good-gpu", "no GPU figures yet"))
    results = tmp_path / "results"
    argv = ["--only", "good", "--output", str(page), "--results-dir", str(results)]
    fake_gpu = {"tensorflow": ["Fake GPU 9000"], "jax": []}
    assert (
        run_all.main(argv, benchmarks=_fake_benchmarks(tmp_path, gpu=True), gpu_detector=lambda: fake_gpu)
        == 0
    )
    text = page.read_text()
    assert "no GPU figures yet" not in text and "on the GPU (Fake GPU 9000)" in text
    cpu_env = json.loads((results / "good.json").read_text())["env"]
    gpu_env = json.loads((results / "good-gpu.json").read_text())["env"]
    assert cpu_env["CUDA_VISIBLE_DEVICES"] == "" and gpu_env["CUDA_VISIBLE_DEVICES"] != ""
    # --device gpu without a GPU refuses, and writes nothing
    before = page.read_text()
    no_gpu = {"tensorflow": [], "jax": []}
    argv += ["--device", "gpu"]
    assert (
        run_all.main(argv, benchmarks=_fake_benchmarks(tmp_path, gpu=True), gpu_detector=lambda: no_gpu) == 2
    )
    assert page.read_text() == before


def test_run_all_quick_leaves_the_docs_page_alone(tmp_path, monkeypatch):
    doc = ROOT / "docs" / "benchmarks.md"
    before = doc.read_text()
    fake = _fake_benchmarks(tmp_path)
    results = tmp_path / "results"
    argv = ["--quick", "--only", "noisy_speed", "--results-dir", str(results), "--device", "cpu"]
    assert run_all.main(argv, benchmarks={"noisy_speed": fake["good"]}) == 0
    assert doc.read_text() == before
    preview = (results / "benchmarks.md").read_text()  # a copy of the page with the quick section in it
    assert "new table, quick=True" in preview and "Smoke run (`--quick`)" in preview
    assert _outside(preview, "noisy_speed") == _outside(before, "noisy_speed")


@pytest.mark.slow
def test_run_all_quick_run_of_a_real_benchmark(tmp_path):
    tensorflow_or_skip(TENSORFLOW_BENCHMARK)
    page = tmp_path / "benchmarks.md"
    original = (ROOT / "docs" / "benchmarks.md").read_text()
    page.write_text(original)
    command = [sys.executable, "benchmarks/run_all.py", "--quick", "--only", "noisy_speed", "--device", "cpu"]
    command += ["--output", str(page), "--results-dir", str(tmp_path / "results")]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    text = page.read_text()
    assert _outside(text, "noisy_speed") == _outside(original, "noisy_speed")
    start, end = run_all.marker_span(text, "noisy_speed")
    section = text[start:end]
    assert "Smoke run (`--quick`)" in section and "Input (8, 8, 8, 16) float32" in section
    assert "Median of 5 interleaved repetitions" in section and "### Targets" in section
    raw = json.loads((tmp_path / "results" / "noisy_speed.json").read_text())
    assert raw["quick"] is True and raw["results"]["shape"] == [8, 8, 8, 16]


def _op_against_revision(tmp_path, revision, *options):
    if "--backend" not in options:  # the tool's default backend is TensorFlow
        tensorflow_or_skip("the tool's default backend is TensorFlow")
    command = [sys.executable, "benchmarks/op_against_revision.py", "--revision", revision, "--repeats", "2"]
    command += ["--warmup", "1", "--shape", "2,4,4,8", "--markdown", str(tmp_path / "r.md"), *options]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if "unknown revision" in result.stderr:
        pytest.skip(f"this checkout does not hold commit {revision} (a shallow clone): nothing to compare")
    assert result.returncode == 0, result.stderr[-3000:]
    tables, rows = [], None
    for line in (tmp_path / "r.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.split("|")[1:-1]]
        if cells and cells[0] == "competition":
            rows = {}
            tables.append(rows)
        elif cells and rows is not None and not cells[0].startswith("---"):
            rows[cells[0]] = cells
    return tables


@pytest.mark.slow
@pytest.mark.parametrize(
    "revision",
    # c50f4e4: the first commit with this tool (the guard under a conditional), an op module alone.
    # 8d47f99: an op that imports a helper module (competitive_paths) whose names this tree no longer
    # has: the helper is loaded as it was then.
    ["c50f4e4", "8d47f99"],
)
def test_op_against_revision_compares_the_op_with_a_git_revision(tmp_path, revision):
    # Both forms load side by side, and a row per competition reports their timing and the largest
    # difference of their outputs and gradients, which float32 rounding bounds.
    (rows,) = _op_against_revision(tmp_path, revision)
    _check_op_rows(rows)


@pytest.mark.slow
def test_op_against_revision_reduces_over_the_axes_it_is_given(tmp_path):
    # Per channel of NHWC: both forms still agree, and the header names the axes.
    (rows,) = _op_against_revision(tmp_path, "8d47f99", "--axis", "1,2")
    _check_op_rows(rows)
    assert "reduced over axes (1, 2)" in (tmp_path / "r.md").read_text()


@pytest.mark.slow
def test_op_against_revision_on_jax_times_several_calls_per_sample(tmp_path):
    pytest.importorskip("jax", reason="the JAX backend's form of the tool needs JAX (the `jax` extra)")
    (rows,) = _op_against_revision(tmp_path, "8d47f99", "--backend", "jax")
    _check_op_rows(rows)
    assert "of 5 calls each (time per call)" in (tmp_path / "r.md").read_text()


def _check_op_rows(rows):
    assert set(rows) == {"energy", "l1", "count"}
    for cells in rows.values():
        before, after, ratio = (float(cells[index]) for index in (1, 2, 3))
        assert before > 0 and after > 0
        assert ratio == pytest.approx(after / before, abs=_rounding_bound(before, after, ratio, step=0.01))
        assert float(cells[-1]) < 1e-5


def _rounding_bound(before, after, ratio, step):
    """How far the quotient of two printed times can be from the printed ratio of the unrounded ones.

    Each time is printed to `step`, so off by at most `half = step / 2`, and the ratio to 0.001. The
    quotient of the printed times is then off by at most `half * (1 + quotient) / (before - half)`:
    more the further the times are apart (as when the machine is busy while one form runs).
    """
    half = step / 2
    return half * (1 + max(ratio, after / before)) / (before - half) + 0.0005 + 1e-9


@pytest.mark.slow
def test_op_against_revision_times_the_cnn_step_with_each_form(tmp_path):
    # --cnn adds the small CNN's training step with each form of the op, against ReLU's.
    op_rows, cnn_rows = _op_against_revision(
        tmp_path, "8d47f99", "--competitions", "count", "--cnn", "--cnn-repeats", "1"
    )
    assert set(op_rows) == set(cnn_rows) == {"count"}
    before, after, ratio, before_relu, after_relu = (float(cell) for cell in cnn_rows["count"][1:])
    assert before > 0 and after > 0
    assert ratio == pytest.approx(after / before, abs=_rounding_bound(before, after, ratio, step=0.1))
    # Both ratios to ReLU come from one ReLU time: their quotient is the ratio of the two forms.
    assert after_relu / before_relu == pytest.approx(after / before, rel=0.02)


def _targets_judged_in_a_fresh_process(arguments):
    """`activation_speed.evaluate_targets(<arguments>)` as {what: (ratio, verdict)}.

    In a fresh process, as the benchmark fixes its Keras backend when it is imported. `arguments`
    is Python source; it may name the module `a` for its constants.
    """
    tensorflow_or_skip(TENSORFLOW_BENCHMARK)
    script = f"import json, activation_speed as a\nprint(json.dumps(a.evaluate_targets({arguments})))"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT / "benchmarks")}
    command = [sys.executable, "-c", script]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return {what: (ratio, verdict) for what, ratio, _, verdict in json.loads(result.stdout.splitlines()[-1])}


FLOOR = "floor: one statistic each way"  # activation_speed.FLOOR, written out as the report shows it


def test_activation_speed_judges_jax_against_relu_its_floor_and_autodiff():
    # The JAX rows (timed in the memory subprocess) get their own targets: 1.5x ReLU and the floor,
    # and no slower than autodiff. Made-up medians.
    jax_ms = '{"ReLU": 4.0, "CompetitiveReLU(l1)": 8.0, "autodiff(l1)": 10.0, a.FLOOR: 6.0}'
    memory = f'{{"residuals": {{}}, "jax_timing": {{"median_ms": {jax_ms}}}}}'
    rows = _targets_judged_in_a_fresh_process(f'{{"median_ms": {{}}}}, {{"median_ms": {{}}}}, {memory}')
    assert rows == {
        "JAX CompetitiveReLU(l1) / ReLU time": (pytest.approx(2.0), "MISS"),
        f"JAX CompetitiveReLU(l1) / {FLOOR} time": (pytest.approx(8 / 6), "PASS"),
        "JAX CompetitiveReLU(l1) / autodiff time": (pytest.approx(0.8), "PASS"),
    }


def test_activation_speed_judges_the_cnn_step_against_relu_and_its_floor():
    # Made-up medians: each candidate against ReLU and against the floor of its own slices.
    cnn = (
        '{"median_ms": {"ReLU": 100.0, "CompetitiveReLU(energy)": 112.0, '
        '"CompetitiveReLU(energy, axis=(1, 2))": 126.0, a.FLOOR: 108.0, a.FLOOR_PER_CHANNEL: 112.0}}'
    )
    rows = _targets_judged_in_a_fresh_process(
        f'{{"median_ms": {{"ReLU": 1.0}}}}, {cnn}, {{"residuals": {{}}}}'
    )
    per_channel = "CompetitiveReLU(energy, axis=(1, 2))"
    assert rows == {
        "CNN step CompetitiveReLU(energy) / ReLU": (pytest.approx(1.12), "MISS"),
        f"CNN step CompetitiveReLU(energy) / {FLOOR}": (pytest.approx(112 / 108), "PASS"),
        f"CNN step {per_channel} / ReLU": (pytest.approx(1.26), "MISS"),
        f"CNN step {per_channel} / {FLOOR}, axis=(1, 2)": (pytest.approx(1.125), "MISS"),
    }
