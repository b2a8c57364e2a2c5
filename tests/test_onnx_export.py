"""ONNX export: every layer converts and runs in ONNX Runtime as the Keras model does, at the noisy
layers' expectation; the file appears whole or not at all; `verify_onnx` and `kaa export --format onnx`."""

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import keras
import numpy as np
import pytest
from every_layer_model import (
    FEATURES,
    STEPS,
    conversion_cases,
    functional_model,
    sample,
    small_model,
    subclassed_model,
    subprocess_env,
)
from noisy_reference import h, output_noise

import keras_adaptive_acts as kaa
from keras_adaptive_acts.export import ServingVerificationError, export_onnx, verify_onnx

if keras.backend.backend() != "tensorflow":
    pytest.skip(
        "ONNX export converts a TensorFlow graph (tf2onnx): it needs the TensorFlow backend",
        allow_module_level=True,
    )
EXTRA = 'needs the onnx extra: pip install "keras-adaptive-acts[onnx]"'
tf2onnx = pytest.importorskip("tf2onnx", reason=f"ONNX export {EXTRA} (tf2onnx is missing)")
onnx = pytest.importorskip("onnx", reason=f"ONNX export {EXTRA} (onnx is missing)")
pytest.importorskip("onnxruntime", reason=f"ONNX verification {EXTRA} (onnxruntime is missing)")

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "guides" / "serving.md"


# ONNX Runtime, on the CPU, in a fresh process: a file it cannot load may crash it (a segmentation
# fault on the Keras floor, see the serving guide), which in the test process would end the whole run.
ONNX_RUNTIME_SCRIPT = """
import sys
import numpy as np, onnxruntime
model, feeds_file, outputs_file, optimization = sys.argv[1:]
with np.load(feeds_file) as feeds:
    feeds = dict(feeds)
options = onnxruntime.SessionOptions()
options.graph_optimization_level = getattr(onnxruntime.GraphOptimizationLevel, optimization)
session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
names = [output.name for output in session.get_outputs()]
np.savez(outputs_file, **dict(zip(names, session.run(names, feeds), strict=True)))
"""


def onnx_runtime_process(path, feeds, optimization="ORT_ENABLE_ALL"):
    """`(finished process, {output name: array} or None)`: ONNX Runtime on the CPU in a fresh process,
    with `optimization` as its graph optimization level (ONNX Runtime's default is ORT_ENABLE_ALL)."""
    with tempfile.TemporaryDirectory() as work:
        feeds_file, outputs_file = os.path.join(work, "feeds.npz"), os.path.join(work, "outputs.npz")
        np.savez(feeds_file, **feeds)
        arguments = [str(path), feeds_file, outputs_file, optimization]
        command = [sys.executable, "-c", ONNX_RUNTIME_SCRIPT, *arguments]
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            return result, None
        with np.load(outputs_file) as outputs:
            return result, dict(outputs)


def run_onnx(path, feeds, optimization="ORT_ENABLE_ALL"):
    """`{output name: array}` from ONNX Runtime, run on the CPU in a fresh process."""
    result, outputs = onnx_runtime_process(path, feeds, optimization)
    assert outputs is not None, (
        f"ONNX Runtime failed on {path} (exit {result.returncode}):\n{result.stderr[-2000:]}"
    )
    return outputs


def on_the_keras_floor() -> bool:
    """Keras 3.10 with TensorFlow 2.19: where the serving guide says one ONNX case differs."""
    import tensorflow as tf

    return keras.__version__ == "3.10.0" and tf.__version__.startswith("2.19.")


# That case, as the serving guide describes it: on the floor, ONNX Runtime crashes loading this file
# at its default optimization level, and loads it at ORT_ENABLE_EXTENDED with outputs within 1e-3.
FLOOR_CRASH = ("NoisyLSTMCell (RNN, unroll=False)", "mixed_float16")


# ----------------------------------------------------------------------------------------------
# Every layer, as the serving guide's table says


def onnx_table():
    """`{layer: (float32 verdict, mixed_float16 verdict)}` from the ONNX table of the serving guide."""
    section = GUIDE.read_text().split("\n## ONNX", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip().strip("|").split("|") for line in section.splitlines() if line.startswith("| `")]
    return {name.strip().strip("`"): (float32.strip(), float16.strip()) for name, float32, float16 in rows}


def documented_converter_error():
    """The converter's error that the guide quotes for the layers that do not convert."""
    section = GUIDE.read_text().split("\n## ONNX", 1)[1].split("\n## ", 1)[0]
    return " ".join(re.search(r"tf2onnx's error: `([^`]+)`", section)[1].split())  # across a line break


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["float32", "mixed_float16"])
def test_which_layers_convert_to_onnx_is_what_the_guide_says(tmp_path, dtype_policy, policy):
    dtype_policy(policy)
    tolerance = {"rtol": 1e-5, "atol": 1e-5} if policy == "float32" else {"rtol": 1e-2, "atol": 1e-2}

    measured = {}
    x = sample()
    for index, (name, model) in enumerate(conversion_cases().items()):
        path = tmp_path / f"{index}.onnx"
        try:
            export_onnx(model, path)
        except RuntimeError as error:
            # The message is the converter's own error, which the guide quotes.
            assert documented_converter_error() in str(error), str(error)
            assert not path.exists()
            measured[name] = "fails"
            continue
        if (name, policy) == FLOOR_CRASH and on_the_keras_floor():
            # The guide's paragraph on the floor, checked: the crash (a negative exit status, the
            # signal), then the file loaded one optimization level lower, within the guide's 1e-3.
            crashed, _ = onnx_runtime_process(path, {"sequence": x})
            assert crashed.returncode < 0, f"expected ONNX Runtime to crash (exit {crashed.returncode})"
            served = run_onnx(path, {"sequence": x}, "ORT_ENABLE_EXTENDED")
            np.testing.assert_allclose(served["scores"], model.predict(x, verbose=0), rtol=0, atol=1e-3)
        else:
            served = run_onnx(path, {"sequence": x})
            np.testing.assert_allclose(served["scores"], model.predict(x, verbose=0), **tolerance)
        assert list(served) == ["scores"]
        measured[name] = "converts"
    column = 0 if policy == "float32" else 1
    assert measured == {layer: verdicts[column] for layer, verdicts in onnx_table().items()}


# The layers whose float64 files ONNX Runtime cannot run, as the serving guide says, and the op
# that tf2onnx writes for each: ONNX Runtime's CPU provider has no float64 kernel for these two.
FLOAT64_NOT_RUN = {
    "RestrictedLayerNormalization": "GlobalAveragePool",  # the mean
    "SparsifiedMLP": "GlobalAveragePool",
    "CompetitiveReLU": "GlobalMaxPool",  # the largest entry, by which it scales its statistics
}


@pytest.mark.slow
def test_in_float64_every_layer_exports_and_runs_but_the_guides_two(tmp_path, dtype_policy):
    dtype_policy("float64")
    x = sample()  # float32: keras.Input's dtype; the layers compute in float64
    not_run = {}
    for index, (name, model) in enumerate(conversion_cases().items()):
        path = export_onnx(model, tmp_path / f"{index}.onnx")  # every layer exports
        process, served = onnx_runtime_process(path, {"sequence": x})
        if served is None:
            not_run[name] = process.stderr
            continue
        assert served["scores"].dtype == np.float64, name
        np.testing.assert_allclose(served["scores"], model.predict(x, verbose=0), rtol=1e-9, atol=1e-9)
    assert sorted(not_run) == sorted(FLOAT64_NOT_RUN)
    for name, error in not_run.items():
        assert f"Could not find an implementation for {FLOAT64_NOT_RUN[name]}" in error, error[-2000:]
    # verify_onnx turns the refusal into a RuntimeError.
    model = conversion_cases()["RestrictedLayerNormalization"]
    path = export_onnx(model, tmp_path / "layer_normalization.onnx")
    with pytest.raises(RuntimeError, match="GlobalAveragePool"):
        verify_onnx(path, x, model)


@pytest.mark.slow
def test_every_layer_model_runs_in_onnx_runtime_as_predict_in_a_fresh_process(tmp_path):
    keras.utils.set_random_seed(0)
    model = functional_model()
    path = export_onnx(model, tmp_path / "every_layer.onnx")
    report = verify_onnx(path, sample(), model)
    assert report.passed and report.deterministic
    assert report.max_abs_error["scores"] <= 1e-5
    assert report.random_ops == [] and report.non_standard_ops == []
    assert report.inputs == {"sequence": "float32 (None, 6, 4)"}
    assert report.outputs == {"scores": "float32 (None, 3)"}
    assert "Loop" in report.ops  # the recurrent layers' while loops, whose bodies were read too
    # A free batch size, and two runs of one session that agree, in this process as well.
    for rows in (1, 7):
        x = sample(rows, seed=rows)
        first, second = (run_onnx(path, {"sequence": x})["scores"] for _ in range(2))
        np.testing.assert_array_equal(first, second)
        np.testing.assert_allclose(first, model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------------------------
# The noisy layers, at their expectation


def test_noisy_layers_built_to_sample_export_their_expectation(tmp_path):
    # Each layer samples at inference (noise_at_inference=True); the ONNX model must hold the
    # expectation, computed here in float64 from the papers' formulas (tests/noisy_reference.py).
    keras.utils.set_random_seed(5)
    inputs = keras.Input((6,), name="x")
    layers = {
        "tanh": kaa.NoisyHardTanh(alpha=1.2, c=0.5, half_normal=True, noise_at_inference=True, name="tanh"),
        "sigmoid": kaa.NoisyHardSigmoid(
            alpha=0.9, c=0.7, half_normal=True, noise_at_inference=True, name="sigmoid"
        ),
        "tanh_input": kaa.NoisyHardTanh(noise="input", c=0.5, noise_at_inference=True, name="tanh_input"),
        "rrelu": kaa.RReLU(lower=0.1, upper=0.3, noise_at_inference=True, name="rrelu"),
    }
    model = keras.Model(inputs, [layer(inputs) for layer in layers.values()])
    x = (4.0 * np.random.default_rng(6).standard_normal((9, 6))).astype("float32")  # saturating
    sampled = [model.predict(x, verbose=0) for _ in range(2)]
    assert not np.allclose(sampled[0][0], sampled[1][0])  # predict samples, as the layers were built to

    path = export_onnx(model, tmp_path / "noisy.onnx")
    served, again = (run_onnx(path, {"x": x}) for _ in range(2))
    x64 = x.astype("float64")
    p = {name: keras.ops.convert_to_numpy(layers[name].p).astype("float64") for name in ("tanh", "sigmoid")}
    expected = {
        "tanh": output_noise(x64, p["tanh"], 0.5, None, "tanh", 1.2, half_normal=True),
        "sigmoid": output_noise(x64, p["sigmoid"], 0.7, None, "sigmoid", 0.9, half_normal=True),
        "tanh_input": h(x64, "tanh"),
        "rrelu": np.where(x64 >= 0, x64, 0.2 * x64),
    }
    assert sorted(served) == sorted(expected)  # the outputs are named after the layers
    for name, value in expected.items():
        np.testing.assert_allclose(served[name], value, rtol=1e-5, atol=1e-6, err_msg=name)
        np.testing.assert_array_equal(served[name], again[name])  # deterministic
    # The half-normal noise has a non-zero mean: the expectation is not the noiseless h(x).
    assert np.abs(expected["tanh"] - h(x64, "tanh")).max() > 1e-2
    assert not any("Random" in node.op_type for node in onnx.load(str(path)).graph.node)
    # verify_onnx with the float64 reference as `expected`, and with the model (its expectation).
    assert verify_onnx(path, x, expected=expected).passed
    assert verify_onnx(path, x, model).passed
    # The export changed no layer's mode: predict still samples.
    assert not np.allclose(model.predict(x, verbose=0)[0], model.predict(x, verbose=0)[0])


@pytest.mark.slow
def test_noisy_recurrent_cells_built_to_sample_export_their_expectation(tmp_path):
    keras.utils.set_random_seed(7)

    def model_of(noise_at_inference):
        return keras.Sequential(
            [
                keras.Input((STEPS, FEATURES), name="sequence"),
                keras.layers.RNN(
                    kaa.NoisyLSTMCell(5, seed=1, noise_at_inference=noise_at_inference), return_sequences=True
                ),
                keras.layers.RNN(
                    kaa.NoisyGRUCell(3, seed=2, noise_at_inference=noise_at_inference), name="state"
                ),
            ]
        )

    sampling, expectation = model_of(True), model_of(False)
    expectation.set_weights(sampling.get_weights())
    x = sample(scale=5.0)
    assert not np.allclose(sampling.predict(x, verbose=0), sampling.predict(x, verbose=0))
    path = export_onnx(sampling, tmp_path / "cells.onnx")
    served = run_onnx(path, {"sequence": x})
    np.testing.assert_allclose(served["state"], expectation.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------------------------
# Named inputs and outputs


def test_list_inputs_and_outputs_keep_their_names(tmp_path):
    inputs = [keras.Input((3,), name="left"), keras.Input((2,), name="right")]
    joined = keras.layers.Concatenate()([inputs[1], inputs[0]])  # order matters: a swap would show
    hidden = kaa.NoisyHardTanh()(joined)
    model = keras.Model(
        inputs, [keras.layers.Dense(4, name="wide")(hidden), keras.layers.Dense(1, name="narrow")(hidden)]
    )
    path = export_onnx(model, tmp_path / "list.onnx")
    rng = np.random.default_rng(5)
    left, right = (rng.standard_normal((4, size)).astype("float32") for size in (3, 2))
    served = run_onnx(path, {"left": left, "right": right})
    wide, narrow = model.predict([left, right], verbose=0)
    np.testing.assert_allclose(served["wide"], wide, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(served["narrow"], narrow, rtol=1e-5, atol=1e-6)
    report = verify_onnx(path, {"left": left, "right": right}, model)
    assert report.passed and list(report.outputs) == ["wide", "narrow"]


def test_mixed_float16_model_exports_and_verifies_with_16_bit_tolerances(tmp_path, dtype_policy):
    dtype_policy("mixed_float16")
    inputs = keras.Input((4,), name="features")
    hidden = kaa.NoisyHardTanh()(keras.layers.Dense(8)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2, name="logits")(kaa.CompetitiveReLU()(hidden)))
    path = export_onnx(model, tmp_path / "half.onnx")
    report = verify_onnx(path, np.random.default_rng(1).standard_normal((5, 4)).astype("float32"), model)
    assert report.passed and report.tolerance == {"rtol": 1e-2, "atol": 1e-2}
    assert report.outputs == {"logits": "float16 (None, 2)"}  # the output's dtype, as the model computes it


def test_a_bfloat16_model_is_refused_with_the_checkers_reason_and_nothing_written(tmp_path, dtype_policy):
    # tf2onnx writes a bfloat16 model that ONNX Runtime cannot load; the checker finds why first.
    dtype_policy("mixed_bfloat16")
    target = tmp_path / "out" / "model.onnx"
    with pytest.raises(
        RuntimeError, match=r"The ONNX checker rejects the converted model \(bfloat16: .*MatMul"
    ):
        export_onnx(small_model(), target)
    assert list(tmp_path.iterdir()) == []  # the folder the export created is removed too


# ----------------------------------------------------------------------------------------------
# The file appears whole or not at all


def test_an_existing_file_is_kept_unless_overwrite_and_then_replaced_whole(tmp_path):
    target = tmp_path / "model.onnx"
    target.write_text("mine")
    # Not an ONNX model: refused with or without overwrite (finding 3 of review 4).
    for overwrite in (False, True):
        with pytest.raises(FileExistsError, match="is a file that is not an ONNX model"):
            export_onnx(small_model(), target, overwrite=overwrite)
    with pytest.raises(ValueError, match="`overwrite` must be True or False"):
        export_onnx(small_model(), target, overwrite="yes")
    assert target.read_text() == "mine"

    target.unlink()
    export_onnx(small_model(), target)  # an earlier export
    with pytest.raises(FileExistsError, match="exists: pass overwrite=True to replace it"):
        export_onnx(small_model(), target)
    model = small_model()
    export_onnx(model, target, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]  # no temporary sibling left
    x = np.ones((2, 4), "float32")
    np.testing.assert_allclose(
        run_onnx(target, {"features": x})["logits"], model.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # as a plain open() makes it


def test_a_failed_export_leaves_nothing_behind_and_the_old_file_intact(tmp_path, monkeypatch):
    target = tmp_path / "models" / "model.onnx"
    export_onnx(small_model(), target)
    before = target.read_bytes()

    def half_written(*args, output_path=None, **kwargs):
        Path(output_path).write_bytes(before[: len(before) // 2])  # the converter dies mid-write
        raise OSError("disk full")

    monkeypatch.setattr(tf2onnx.convert, "from_function", half_written)
    with pytest.raises(OSError, match="disk full"):
        export_onnx(small_model(), target, overwrite=True)
    with pytest.raises(OSError, match="disk full"):
        export_onnx(small_model(), tmp_path / "models" / "new.onnx")
    assert [p.name for p in target.parent.iterdir()] == ["model.onnx"]
    assert target.read_bytes() == before  # the old export is intact

    def unsupported(*args, **kwargs):
        raise ValueError("Tensorflow op [Frobnicate] is not supported")

    monkeypatch.setattr(tf2onnx.convert, "from_function", unsupported)
    with pytest.raises(
        RuntimeError, match=r"ONNX conversion \(tf2onnx .*\) failed: Tensorflow op \[Frobnicate\]"
    ):
        export_onnx(small_model(), target, overwrite=True)
    assert [p.name for p in target.parent.iterdir()] == ["model.onnx"] and target.read_bytes() == before


def test_bad_models_and_paths_are_refused_before_anything_is_written(tmp_path):
    unbuilt = keras.Sequential([keras.layers.Dense(2), kaa.CompetitiveReLU()])
    with pytest.raises(ValueError, match=r"is not built: give it a keras\.Input"):
        export_onnx(unbuilt, tmp_path / "a.onnx")

    model = subclassed_model()
    with pytest.raises(ValueError, match=r"export_onnx needs a Sequential or Functional model"):
        export_onnx(model, tmp_path / "b.onnx")
    with pytest.raises(ValueError, match=r"`model` must be a keras\.Model"):
        export_onnx(kaa.CompetitiveReLU(), tmp_path / "c.onnx")
    with pytest.raises(ValueError, match=r"`path` must be a str or a path .* Received: path=3"):
        export_onnx(small_model(), 3)
    (tmp_path / "folder").mkdir()
    with pytest.raises(IsADirectoryError, match="is a directory: give the path of the ONNX file"):
        export_onnx(small_model(), tmp_path / "folder", overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["folder"] and not any((tmp_path / "folder").iterdir())


def test_missing_converter_or_runtime_says_what_to_install(tmp_path, monkeypatch):
    path = export_onnx(small_model(), tmp_path / "model.onnx")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    with pytest.raises(
        ImportError, match=r'need onnx, onnxruntime: pip install "keras-adaptive-acts\[onnx\]"'
    ):
        verify_onnx(path, np.ones((1, 4), "float32"), expected=np.ones((1, 2)))
    monkeypatch.setitem(sys.modules, "tf2onnx", None)
    with pytest.raises(ImportError, match=r'need onnx, tf2onnx: pip install "keras-adaptive-acts\[onnx\]"'):
        export_onnx(small_model(), tmp_path / "other.onnx")
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


# ----------------------------------------------------------------------------------------------
# verify_onnx


def test_bad_samples_files_and_references_are_refused(tmp_path):
    model = small_model()
    path = export_onnx(model, tmp_path / "m.onnx")
    good = np.ones((2, 4), "float32")
    cases = [
        (np.ones((2, 5), "float32"), {"model": model}, r"shape \(2, 5\); the ONNX model expects \(None, 4\)"),
        (np.ones((0, 4), "float32"), {"model": model}, "with at least one row"),
        (np.array([["a"] * 4]), {"model": model}, "has dtype <U1; the ONNX model takes float32"),
        ({"other": good}, {"model": model}, r"The sample's inputs \['other'\] are not the ONNX model's"),
        (good, {}, "Give exactly one reference"),
        (good, {"model": model, "expected": good}, "Give exactly one reference"),
        (good, {"expected": {"scores": good}}, r"reference outputs \['scores'\] are not the ONNX model's"),
    ]
    for value, kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            verify_onnx(path, value, **kwargs)
    with pytest.raises(FileNotFoundError, match="No ONNX model at"):
        verify_onnx(tmp_path / "missing.onnx", good, model)
    (tmp_path / "notes.onnx").write_text("not a model\n")
    with pytest.raises(ValueError, match="is not an ONNX model"):
        verify_onnx(tmp_path / "notes.onnx", good, model)


def test_a_wrong_reference_fails_the_verification_with_a_report(tmp_path):
    model = small_model()
    path = export_onnx(model, tmp_path / "m.onnx")
    x = np.ones((3, 4), "float32")
    with pytest.raises(ServingVerificationError) as failure:
        verify_onnx(path, x, expected=model.predict(x, verbose=0) + 0.1)
    report = failure.value.report
    assert not report.passed and report.deterministic
    assert report.max_abs_error["logits"] == pytest.approx(0.1, rel=1e-5)
    assert "output 'logits' from ONNX Runtime differs from the reference" in str(failure.value)
    assert "FAILED" in str(failure.value) and "input 'features': float32 (None, 4)" in str(failure.value)


REFUSAL_PROBE = r"""
import runpy, sys
check = runpy.run_path(sys.argv[1])  # defines the script's functions; its main() does not run
check["main"](sys.argv[2:])  # runs the model, after refusing the imports
for name in ("keras_adaptive_acts", "keras_adaptive_acts.export", "keras", "tensorflow"):
    try:
        __import__(name)
    except ImportError as error:
        print("refused:", name, error)
"""


def test_the_fresh_process_runs_the_model_without_the_package_keras_or_tensorflow(tmp_path):
    model = small_model()
    path = export_onnx(model, tmp_path / "m.onnx")
    x = np.random.default_rng(2).standard_normal((3, 4)).astype("float32")
    np.savez(tmp_path / "inputs.npz", features=x)
    script = Path(kaa.export.__file__).with_name("onnx_check.py")
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            REFUSAL_PROBE,
            str(script),
            str(path),
            str(tmp_path / "inputs.npz"),
            str(tmp_path / "out.npz"),
        ],
        env=subprocess_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    line = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("{")))
    assert line["imported"] == [] and line["outputs"] == ["logits"]
    assert result.stdout.count("refused:") == 4, result.stdout
    assert "tensorflow must not be imported by the serving check" in result.stdout
    with np.load(tmp_path / "out.npz") as outputs:
        np.testing.assert_array_equal(outputs["first/logits"], outputs["second/logits"])
        np.testing.assert_allclose(outputs["first/logits"], model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------------------------
# kaa export --format onnx


@pytest.mark.slow
def test_kaa_export_writes_and_verifies_an_onnx_file(tmp_path):
    model = small_model()
    model.save(tmp_path / "model.keras")
    np.save(tmp_path / "batch.npy", np.random.default_rng(3).standard_normal((6, 4)).astype("float32"))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "keras_adaptive_acts.cli",
            "export",
            str(tmp_path / "model.keras"),
            str(tmp_path / "onnx" / "model.onnx"),
            "--format",
            "onnx",
            "--verify",
            "--sample",
            str(tmp_path / "batch.npy"),
        ],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"ONNX model written to {tmp_path / 'onnx' / 'model.onnx'}." in result.stdout
    assert result.stdout.count("PASSED") == 1 and "output 'logits': float32 (None, 2)" in result.stdout
    x = np.load(tmp_path / "batch.npy")
    np.testing.assert_allclose(
        run_onnx(tmp_path / "onnx" / "model.onnx", {"features": x})["logits"],
        model.predict(x, verbose=0),
        rtol=1e-5,
        atol=1e-6,
    )


def test_kaa_export_onnx_reports_bad_input_in_one_line(tmp_path, capsys):
    from keras_adaptive_acts.cli import main

    small_model().save(tmp_path / "model.keras")
    model = str(tmp_path / "model.keras")
    assert main(["export", model, str(tmp_path / "m.onnx"), "--format", "onnx", "--monte-carlo"]) == 2
    assert "--monte-carlo is for --format savedmodel" in capsys.readouterr().err
    assert main(["export", model, str(tmp_path / "m.onnx"), "--format", "tflite"]) == 2
    assert "argument --format: invalid choice: 'tflite'" in capsys.readouterr().err
    (tmp_path / "taken.onnx").write_text("mine")
    assert main(["export", model, str(tmp_path / "taken.onnx"), "--format", "onnx"]) == 2
    assert "taken.onnx' is a file that is not an ONNX model" in capsys.readouterr().err
    assert main(["export", model, str(tmp_path), "--format", "onnx", "--overwrite"]) == 2
    assert "is a directory: give the path of the ONNX file to write" in capsys.readouterr().err
    assert (tmp_path / "taken.onnx").read_text() == "mine" and not (tmp_path / "m.onnx").exists()
    assert main(["export", "--help"]) == 0
    assert "--format {savedmodel,onnx}" in capsys.readouterr().out
