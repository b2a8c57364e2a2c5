"""Every script in examples/ runs end to end in its quick mode, in a fresh process as a user runs it.

The assertions read the scripts' printed result lines. Thresholds are set far from what a working
script prints (chance levels, the benchmark's success threshold), so that they test that the example
works, not the exact numbers of one run.
"""

import itertools
import math
import os
import pathlib
import re
import subprocess
import sys

import pytest
from layer_testing import tensorflow_or_skip

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def run_example(name: str, *args: str) -> str:
    tensorflow_or_skip("the examples run on the TensorFlow backend, as the README installs them")
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, str(EXAMPLES / name), "--quick", *args]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def number(output: str, label: str) -> float:
    """The number printed after `label` on its own line (`label: 0.1234`)."""
    match = re.search(rf"^{re.escape(label)}:? (\S+)", output, flags=re.MULTILINE)
    assert match, f"no line {label!r} in:\n{output}"
    value = float(match.group(1))
    assert math.isfinite(value), f"{label}: {value}"
    return value


def test_every_example_is_listed_in_the_readme_and_tested():
    scripts = sorted(path.name for path in EXAMPLES.glob("*.py"))
    readme = (EXAMPLES / "README.md").read_text()
    tests = pathlib.Path(__file__).read_text()
    assert scripts, EXAMPLES
    for script in scripts:
        assert f"`{script}`" in readme, script
        assert f'run_example("{script}"' in tests, script


@pytest.mark.slow
def test_competitive_relu_cnn():
    output = run_example("competitive_relu_cnn.py")
    for model in ("relu", "competitive_relu"):
        accuracy = number(output, f"{model} test accuracy")
        assert 0.0 <= accuracy <= 1.0
        assert accuracy > 0.2, output  # ten classes: chance is 0.1
    learned = re.findall(r"^(\S+): alpha=(\S+) beta=(\S+)$", output, flags=re.MULTILINE)
    assert len(learned) == 2, output  # one line per CompetitiveReLU layer of the CNN
    # init="relu" starts at alpha = 0, beta = atanh(1 / K) = atanh(0.5); training moves them.
    initial_beta = math.atanh(0.5)
    for _, alpha, beta in learned:
        assert math.isfinite(float(alpha)) and math.isfinite(float(beta))
        assert float(alpha) != 0.0 or abs(float(beta) - initial_beta) > 1e-4, output


@pytest.mark.slow
def test_noisy_lstm():
    output = run_example("noisy_lstm.py")
    for model in ("lstm", "noisy_lstm"):
        assert 0.0 <= number(output, f"{model} test accuracy") <= 1.0
    assert 0.0 < number(output, "majority-class baseline accuracy") < 1.0
    schedule = [
        float(c) for c in re.search(r"^noise c per epoch: (.+)$", output, re.MULTILINE).group(1).split()
    ]
    assert schedule[0] == 5.0 and schedule[-1] == 0.5, schedule  # annealed from c_start to c_end
    assert all(a > b for a, b in itertools.pairwise(schedule)), schedule
    assert re.search(r"^noisy_lstm inference deterministic: True$", output, re.MULTILINE), output
    # Its quick run does not learn (both models sit at the majority baseline), and says so.
    assert re.search(r"^smoke run \(--quick\): too short to learn", output, re.MULTILINE), output


@pytest.mark.slow
def test_sparsity_finetuning():
    output = run_example("sparsity_finetuning.py")
    before = number(output, "mean zero fraction before")
    after = number(output, "mean zero fraction after")
    assert 0.0 <= before <= 1.0 and 0.0 <= after <= 1.0
    assert after > before, output  # the L1 penalty on the activations makes them sparser
    # MixedActivation at t = 0 is exactly ReLU: the copied model starts as the checkpoint.
    assert number(output, "max |fine-tuned model - checkpoint| before fine-tuning") < 1e-5, output
    layers = re.findall(r"^(act\d) zero fraction: before (\S+) after (\S+)$", output, flags=re.MULTILINE)
    assert [name for name, _, _ in layers] == ["act1", "act2"], output
    mixing = re.search(r"^mixing t per epoch: (.+)$", output, re.MULTILINE).group(1).split()
    assert float(mixing[0]) == 0.0 and float(mixing[-1]) == 1.0, mixing  # ReLU -> J-SquaredReLU
    assert number(output, "test accuracy after") > 0.5, output  # still classifies (chance is 0.1)


@pytest.mark.slow
def test_narrow_learner():
    output = run_example("narrow_learner.py")
    moment = number(output, "moment estimate relative error")
    refined = number(output, "refined relative error")
    tuned = number(output, "after keras fine-tuning relative error")
    assert 0.0 <= refined < 1e-3, output  # the success threshold of the package's benchmark
    assert refined <= moment, output
    assert tuned < 1e-3, output  # a brief fine-tuning at a small learning rate keeps the fit
    assert re.search(r"^refined below threshold 0\.001: True$", output, re.MULTILINE), output


@pytest.mark.slow
def test_tuning_search():
    output = run_example("tuning_search.py")
    assert re.search(r"^completed trials: 2 of 2$", output, re.MULTILINE), output
    assert len(re.findall(r"^Trial \d+ summary$", output, flags=re.MULTILINE)) == 2, output
    best = re.search(r"^best hyper-parameters: (.+)$", output, re.MULTILINE).group(1)
    choices = ("relu", "competitive_relu", "noisy_hard_tanh", "noisy_hard_sigmoid", "rrelu", "j_squared_relu")
    assert re.search(rf"\bactivation=({'|'.join(choices)})\b", best), best
    assert 0.0 <= number(output, "best val_accuracy") <= 1.0


@pytest.mark.slow
def test_serving_export(tmp_path):
    out = tmp_path / "digits" / "1"
    output = run_example("serving_export.py", "--out", str(out), "--draws", "20")
    assert (out / "saved_model.pb").is_file()  # written where --out says, and kept
    assert re.search(r"^PASSED$", output, re.MULTILINE), output
    assert "signature 'serving_default'" in output
    spread = re.search(r"^monte carlo spread: mean (\S+), max", output, re.M)
    assert spread and float(spread.group(1)) > 0.0, output  # the monte_carlo signature draws noise
    keras_accuracy = number(output, "keras model test accuracy")
    served_accuracy = number(output, "serving_default test accuracy")
    assert served_accuracy == pytest.approx(keras_accuracy, abs=1e-3), output  # same function served


@pytest.mark.parametrize(
    ("name", "blocked", "extra"),
    [("competitive_relu_cnn.py", "mlxtend", "datasets"), ("tuning_search.py", "keras_tuner", "tuner")],
)
@pytest.mark.slow
def test_an_example_without_its_extra_says_what_to_install(name, blocked, extra):
    tensorflow_or_skip("the examples run on the TensorFlow backend, as the README installs them")
    # As on a machine without the extra: `None` in sys.modules makes every import of the module fail.
    script = str(EXAMPLES / name)
    code = (
        f"import runpy, sys; sys.modules[{blocked!r}] = None; sys.argv = [{script!r}, '--quick']; "
        f"runpy.run_path({script!r}, run_name='__main__')"
    )
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    last_line = result.stderr.strip().splitlines()[-1]
    assert result.returncode != 0
    assert last_line.startswith("ImportError: This example needs"), last_line
    assert f'pip install "keras-adaptive-acts[{extra}]"' in last_line, last_line
