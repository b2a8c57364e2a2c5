"""Export and serving: the findings of the fourth review (review4/export.md), one test or more each.

Each test names its finding. The references are independent of the code under test: TensorFlow's
own loaders (`tf.saved_model.load`, the session loader TF Serving uses), ONNX Runtime, the
distribution a noisy layer's noise is drawn from, and the files on disk before and after.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

if keras.backend.backend() != "tensorflow":
    pytest.skip("SavedModel and ONNX export need the TensorFlow backend", allow_module_level=True)
import tensorflow as tf
from every_layer_model import subprocess_env

import keras_adaptive_acts as kaa
from keras_adaptive_acts.cli import main
from keras_adaptive_acts.export import (
    MONTE_CARLO_SIGNATURE,
    ServingVerificationError,
    UnreplaceableTargetError,
    export_for_serving,
    export_onnx,
    verify_onnx,
    verify_serving,
)
from keras_adaptive_acts.export.verification import (
    differing_outputs,
    identical_outputs,
    max_abs_errors,
    sample_inputs,
)
from keras_adaptive_acts.layers.noise import inference_noise


def small_model(input_name="x", output_name="y"):
    inputs = keras.Input((4,), name=input_name)
    return keras.Model(inputs, keras.layers.Dense(2, name=output_name)(inputs))


def tree(folder):
    """Every path under `folder` with the bytes of each file: what must survive a refusal."""
    return {
        str(path.relative_to(folder)): path.read_bytes() if path.is_file() else None
        for path in sorted(folder.rglob("*"))
    }


def one_line_error(capsys):
    """The stderr of a `kaa` run, checked to be one `kaa: error:` line and no traceback."""
    error = capsys.readouterr().err.strip()
    assert error.startswith("kaa: error: ") and "\n" not in error and "Traceback" not in error, error
    return error


# ----------------------------------------------------------------------------------------------
# 1. Input names: only what TensorFlow's session loader takes


def test_finding_1_a_backslash_in_an_input_name_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match=r"The model's input 'a\\\\b' cannot name an input") as raised:
        export_for_serving(small_model(input_name="a\\b"), tmp_path / "m" / "1")
    assert "`_ . - / >`" in str(raised.value) and "\\ >" not in str(raised.value)
    assert list(tmp_path.iterdir()) == []


SESSION_LOADER = r"""
import sys
import tensorflow as tf
tf.compat.v1.disable_eager_execution()
with tf.compat.v1.Session() as session:
    tf.compat.v1.saved_model.loader.load(session, ["serve"], sys.argv[1])
print("loaded")
"""


@pytest.mark.slow  # a fresh process per name
def test_finding_1_the_names_the_check_allows_load_in_tensorflows_session_loader(tmp_path):
    """The session loader (TF Serving's, `saved_model_cli run`'s) is the reference for the names."""
    for index, name in enumerate(["v1.in-put>x", ".x", "a>b>c", "9_x"]):
        path = export_for_serving(small_model(input_name=name), tmp_path / str(index))
        result = subprocess.run(
            [sys.executable, "-c", SESSION_LOADER, str(path)],
            capture_output=True,
            text=True,
            env=subprocess_env(),
        )
        assert result.returncode == 0 and "loaded" in result.stdout, (name, result.stderr[-500:])


# ----------------------------------------------------------------------------------------------
# 2. Monte Carlo: independent samples across loads


MONTE_CARLO_SCRIPT = r"""
import json, sys
import numpy as np
import tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
x = tf.constant(-np.ones((1, 500), "float32"))
draws = [loaded.signatures["monte_carlo"](x=x)["y"].numpy()[0].tolist() for _ in range(4)]
expectation = loaded.signatures["serving_default"](x=x)["y"].numpy()[0].tolist()
print(json.dumps({"draws": draws, "expectation": expectation}))
"""


@pytest.mark.slow  # two fresh processes
def test_finding_2_two_loads_draw_independent_samples_of_the_right_distribution(tmp_path):
    lower, upper = 0.1, 0.3
    inputs = keras.Input((500,), name="x")
    model = keras.Model(inputs, kaa.RReLU(lower=lower, upper=upper, seed=5, name="y")(inputs))
    path = export_for_serving(model, tmp_path / "m" / "1", monte_carlo=True)

    loads = []
    for _ in range(2):  # two servers (or one server before and after a restart)
        result = subprocess.run(
            [sys.executable, "-c", MONTE_CARLO_SCRIPT, str(path)],
            capture_output=True,
            text=True,
            env=subprocess_env(),
            check=True,
        )
        loads.append(json.loads(result.stdout.strip().splitlines()[-1]))

    for load in loads:
        # RReLU on x = -1: the output is -a with a ~ U(lower, upper), one draw per element and call.
        slopes = -np.array(load["draws"])
        assert slopes.min() >= lower and slopes.max() <= upper
        n = slopes.size
        mean, std = (lower + upper) / 2, (upper - lower) / np.sqrt(12)
        assert abs(slopes.mean() - mean) < 5 * std / np.sqrt(n)
        assert abs(slopes.std() - std) < 0.05 * std
        assert len({tuple(draw) for draw in load["draws"]}) == 4  # every call draws afresh
        # The inference signature stays the deterministic expectation.
        np.testing.assert_allclose(load["expectation"], -mean, rtol=1e-6)
    first, second = (np.array(load["draws"]) for load in loads)
    # Call k of one load is not call k of the other: independent, not the same sequence replayed.
    assert np.mean(first == second) < 0.01
    assert abs(np.corrcoef(first.reshape(-1), second.reshape(-1))[0, 1]) < 0.1


@pytest.mark.slow
def test_finding_2_a_call_of_the_monte_carlo_signature_is_the_models_own_draw_from_its_seed(tmp_path):
    """The fresh seed replaces only the seed of the stream: a call is what the Keras model draws in
    its Monte Carlo mode from that seed, read back from the loaded variables after the call."""
    inputs = keras.Input((64,), name="x")
    model = keras.Model(inputs, kaa.RReLU(seed=11, name="y")(inputs))
    position = next(weight for weight in model.weights if weight.name == "noise_stream_position")
    before = position.numpy()
    path = export_for_serving(model, tmp_path / "m", monte_carlo=True)
    loaded = tf.saved_model.load(str(path))
    x = -np.abs(np.random.default_rng(0).standard_normal((3, 64))).astype("float32")
    served = loaded.signatures[MONTE_CARLO_SIGNATURE](x=tf.constant(x))["y"].numpy()
    (state,) = [variable.numpy() for variable in loaded.variables if "noise_stream_position" in variable.name]
    assert state[2] != before[2]  # a new seed
    position.assign([before[0], before[1], state[2]])
    with inference_noise(True):
        own_draw = keras.ops.convert_to_numpy(model(x, training=False))
    np.testing.assert_allclose(served, own_draw, rtol=1e-6)


# ----------------------------------------------------------------------------------------------
# 3 and 7. What `overwrite` may replace; symbolic links


def test_finding_3_overwrite_replaces_only_an_earlier_saved_model(tmp_path):
    model = small_model()
    folder = tmp_path / "models"
    (folder / "1").mkdir(parents=True)
    (folder / "1" / "saved_model.pb").write_bytes(b"an older version")
    (folder / "notes.txt").write_text("my notes")
    (tmp_path / "m.onnx").write_bytes(b"an ONNX file")
    before = tree(tmp_path)
    for target, reason in [
        (folder, r"a folder that is not a SavedModel \(no saved_model.pb\)"),
        (tmp_path / "m.onnx", "a file, not a SavedModel folder"),
    ]:
        for overwrite in (True, False):
            with pytest.raises(UnreplaceableTargetError, match=reason):
                export_for_serving(model, target, overwrite=overwrite)
    assert tree(tmp_path) == before  # nothing lost, nothing written
    export = export_for_serving(model, tmp_path / "export" / "1")
    (export / "README").write_text("mine")
    before = tree(export)
    with pytest.raises(UnreplaceableTargetError, match=r"a SavedModel folder that also holds \['README'\]"):
        export_for_serving(model, export, overwrite=True)
    assert tree(export) == before
    (export / "README").unlink()

    # An earlier export is replaced, TF Serving's warm-up data beside it allowed.
    (export / "assets.extra").mkdir()
    old = (export / "saved_model.pb").read_bytes()
    other = small_model(output_name="z")
    export_for_serving(other, export, overwrite=True)
    assert (export / "saved_model.pb").read_bytes() != old
    served = tf.saved_model.load(str(export)).signatures["serving_default"](x=tf.ones((1, 4)))
    assert list(served) == ["z"]


def test_finding_3_kaa_export_refuses_to_replace_what_is_not_an_export(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "1").mkdir(parents=True)
    small_model().save("models/m.keras")
    (tmp_path / "models" / "1" / "saved_model.pb").write_bytes(b"an older version")
    (tmp_path / "models" / "notes.txt").write_text("my notes")
    small_model().save("m.keras")
    (tmp_path / "old.onnx").write_bytes(b"not really ONNX")
    before = tree(tmp_path)
    cases = [
        (["models/m.keras", "models", "--overwrite"], "'models' is a folder that is not a SavedModel"),
        (["m.keras", "m.keras", "--overwrite", "--format", "onnx"], "PATH 'm.keras' is MODEL itself"),
        (
            ["m.keras", "old.onnx", "--overwrite", "--format", "onnx"],
            "'old.onnx' is a file that is not an ONNX",
        ),
        (["m.keras", "new.onnx"], "names an ONNX file, but --format is savedmodel"),
    ]
    for arguments, message in cases:
        assert main(["export", *arguments]) == 2, arguments
        error = one_line_error(capsys)
        assert message in error and "overwrite=True" not in error, error
        assert tree(tmp_path) == before  # nothing lost, nothing written


def test_finding_7_a_link_to_an_earlier_export_is_followed_and_a_broken_link_refused(tmp_path):
    model = small_model()
    version = export_for_serving(model, tmp_path / "models" / "3")
    (tmp_path / "latest").symlink_to(version, target_is_directory=True)
    returned = export_for_serving(small_model(output_name="z"), tmp_path / "latest", overwrite=True)
    assert returned == tmp_path / "latest"
    assert (tmp_path / "latest").is_symlink() and os.readlink(tmp_path / "latest") == str(version)
    served = tf.saved_model.load(str(version)).signatures["serving_default"](x=tf.ones((1, 4)))
    assert list(served) == ["z"]  # the version the link points to was replaced
    assert sorted(path.name for path in tmp_path.iterdir()) == ["latest", "models"]  # nothing stray
    assert sorted(path.name for path in (tmp_path / "models").iterdir()) == ["3"]

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("my notes")
    (tmp_path / "to_mine").symlink_to(tmp_path / "mine")
    (tmp_path / "broken").symlink_to(tmp_path / "nowhere")
    before = sorted(path.name for path in tmp_path.iterdir())
    with pytest.raises(
        UnreplaceableTargetError, match=r"a link to .*mine.* is a folder that is not a SavedModel"
    ):
        export_for_serving(model, tmp_path / "to_mine", overwrite=True)
    for overwrite in (True, False):
        with pytest.raises(
            UnreplaceableTargetError, match=r"'.*broken' is a symbolic link to .*nowhere.*which"
        ):
            export_for_serving(model, tmp_path / "broken", overwrite=overwrite)
    assert sorted(path.name for path in tmp_path.iterdir()) == before
    assert [path.name for path in (tmp_path / "mine").iterdir()] == ["notes.txt"]


@pytest.mark.slow  # two ONNX conversions
def test_finding_3_and_7_onnx_overwrite_replaces_only_an_onnx_file_through_a_link(tmp_path):
    model = small_model()
    model.save(tmp_path / "m.keras")
    with pytest.raises(UnreplaceableTargetError, match="is a file that is not an ONNX model"):
        export_onnx(model, tmp_path / "m.keras", overwrite=True)
    assert keras.saving.load_model(tmp_path / "m.keras").count_params() == model.count_params()

    first = export_onnx(model, tmp_path / "files" / "v1.onnx")
    (tmp_path / "current.onnx").symlink_to(first)
    other = small_model(output_name="z")
    export_onnx(other, tmp_path / "current.onnx", overwrite=True)
    assert (tmp_path / "current.onnx").is_symlink()
    report = verify_onnx(first, np.ones((2, 4), "float32"), other)  # the file the link points to
    assert list(report.outputs) == ["z"]
    assert sorted(path.name for path in (tmp_path / "files").iterdir()) == ["v1.onnx"]


# ----------------------------------------------------------------------------------------------
# 4. The default tolerance: float32 rounding, not 1e-6


@pytest.mark.slow  # an ONNX conversion of a 3 x 2048 MLP and ONNX Runtime in a fresh process
def test_finding_4_a_correct_onnx_export_passes_and_one_wrong_weight_still_fails(tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((256,), name="features")
    hidden = inputs
    for _ in range(3):
        hidden = keras.layers.Dense(2048, activation="relu")(hidden)
    model = keras.Model(inputs, keras.layers.Dense(100, name="logits")(hidden))
    sample = np.random.default_rng(0).standard_normal((64, 256)).astype("float32") * 10
    path = export_onnx(model, tmp_path / "m.onnx")
    report = verify_onnx(path, sample, model)
    # Summation-order rounding: a few float32 ulps of the largest logit, above the old 1e-6.
    assert 1e-6 < report.max_abs_error["logits"] < report.tolerance["atol"]

    # The same ONNX file against the model with one wrong weight: the head's first bias off by 1e-3.
    wrong = keras.models.clone_model(model)
    wrong.set_weights(model.get_weights())
    kernel, bias = wrong.get_layer("logits").get_weights()
    bias[0] += 1e-3
    wrong.get_layer("logits").set_weights([kernel, bias])
    with pytest.raises(ServingVerificationError) as failure:
        verify_onnx(path, sample, wrong)
    assert failure.value.report.problems == [
        "output 'logits' from ONNX Runtime differs from the reference beyond the tolerance"
    ]


# ----------------------------------------------------------------------------------------------
# 5. String inputs


def string_model():
    inputs = keras.Input((1,), name="text", dtype="string")
    ids = keras.layers.StringLookup(vocabulary=["a", "b", "c"])(inputs)
    embedded = keras.layers.Flatten()(keras.layers.Embedding(5, 3)(ids))
    return keras.Model(inputs, keras.layers.Dense(2, name="y")(embedded))


def test_finding_5_string_samples_are_checked_and_kept_as_bytes(tmp_path, capsys):
    specs = {"text": ((None, 1), np.dtype(object))}
    for given in (
        np.array([["a"], ["é"]]),
        np.array([[b"a"], ["é".encode()]]),
        np.array([["a"], ["é"]], object),
    ):
        (value,) = sample_inputs(specs, given).values()
        assert value.dtype.kind == "S" and value.tolist() == [[b"a"], ["é".encode()]]
    with pytest.raises(ValueError, match="has dtype float32; the signature takes strings"):
        sample_inputs(specs, np.ones((2, 1), "float32"))

    string_model().save(tmp_path / "text.keras")
    np.save(tmp_path / "numbers.npy", np.ones((2, 1), "float32"))
    command = ["export", str(tmp_path / "text.keras"), str(tmp_path / "out"), "--verify"]
    assert main([*command, "--sample", str(tmp_path / "numbers.npy")]) == 2
    assert "the model takes strings" in one_line_error(capsys)
    assert main(command) == 2  # no made-up text sample
    assert "input 'text' takes strings: give --sample" in one_line_error(capsys)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # the loaders' fresh processes
def test_finding_5_a_string_input_model_verifies_with_the_api_and_the_cli(tmp_path, capsys):
    model = string_model()
    sample = np.array([["a"], ["c"], ["zzz"]])
    path = export_for_serving(model, tmp_path / "m" / "1")
    report = verify_serving(path, sample, model)
    assert report.passed and report.max_abs_error["y"] == 0.0
    model.save(tmp_path / "text.keras")
    np.save(tmp_path / "sample.npy", sample)
    command = ["export", str(tmp_path / "text.keras"), str(tmp_path / "cli"), "--verify"]
    assert main([*command, "--sample", str(tmp_path / "sample.npy")]) == 0
    assert "PASSED" in capsys.readouterr().out


def test_finding_5_onnx_runtime_is_given_a_string_input_as_strings(tmp_path):
    """An ONNX graph with a string input (built with `onnx.helper`, independent of the exporter):
    its output is the number of rows, which ONNX Runtime computes only if it accepts the sample."""
    onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed")
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    helper = onnx.helper
    graph = helper.make_graph(
        [
            helper.make_node("Shape", ["text"], ["shape"]),
            helper.make_node("Cast", ["shape"], ["rows"], to=onnx.TensorProto.FLOAT),
        ],
        "strings",
        [helper.make_tensor_value_info("text", onnx.TensorProto.STRING, [None, 1])],
        [helper.make_tensor_value_info("rows", onnx.TensorProto.FLOAT, [2])],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    proto.ir_version = 8
    onnx.save(proto, str(tmp_path / "strings.onnx"))
    report = verify_onnx(tmp_path / "strings.onnx", np.array([["a"], ["é"], ["c"]]), expected=[3.0, 1.0])
    assert report.passed


# ----------------------------------------------------------------------------------------------
# 6. Output keys with "/"


@pytest.mark.slow  # the loaders' fresh processes
def test_finding_6_a_dict_output_key_with_a_slash_verifies(tmp_path):
    inputs = keras.Input((4,), name="x")
    model = keras.Model(inputs, {"probs/softmax": keras.layers.Softmax()(keras.layers.Dense(3)(inputs))})
    path = export_for_serving(model, tmp_path / "m" / "1")
    sample = np.random.default_rng(1).standard_normal((3, 4)).astype("float32")
    report = verify_serving(path, sample, model)
    assert report.passed and list(report.saved_model_cli_max_abs_error) == ["probs/softmax"]
    served = tf.saved_model.load(str(path)).signatures["serving_default"](x=tf.constant(sample))
    np.testing.assert_allclose(served["probs/softmax"].numpy().sum(axis=1), 1.0, rtol=1e-6)
    with pytest.raises(ServingVerificationError, match="output 'probs/softmax' from saved_model_cli run"):
        verify_serving(path, sample, expected={"probs/softmax": np.full((3, 3), 1 / 3)})


# ----------------------------------------------------------------------------------------------
# 8, 12, 13. `kaa export`: paths it cannot write, --sample without --verify, a corrupt .keras


def test_finding_8_a_path_that_cannot_be_created_is_one_error_line(tmp_path, capsys):
    small_model().save(tmp_path / "m.keras")
    for target, flags in [("/proc/kaa-denied/1", []), ("/proc/kaa-denied/m.onnx", ["--format", "onnx"])]:
        assert main(["export", str(tmp_path / "m.keras"), target, *flags]) == 2
        error = one_line_error(capsys)
        assert f"cannot write PATH {target!r}" in error
    assert not os.path.exists("/proc/kaa-denied")
    with pytest.raises(OSError):  # the API: before the model is traced, and nothing left behind
        export_for_serving(small_model(), "/proc/kaa-denied/1")


def test_finding_8_a_failed_export_removes_the_folders_it_created(tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", fail)
    with pytest.raises(OSError, match="disk full"):
        export_for_serving(small_model(), tmp_path / "new" / "model" / "1")
    assert list(tmp_path.iterdir()) == []


def test_finding_12_sample_without_verify_is_refused(tmp_path, capsys):
    small_model().save(tmp_path / "m.keras")
    command = ["export", str(tmp_path / "m.keras"), str(tmp_path / "out"), "--sample", "missing.npz"]
    assert main(command) == 2
    assert "--sample is the input of --verify: pass --verify too" in one_line_error(capsys)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["m.keras"]


def test_finding_13_a_file_that_is_not_a_zip_is_not_a_valid_keras_file(tmp_path, capsys):
    (tmp_path / "corrupt.keras").write_bytes(b"version https://git-lfs.github.com/spec/v1\n")
    assert main(["export", str(tmp_path / "corrupt.keras"), str(tmp_path / "out")]) == 2
    error = one_line_error(capsys)
    assert "is not a valid .keras file: it is not a zip archive" in error and "not found" not in error
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------------------------
# 9 and 10. Outputs an export cannot name


def test_finding_9_nested_outputs_are_refused_up_front(tmp_path):
    inputs = keras.Input((4,), name="x")
    first, second = keras.layers.Dense(2)(inputs), keras.layers.Dense(3)(inputs)
    for outputs in ({"heads": [first, second]}, {"z": {"b": first}, "a": second}, [first, [second]]):
        model = keras.Model(inputs, outputs)
        for exporter, path in (
            (export_for_serving, tmp_path / "m" / "1"),
            (export_onnx, tmp_path / "m.onnx"),
        ):
            with pytest.raises(ValueError, match=r"has nested outputs .*an export gives one flat dict"):
                exporter(model, path)
    assert list(tmp_path.iterdir()) == []


def test_finding_10_an_onnx_output_named_like_an_input_is_refused_up_front(tmp_path):
    inputs = keras.Input((4,), name="image")
    hidden = keras.layers.Dense(4)(inputs)
    autoencoder = keras.Model(inputs, {"image": hidden, "code": keras.layers.Dense(2)(hidden)})
    passthrough = keras.Model(inputs, [keras.layers.Dense(2, name="y")(inputs), inputs])
    for model in (autoencoder, passthrough):
        with pytest.raises(ValueError, match=r"output 'image' has the name of one of its inputs.*Identity"):
            export_onnx(model, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------------------------
# 11. NaN outputs


def test_finding_11_nans_in_the_same_places_match_and_elsewhere_do_not():
    reference = {"y": np.array([[1.0, np.nan, np.inf]])}
    same = {"y": np.array([[1.0, np.nan, np.inf]], "float32")}
    moved = {"y": np.array([[np.nan, 2.0, np.inf]], "float32")}
    tolerance = {"rtol": 1e-5, "atol": 1e-6}
    assert differing_outputs(same, reference, tolerance) == []
    assert max_abs_errors(same, reference) == {"y": 0.0}
    assert identical_outputs(same, {"y": same["y"].copy()})
    assert differing_outputs(moved, reference, tolerance) == ["y"]
    assert max_abs_errors(moved, reference) == {"y": np.inf}
    assert not identical_outputs(same, moved)


@pytest.mark.slow  # the loaders' fresh processes
def test_finding_11_a_model_that_computes_nan_verifies_as_deterministic(tmp_path):
    inputs = keras.Input((4,), name="x")
    model = keras.Model(inputs, keras.layers.Lambda(keras.ops.log, name="y")(inputs))
    sample = np.array([[1.0, 2.0, -1.0, 3.0]], "float32")  # log(-1) is NaN, in Keras and served
    report = verify_serving(export_for_serving(model, tmp_path / "m"), sample, model)
    assert report.passed and report.deterministic and report.max_abs_error == {"y": 0.0}
    with pytest.raises(ServingVerificationError, match="differs from the reference"):
        verify_serving(tmp_path / "m", sample, expected=np.array([[0.0, np.log(2.0), 0.0, np.log(3.0)]]))
