"""Package-level promises: the public API, the version, dependencies and lint."""

import configparser
import importlib.metadata
import os
import pathlib
import re
import subprocess
import sys

import pytest
from layer_testing import tensorflow_or_skip

import keras_adaptive_acts as kaa

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_public_api_is_explicit():
    expected = ["CompetitiveReLU", "NoiseAnnealing", "NoisyGRUCell", "NoisyHardSigmoid", "NoisyHardTanh"]
    expected += ["NoisyLSTMCell", "RReLU", "get", "ops", "__version__"]
    expected += ["ActivitySparsity", "JSquaredReLU", "MixedActivation", "regularizers"]
    expected += ["RestrictedLayerNormalization", "SparsifiedMLP", "ZerothBias"]
    expected += ["LiSHT", "Snake", "TLU"]  # the tensorflow-addons activations Keras 3 lacks
    expected += [
        "ActivationMixing",
        "CompetitionMonitor",
        "GammaUplift",
        "SparsityMonitor",
        "inference_noise",
        "measure_sparsity",
        "narrow",
        "surgery",
    ]
    assert sorted(kaa.__all__) == sorted(expected)
    for module in (kaa, kaa.narrow):
        for name in module.__all__:
            assert hasattr(module, name), name


def test_version_matches_the_installed_metadata():
    assert kaa.__version__ == importlib.metadata.version("keras-adaptive-acts")


def test_dependencies_keep_tensorflow_optional_and_addons_out():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    requires = config["options"]["install_requires"].split()
    assert any(r.startswith("keras>=3.10") for r in requires)
    assert not any(r.startswith("tensorflow") for r in requires)  # no second copy for tensorflow-cpu users
    extras = {k: v.split() for k, v in config["options.extras_require"].items()}
    assert extras["tensorflow"] == ["tensorflow>=2.18"] and extras["tensorflow-cpu"] == [
        "tensorflow-cpu>=2.18"
    ]
    assert "tensorboard" in extras["tuner"] and any(r.startswith("keras-tuner") for r in extras["tuner"])
    assert "tensorflow-addons" not in (ROOT / "setup.cfg").read_text()


def test_ruff_lint_and_format_are_clean():
    for command in (["check", "."], ["format", "--check", "."]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *command], cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-1000:]


def test_ci_runs_the_readme_commands():
    readme_block = (ROOT / "README.md").read_text().split("```bash\n", 1)[1].split("```", 1)[0]
    main_job, tests = (line.split("  #")[0].strip() for line in readme_block.strip().splitlines())
    assert main_job.endswith("kaa compare") and "pytest" in tests
    ci = (ROOT / ".ci" / "run").read_text()
    assert tests in ci.splitlines()
    assert "export KERAS_BACKEND=tensorflow" in ci
    assert main_job.split(" && ")[0] in ci  # the main job's install line, run shortened in CI


def test_every_declared_python_runs_in_ci_and_has_tox_envs():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    declared = set(re.findall(r"Python :: (3\.\d+)", config["metadata"]["classifiers"]))
    floor = re.fullmatch(r">=(3\.\d+)", config["options"]["python_requires"]).group(1)
    assert min(declared, key=lambda version: int(version.split(".")[1])) == floor
    envlist = re.search(r"^envlist = py\{([\d,]+)\}", (ROOT / "tox.ini").read_text(), re.MULTILINE).group(1)
    assert {f"{name[0]}.{name[1:]}" for name in envlist.split(",")} == declared
    # The jobs on another Python name it; the README's jobs and the rest take the machine's python3,
    # which is 3.11 on CI's machine.
    ci = (ROOT / ".ci" / "run").read_text()
    elsewhere = set(re.findall(r'fresh_uv_venv \S+ "\$\(python_for (3\.\d+)\)"', ci))
    assert elsewhere <= declared and declared - elsewhere == {"3.11"}


def test_the_markers_by_path_name_existing_files_and_the_jobs_select_them():
    import conftest

    tests = ROOT / "tests"
    for path in (*conftest.LAYER_LEVEL, *conftest.KERAS_INTEGRATION):
        assert (tests / path).exists(), f"tests/conftest.py names {path}, which is not there"
    # The floor's job, in CI and in tox, runs the slow tests of saving, export, tuning and distribution.
    selection = '-m "keras_integration or not slow"'
    assert selection in (ROOT / ".ci" / "run").read_text()
    floor_env = (ROOT / "tox.ini").read_text().split("[testenv:keras-floor]", 1)[1].split("\n[", 1)[0]
    assert selection in floor_env


def test_the_jobs_on_other_backends_leave_out_the_tests_marked_keras_applications():
    # CI's JAX and PyTorch jobs deselect them by the marker's name (`-k` matches markers too): with
    # either side renamed, those jobs would build the Applications' models again.
    ci = (ROOT / ".ci" / "run").read_text()
    jobs = [line for line in ci.splitlines() if line.startswith(("KERAS_BACKEND=jax", "KERAS_BACKEND=torch"))]
    assert len(jobs) == 2 and all('-k "not keras_applications"' in job for job in jobs), jobs
    marked = re.findall(
        r"@pytest\.mark\.keras_applications\n(?:@.*\n)*def (test_\w+)",
        (ROOT / "tests" / "test_surgery.py").read_text(),
    )
    assert marked == [
        "test_keras_applications_are_swapped_completely_and_exactly",
        "test_a_report_says_what_it_saw_when_nothing_is_targeted",
    ]


@pytest.mark.slow
def test_importing_the_package_leaves_tensorflows_devices_configurable():
    # Splitting the CPU (or setting GPU memory growth) must still work after the import.
    tensorflow_or_skip("TensorFlow's device configuration")
    script = (
        "import keras_adaptive_acts, keras_adaptive_acts.regularizers, tensorflow as tf\n"
        "cpu = tf.config.list_physical_devices('CPU')[0]\n"
        "tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)\n"
        "print(len(tf.config.list_logical_devices('CPU')))\n"
    )
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-1] == "2"


# Uses of private Keras: its private source package and the private attributes the package once used.
PRIVATE_KERAS = re.compile(
    r"keras\.src\b|\._(flatten_layers|inbound_nodes|outbound_nodes|keras_history|nodes|functional|"
    r"inputs_struct|obj_type|tracker|trainable_variables|non_trainable_variables|output_shape|"
    r"get_call_context)\b|KerasSaveable|current_call_ctx"
)
# The shim: the one module allowed to touch private Keras.
PRIVATE_KERAS_ALLOWED = {"keras_adaptive_acts/_keras_internals.py"}


def test_private_keras_lives_in_one_module():
    offenders = []
    for folder in ("keras_adaptive_acts", "tests", "benchmarks", "examples", "docs"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative in PRIVATE_KERAS_ALLOWED or relative == "tests/test_package.py":
                continue
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                if PRIVATE_KERAS.search(line):
                    offenders.append(f"{relative}:{number}: {line.strip()}")
    assert not offenders, "private Keras outside keras_adaptive_acts/_keras_internals.py:\n" + "\n".join(
        offenders
    )
