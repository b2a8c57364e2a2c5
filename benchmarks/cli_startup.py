"""How long the `kaa` command takes to answer `--help`, `--version` and a misspelt option.

Each command runs as a whole fresh process, the way a user types it, and is timed from start to
exit (wall clock, `time.perf_counter` around `subprocess.run`). The commands take turns, one
repetition of each per round, so that a change in the machine's load touches all of them alike;
the table gives the median over the rounds and the lowest and highest.

Two baselines run in the same rounds: `python -c pass` (the interpreter's own start, the floor of
any Python command) and `python -c "import keras"` (what every `kaa --help` cost while the command
lived inside the package, whose `__init__` imports Keras and TensorFlow). Target: every `--help`
under 1.5 s on the 2-core CI machine, and nothing printed on stderr.

Usage:
    python benchmarks/cli_startup.py [--repeats N] [--warmup N] [--quick] [--json PATH] [--markdown PATH]

`--quick` runs 2 rounds for a smoke run; its figures mean little.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shlex
import shutil
import statistics
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
TARGET_SECONDS = 1.5


def kaa_command() -> list[str]:
    """The installed `kaa` script beside this interpreter, else the module that it runs."""
    beside = pathlib.Path(sys.executable).parent / "kaa"
    found = str(beside) if beside.exists() else shutil.which("kaa")
    return [found] if found else [sys.executable, "-m", "keras_adaptive_acts_cli"]


def candidates() -> dict[str, list[str]]:
    kaa = kaa_command()
    return {
        "kaa --help": [*kaa, "--help"],
        "kaa compare --help": [*kaa, "compare", "--help"],
        "kaa tune --help": [*kaa, "tune", "--help"],
        "kaa export --help": [*kaa, "export", "--help"],
        "kaa --version": [*kaa, "--version"],
        "kaa compare --epochs 0 (an argument error)": [*kaa, "compare", "--epochs", "0"],
        "baseline: python -c pass": [sys.executable, "-c", "pass"],
        'baseline: python -c "import keras"': [sys.executable, "-c", "import keras"],
    }


def time_interleaved(commands: dict[str, list[str]], repeats: int, warmup: int) -> dict[str, dict]:
    """Runs each command `warmup` times, then `repeats` rounds of one run each; seconds and stderr."""
    # A newcomer's environment: no log level set, so that TensorFlow lines would show if they came.
    environment = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    results = {name: {"seconds": [], "stderr_lines": 0, "exit_codes": set()} for name in commands}
    for round_ in range(warmup + repeats):
        for name, command in commands.items():
            start = time.perf_counter()
            finished = subprocess.run(command, capture_output=True, text=True, env=environment, check=False)
            elapsed = time.perf_counter() - start
            if round_ < warmup:
                continue
            results[name]["seconds"].append(elapsed)
            results[name]["exit_codes"].add(finished.returncode)
            if not name.startswith("baseline"):
                expected = 1 if "argument error" in name else 0  # the one `kaa: error:` line
                results[name]["stderr_lines"] = max(
                    results[name]["stderr_lines"], len(finished.stderr.splitlines()) - expected
                )
    for result in results.values():
        result["exit_codes"] = sorted(result["exit_codes"])
    return results


def machine_description_with_load() -> dict:
    # The project's machine description (it imports Keras in this process, which times nothing) and
    # the load average, since the figures are whole-process times on a possibly shared machine.
    sys.path.insert(0, str(HERE))
    from activation_speed import machine_description

    return {**machine_description(include_jax=False), "load_average": [round(v, 2) for v in os.getloadavg()]}


def markdown_report(report: dict) -> str:
    machine = report["machine"]
    floor = statistics.median(report["results"]["baseline: python -c pass"]["seconds"])
    lines = [
        "## The kaa command: start-up",
        "",
        f"Machine: {machine['cpu']}, {machine['cpu_count']} cores, Python {machine['python']}, Keras "
        f"{machine['keras']}, TensorFlow {machine['tensorflow']}, load average "
        f"{', '.join(str(value) for value in machine['load_average'])} at the start. Command: "
        f"`{report['command']}`. {report['repeats']} interleaved rounds after {report['warmup']} warm-up; "
        "wall time of the whole process.",
        "",
        "| command | median (s) | min-max (s) | times `python -c pass` | extra stderr lines | under 1.5 s |",
        "|---|---|---|---|---|---|",
    ]
    for name, result in report["results"].items():
        seconds = result["seconds"]
        median = statistics.median(seconds)
        baseline = name.startswith("baseline")
        verdict = "" if baseline else ("yes" if median < TARGET_SECONDS else "**no**")
        stderr = "" if baseline else str(result["stderr_lines"])
        lines.append(
            f"| `{name}` | {median:.3f} | {min(seconds):.3f}-{max(seconds):.3f} | {median / floor:.1f} | "
            f"{stderr} | {verdict} |"
        )
    if report["quick"]:
        lines += ["", "Smoke run (`--quick`): too few rounds for the figures to mean much."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=None, help="rounds (default: 20; --quick: 2)")
    parser.add_argument("--warmup", type=int, default=1, help="rounds not counted, first (default: 1)")
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--json", metavar="PATH", help="write the raw timings here")
    parser.add_argument("--markdown", metavar="PATH", help="write the Markdown section here")
    args = parser.parse_args()
    if args.repeats is None:
        args.repeats = 2 if args.quick else 20
    if args.repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be >= 1 and --warmup >= 0")
    report = {
        "command": shlex.join(["python", *sys.argv]),
        "quick": args.quick,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "machine": machine_description_with_load(),
        "results": time_interleaved(candidates(), args.repeats, args.warmup),
    }
    publish(markdown_report(report), report, args.markdown, args.json)


def publish(text: str, report: dict, markdown_path: str | None, json_path: str | None) -> None:
    """Prints the Markdown section `text`, and writes it and the raw `report` where they are asked for."""
    print(text)
    if markdown_path:
        pathlib.Path(markdown_path).write_text(text)
    if json_path:
        import json

        pathlib.Path(json_path).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
