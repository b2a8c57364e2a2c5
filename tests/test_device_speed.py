"""benchmarks/device_speed.py, the benchmark for the lent GPU machine (JAX, no TensorFlow): its float64
references and comparisons, its quick run on the CPU with TensorFlow blocked, and `run_all.py --from-json`,
which writes its GPU sections into docs/benchmarks.md."""

import importlib.util
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
from typing import NamedTuple

import benchmark_modules
import keras
import numpy as np
import pytest

import keras_adaptive_acts as kaa

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = "benchmarks/device_speed.py"


references = benchmark_modules.load("device_references")  # NumPy only: no Keras, JAX or TensorFlow
report = benchmark_modules.load("device_report")  # reads the results alone
run_all = benchmark_modules.load("run_all")


def _public_layers():
    return sorted(
        name
        for name in kaa.__all__
        if isinstance(getattr(kaa, name), type) and issubclass(getattr(kaa, name), keras.layers.Layer)
    )


# ---------------------------------------------------------------------------------------------
# The comparisons and references (NumPy, fast)
# ---------------------------------------------------------------------------------------------


def test_comparison_passes_float32_rounding_and_fails_a_wrong_or_nan_result():
    reference = np.random.default_rng(0).standard_normal(1000)
    rounded = reference.astype("float32")
    assert references.comparison(rounded, reference, references.TOLERANCES["forward"])["passed"]
    wrong = reference.copy()
    wrong[17] *= 1.5  # one entry off by half of itself
    result = references.comparison(wrong, reference, references.TOLERANCES["forward"])
    assert not result["passed"] and result["relative_error"] > 1e-3
    broken = rounded.copy()
    broken[3] = np.nan
    assert not references.comparison(broken, reference, 1.0)["passed"]  # NaN never passes
    broken[3] = np.inf
    assert not references.comparison(broken, reference, 1.0)["passed"]
    with pytest.raises(ValueError, match="shapes differ"):
        references.relative_error(reference[:10], reference)


def test_a_kink_within_one_step_is_left_out_and_counted():
    x = np.array([-1.0, -1e-7, 3e-7, 0.5, 2.0])  # two entries within one step (1e-6) of ReLU's kink
    derivative, mask = references.elementwise_derivative(references.relu, x)
    assert mask.tolist() == [True, False, False, True, True]
    np.testing.assert_allclose(derivative[mask], [0.0, 1.0, 1.0], atol=1e-9)
    upstream = np.ones_like(x)
    result = references.comparison((x > 0).astype("float64"), upstream * derivative, 1e-5, mask)
    assert result["passed"] and result["left_out_at_kinks"] == 2 and result["entries"] == 5


def test_the_hand_written_reference_gradients_agree_with_finite_differences():
    results = references.self_check()
    assert len(results) == 8 and all(result["passed"] for result in results), results


def test_a_wrong_hand_written_gradient_fails_its_finite_difference_check():
    x = np.random.default_rng(1).standard_normal((2, 3, 4))
    upstream = np.random.default_rng(2).standard_normal(x.shape)
    arguments = (1.5, 0.2, "energy", 2.0, 1e-6, (1, 2))

    def forward(v):
        return references.competitive_relu(v, *arguments)

    def without_the_share(v, g):
        """g * s * [s v > 0]: the gradient of a custom gradient that forgot the path through p."""
        p = np.sum(np.maximum(v, 0) ** 2, axis=(1, 2), keepdims=True) / (
            np.sum(v**2, (1, 2), keepdims=True) + 1e-6
        )
        s = 2.0 * np.tanh(1.5 * p + 0.2)
        return g * s * (s * v > 0)

    right = references.check_vjp(
        "right", forward, lambda v, g: references.competitive_relu_vjp(v, g, *arguments), x, upstream
    )
    wrong = references.check_vjp("without the share", forward, without_the_share, x, upstream)
    assert right["passed"]
    assert not wrong["passed"] and wrong["relative_error"] > 1e-3


# ---------------------------------------------------------------------------------------------
# The quick run, on the CPU, with TensorFlow blocked (slow: a subprocess of about a minute)
# ---------------------------------------------------------------------------------------------

# Runs the script in this process with every import of TensorFlow refused and recorded; the
# attempts are printed at exit. The device machine has no TensorFlow: neither may the script.
BLOCKED_RUN = """
import atexit, json, runpy, sys

attempts = []

class BlockTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "tensorflow":
            attempts.append(name)
            raise ImportError("TensorFlow is blocked: the device machine has none")
        return None

sys.meta_path.insert(0, BlockTensorFlow())
atexit.register(lambda: print("TENSORFLOW_IMPORTS " + json.dumps(attempts), file=sys.stderr))
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _blocked_quick_run(folder):
    """The quick run's command (writing into `folder`) and environment: JAX on the CPU in float32, as
    on the device, with TensorFlow blocked."""
    command = [sys.executable, "-c", BLOCKED_RUN, SCRIPT, "--quick"]
    command += ["--json", str(folder / "r.json"), "--markdown", str(folder / "r.md")]
    command += ["--hlo", str(folder / "hlo.tar.gz")]
    env = {key: value for key, value in os.environ.items() if key != "JAX_ENABLE_X64"}
    env.update({"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "CUDA_VISIBLE_DEVICES": ""})
    return command, env


# What the script prints on stderr once the layers' figures are on disk, before the CNN step.
LAYERS_WRITTEN = "the layers' figures written"


class QuickRun(NamedTuple):
    result: subprocess.CompletedProcess  # its exit status, stdout and stderr
    results: dict | None  # its JSON file, None if it wrote none
    report: str  # its Markdown report
    folder: pathlib.Path  # where it wrote them, and its HLO archive
    stopped: pathlib.Path | None  # its files when it said the layers' figures were written


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """The quick run; with a copy of its files as a time limit that killed it after the layers'
    figures would have left them (`stopped`: None where no process can be paused)."""
    if importlib.util.find_spec("jax") is None:
        pytest.skip("JAX is not installed: the default run of device_speed.py is on Keras' JAX backend")
    folder, stopped = tmp_path_factory.mktemp("device_speed"), tmp_path_factory.mktemp("stopped")
    command, env = _blocked_quick_run(folder)
    # One run serves both: paused at that line, its files are what a kill there leaves (it writes
    # nothing more before the CNN step ends), and then it goes on to the end. That saves a second run
    # of about a minute. Its stdout goes to a file: a pipe left unread could fill and stall it.
    can_pause = hasattr(signal, "SIGSTOP")  # POSIX
    stderr, paused = [], False
    with (
        open(folder / "stdout.txt", "w") as stdout,
        subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=stdout, stderr=subprocess.PIPE, text=True
        ) as process,
    ):
        deadline = threading.Timer(600, process.kill)  # as `subprocess.run(timeout=600)` would
        deadline.start()
        try:
            for line in process.stderr:  # to the process's exit
                stderr.append(line)
                if can_pause and not paused and LAYERS_WRITTEN in line:
                    process.send_signal(signal.SIGSTOP)
                    for name in ("r.json", "r.md"):
                        if (folder / name).is_file():
                            shutil.copy(folder / name, stopped / name)
                    process.send_signal(signal.SIGCONT)
                    paused = True
            process.wait()
        finally:
            deadline.cancel()
            if process.poll() is None:  # a failure here: the run must not outlive the test
                process.kill()
    output = (folder / "stdout.txt").read_text()
    results = json.loads((folder / "r.json").read_text()) if (folder / "r.json").is_file() else None
    report = (folder / "r.md").read_text() if (folder / "r.md").is_file() else ""
    result = subprocess.CompletedProcess(command, process.returncode, output, "".join(stderr))
    return QuickRun(result, results, report, folder, stopped if can_pause else None)


@pytest.mark.slow
def test_quick_run_checks_and_times_every_public_layer_on_jax_without_tensorflow(quick_run):
    result, results, report = quick_run.result, quick_run.results, quick_run.report
    assert result.returncode == 0, result.stderr[-4000:]
    assert results is not None and results["failures"] == []
    # TensorFlow was neither imported nor even asked for (the blocker saw no attempt).
    assert "TENSORFLOW_IMPORTS []" in result.stderr
    assert results["tensorflow_imported"] is False and results["keras_backend"] == "jax"
    public = _public_layers()
    assert results["public_layers"] == public and len(public) >= 15
    rows = {name: record for name, record in results["layers"].items() if record["covers"]}
    for layer_class in public:
        covering = [record for record in rows.values() if record["covers"] == layer_class]
        assert covering, layer_class
        for record in covering:
            assert record["ratio"] > 0 and len(record["times_ms"]) == 3  # --quick: 3 repetitions
            assert record["verdict"] in ("PASS", "MISS")
            # The checks ran: real errors, each within its tolerance, on the output and the gradient.
            assert record["checks"], layer_class
            for check in record["checks"]:
                for part in ("forward", "gradient"):
                    assert (
                        check[part]["passed"]
                        and 0 <= check[part]["relative_error"] <= check[part]["tolerance"]
                    )
                    assert check[part]["entries"] > 0
    noisy_paths = {check["path"] for check in rows["NoisyHardTanh() (NAN)"]["checks"]}
    assert noisy_paths == {"inference", "training, noise off (c = 0)"}
    floors = ("floor: one statistic each way", "floor: one statistic each way, axis=(1, 2)")
    assert set(results["cnn"]["ratios"]) == {
        "CompetitiveReLU(energy)",
        "CompetitiveReLU(energy, axis=(1, 2))",
        *floors,
    }
    # The floors are reference rows: timed, never judged; the CompetitiveReLU tables show the floor.
    assert set(results["cnn"]["verdicts"]) == {
        "CompetitiveReLU(energy)",
        "CompetitiveReLU(energy, axis=(1, 2))",
    }
    assert results["layers"][floors[0]]["median_ms"] > 0 and "verdict" not in results["layers"][floors[0]]
    assert f"| {floors[0]} | (2, 4, 4, 8) |" in results["sections"]["activation_speed"]
    # CPU figures are marked as such, never as GPU.
    assert results["platform"] == "cpu"
    assert "## Every layer and the CNN step (CPU, JAX backend)" in report and "(GPU" not in report
    assert "Not GPU figures" in report and "Smoke run (`--quick`)" in report
    assert set(results["sections"]) == {"activation_speed", "noisy_speed", "device_speed"}
    # Each layer's speed row is in one page section; every layer's checks are in "device_speed".
    speed_row = "| RReLU() | (2, 4, 4, 8) |"
    sections = results["sections"]
    assert speed_row in sections["noisy_speed"] and speed_row not in sections["device_speed"]
    assert "| RReLU() | inference |" in sections["device_speed"]
    assert "| CompetitiveReLU(l1) | (2, 4, 4, 8) |" in sections["activation_speed"]
    assert "### Training step of the small CNN" in sections["activation_speed"]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["platform"] == "CPU" and summary["checks_passed"] is True
    # The overflow guard's form in each guarded row's compiled step, read from its HLO (XLA:CPU keeps
    # the conditional on JAX, as tests/ops/test_competitive_paths.py checks); the count has no guard.
    guards = {name: record.get("overflow_guard") for name, record in rows.items()}
    assert guards["CompetitiveReLU(energy)"] == guards["CompetitiveReLU(l1)"] == "conditional"
    assert guards["CompetitiveReLU(energy, axis=(1, 2))"] == "conditional"
    assert guards["CompetitiveReLU(count)"] is None and guards["Snake()"] is None
    assert (
        "Overflow guard: the compiled step keeps it as a conditional in all 3" in sections["activation_speed"]
    )


@pytest.mark.slow
def test_quick_run_reads_what_xla_compiled_for_every_row(quick_run):
    results, folder = quick_run.results, quick_run.folder
    assert results is not None
    layers = results["layers"]
    assert all("compiled" in record and "compiled_error" not in record for record in layers.values())
    # ReLU's step reads its input and the upstream gradient and writes its output and the input
    # gradient: at least four arrays of the input's size, whatever XLA fuses.
    image = int(np.prod(results["sizes"]["image"]))
    relu = layers["ReLU"]["compiled"]
    assert relu["bytes_moved"] >= 4 * 4 * image and relu["input_sized_operations"] >= 1
    assert layers["ReLU"]["bytes_to_relu"] == 1.0
    # A CompetitiveReLU step also sums over each sample: more passes than ReLU's, more bytes.
    energy = layers["CompetitiveReLU(energy)"]
    assert energy["compiled"]["input_sized_operations"] > relu["input_sized_operations"]
    assert energy["bytes_to_relu"] > 1.0
    # Where a step has neither the overflow guard (a conditional) nor a loop, the count is XLA's own
    # (to a few bytes: 16 at these tiny shapes, none at the benchmark's). The guarded rows count less
    # than XLA, which adds the guard's second branch as if it ran. The noisy layers' random draws are
    # loops on JAX: their rows are marked so.
    for name, record in layers.items():
        census = record["compiled"]
        if record.get("overflow_guard") == "conditional":
            assert census["bytes_moved"] < census["xla_bytes_accessed"], name
        elif not census["has_loop"]:
            assert census["bytes_moved"] == pytest.approx(census["xla_bytes_accessed"], rel=0.05), name
    assert layers["NoisyHardTanh() (NAN)"]["compiled"]["has_loop"]
    assert " (loop) |" in results["sections"]["noisy_speed"]
    section = results["sections"]["activation_speed"]
    assert "| bytes / ReLU | passes over the input |" in section
    assert "CompetitiveReLU's bytes against its floor's (floor: one statistic each way)" in section
    # The CNN's steps too: each reads at least the batch of images.
    cnn = results["cnn"]
    assert set(cnn["compiled"]) == set(cnn["candidates"])
    images_bytes = 4 * cnn["batch"] * cnn["image"] ** 2 * 3
    assert all(census["bytes_moved"] >= images_bytes for census in cnn["compiled"].values())
    assert "| verdict | bytes / ReLU | passes |" in section.split("### Training step")[1]
    # The optimized HLO of every row, one file each, in one archive.
    with tarfile.open(folder / "hlo.tar.gz") as archive:
        names = archive.getnames()
        assert sorted(names) == sorted(results["hlo_archive"].values()) and len(names) == len(layers)
        text = archive.extractfile(results["hlo_archive"]["CompetitiveReLU(energy)"]).read().decode()
    assert "ENTRY" in text and " conditional(" in text  # the overflow guard, as the row reports


@pytest.mark.slow
def test_run_all_refuses_to_write_cpu_figures_into_the_gpu_sections(quick_run, tmp_path):
    results, folder = quick_run.results, quick_run.folder
    assert results is not None
    page = tmp_path / "benchmarks.md"
    page.write_text((ROOT / "docs" / "benchmarks.md").read_text())
    before = page.read_text()
    argv = ["--from-json", str(folder / "r.json"), "--output", str(page)]
    assert run_all.main(argv) == 2
    assert page.read_text() == before


@pytest.mark.slow
def test_a_run_stopped_during_the_cnn_step_leaves_every_layers_figures(quick_run, tmp_path, capsys):
    # The device call's time limit kills the run: what it leaves must still fill the page's sections.
    result, stopped = quick_run.result, quick_run.stopped
    if stopped is None:
        pytest.skip("no SIGSTOP on this platform: the quick run cannot be paused where a kill would stop it")
    assert LAYERS_WRITTEN in result.stderr and (stopped / "r.json").is_file(), result.stderr[-4000:]
    results = json.loads((stopped / "r.json").read_text())
    assert results["cnn"] is None and set(results["phase_seconds"]) == {"layers"}
    covering = [record for record in results["layers"].values() if record["covers"]]
    assert {record["covers"] for record in covering} == set(_public_layers())
    assert all(record["median_ms"] > 0 and record["checks"] for record in covering)
    assert results["failures"] == ["CNN step: not measured, the run ended before it"]
    assert "**CNN step: not measured, the run ended before it.**" in results["sections"]["activation_speed"]
    assert "| CompetitiveReLU(l1) | (2, 4, 4, 8) |" in results["sections"]["activation_speed"]
    assert "**CNN step: not measured" in (stopped / "r.md").read_text()
    # run_all writes such a file's sections (were it a GPU's) and names what is missing.
    gpu_file = tmp_path / "gpu.json"
    gpu_file.write_text(json.dumps({**results, "platform": "gpu", "quick": False}))
    page = tmp_path / "page.md"
    page.write_text(_page())
    assert run_all.main(["--from-json", str(gpu_file), "--output", str(page)]) == 0
    start, end = run_all.marker_span(page.read_text(), "activation_speed-gpu")
    assert "CNN step: not measured" in page.read_text()[start:end]
    printed = capsys.readouterr().err
    assert "that run has 1 failures" in printed and "CNN step: not measured" in printed


@pytest.mark.slow
def test_quick_run_on_pytorch_checks_every_public_layer_without_tensorflow(tmp_path):
    if importlib.util.find_spec("torch") is None:
        pytest.skip("PyTorch is not installed: `--backend torch` needs it (CI runs this in its PyTorch job)")
    # Not under BLOCKED_RUN: PyTorch's compiler asks `importlib.util.find_spec("tensorflow")` when it
    # is imported (Keras' PyTorch backend imports it), which the blocker answers with an ImportError
    # where an absent TensorFlow answers None. The script records whether TensorFlow was imported.
    command = [sys.executable, SCRIPT, "--backend", "torch", "--quick"]
    command += ["--json", str(tmp_path / "r.json"), "--markdown", str(tmp_path / "r.md")]
    env = {**os.environ, "KERAS_BACKEND": "jax", "CUDA_VISIBLE_DEVICES": ""}  # --backend wins over it
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    results = json.loads((tmp_path / "r.json").read_text())
    assert results["failures"] == [] and results["tensorflow_imported"] is False
    assert results["keras_backend"] == "torch"
    assert results["framework"].startswith("PyTorch ") and "torch" in results["versions"]
    rows = {name: record for name, record in results["layers"].items() if record["covers"]}
    assert {record["covers"] for record in rows.values()} == set(_public_layers())
    for record in rows.values():
        assert record["checks"] and all(
            check[part]["passed"] and check[part]["entries"] > 0
            for check in record["checks"]
            for part in ("forward", "gradient")
        )
        assert record["ratio"] > 0 and "overflow_guard" not in record  # eager: no compiled step to read
        assert "compiled" not in record
    assert set(results["cnn"]["ratios"]) == {
        "CompetitiveReLU(energy)",
        "CompetitiveReLU(energy, axis=(1, 2))",
        "floor: one statistic each way",
        "floor: one statistic each way, axis=(1, 2)",
    }
    assert all(np.isfinite(loss) for loss in results["cnn"]["last_loss"].values())
    assert results["cnn"]["compiled"] == {}
    # CPU figures, marked so, in the one section of the PyTorch run (never the JAX run's sections).
    assert results["platform"] == "cpu" and set(results["sections"]) == {"device_speed_torch"}
    section = results["sections"]["device_speed_torch"]
    assert "(CPU, PyTorch backend)" in section and "PyTorch saw no GPU" in section
    assert "bytes / ReLU" not in section
    assert "### Training step of the small CNN" in section


# ---------------------------------------------------------------------------------------------
# run_all.py --from-json (fast, with a results file written here)
# ---------------------------------------------------------------------------------------------


def _device_results(platform="gpu", quick=False):
    return {
        "benchmark": "device_speed",
        "command": "python benchmarks/device_speed.py --json /out/d.json",
        "started_utc": "2026-12-06T10:20:00Z",
        "seconds": 187.0,
        "platform": platform,
        "device": "NVIDIA H200",
        "quick": quick,
        "failures": [],
        "sections": {
            name: f"Machine line\n\n### Table\n\n| {name} figures |\n"
            for name in (section.removesuffix("-gpu") for section in run_all.DEVICE_SECTIONS)
        },
    }


def _page():
    markers = "".join(
        f"\n## {section}\n\n<!-- run_all: begin {section} -->\n\nold text\n\n"
        f"<!-- run_all: end {section} -->\n"
        for section in run_all.DEVICE_SECTIONS
    )
    return "# Benchmarks\n\nBy hand.\n" + markers + "\nThe end.\n"


def test_run_all_writes_the_gpu_sections_from_a_device_results_file(tmp_path, capsys):
    results_file, page = tmp_path / "d.json", tmp_path / "page.md"
    results_file.write_text(json.dumps(_device_results()))
    page.write_text(_page())
    assert run_all.main(["--from-json", str(results_file), "--output", str(page)]) == 0
    text = page.read_text()
    assert (
        "old text" not in text
        and text.startswith("# Benchmarks\n\nBy hand.\n")
        and text.endswith("The end.\n")
    )
    for section in run_all.DEVICE_SECTIONS:
        start, end = run_all.marker_span(text, section)
        body = text[start:end].strip()
        first = body.splitlines()[0]
        assert first.startswith(f"*Written by `python benchmarks/run_all.py --from-json {results_file}")
        assert (
            "of `python benchmarks/device_speed.py --json /out/d.json`, run on 2026-12-06 at 10:20" in first
        )
        assert "on the GPU (NVIDIA H200)" in first
        assert f"| {section.removesuffix('-gpu')} figures |" in body
    assert "written to" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("results", "output_is_docs", "message"),
    [
        (_device_results(platform="cpu"), False, "not on a GPU"),
        (_device_results(quick=True), True, "--quick run"),
        ({**_device_results(), "benchmark": "noisy_speed"}, False, "not the results file of device_speed"),
        ({**_device_results(), "sections": {"cost_curves": "x"}}, False, "not GPU sections"),
    ],
)
def test_run_all_refuses_a_results_file_that_is_not_gpu_figures(
    tmp_path, capsys, results, output_is_docs, message
):
    results_file, page = tmp_path / "d.json", tmp_path / "page.md"
    results_file.write_text(json.dumps(results))
    page.write_text(_page())
    docs = ROOT / "docs" / "benchmarks.md"
    before = docs.read_text()
    argv = ["--from-json", str(results_file)] + ([] if output_is_docs else ["--output", str(page)])
    assert run_all.main(argv) == 2
    assert message in capsys.readouterr().err
    assert page.read_text() == _page() and docs.read_text() == before


def test_the_census_lines_compare_competitive_relu_with_its_floor_and_name_a_census_that_failed():
    def census(traffic):
        return {"bytes_moved": traffic, "has_loop": False, "operations": 6, "input_sized_operations": 4}

    results = {
        "competition_floor": "floor",
        "layers": {
            "ReLU": {"covers": None, "compiled": census(100.0)},
            "floor": {"covers": None, "compiled": census(200.0)},
            "CompetitiveReLU(energy)": {"covers": "CompetitiveReLU", "compiled": census(300.0)},
            "CompetitiveReLU(count)": {"covers": "CompetitiveReLU", "compiled": census(190.0)},
            "Snake()": {"covers": "Snake", "compiled_error": "RuntimeError: no cost analysis"},
        },
    }
    text = "\n".join(report.traffic_lines(results, list(results["layers"])))
    assert "(floor): CompetitiveReLU(energy) 1.50x, CompetitiveReLU(count) 0.95x." in text
    assert "- census of Snake(): RuntimeError: no cost analysis" in text
    assert report.passes_text(census(1.0)) == "4 of 6" and report.passes_text(None) == ""
    # Without a census (PyTorch's eager steps), no lines.
    eager = {name: {"covers": row["covers"]} for name, row in results["layers"].items()}
    assert report.traffic_lines({**results, "layers": eager}, list(eager)) == []


def test_the_page_has_the_gpu_sections_of_the_device_results():
    page = (ROOT / "docs" / "benchmarks.md").read_text()
    run_all.check_markers(page, run_all.DEVICE_SECTIONS)
    for section in run_all.DEVICE_SECTIONS:
        start, end = run_all.marker_span(page, section)
        body = page[start:end]
        # Until a GPU run is written in, each says so, and where the steps to make one are.
        if "No GPU figures yet" in body:
            for text in ("benchmarks/device_speed.py", "--from-json", "gives the steps"):
                assert text in body, (section, text)
    # The steps: the device tool's one call, carrying the Keras wheel.
    steps = page[page.index("### GPU figures: one call on the lent device machine") :].split("\n## ")[0]
    assert 'carry: [".whl"]' in steps and "benchmarks/device_speed.py --json $OUT/device_speed.json" in steps


@pytest.mark.slow
def test_the_device_cnn_is_the_cnn_of_the_cpu_benchmark():
    # device_speed.py builds its own CNN (activation_speed.py's seeds through TensorFlow); the two must
    # stay one architecture, or the GPU and CPU CNN figures stop comparing.
    if importlib.util.find_spec("jax") is None:
        pytest.skip("JAX is not installed: device_speed.py runs on Keras' JAX backend only")
    script = """
import os, sys
os.environ["KERAS_BACKEND"] = "jax"
sys.path.insert(0, "benchmarks")
import device_speed  # first: Keras starts on JAX
import activation_speed
import keras

def layout(model):
    keys = ("filters", "kernel_size", "strides", "padding", "pool_size", "units", "use_bias")
    return [
        (type(layer).__name__, {key: layer.get_config().get(key) for key in keys}, tuple(layer.output.shape))
        for layer in model.layers
    ]

print("SAME" if layout(device_speed.build_cnn(keras.layers.ReLU, 32))
      == layout(activation_speed.build_cnn(keras.layers.ReLU, 32)) else "DIFFERENT")
"""
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "SAME"
