"""How long `verify_serving` (`kaa export --verify`) waits for its three loader processes.

`verify_serving` checks a SavedModel with three fresh processes (`saved_model_cli show`, a Python
process running `serving_check.py`, `saved_model_cli run`); each mostly imports TensorFlow and loads
the model. They run side by side. This benchmark times, on one exported model, in the same rounds:

- **side by side**: the three loaders started together (`run_processes`, what `verify_serving` does);
- **one after another**: the same three commands, each started when the one before has ended (what
  `verify_serving` did before);
- **each alone**: the three separately, from the rounds above; the slowest of them is the floor for
  the side-by-side run (it cannot end before its slowest process);
- **baseline**: `python -c "import tensorflow"`, the start that each loader pays.

Each round runs every form once, in turn, so that a change in the machine's load touches all alike;
the table gives medians over the rounds, with the lowest and highest. The model is small (the time
is the processes' start, not the model's), exported with both signatures; the inference signature's
loaders are timed.

Usage:
    python benchmarks/export_verify.py [--repeats N] [--warmup N] [--quick] [--json PATH] [--markdown PATH]

`--quick` runs 1 round without warm-up: a smoke run whose figures mean little.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = pathlib.Path(__file__).resolve().parent
TIMEOUT_S = 300.0
SIDE_BY_SIDE, ONE_AFTER_ANOTHER, BASELINE = (
    "side by side",
    "one after another",
    'python -c "import tensorflow"',
)


def exported_model(folder: pathlib.Path):
    """A small model with a noisy layer, exported with both signatures; `(path, inputs, outputs)`."""
    import keras
    import numpy as np
    import tensorflow as tf

    import keras_adaptive_acts as kaa
    from keras_adaptive_acts import export
    from keras_adaptive_acts.export.serving_interface import read_signature

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16), kaa.layers.NoisyHardTanh(), keras.layers.Dense(2)]
    )
    path = export.export_for_serving(model, folder / "model", monte_carlo=True)
    signature = read_signature(path, export.INFERENCE_SIGNATURE)
    (name,) = signature.inputs
    dtype = tf.as_dtype(signature.inputs[name].dtype).as_numpy_dtype
    inputs = {name: np.random.default_rng(0).standard_normal((4, 8)).astype(dtype)}
    return path, inputs, sorted(signature.outputs)


def time_rounds(
    commands: dict[str, list[str]], repeats: int, warmup: int, baseline: list[str] | None = None
) -> dict[str, list[float]]:
    """Seconds per form and per loader, over `repeats` rounds after `warmup` rounds not counted.

    `baseline` is the command timed as `BASELINE` (default: `python -c "import tensorflow"`).
    """
    baseline = baseline or [sys.executable, "-c", "import tensorflow"]
    from keras_adaptive_acts.export.verification import run_process, run_processes

    seconds: dict[str, list[float]] = {SIDE_BY_SIDE: [], ONE_AFTER_ANOTHER: [], BASELINE: []}
    seconds.update({name: [] for name in commands})
    for round_ in range(warmup + repeats):
        start = time.perf_counter()
        run_processes(commands, TIMEOUT_S)
        side_by_side = time.perf_counter() - start
        alone = {}
        for name, command in commands.items():
            start = time.perf_counter()
            run_process(command, name, TIMEOUT_S)
            alone[name] = time.perf_counter() - start
        start = time.perf_counter()
        subprocess.run(baseline, check=True, capture_output=True)
        baseline_seconds = time.perf_counter() - start
        if round_ < warmup:
            continue
        seconds[SIDE_BY_SIDE].append(side_by_side)
        seconds[ONE_AFTER_ANOTHER].append(sum(alone.values()))
        seconds[BASELINE].append(baseline_seconds)
        for name, value in alone.items():
            seconds[name].append(value)
    return seconds


def summary(seconds: dict[str, list[float]], loaders: list[str]) -> dict:
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    floor = max(medians[name] for name in loaders)  # the slowest loader alone
    return {
        "medians": medians,
        "floor_seconds": floor,
        "side_by_side_over_one_after_another": medians[SIDE_BY_SIDE] / medians[ONE_AFTER_ANOTHER],
        "side_by_side_over_floor": medians[SIDE_BY_SIDE] / floor,
    }


def markdown_report(report: dict) -> str:
    machine, seconds, result = report["machine"], report["seconds"], report["summary"]
    lines = [
        "## kaa export --verify: the loader processes",
        "",
        f"Machine: {machine['cpu']}, {machine['cpu_count']} cores, Python {machine['python']}, Keras "
        f"{machine['keras']}, TensorFlow {machine['tensorflow']}, load average "
        f"{', '.join(str(value) for value in machine['load_average'])} at the start. Command: "
        f"`{report['command']}`. {report['repeats']} interleaved rounds after {report['warmup']} "
        "warm-up; wall time, each loader a whole fresh process.",
        "",
        "| what | median (s) | min-max (s) | times the slowest loader alone |",
        "|---|---|---|---|",
    ]
    for name, values in seconds.items():
        lines.append(
            f"| {name if name in (SIDE_BY_SIDE, ONE_AFTER_ANOTHER) else f'`{name}`'} "
            f"| {result['medians'][name]:.2f} | {min(values):.2f}-{max(values):.2f} "
            f"| {result['medians'][name] / result['floor_seconds']:.2f} |"
        )
    lines += [
        "",
        f"Side by side, the three loaders take {result['side_by_side_over_one_after_another']:.2f} of the "
        f"time they take one after another, and {result['side_by_side_over_floor']:.2f} times the "
        "slowest loader alone (the floor: the check cannot end before its slowest process).",
    ]
    if report["quick"]:
        lines += ["", "Smoke run (`--quick`): one round, no warm-up; the figures mean little."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=None, help="rounds (default: 7; --quick: 1)")
    parser.add_argument(
        "--warmup", type=int, default=None, help="rounds not counted (default: 1; --quick: 0)"
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--json", metavar="PATH", help="write the raw timings here")
    parser.add_argument("--markdown", metavar="PATH", help="write the Markdown section here")
    args = parser.parse_args()
    if args.repeats is None:
        args.repeats = 1 if args.quick else 7
    if args.warmup is None:
        args.warmup = 0 if args.quick else 1
    if args.repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be >= 1 and --warmup >= 0")

    sys.path.insert(0, str(HERE))
    from cli_startup import machine_description_with_load, publish

    from keras_adaptive_acts.export import INFERENCE_SIGNATURE
    from keras_adaptive_acts.export.verification import LOADERS, loader_commands

    machine = machine_description_with_load()
    with tempfile.TemporaryDirectory(prefix="kaa-export-verify-") as work:
        work_dir = pathlib.Path(work)
        path, inputs, outputs = exported_model(work_dir)
        commands = loader_commands(path, INFERENCE_SIGNATURE, inputs, outputs, work_dir)
        seconds = time_rounds(commands, args.repeats, args.warmup)
    report = {
        "command": shlex.join(["python", *sys.argv]),
        "quick": args.quick,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "machine": machine,
        "seconds": seconds,
        "summary": summary(seconds, list(LOADERS)),
    }
    publish(markdown_report(report), report, args.markdown, args.json)


if __name__ == "__main__":
    main()
