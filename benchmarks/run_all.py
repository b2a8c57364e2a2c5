"""Runs the benchmarks and writes their sections of `docs/benchmarks.md`.

Each selected benchmark script runs in a fresh process (so that one backend or device set-up does not
leak into the next) with `--json` and `--markdown` into the results directory, its output logged to
`<results-dir>/<name>.log`. Its Markdown section is then spliced into the page between two comments:

    <!-- run_all: begin activation_speed -->
    ...  (replaced on every run of this benchmark)
    <!-- run_all: end activation_speed -->

Everything outside the markers (the headings, the verdicts, notes on extra runs) is written by hand
and left untouched; re-read it against new figures. The script's own `## ` heading is dropped (the
page's heading stays), and a first line states the date, this command, the device, the time the
benchmark took and the machine's load average (the script's section states the machine and its own
command). Sections of benchmarks not selected are left as they are, so
`--only activation_speed noisy_speed` re-runs only the speed benchmarks. Every selected section's
markers are checked before anything runs. A benchmark that fails keeps its old section; the others
still run, and the exit status is 1 at the end.

GPUs: by default (`--device auto`) every benchmark runs on the CPU, with GPUs hidden
(`CUDA_VISIBLE_DEVICES=""`, `JAX_PLATFORMS=cpu`). If TensorFlow sees a GPU, the speed benchmarks
(activation_speed, noisy_speed) also run a second time with the GPU visible, into the sections
`<name>-gpu` ("... (GPU)" on the page). `--device gpu` runs only those GPU runs (on a lent GPU
machine, whose CPU is not the one the CPU sections were measured on); `--device cpu` never looks for
a GPU. The GPU path has been tested only with a fake GPU list: no GPU was lent while it was written.

The lent GPU machine has JAX and PyTorch but no TensorFlow, so the GPU sections are not measured by this
script: `benchmarks/device_speed.py` runs there in one call of the device tool (the steps are in
docs/benchmarks.md, "How these figures are made"), and `--from-json` writes the sections of its results
file into the page afterwards, here: `activation_speed-gpu`, `noisy_speed-gpu` and `device_speed-gpu`
from a run on Keras' JAX backend, `device_speed_torch-gpu` from one on its PyTorch backend
(`--backend torch`), each with a first line stating the date, the device and the command measured.
It runs nothing, and refuses a results file measured on anything but a GPU (never labels CPU figures
as GPU) and, unless `--output` is given, one from a `--quick` run.

`--quick` runs every script's smoke mode, whose figures mean nothing: the page is then never written
unless `--output` is given explicitly; by default a fresh copy of `docs/benchmarks.md` with the quick
sections spliced in goes to `<results-dir>/benchmarks.md`.

Usage:
    python benchmarks/run_all.py [--quick] [--only NAME ...] [--skip NAME ...] [--list]
        [--device {auto,cpu,gpu}] [--output PATH] [--results-dir DIR]

    python benchmarks/run_all.py --list                                # names, kinds, durations
    python benchmarks/run_all.py --only activation_speed noisy_speed   # the speed benchmarks
    python benchmarks/run_all.py                                       # everything (about 80 minutes)
    python benchmarks/run_all.py --from-json DIR/device_speed.json    # the device run's GPU sections
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
DOC = ROOT / "docs" / "benchmarks.md"
RESULTS = ROOT / "benchmarks" / "results"


@dataclasses.dataclass(frozen=True)
class Benchmark:
    script: str  # a file name beside this one, or an absolute path
    kind: str  # "speed" or "quality"
    minutes: float  # about how long a full run takes on the 2-core CPU
    summary: str
    gpu: bool = False  # also run with a visible GPU, when there is one
    backend: str = "tensorflow"  # KERAS_BACKEND of the process (a script may start others itself)
    figure: bool = False  # the script draws a figure for the docs by default (`--plot PATH` moves it)


BENCHMARKS = {
    "activation_speed": Benchmark(
        "activation_speed.py",
        "speed",
        1,
        "CompetitiveReLU speed and memory vs ReLU, PReLU, autodiff",
        gpu=True,
    ),
    "noisy_speed": Benchmark(
        "noisy_speed.py", "speed", 2, "NoisyHardTanh and RReLU speed vs the naive pipeline", gpu=True
    ),
    "addon_speed": Benchmark(
        "addon_speed.py", "speed", 1, "Snake and the affine TLU speed vs ReLU and their formulas' floors"
    ),
    "cost_curves": Benchmark(
        "cost_curves.py",
        "speed",
        2,
        "speed ratios from 2^10 to 2^26 elements, and batch-1 inference latency",
        figure=True,
    ),
    "sparsity_experiment": Benchmark(
        "sparsity_experiment.py",
        "quality",
        7,
        "activation sparsity on digits: ReLU vs regularizers, Peng et al.",
    ),
    "narrow_scale": Benchmark(
        "narrow_scale.py",
        "quality",
        30,
        "narrow ReLU learner at scale: success, time and memory for d <= 100, k <= 8",
        figure=True,
    ),
    "narrow_relu": Benchmark(
        "narrow_relu.py", "quality", 36, "narrow ReLU networks: moment init vs random init", figure=True
    ),
    "claims_competitive_relu": Benchmark(
        "claims_competitive_relu.py",
        "quality",
        13,
        "CompetitiveReLU vs ReLU/PReLU in a residual CNN on MNIST",
    ),
    "claims_noisy_lstm": Benchmark(
        "claims_noisy_lstm.py", "quality", 17, "noisy LSTM units, annealed or not, counting unique integers"
    ),
    "cli_startup": Benchmark("cli_startup.py", "speed", 3, "how fast `kaa --help` and its kin answer"),
    "export_verify": Benchmark(
        "export_verify.py",
        "speed",
        6,
        "`kaa export --verify`: its three loaders side by side or one after another",
    ),
}

MARKER = "<!-- run_all: {} {} -->"

# The GPU figures of the lent device machine (no TensorFlow there): benchmarks/device_speed.py's results
# file names the sections it fills; these are the only ones `--from-json` may write.
DEVICE_BENCHMARK = "device_speed"
DEVICE_SECTIONS = ("activation_speed-gpu", "noisy_speed-gpu", "device_speed-gpu", "device_speed_torch-gpu")
GPU_PLATFORMS = ("gpu", "cuda", "rocm")  # what jax.Device.platform says for a GPU

# Printed by a fresh process: the GPUs TensorFlow and JAX see.
GPU_PROBE = """
import json
out = {"tensorflow": [], "jax": []}
try:
    import tensorflow as tf
    for d in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(d)
        out["tensorflow"].append(details.get("device_name", d.name))
except Exception as e:
    out["tensorflow_error"] = repr(e)
try:
    import jax
    out["jax"] = [d.device_kind for d in jax.devices() if d.platform == "gpu"]
except Exception as e:
    out["jax_error"] = repr(e)
print(json.dumps(out))
"""


class SpliceError(ValueError):
    """The page lacks a section's markers, or has them twice or in the wrong order."""


# ---------------------------------------------------------------------------------------------
# Splicing
# ---------------------------------------------------------------------------------------------


def marker_span(text, section):
    """(start, end): the text strictly between the begin and end marker lines of `section`."""
    found = {}
    for which in ("begin", "end"):
        marker = MARKER.format(which, section)
        matches = list(re.finditer(rf"^{re.escape(marker)}[ \t]*$", text, flags=re.MULTILINE))
        if len(matches) != 1:
            found_text = f"no '{marker}' line" if not matches else f"{len(matches)} '{marker}' lines"
            raise SpliceError(
                f"{found_text} in the page (exactly one needed): put the begin and end markers, "
                f"each on a line of its own, around the section of {section!r}"
            )
        found[which] = matches[0]
    if found["end"].start() < found["begin"].end():
        raise SpliceError(f"the end marker of {section!r} comes before its begin marker")
    return found["begin"].end() + 1, found["end"].start()


def check_markers(text, sections):
    """Raises SpliceError for the first of `sections` whose markers are missing or wrong."""
    for section in sections:
        marker_span(text, section)


def splice(text, section, body):
    """`text` with what lies between the markers of `section` replaced by `body`."""
    start, end = marker_span(text, section)
    # blank lines around the body: Markdown must not read it as part of the comments' HTML block
    return text[:start] + "\n" + body.strip("\n") + "\n\n" + text[end:]


def section_body(report):
    """A script's Markdown report without its leading `## ` heading (the page keeps its own)."""
    lines = report.strip("\n").splitlines()
    if lines and lines[0].startswith("## "):
        lines = lines[1:]
    return "\n".join(lines).strip("\n")


# ---------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------


def display_path(path):
    """`path` relative to the repository when inside it (for readable commands), else absolute."""
    path = pathlib.Path(path).resolve()
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def detect_gpus():
    """The GPUs TensorFlow and JAX see, in a fresh process: {"tensorflow": [names], "jax": [names]}."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-c", GPU_PROBE], env=env, capture_output=True, text=True, check=False
    )
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"tensorflow": [], "jax": [], "error": done.stderr[-2000:]}


def script_path(benchmark):
    path = pathlib.Path(benchmark.script)
    return path if path.is_absolute() else HERE / path


def benchmark_env(benchmark, device):
    env = {**os.environ, "KERAS_BACKEND": benchmark.backend}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if device == "cpu":  # hide every GPU from TensorFlow, JAX and torch
        env["CUDA_VISIBLE_DEVICES"] = ""
        env["JAX_PLATFORMS"] = "cpu"
    return env


def load_average():
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def run_benchmark(name, benchmark, device, quick, results_dir, to_docs):
    """Runs one benchmark script; a dict with its status, time, files and (on success) its report."""
    section = name if device == "cpu" else f"{name}-gpu"
    results_dir.mkdir(parents=True, exist_ok=True)
    json_path, markdown_path = results_dir / f"{section}.json", results_dir / f"{section}.md"
    log_path = results_dir / f"{section}.log"
    markdown_path.unlink(missing_ok=True)  # a failed run must not leave the last run's report behind
    command = [sys.executable, display_path(script_path(benchmark))]
    command += ["--quick"] if quick else []
    command += ["--json", display_path(json_path), "--markdown", display_path(markdown_path)]
    if benchmark.figure and (quick or not to_docs or device != "cpu"):  # only a full CPU run redraws docs/
        command += ["--plot", display_path(results_dir / f"{section}.png")]
    record = {"name": name, "section": section, "device": device, "log": display_path(log_path)}
    record["command"] = shlex.join(["python", *command[1:]])
    record["load_before"] = load_average()
    begin = time.perf_counter()
    with open(log_path, "w") as log:
        done = subprocess.run(
            command, cwd=ROOT, env=benchmark_env(benchmark, device), stdout=log, stderr=subprocess.STDOUT
        )
    record["seconds"] = time.perf_counter() - begin
    record["load_after"] = load_average()
    record["returncode"] = done.returncode
    if done.returncode == 0 and markdown_path.is_file() and markdown_path.read_text().strip():
        record["status"] = "ok"
        record["report"] = markdown_path.read_text()
    else:
        record["status"] = "failed"
        why = f"exit status {done.returncode}" if done.returncode else f"no report in {markdown_path}"
        record["error"] = why
    return record


def duration_text(seconds):
    return f"{seconds:.0f} s" if seconds < 100 else f"{seconds / 60:.1f} minutes"


def provenance(record, run_command, quick, gpus, when):
    """The first line of a generated section: when, how, on what, how long, under what load."""
    if record["device"] == "cpu":
        device = "on the CPU (GPUs hidden)"
    else:
        device = f"on the GPU ({', '.join(gpus.get('tensorflow') or ['as TensorFlow sees it'])})"
    load = ""
    if record["load_before"] is not None:
        load = (
            f" Load average (1 minute) {record['load_before']:.1f} at the start, "
            f"{record['load_after']:.1f} at the end."
        )
    smoke = " **Smoke run (`--quick`): these figures mean nothing.**" if quick else ""
    return (
        f"*Written by `{run_command}` on {when:%Y-%m-%d at %H:%M} UTC, {device}; the benchmark took "
        f"{duration_text(record['seconds'])}.{load}*{smoke}"
    )


# ---------------------------------------------------------------------------------------------
# GPU sections from the device machine's results
# ---------------------------------------------------------------------------------------------


def device_provenance(results, run_command, when):
    """The first line of a GPU section written from a device_speed results file."""
    started = datetime.datetime.strptime(results["started_utc"], "%Y-%m-%dT%H:%M:%SZ")
    smoke = " **Smoke run (`--quick`): these figures mean nothing.**" if results.get("quick") else ""
    return (
        f"*Written by `{run_command}` on {when:%Y-%m-%d at %H:%M} UTC, from the results of "
        f"`{results['command']}`, run on {started:%Y-%m-%d at %H:%M} UTC on the GPU ({results['device']}) "
        f"of the lent device machine; the benchmark took {duration_text(results['seconds'])}.*{smoke}"
    )


def read_device_results(path):
    """The results file of a device_speed run, or a SpliceError saying why it cannot fill GPU sections."""
    try:
        results = json.loads(pathlib.Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise SpliceError(f"cannot read {path}: {error}") from None
    if results.get("benchmark") != DEVICE_BENCHMARK:
        raise SpliceError(f"{path} is not the results file of {DEVICE_BENCHMARK}.py")
    if results.get("platform") not in GPU_PLATFORMS:
        raise SpliceError(
            f"{path} was measured on {results.get('platform')!r} ({results.get('device')}), not on a GPU: "
            "its figures do not go into the GPU sections"
        )
    unknown = [f"{name}-gpu" for name in results["sections"] if f"{name}-gpu" not in DEVICE_SECTIONS]
    if unknown:
        raise SpliceError(f"{path} names sections that are not GPU sections of the page: {unknown}")
    return results


def write_device_results(json_path, output, run_command):
    """Splices the GPU sections of a device_speed results file into `output`; the exit status."""
    try:
        results = read_device_results(json_path)
        if results.get("quick") and output == DOC.resolve():
            raise SpliceError(
                f"{json_path} is a --quick run, whose figures mean nothing: pass --output to preview it"
            )
        text = output.read_text()
        sections = {f"{name}-gpu": body for name, body in results["sections"].items()}
        check_markers(text, sections)
    except (OSError, SpliceError) as error:
        print(f"run_all: {error}", file=sys.stderr)
        return 2
    first_line = device_provenance(results, run_command, datetime.datetime.now(datetime.timezone.utc))
    for section, body in sections.items():
        text = splice(text, section, first_line + "\n\n" + section_body(body))
    output.write_text(text)
    print(f"run_all: {', '.join(sections)} written to {display_path(output)} from {display_path(json_path)}")
    if results.get("failures"):
        print(
            f"run_all: that run has {len(results['failures'])} failures (its FAIL rows are in the sections): "
            + "; ".join(results["failures"]),
            file=sys.stderr,
        )
    return 0


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def parse_args(argv, benchmarks):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    names = list(benchmarks)
    parser.add_argument(
        "--quick", action="store_true", help="every script's smoke mode (not written to docs/)"
    )
    parser.add_argument("--only", nargs="+", choices=names, metavar="NAME", help="run only these")
    parser.add_argument(
        "--skip", nargs="+", choices=names, default=[], metavar="NAME", help="leave these out"
    )
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument(
        "--from-json",
        type=pathlib.Path,
        metavar="PATH",
        help="run nothing: write the GPU sections of a device_speed.py results file (measured on the "
        "lent GPU machine) into the page",
    )
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "gpu"),
        default="auto",
        help="auto: CPU runs, plus GPU runs of the speed benchmarks if TensorFlow sees a GPU; "
        "cpu: never look for one; gpu: only the GPU runs",
    )
    parser.add_argument(
        "--output",
        type=pathlib.Path,
        default=None,
        help="the page to splice into (default docs/benchmarks.md; with --quick <results-dir>/benchmarks.md)",
    )
    parser.add_argument(
        "--results-dir",
        type=pathlib.Path,
        default=RESULTS,
        help=f"raw JSON, Markdown and logs (default {display_path(RESULTS)})",
    )
    args = parser.parse_args(argv)
    args.selected = [name for name in (args.only or names) if name not in args.skip]
    return args


def list_benchmarks(benchmarks):
    width = max(map(len, benchmarks))
    for name, b in benchmarks.items():
        devices = "CPU, GPU" if b.gpu else "CPU"
        minutes = f"~{b.minutes:g} min"
        print(f"{name:<{width}}  {b.kind:<7}  {minutes:<7}  {devices:<8}  {b.summary}")


def main(argv=None, benchmarks=BENCHMARKS, gpu_detector=detect_gpus):
    """Returns the exit status: 0 if every selected benchmark ran and was written, else 1 (or 2)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv, benchmarks)
    if args.list:
        list_benchmarks(benchmarks)
        return 0
    if args.from_json:
        output = (args.output or DOC).resolve()
        return write_device_results(
            args.from_json, output, shlex.join(["python", "benchmarks/run_all.py", *argv])
        )
    if not args.selected:
        print("run_all: nothing selected", file=sys.stderr)
        return 2
    results_dir = args.results_dir.resolve()
    output = args.output
    if output is None:
        output = results_dir / "benchmarks.md" if args.quick else DOC
        if args.quick:  # a fresh preview: the page as it is, quick sections spliced in
            results_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(DOC, output)
    output = output.resolve()
    to_docs = output == DOC.resolve()

    gpus = {"tensorflow": [], "jax": []}
    if args.device != "cpu" and any(benchmarks[name].gpu for name in args.selected):
        gpus = gpu_detector()
        if not gpus.get("tensorflow") and gpus.get("jax"):
            print("run_all: JAX sees a GPU but TensorFlow does not: no GPU runs", file=sys.stderr)
        if args.device == "gpu" and not gpus.get("tensorflow"):
            print(f"run_all: --device gpu, but TensorFlow sees no GPU ({gpus})", file=sys.stderr)
            return 2
    runs = []  # (name, device)
    for name in args.selected:
        if args.device != "gpu":
            runs.append((name, "cpu"))
        if benchmarks[name].gpu and gpus.get("tensorflow"):
            runs.append((name, "gpu"))
    if not runs:
        print("run_all: none of the selected benchmarks runs on a GPU", file=sys.stderr)
        return 2
    try:  # before anything runs: a missing marker should not cost an hour of benchmarks
        check_markers(
            output.read_text(), [name if device == "cpu" else f"{name}-gpu" for name, device in runs]
        )
    except (OSError, SpliceError) as error:
        print(f"run_all: {output}: {error}", file=sys.stderr)
        return 2

    run_command = shlex.join(["python", "benchmarks/run_all.py", *argv])
    records = []
    for name, device in runs:
        print(f"run_all: {name} on the {device.upper()} ...", file=sys.stderr, flush=True)
        when = datetime.datetime.now(datetime.timezone.utc)
        record = run_benchmark(name, benchmarks[name], device, args.quick, results_dir, to_docs)
        if record["status"] == "ok":
            body = (
                provenance(record, run_command, args.quick, gpus, when)
                + "\n\n"
                + section_body(record["report"])
            )
            output.write_text(splice(output.read_text(), record["section"], body))  # written at once
            print(f"run_all: {name} on the {device.upper()}: written ({duration_text(record['seconds'])})")
        else:
            tail = pathlib.Path(ROOT / record["log"]).read_text()[-3000:]
            print(
                f"run_all: {name} on the {device.upper()} FAILED ({record['error']}); its section is kept. "
                f"Log {record['log']}, ends:\n{tail}",
                file=sys.stderr,
            )
        record.pop("report", None)
        records.append(record)
    summary = {"command": run_command, "output": str(output), "gpus": gpus, "runs": records}
    (results_dir / "run_all.json").write_text(json.dumps(summary, indent=1))
    failed = [f"{r['name']} ({r['device']})" for r in records if r["status"] != "ok"]
    print(f"run_all: {len(records) - len(failed)} of {len(records)} written to {display_path(output)}")
    if failed:
        print(f"run_all: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
