"""The `kaa` command: argument handling, error reporting and one end-to-end comparison."""

import contextlib
import csv
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import keras
import numpy as np
import pytest

import keras_adaptive_acts
from keras_adaptive_acts import compare
from keras_adaptive_acts.cli import main

REPO = Path(__file__).resolve().parents[1]


def _error_line(capsys):
    """The captured stderr, which must be exactly one `kaa: error:` line; nothing on stdout."""
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("kaa: error: ")
    return lines[0]


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "usage: kaa" in err and "compare" in err


def test_help_and_version_return_zero(capsys):
    assert main(["compare", "--help"]) == 0
    out, _ = capsys.readouterr()
    for text in ("--activations", "--dataset", "--epochs", "--seeds", "--out", "examples:", "kaa compare"):
        assert text in out
    assert main(["--version"]) == 0
    from keras_adaptive_acts import __version__

    assert __version__ in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["compare", "--epochs", "0"], "argument --epochs: must be an integer >= 1, got 0"),
        (["compare", "--seeds", "0"], "argument --seeds: must be an integer >= 1, got 0"),
        (["compare", "--seeds", "two"], "argument --seeds: must be an integer >= 1, got 'two'"),
        (["compare", "--verbose", "5"], "argument --verbose: invalid choice"),
        (["compare", "--colour"], "unrecognized arguments: --colour"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["compare", "--activations", " , "], "give at least one activation"),
        (
            ["compare", "--dataset", "cifar"],
            "Unknown dataset 'cifar'. Known datasets: digits, mnist, mnist1d",
        ),
        (
            ["compare", "--activations", "relu,relu"],
            "more than once (the same layer each time): relu and relu",
        ),
        (
            ["compare", "--activations", "relu,gelu,ReLU"],
            "more than once (the same layer each time): relu and ReLU",
        ),
        (
            ["compare", "--activations", "competitive_relu:competition=energy,competitive_relu"],
            "competitive_relu:competition=energy and competitive_relu",  # the default written out
        ),
        (["compare", "--activations", "relu:name=foo"], "An activation spec cannot name its layer"),
    ],
)
def test_bad_arguments_give_one_error_line_and_status_2(capsys, argv, message):
    assert main(argv) == 2
    assert message in _error_line(capsys)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        # No upper bound let a batch size beyond int64 fail inside fit with an OverflowError traceback.
        (
            ["compare", "--batch-size", "99999999999999999999"],
            "argument --batch-size: must be an integer <= 2147483647, got 99999999999999999999",
        ),
        (
            ["compare", "--epochs", str(2**31)],
            f"argument --epochs: must be an integer <= 2147483647, got {2**31}",
        ),
        # Seeds 0 .. N-1 go to NumPy, whose seeds are below 2**32: N = 2**32 is the most.
        (
            ["compare", "--seeds", str(2**32 + 1)],
            f"argument --seeds: must be an integer <= {2**32}, got {2**32 + 1}",
        ),
        (["tune", "--seed", str(2**32)], f"argument --seed: must be an integer <= {2**32 - 1}, got {2**32}"),
        (["tune", "--trials", str(2**31)], "argument --trials: must be an integer <= 2147483647"),
        (["tune", "--batch-size", str(2**31)], "argument --batch-size: must be an integer <= 2147483647"),
        (["tune", "--epochs", str(2**31)], "argument --epochs: must be an integer <= 2147483647"),
    ],
)
def test_integer_options_have_an_upper_bound(capsys, argv, message):
    # The dataset file does not exist: were a bound not checked while the arguments are read, the command
    # would stop there, with another message, instead of training for 2**31 epochs.
    assert main([*argv, "--dataset", "no-such-file.npz"]) == 2
    assert message in _error_line(capsys)


@pytest.mark.parametrize("command", [["compare", "--out"], ["tune", "--directory"]])
def test_an_output_folder_that_cannot_be_made_is_reported_before_any_training(capsys, tmp_path, command):
    (tmp_path / "a_file").write_text("")
    folder = tmp_path / "a_file" / "results"
    assert main([*command, str(folder), "--epochs", "50", "--activations", "relu"]) == 2
    line = _error_line(capsys)  # nothing on stdout: no run started
    assert f"{command[1]} {str(folder)!r} cannot be a folder" in line


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
@pytest.mark.parametrize("command", [["compare", "--out"], ["tune", "--directory"]])
def test_a_folder_that_cannot_be_written_is_reported_before_any_training(capsys, command):
    # /proc/self exists and is a folder, but no file can be created in it, not even by root (whom
    # permission bits do not stop, so a chmod-ed folder would not tell).
    assert main([*command, "/proc/self", "--epochs", "50", "--activations", "relu"]) == 2
    line = _error_line(capsys)  # nothing on stdout: no run started
    assert line.startswith(f"kaa: error: {command[1]} '/proc/self' is not writable: ")


@pytest.mark.parametrize("name", ["results.json", "summary.csv", "curves.png"])
def test_an_output_file_that_is_a_folder_is_reported_before_any_training(capsys, tmp_path, name):
    (tmp_path / name).mkdir()
    assert main(["compare", "--out", str(tmp_path), "--epochs", "50", "--activations", "relu"]) == 2
    line = _error_line(capsys)
    assert (
        line == f"kaa: error: --out {str(tmp_path)!r} holds {name}, which is not a file: it cannot be written"
    )


def test_a_search_project_that_is_a_file_is_reported_before_any_training(capsys, tmp_path):
    (tmp_path / "kaa_tune").write_text("")
    assert main(["tune", "--directory", str(tmp_path), "--epochs", "50", "--activations", "relu"]) == 2
    line = _error_line(capsys)
    assert line == (
        f"kaa: error: --directory {str(tmp_path)!r} holds kaa_tune, which is not a folder: "
        "the search is kept there"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["compare", "--out", ""],
            "argument --out: must be the path of a folder, got '' (see 'kaa compare --help')",
        ),
        (["compare", "--out", " "], "argument --out: must be the path of a folder, got ' '"),
        (
            ["tune", "--directory", ""],
            "argument --directory: must be the path of a folder, got '' (see 'kaa tune --help')",
        ),
        (
            ["compare", "--activations", "relu", "--bogus"],
            "unrecognized arguments: --bogus (see 'kaa compare --help')",
        ),
        (
            ["tune", "--trials", "2", "--bogus", "x"],
            "unrecognized arguments: --bogus x (see 'kaa tune --help')",
        ),
        (
            ["export", "m.keras", "out", "--bogus"],
            "unrecognized arguments: --bogus (see 'kaa export --help')",
        ),
        (
            ["compare", "--activations", "relu,glu"],
            "Activation 'glu' changes the shape of its input ((2, 4) to (2, 2))",
        ),
        (
            ["compare", "--activations", "relu:negative_slope=nan"],
            "Argument 'negative_slope' is NaN, which no activation argument can be.",
        ),
        (
            ["compare", "--activations", "relu,linear"],
            "Activation 'linear' is the identity: kaa compare measures each activation's exact zeros",
        ),
        (
            ["compare", "--activations", "relu,relu:negative_slope=0"],
            "(the same layer each time): relu and relu:negative_slope=0",
        ),
    ],
)
def test_usage_errors_name_the_value_and_the_commands_help(capsys, argv, message):
    assert main(argv) == 2
    assert message in _error_line(capsys)


def test_unknown_activation_is_reported_before_any_training(capsys):
    assert main(["compare", "--activations", "relu,nope", "--epochs", "50"]) == 2
    line = _error_line(capsys)  # _error_line also checks that nothing was printed on stdout
    assert "Unknown activation 'nope'" in line
    for name in [
        "relu",
        "prelu",
        "gelu",
        "competitive_relu",
        "noisy_hard_sigmoid",
        "noisy_hard_tanh",
        "rrelu",
    ]:
        assert name in line


def test_a_misspelt_activation_gets_the_nearest_name(capsys):
    assert main(["compare", "--activations", "relu,competitve_relu"]) == 2
    assert "did you mean 'competitive_relu'?" in _error_line(capsys)
    assert main(["tune", "--activations", "relu,noisy_hard_tan"]) == 2
    assert "did you mean 'noisy_hard_tanh'?" in _error_line(capsys)


def test_bad_activation_argument_is_reported(capsys):
    assert main(["compare", "--activations", "competitive_relu:competition=l3"]) == 2
    line = _error_line(capsys)
    assert "competitive_relu:competition=l3" in line and "competition='l3'" in line


def test_missing_and_bad_dataset_files_are_reported(capsys, tmp_path):
    assert main(["compare", "--dataset", str(tmp_path / "missing.npz")]) == 2
    assert "Dataset file not found" in _error_line(capsys)
    bad = tmp_path / "bad.npz"
    np.savez(bad, features=np.zeros((4, 2)))
    assert main(["compare", "--dataset", str(bad)]) == 2
    assert "Found: features" in _error_line(capsys)
    csv = tmp_path / "data.npz"  # a CSV file under a .npz name: NumPy's message suggested allow_pickle
    csv.write_text("x,y\n1,0\n")
    assert main(["compare", "--dataset", str(csv)]) == 2
    line = _error_line(capsys)
    assert "neither a .npz archive nor a .npy array" in line and "allow_pickle" not in line
    ids = tmp_path / "ids.npz"  # sample ids instead of classes: a model of 10**9 outputs, built no more
    np.savez(ids, x=np.zeros((8, 2)), y=np.arange(8) + 10**9)
    assert main(["compare", "--dataset", str(ids)]) == 2
    assert "y holds the label 1000000007, but the dataset has 8 samples" in _error_line(capsys)


def test_missing_scikit_learn_exits_1_with_the_install_command(capsys, monkeypatch):
    for module in ("sklearn", "sklearn.datasets", "sklearn.model_selection"):
        monkeypatch.setitem(sys.modules, module, None)
    assert main(["compare"]) == 1
    assert 'pip install "keras-adaptive-acts[examples]"' in _error_line(capsys)


def test_a_dataset_path_that_is_a_folder_is_called_a_folder(capsys, tmp_path):
    (tmp_path / "dir.npz").mkdir()
    assert main(["compare", "--dataset", str(tmp_path / "dir.npz")]) == 2
    line = _error_line(capsys)
    assert f"Dataset path {str(tmp_path / 'dir.npz')!r} is a folder" in line and "not found" not in line


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        # `registry` dropped anything before ">" and every underscore: these passed for relu and gelu.
        ("junk>relu", "the only prefix a name takes is 'keras_adaptive_acts>'"),
        ("$\\nosuch$>relu", "the only prefix a name takes is 'keras_adaptive_acts>'"),
        ("_gelu", "a name is words of letters and digits joined by single underscores"),
        ("gelu_", "a name is words of letters and digits joined by single underscores"),
        ("competitive__relu", "a name is words of letters and digits joined by single underscores"),
    ],
)
def test_an_activation_name_with_another_prefix_or_stray_underscores_is_refused(
    capsys, tmp_path, spec, reason
):
    argv = ["compare", "--activations", f"relu,{spec}:seed=1", "--epochs", "1", "--out", str(tmp_path)]
    assert main(argv) == 2
    line = _error_line(capsys)
    assert f"Unknown activation {spec!r}: {reason}" in line
    assert f"Received: spec={spec + ':seed=1'!r}" in line


# ----------------------------------------------------------------------------------------------
# kaa compare: files after each run, interrupts and --overwrite, without training (a stand-in for the runs)


def _stand_in_record(label: str, seed: int) -> dict:
    """A record as `compare_activations` gives it, with made-up numbers."""
    accuracy = 0.5 + 0.1 * seed
    return {
        "activation": label,
        "seed": seed,
        "test_accuracy": accuracy,
        "test_loss": 1.0 - 0.1 * seed,
        "zero_fraction": 0.25,
        "step_seconds": 0.002,
        "train_seconds": 0.1,
        "params": 100,
        "params_added": 0,
        "epochs": 1,
        "batch_size": 64,
        "history": {"loss": [1.0], "accuracy": [accuracy], "val_loss": [1.0], "val_accuracy": [accuracy]},
    }


def _stand_in_runs(monkeypatch, out_dir: Path | None = None, interrupt_after: int | None = None) -> list:
    """Replaces the training by made-up records. Before each run it reads `out_dir/results.json`, and
    after `interrupt_after` runs it raises KeyboardInterrupt (Ctrl-C). Returns the list of what each
    read found: (the number of records on disk, the number of runs finished so far)."""
    seen_on_disk = []

    def runs(data, specs, *, epochs, seeds, batch_size, verbose, on_result, callbacks):
        finished = 0
        for spec in specs:
            for seed in range(seeds):
                if out_dir is not None:
                    payload = json.loads((out_dir / "results.json").read_text(encoding="utf-8"))
                    seen_on_disk.append((len(payload["records"]), finished))
                if finished == interrupt_after:
                    raise KeyboardInterrupt
                on_result(_stand_in_record(spec, seed))
                finished += 1

    monkeypatch.setattr(compare, "compare_activations", runs)
    return seen_on_disk


def test_the_files_hold_every_finished_run_and_an_interrupt_keeps_them(capsys, monkeypatch, tmp_path):
    out_dir = tmp_path / "results"
    seen_on_disk = _stand_in_runs(monkeypatch, out_dir, interrupt_after=2)
    argv = ["compare", "--activations", "relu,gelu,tanh", "--seeds", "2", "--out", str(out_dir)]
    assert main(argv) == 130
    out, err = capsys.readouterr()
    # Each run was on disk before the next one began, the first file before any run.
    assert seen_on_disk == [(0, 0), (1, 1), (2, 2)]
    assert err == f"kaa: interrupted: 2 of 6 runs are saved in {out_dir / 'results.json'}\n"
    assert "[2/6] relu" in out and "[3/6]" not in out
    payload = json.loads((out_dir / "results.json").read_text(encoding="utf-8"))
    assert [(record["activation"], record["seed"]) for record in payload["records"]] == [
        ("relu", 0),
        ("relu", 1),
    ]
    assert payload["meta"]["runs_planned"] == 6 and payload["meta"]["complete"] is False
    assert payload["meta"]["activations"] == ["relu", "gelu", "tanh"]  # the earlier keys stay
    with (out_dir / "summary.csv").open(newline="", encoding="utf-8") as handle:
        (row,) = csv.DictReader(handle)
    assert row["activation"] == "relu" and row["seeds"] == "2"
    assert float(row["accuracy_mean"]) == pytest.approx(0.55)  # seeds 0 and 1: 0.5 and 0.6
    assert not (out_dir / "curves.png").exists()  # drawn at the end only
    assert sorted(path.name for path in out_dir.iterdir()) == ["results.json", "summary.csv"]  # no temporary


def test_an_interrupt_before_the_first_run_ends_says_none_is_saved(capsys, monkeypatch, tmp_path):
    _stand_in_runs(monkeypatch, interrupt_after=0)
    assert main(["compare", "--activations", "relu", "--seeds", "1", "--out", str(tmp_path)]) == 130
    assert (
        capsys.readouterr().err == f"kaa: interrupted: 0 of 1 run is saved in {tmp_path / 'results.json'}\n"
    )
    assert json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))["records"] == []


def test_a_finished_comparison_is_marked_complete_and_its_seeds_fit_the_header(capsys, monkeypatch, tmp_path):
    _stand_in_runs(monkeypatch)
    monkeypatch.setattr(compare, "plot_learning_curves", lambda *args, **kwargs: tmp_path / "curves.png")
    assert main(["compare", "--activations", "relu", "--seeds", "3", "--out", str(tmp_path / "a")]) == 0
    assert "\nseeds: 0, 1, 2 | epochs: 20 |" in capsys.readouterr().out
    meta = json.loads((tmp_path / "a" / "results.json").read_text(encoding="utf-8"))["meta"]
    assert meta["runs_planned"] == 3 and meta["complete"] is True
    # `--seeds 1000000` listed every seed: a header line of 7.9 million characters.
    assert main(["compare", "--activations", "relu", "--seeds", "100", "--out", str(tmp_path / "b")]) == 0
    assert "\nseeds: 0..99 | epochs: 20 |" in capsys.readouterr().out


def test_earlier_results_in_out_are_refused_unless_overwrite_is_given(capsys, monkeypatch, tmp_path):
    _stand_in_runs(monkeypatch)
    monkeypatch.setattr(compare, "plot_learning_curves", lambda *args, **kwargs: None)
    for name in ("results.json", "summary.csv", "curves.png"):
        folder = tmp_path / name.replace(".", "_")
        folder.mkdir()
        (folder / name).write_text("an earlier run's", encoding="utf-8")
        assert main(["compare", "--activations", "relu", "--seeds", "1", "--out", str(folder)]) == 2
        assert _error_line(capsys) == (
            f"kaa: error: --out {str(folder)!r} holds the results of an earlier run ({name}): "
            "pass --overwrite to replace them, or give another --out"
        )
        assert (folder / name).read_text(encoding="utf-8") == "an earlier run's"  # untouched
    folder = tmp_path / "curves_png"
    assert (
        main(["compare", "--activations", "relu", "--seeds", "1", "--out", str(folder), "--overwrite"]) == 0
    )
    # Replaced: the new run's results, and no earlier plot beside them.
    records = json.loads((folder / "results.json").read_text(encoding="utf-8"))["records"]
    assert [record["activation"] for record in records] == ["relu"]
    assert not (folder / "curves.png").exists()


def test_a_plot_that_fails_is_a_note_after_the_results(capsys, monkeypatch, tmp_path):
    _stand_in_runs(monkeypatch)

    def failing_plot(*args, **kwargs):
        raise RuntimeError("Unknown symbol: \\nosuch")

    monkeypatch.setattr(compare, "plot_learning_curves", failing_plot)
    assert main(["compare", "--activations", "relu", "--seeds", "1", "--out", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert err == "kaa: note: no plot: Unknown symbol: \\nosuch\n"
    assert f"Results written to {tmp_path / 'results.json'}, {tmp_path / 'summary.csv'}." in out


@pytest.mark.slow
def test_one_run_is_counted_in_the_singular(capsys, tmp_path):
    argv = ["compare", "--epochs", "1", "--seeds", "1", "--activations", "relu", "--out", str(tmp_path)]
    assert main(argv) == 0
    assert re.search(r"^1 run in [0-9.]+ s\.$", capsys.readouterr().out, flags=re.MULTILINE)


@pytest.mark.slow
def test_without_a_plot_an_earlier_runs_plot_is_removed_and_the_files_come_before_the_table(
    capsys, monkeypatch, tmp_path
):
    out_dir = tmp_path / "results"
    out_dir.mkdir()
    (out_dir / "curves.png").write_bytes(b"\x89PNG an earlier run's curves")

    def no_matplotlib(*args, **kwargs):
        raise ImportError("matplotlib is not installed")

    def closed_output(rows):  # `kaa compare | head -n 1`: the reader left before the table
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(compare, "plot_learning_curves", no_matplotlib)
    monkeypatch.setattr(compare, "format_table", closed_output)
    argv = ["compare", "--epochs", "1", "--seeds", "1", "--activations", "relu", "--out", str(out_dir)]
    assert main([*argv, "--overwrite"]) == 1
    # The earlier plot would have sat beside these results as theirs; the results were written first.
    assert not (out_dir / "curves.png").exists()
    err = capsys.readouterr().err
    assert "kaa: note: no plot: matplotlib is not installed" in err
    assert err.endswith("kaa: stopped: the output was closed\n")
    records = json.loads((out_dir / "results.json").read_text(encoding="utf-8"))["records"]
    assert [(record["activation"], record["seed"]) for record in records] == [("relu", 0)]


@pytest.mark.slow
def test_compare_end_to_end(capsys, tmp_path):
    out_dir = tmp_path / "results"
    argv = ["compare", "--epochs", "2", "--seeds", "1", "--activations", "relu,competitive_relu"]
    assert main([*argv, "--out", str(out_dir)]) == 0
    out = capsys.readouterr().out

    # Header, one progress line per run, then the table.
    assert "1347 train / 450 test samples, 64 features, 10 classes" in out
    assert f"{keras.backend.backend()} backend" in out
    assert out.count("[1/2] relu") == 1 and out.count("[2/2] competitive_relu") == 1
    assert re.search(r"^2 runs in [0-9.]+ s\.$", out, flags=re.MULTILINE), out[-300:]
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("activation"))
    table = {line.split("|")[0].strip(): [c.strip() for c in line.split("|")] for line in lines[header + 2 :]}
    assert {"relu", "competitive_relu"} <= set(table)

    assert (out_dir / "curves.png").read_bytes()[:4] == b"\x89PNG"
    payload = json.loads((out_dir / "results.json").read_text(encoding="utf-8"))
    records = payload["records"]
    assert [(r["activation"], r["seed"]) for r in records] == [("relu", 0), ("competitive_relu", 0)]
    assert payload["meta"]["epochs"] == 2 and payload["meta"]["n_train"] == 1347
    assert payload["meta"]["runs_planned"] == 2 and payload["meta"]["complete"] is True
    with (out_dir / "summary.csv").open(newline="", encoding="utf-8") as handle:
        summary = {row["activation"]: row for row in csv.DictReader(handle)}
    assert set(summary) == {"relu", "competitive_relu"}

    for record in records:
        label = record["activation"]
        assert len(record["history"]["val_accuracy"]) == 2 and len(record["history"]["loss"]) == 2
        assert record["step_seconds"] > 0  # the second epoch is timed
        # One seed: the summary's mean is the run's accuracy and the spread is unknown, in both files.
        row = summary[label]
        assert float(row["accuracy_mean"]) == pytest.approx(record["test_accuracy"])
        assert row["accuracy_std"] == ""
        assert float(row["loss_mean"]) == pytest.approx(record["test_loss"])
        assert float(row["step_ms"]) == pytest.approx(record["step_seconds"] * 1000)
        assert int(row["params_added"]) == record["params_added"]
        assert int(row["seeds"]) == 1
        # ... and the printed table shows the same numbers.
        assert table[label][1] == f"{record['test_accuracy']:.4f} ± n/a"
        assert table[label][2] == f"{record['test_loss']:.4f}"
        assert table[label][3] == f"{record['zero_fraction']:.3f}"
        assert float(row["zero_fraction"]) == pytest.approx(record["zero_fraction"])
    assert [summary[k]["params_added"] for k in ("relu", "competitive_relu")] == ["0", "4"]


def _run_as_a_newcomer(arguments: list[str], timeout: int, **variables: str) -> subprocess.CompletedProcess:
    """`python ARGUMENTS` in a fresh process, without the variables `kaa` sets by default (but with
    `variables`)."""
    environment = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "KERAS_BACKEND")}
    environment.update(variables)
    return subprocess.run(
        [sys.executable, *arguments],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _forty_tiny_runs(tmp_path):
    """`kaa compare` of 40 one-epoch runs on a tiny dataset, to start with Popen: (command, environment,
    output folder). Each run takes a fraction of a second, so a signal or a closed pipe arrives
    mid-comparison. The command runs on this suite's backend (CI's PyTorch job has no TensorFlow)."""
    dataset = tmp_path / "tiny.npz"
    np.savez(dataset, x=np.random.default_rng(0).normal(size=(40, 3)).astype("float32"), y=np.arange(40) % 2)
    out_dir = tmp_path / "results"
    command = [sys.executable, "-m", "keras_adaptive_acts_cli", "compare", "--dataset", str(dataset)]
    command += ["--activations", "relu", "--epochs", "1", "--seeds", "40", "--out", str(out_dir)]
    environment = {**os.environ, "KERAS_BACKEND": keras.backend.backend(), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return command, environment, out_dir


@pytest.mark.slow
def test_ctrl_c_after_the_first_run_exits_130_and_keeps_the_finished_runs(tmp_path):
    # The finished runs were lost before (written at the end).
    command, environment, out_dir = _forty_tiny_runs(tmp_path)
    process = subprocess.Popen(
        command,
        cwd=REPO,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A child inherits an ignored SIGINT (as a shell's background job gets it), and Python then keeps
        # ignoring it: give the command the default disposition, as a terminal's Ctrl-C finds it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("[ 1/40]"):
                process.send_signal(signal.SIGINT)
                break
        rest, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, "".join(lines) + rest + err
    last = err.splitlines()[-1]
    match = re.fullmatch(r"kaa: interrupted: (\d+) of 40 runs (is|are) saved in (.+)", last)
    assert match and match[3] == str(out_dir / "results.json"), err
    payload = json.loads((out_dir / "results.json").read_text(encoding="utf-8"))
    assert payload["meta"]["complete"] is False and payload["meta"]["runs_planned"] == 40
    assert 1 <= len(payload["records"]) == int(match[1]) < 40
    assert [record["seed"] for record in payload["records"]] == list(range(int(match[1])))


@pytest.mark.slow
def test_output_closed_early_stops_without_a_traceback_and_keeps_the_finished_runs(tmp_path):
    # `kaa compare | head -n 3`: the reader leaves after the first run's line. Before, the next line
    # raised BrokenPipeError: a traceback, and (then) no file written.
    command, environment, out_dir = _forty_tiny_runs(tmp_path)
    process = subprocess.Popen(
        command, cwd=REPO, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        for line in process.stdout:
            if line.startswith(b"[ 1/40]"):
                break
        process.stdout.close()  # as `head` exits
        err = process.stderr.read().decode()
        process.wait(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 1, err
    assert err.splitlines()[-1] == "kaa: stopped: the output was closed" and "Traceback" not in err, err
    payload = json.loads((out_dir / "results.json").read_text(encoding="utf-8"))
    assert payload["meta"]["complete"] is False and 1 <= len(payload["records"]) < 40


@pytest.mark.parametrize("backend", ["tensorfow", "TensorFlow", " jax"])
def test_a_keras_backend_that_keras_does_not_have_is_one_error_line(backend):
    result = _run_as_a_newcomer(
        ["-m", "keras_adaptive_acts_cli", "compare"], timeout=60, KERAS_BACKEND=backend
    )
    assert result.returncode == 2 and result.stdout == ""
    # Keras itself refuses the name (nothing in kaa lists the backends Keras may add); before, its
    # refusal was a traceback of about 30 lines.
    assert result.stderr.startswith(
        f"kaa: error: KERAS_BACKEND={backend!r} is not a backend Keras can load "
        "(tensorflow, jax, torch, numpy, openvino): "
    ), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr


def test_a_keras_backend_that_is_not_installed_is_one_error_line():
    from keras_adaptive_acts_cli import KERAS_BACKENDS

    missing = [
        name for name, (module, _) in KERAS_BACKENDS.items() if importlib.util.find_spec(module) is None
    ]
    if not missing:
        pytest.skip("every Keras backend is installed here")
    backend = missing[0]
    result = _run_as_a_newcomer(
        ["-m", "keras_adaptive_acts_cli", "compare"], timeout=60, KERAS_BACKEND=backend
    )
    assert result.returncode == 1 and result.stdout == ""
    # Before: a traceback of 30 to 52 lines from inside Keras' import.
    assert result.stderr.startswith(
        f"kaa: error: KERAS_BACKEND={backend}, but {backend} is not installed: pip "
    )
    assert result.stderr.count("\n") == 1


def test_help_version_and_argument_errors_import_neither_keras_nor_the_package():
    # `kaa --help` must answer at once: no Keras, TensorFlow or package import before a command runs.
    script = """
import sys
import keras_adaptive_acts_cli as cli
argvs = [["--help"], ["compare", "--help"], ["tune", "--help"], ["export", "--help"], ["--version"],
         ["compare", "--epochs", "0"], []]
codes = [cli.main(argv) for argv in argvs]
heavy = ("keras", "tensorflow", "jax", "torch", "keras_adaptive_acts")
heavy = [name for name in heavy if name in sys.modules]
print("RESULT", codes, heavy)
"""
    result = _run_as_a_newcomer(["-c", script], timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "RESULT [0, 0, 0, 0, 0, 2, 2] []"
    assert f"kaa {keras_adaptive_acts.__version__}" in result.stdout  # read from the source, not imported


def test_the_version_is_read_from_the_source_without_running_it(tmp_path):
    from keras_adaptive_acts_cli import version_in_source

    init = tmp_path / "__init__.py"
    init.write_text('import this_module_does_not_exist\n__version__ = "9.8.7"\n')  # never executed
    assert version_in_source(init) == "9.8.7"
    init.write_text('VERSION = "1.0"\n')
    with pytest.raises(ValueError, match="no top-level `__version__"):
        version_in_source(init)


def test_start_up_is_quiet_unless_verbose_and_never_overrides_the_user(monkeypatch):
    from keras_adaptive_acts_cli import build_parser, quiet_start_up

    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    quiet_start_up(verbose=True)
    assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ
    quiet_start_up(verbose=False)
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2"
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    quiet_start_up(verbose=False)
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
    # `kaa --verbose` and `kaa compare --verbose N` (fit's verbosity) are two settings, not one.
    args = build_parser().parse_args(["--verbose", "compare", "--verbose", "2"])
    assert args.backend_logs is True and args.verbose == 2
    assert build_parser().parse_args(["compare", "--verbose", "1"]).backend_logs is False


@pytest.mark.parametrize(
    ("installed", "expected"),
    [
        ({"tensorflow", "jax", "torch"}, "tensorflow"),
        ({"jax", "torch"}, "jax"),
        ({"torch"}, "torch"),
    ],
)
def test_without_keras_backend_kaa_runs_on_an_installed_backend_and_says_so(
    monkeypatch, capsys, installed, expected
):
    import keras_adaptive_acts_cli as cli

    # Which modules are installed, as importlib would find them (a spec, or None).
    monkeypatch.setattr(cli.importlib.util, "find_spec", lambda name: object() if name in installed else None)
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    cli.quiet_start_up(verbose=False)
    assert os.environ["KERAS_BACKEND"] == expected
    said = capsys.readouterr().err
    if expected == "tensorflow":
        assert said == ""
    else:
        assert said == (
            f"kaa: TensorFlow is not installed: running on Keras' {expected} backend "
            "(set KERAS_BACKEND to choose)\n"
        )
    # A backend the user chose is kept when it is installed, even where kaa would take another.
    monkeypatch.setenv("KERAS_BACKEND", sorted(installed)[-1])
    cli.quiet_start_up(verbose=False)
    assert os.environ["KERAS_BACKEND"] == sorted(installed)[-1] and capsys.readouterr().err == ""


def test_without_any_backend_kaa_says_what_to_install(monkeypatch, capsys):
    import keras_adaptive_acts_cli as cli

    real_find_spec = cli.importlib.util.find_spec
    backends = {module for module, _ in cli.BACKEND_MODULES}
    monkeypatch.setattr(
        cli.importlib.util, "find_spec", lambda name: None if name in backends else real_find_spec(name)
    )
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    assert cli.main(["compare", "--epochs", "1"]) == 1
    assert capsys.readouterr().err == (
        "kaa: error: no Keras backend is installed (TensorFlow, JAX or PyTorch); install one with: "
        'pip install "keras-adaptive-acts[tensorflow-cpu]"\n'
    )
    assert "KERAS_BACKEND" not in os.environ


# Lines as TensorFlow 2.21 writes them on an Intel CPU while its libraries load (copied from a run).
_PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
_INFO = "I0000 00:00:1796434087.992786    8633 port.cc:153] oneDNN custom operations are on.\n"
_WARNING = "W0000 00:00:1796434088.100000    8633 cuda_dnn.cc:12] a native warning\n"
_ERROR = "E1204 10:11:12.345678    8633 loader.cc:7] a native error\n"
_PYTHON = "/x/y.py:3: UserWarning: a Python warning\n"


@pytest.mark.parametrize(
    ("minimum_level", "expected"),
    [
        (0, _PREAMBLE + _INFO + _WARNING + _ERROR + _PYTHON),
        (1, _WARNING + _ERROR + _PYTHON),
        (2, _ERROR + _PYTHON),
        (3, _PYTHON),
    ],
)
def test_native_start_up_lines_follow_the_log_level(minimum_level, expected):
    from keras_adaptive_acts_cli import native_lines_to_keep

    text = _PREAMBLE + _INFO + _WARNING + _ERROR + _PYTHON
    assert native_lines_to_keep(text, minimum_level) == expected


def test_what_an_import_writes_on_the_descriptor_is_filtered_and_kept_in_order(capfd, monkeypatch):
    from keras_adaptive_acts_cli import import_quietly

    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    with import_quietly():
        os.write(2, (_PREAMBLE + _INFO).encode())  # what native code writes, past sys.stderr
        print("from Python", file=sys.stderr)
        os.write(2, _ERROR.encode())
    assert capfd.readouterr().err == "from Python\n" + _ERROR
    # A failing block keeps every line: they are what explains the failure.
    with pytest.raises(ImportError), import_quietly():
        os.write(2, (_PREAMBLE + _INFO).encode())
        raise ImportError("a missing shared library")
    assert capfd.readouterr().err == _PREAMBLE + _INFO


@pytest.mark.slow
@pytest.mark.parametrize("module", ["keras_adaptive_acts_cli", "keras_adaptive_acts.cli"])
def test_a_command_in_a_fresh_process_prints_one_error_line_and_nothing_of_tensorflow(module):
    tensorflow_installed = importlib.util.find_spec("tensorflow") is not None
    if module == "keras_adaptive_acts.cli" and not tensorflow_installed:
        pytest.skip(
            "`python -m keras_adaptive_acts.cli` imports Keras (with the package) before kaa can choose "
            "a backend, and Keras' default, TensorFlow, is not installed; the `kaa` entry point is tested"
        )
    result = _run_as_a_newcomer(["-m", module, "compare", "--activations", "nope"], timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    if not tensorflow_installed:  # kaa says once which installed backend it took
        note, *lines = lines
        assert note.startswith("kaa: TensorFlow is not installed: running on Keras' "), result.stderr
    if module == "keras_adaptive_acts.cli":
        # `python -m keras_adaptive_acts.cli` imports the package (and TensorFlow) before `kaa` can set
        # the log level: TensorFlow's lines may come first. `kaa` itself starts outside the package.
        lines = [line for line in lines if line.startswith("kaa:")]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("kaa: error: Unknown activation 'nope'")
    assert "competitive_relu" in lines[0]


# ----------------------------------------------------------------------------------------------
# kaa tune


def _trial_rows(out):
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("trial"))
    rows = []
    for line in lines[header + 2 :]:
        if not line.strip():
            break
        rows.append([cell.strip() for cell in line.split("|")])
    return rows


@pytest.mark.slow
def test_tune_searches_reports_and_resumes(capsys, tmp_path):
    argv = ["tune", "--activations", "relu,competitive_relu,rrelu", "--trials", "2", "--epochs", "1"]
    argv += ["--directory", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "search in" in out
    rows = _trial_rows(out)
    assert sorted(row[0] for row in rows) == ["0", "1"]
    scores = [float(row[3]) for row in rows]
    assert scores == sorted(scores, reverse=True)  # best first
    for trial, activation, arguments, _ in rows:
        expected = {"relu": "-", "competitive_relu": "competition=", "rrelu": "lower="}[activation]
        assert arguments.startswith(expected), (trial, activation, arguments)
    assert f"best: trial {rows[0][0]}, {rows[0][1]}: test accuracy" in out

    # The same command again resumes: the finished trials are reported, none is run again.
    assert main(argv) == 0
    again = capsys.readouterr().out
    assert "resuming in" in again and _trial_rows(again) == rows


def test_tune_bad_choices_and_missing_keras_tuner(capsys, monkeypatch):
    assert main(["tune", "--activations", "relu,mixed_activation"]) == 2
    assert "'mixed_activation' cannot be a tuning choice" in _error_line(capsys)
    assert main(["tune", "--activations", "relu,nope"]) == 2
    assert "Unknown activation 'nope'" in _error_line(capsys)
    monkeypatch.setitem(sys.modules, "keras_tuner", None)
    monkeypatch.delitem(sys.modules, "keras_adaptive_acts.tuning", raising=False)
    monkeypatch.delattr(keras_adaptive_acts, "tuning", raising=False)  # set by the first import
    assert main(["tune", "--directory", "must-not-be-created"]) == 1
    assert 'pip install "keras-adaptive-acts[tuner]"' in _error_line(capsys)


@pytest.mark.slow
def test_ctrl_c_in_a_trial_stops_the_search_even_if_swallowed_and_the_same_command_resumes(
    capsys, monkeypatch, sigint_handler, tmp_path
):
    class SwallowsAnInterrupt(keras.callbacks.Callback):
        """Ctrl-C at the end of the second trial's third batch, lost as in a weakref callback."""

        batches: ClassVar[list[int]] = []  # KerasTuner gives each trial a deep copy of the callbacks

        def on_train_begin(self, logs=None):
            self.batches.append(0)

        def on_train_batch_end(self, batch, logs=None):
            self.batches[-1] += 1
            if len(self.batches) == 2 and batch == 2:
                with contextlib.suppress(KeyboardInterrupt):
                    signal.raise_signal(signal.SIGINT)

    from keras_adaptive_acts import tuning

    search = tuning.search_activations

    def search_with_the_swallower(*args, callbacks, **kwargs):
        return search(*args, callbacks=[*callbacks, SwallowsAnInterrupt()], **kwargs)

    monkeypatch.setattr(tuning, "search_activations", search_with_the_swallower)
    argv = ["tune", "--activations", "relu,rrelu", "--trials", "2", "--epochs", "1"]
    argv += ["--directory", str(tmp_path)]
    sigint_handler(signal.default_int_handler)  # as in a terminal
    assert main([*argv, "--overwrite"]) == 130
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the earlier handler is back
    project = tmp_path / "kaa_tune"
    assert capsys.readouterr().err == (
        f"kaa: interrupted: the finished trials are kept in {project}: the same command without "
        "--overwrite resumes the search\n"
    )
    assert SwallowsAnInterrupt.batches[1] == 3  # the fourth batch of the second trial did not start
    statuses = {
        trial["trial_id"]: trial["status"]
        for trial in (json.loads(path.read_text()) for path in project.glob("trial_*/trial.json"))
    }
    assert statuses == {"0": "COMPLETED", "1": "RUNNING"}

    monkeypatch.setattr(tuning, "search_activations", search)
    assert main(argv) == 0
    assert sorted(row[0] for row in _trial_rows(capsys.readouterr().out)) == ["0", "1"]


def test_an_interrupted_search_says_where_its_trials_are_kept(capsys, monkeypatch, tmp_path):
    from keras_adaptive_acts import tuning

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tuning, "search_activations", interrupted)
    assert main(["tune", "--activations", "relu", "--directory", str(tmp_path)]) == 130
    assert capsys.readouterr().err == (
        f"kaa: interrupted: the finished trials are kept in {tmp_path / 'kaa_tune'}: the same command "
        "resumes the search\n"
    )


@pytest.mark.slow
def test_tune_refuses_to_resume_a_search_of_other_choices(capsys, tmp_path):
    common = ["--trials", "1", "--epochs", "1", "--directory", str(tmp_path)]
    assert main(["tune", "--activations", "rrelu", *common]) == 0
    capsys.readouterr()
    trials = sorted(path.name for path in (tmp_path / "kaa_tune").iterdir())
    assert main(["tune", "--activations", "relu,competitive_relu", *common]) == 2
    out, err = capsys.readouterr()
    assert "val accuracy" not in out and "best:" not in out  # no table: the header line only
    assert sorted(path.name for path in (tmp_path / "kaa_tune").iterdir()) == trials  # no trial ran
    assert err == (
        f"kaa: error: The search kept in {str(tmp_path / 'kaa_tune')!r} was made with the choices ['rrelu'], "
        "not ['relu', 'competitive_relu']: start afresh (overwrite=True, `kaa tune --overwrite`) or keep the "
        "new search in another directory.\n"
    )
    assert main(["tune", "--activations", "relu,competitive_relu", "--overwrite", *common]) == 0
    rows = _trial_rows(capsys.readouterr().out)
    assert len(rows) == 1 and rows[0][1] in ("relu", "competitive_relu")


@pytest.mark.slow
def test_tune_with_the_same_seed_in_fresh_processes_gives_the_same_search(tmp_path):
    outputs = []
    for run in range(2):
        argv = ["tune", "--activations", "relu,rrelu,noisy_hard_tanh", "--trials", "3", "--epochs", "1"]
        argv += ["--seed", "7", "--directory", str(tmp_path / f"run{run}")]
        result = _run_as_a_newcomer(["-m", "keras_adaptive_acts_cli", *argv], timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        outputs.append(result.stdout)
    first, second = (_trial_rows(out) for out in outputs)
    assert len(first) == 3 and first == second  # the same values, scores and order
    best = [re.search(r"best: trial .*: test accuracy \S+, test loss \S+", out).group() for out in outputs]
    assert best[0] == best[1]
