"""KerasTuner search spaces: the declared space, real searches, resuming, distributed tuning, bad input."""

import json
import os
import re
import socket
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import keras
import keras_tuner
import numpy as np
import pytest
import tuning_process

import keras_adaptive_acts as kaa
from keras_adaptive_acts import registry
from keras_adaptive_acts.tuning import (
    DEFAULT_CHOICES,
    SEARCH_SPACES,
    ActivationHyperModel,
    StoredSearchMismatch,
    choose_activation,
    fix_activation,
    search_activations,
)

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "guides" / "tuning.md"
HELPER = Path(tuning_process.__file__)

LAYERS = {
    "relu": keras.layers.ReLU,
    "prelu": keras.layers.PReLU,
    "competitive_relu": kaa.CompetitiveReLU,
    "noisy_hard_tanh": kaa.NoisyHardTanh,
    "noisy_hard_sigmoid": kaa.NoisyHardSigmoid,
    "rrelu": kaa.RReLU,
    "j_squared_relu": kaa.JSquaredReLU,
    "lisht": kaa.LiSHT,
    "snake": kaa.Snake,
    "tlu": kaa.TLU,
}


def declared_space(choices=None):
    hp = keras_tuner.HyperParameters()
    choose_activation(hp, choices)
    return hp


def without_name(config):
    return {key: value for key, value in config.items() if key != "name"}


# ----------------------------------------------------------------------------------------------
# The search space


def test_every_registered_activation_is_a_choice_or_excluded_with_a_reason():
    offered = set(SEARCH_SPACES)
    excluded = set(kaa.tuning.NOT_SEARCHABLE)
    assert set(registry.activation_names(include_keras=False)) <= offered | excluded
    assert not offered & excluded
    assert set(DEFAULT_CHOICES) <= set(SEARCH_SPACES)


@pytest.mark.parametrize("value", sorted(LAYERS))
def test_default_values_give_the_layers_own_defaults(value):
    layer = choose_activation(keras_tuner.HyperParameters(), [value])
    reference = LAYERS[value]()
    assert type(layer) is LAYERS[value]
    assert without_name(layer.get_config()) == without_name(reference.get_config())


@pytest.mark.parametrize("spelling", ["CompetitiveReLU", "competitive_relu", "COMPETITIVE_RELU"])
def test_names_resolve_like_the_registry_to_one_choice_value(spelling):
    hp = declared_space([spelling, "ReLU"])
    assert hp.space[0].values == ["competitive_relu", "relu"]


def test_conditional_hyperparameters_belong_to_their_choice_only():
    hp = declared_space(list(SEARCH_SPACES))
    choice, *arguments = hp.space
    assert choice.name == "activation" and choice.values == list(SEARCH_SPACES)
    for argument in arguments:
        (condition,) = argument.conditions
        assert condition.name == "activation"
        assert argument.name.startswith(f"activation/{condition.values[0]}/")
        assert len(condition.values) == 1


def test_sampled_values_reach_the_layer():
    space = declared_space(list(SEARCH_SPACES)).space
    seen = set()
    for seed in range(40):
        hp = keras_tuner.HyperParameters()
        for parameter in space:
            hp.values[parameter.name] = parameter.random_sample(seed)
        layer = choose_activation(hp, list(SEARCH_SPACES))
        chosen = hp.values["activation"]
        seen.add(chosen)
        assert type(layer) is LAYERS[chosen]
        config = layer.get_config()
        for parameter in space[1:]:
            prefix = f"activation/{chosen}/"
            if parameter.name.startswith(prefix):
                assert config[parameter.name.removeprefix(prefix)] == hp.values[parameter.name]
    assert seen == set(SEARCH_SPACES)


def test_two_names_give_independent_choices_and_one_name_a_shared_choice():
    hp = keras_tuner.HyperParameters()
    hp.values.update({"first": "rrelu", "second": "competitive_relu"})
    first = choose_activation(hp, hp_name="first")
    again = choose_activation(hp, hp_name="first")
    second = choose_activation(hp, hp_name="second")
    assert type(first) is type(again) is kaa.RReLU and first is not again
    assert type(second) is kaa.CompetitiveReLU
    assert {"first/rrelu/lower", "second/competitive_relu/scale_bound"} <= set(hp.values)


def snapshot(hp):
    """What a HyperParameters holds: its declarations (name, kind, config) and its values."""
    return [(p.name, type(p).__name__, p.get_config()) for p in hp.space], dict(hp.values)


def test_a_name_that_holds_other_choices_is_refused_before_anything_is_declared():
    # KerasTuner's hp.Choice returns the value already held under a name and ignores the new list:
    # the second block would get CompetitiveReLU, outside its choices, built with default arguments.
    hp = keras_tuner.HyperParameters()
    hp.values.update({"activation": "competitive_relu", "activation/competitive_relu/competition": "l1"})
    choose_activation(hp, ["competitive_relu", "relu"])
    before = snapshot(hp)
    with pytest.raises(
        ValueError,
        match=re.escape(
            "'activation' already exists, as a Choice of ['competitive_relu', 'relu'], which can take "
            "values outside the choices ['relu', 'rrelu']: pass `hp_name=`"
        ),
    ):
        choose_activation(hp, ["relu", "rrelu"])
    assert snapshot(hp) == before

    fixed = fix_activation(keras_tuner.HyperParameters(), "competitive_relu", competition="l1")
    before = snapshot(fixed)
    with pytest.raises(
        ValueError, match=re.escape("already exists, as a Fixed 'competitive_relu', which can")
    ):
        choose_activation(fixed, ["relu", "rrelu"])
    assert snapshot(fixed) == before


def test_sharing_a_name_works_when_every_value_it_can_hold_is_among_the_choices():
    hp = keras_tuner.HyperParameters()
    hp.values["activation"] = "rrelu"
    first = choose_activation(hp, ["relu", "rrelu"])
    second = choose_activation(hp, ["rrelu", "relu", "competitive_relu"])  # a superset shares the choice
    assert type(first) is type(second) is kaa.RReLU
    assert second.get_config()["lower"] == hp.values["activation/rrelu/lower"]
    # The guide's recipe narrows the default choices with the user's own Choice of some of them.
    narrowed = keras_tuner.HyperParameters()
    narrowed.Choice("activation", ["relu", "noisy_hard_tanh"])
    assert type(choose_activation(narrowed)) is keras.layers.ReLU
    fixed = fix_activation(keras_tuner.HyperParameters(), "rrelu", lower=0.1)
    layer = choose_activation(fixed, ["relu", "rrelu"])
    assert type(layer) is kaa.RReLU and layer.lower == 0.1


@pytest.mark.parametrize(
    ("declare", "described"),
    [
        (lambda hp: hp.Choice("activation", ["tanh", "gelu"]), "a Choice of ['tanh', 'gelu']"),
        (lambda hp: hp.Int("activation", 0, 3), "an Int {'min_value': 0, 'max_value': 3"),
        (lambda hp: hp.Boolean("activation"), "a Boolean"),
    ],
)
def test_a_users_hyperparameter_of_the_same_name_is_refused_with_the_name_to_pass(declare, described):
    def build(hp, activation):
        units = keras.layers.Dense(4, activation="tanh" if declare(hp) is not None else None)
        return keras.Sequential([keras.Input((3,)), units, activation(), keras.layers.Dense(1)])

    hp = keras_tuner.HyperParameters()
    with pytest.raises(ValueError, match=re.escape(f"'activation' already exists, as {described}")) as error:
        ActivationHyperModel(build, choices=["relu", "rrelu"]).build(hp)
    assert "pass `hp_name=`" in str(error.value)
    assert [p.name for p in hp.space] == ["activation"]  # the user's own, and nothing of ours


def test_an_argument_name_the_user_declared_otherwise_is_refused():
    hp = keras_tuner.HyperParameters()
    hp.Int("activation/rrelu/lower", 0, 3)
    with pytest.raises(ValueError, match=re.escape("'activation/rrelu/lower' already exists, as an Int")):
        choose_activation(hp, ["relu", "rrelu"])
    assert [p.name for p in hp.space] == ["activation/rrelu/lower"]


def test_fixing_a_declared_name_to_another_value_or_a_searched_name_is_refused():
    hp = fix_activation(keras_tuner.HyperParameters(), "competitive_relu", competition="l1")
    before = snapshot(hp)
    with pytest.raises(
        ValueError,
        match=re.escape(
            "'activation/competitive_relu/competition' is already declared, as a Fixed 'l1': it cannot "
            "be fixed to 'count'"
        ),
    ):
        fix_activation(hp, "competitive_relu", competition="count")
    with pytest.raises(
        ValueError, match=re.escape("'activation' is already declared, as a Fixed 'competitive_")
    ):
        fix_activation(hp, "rrelu", lower=0.1)
    assert snapshot(hp) == before
    assert fix_activation(hp, "competitive_relu", competition="l1") is hp  # the same values again
    assert snapshot(hp) == before

    searched = keras_tuner.HyperParameters()
    searched.Choice("activation", ["relu", "noisy_hard_tanh"])
    before = snapshot(searched)
    with pytest.raises(
        ValueError, match=re.escape("'activation' is already declared, as a Choice of ['relu'")
    ):
        fix_activation(searched, "noisy_hard_tanh", half_normal=True)
    assert snapshot(searched) == before


@pytest.mark.parametrize("hp_name", ["", 5, None])
def test_fix_activation_checks_hp_name_as_choose_activation_does(hp_name):
    for call in (
        lambda hp: fix_activation(hp, "relu", hp_name=hp_name),
        lambda hp: choose_activation(hp, ["relu"], hp_name=hp_name),
    ):
        hp = keras_tuner.HyperParameters()
        with pytest.raises(
            ValueError,
            match=re.escape(f"`hp_name` must be a non-empty string. Received: hp_name={hp_name!r}"),
        ):
            call(hp)
        assert hp.space == [] and hp.values == {}


def searched_range(choice, argument):
    """The (min, max) that the declared search space gives an argument."""
    (parameter,) = [p for p in declared_space([choice]).space if p.name == f"activation/{choice}/{argument}"]
    return parameter.min_value, parameter.max_value


def test_a_fixed_value_that_part_of_another_arguments_range_rejects_is_refused_up_front():
    lowest_upper = searched_range("rrelu", "upper")[0]
    highest_lower = searched_range("rrelu", "lower")[1]
    assert lowest_upper < 0.3 < 1 / 3  # RReLU(lower=0.3) with the default upper, 1/3, is a valid layer
    kaa.RReLU(lower=0.3)
    with pytest.raises(ValueError, match=re.escape("`upper` must be >= `lower`")) as expected:
        kaa.RReLU(lower=0.3, upper=lowest_upper)  # what a trial sampling upper's low end would raise
    hp = keras_tuner.HyperParameters()
    with pytest.raises(ValueError) as error:
        fix_activation(hp, "rrelu", lower=0.3)
    message = str(error.value)
    assert f"with upper={lowest_upper!r}, which the search can sample" in message
    assert str(expected.value) in message and "Fix those arguments too" in message
    with pytest.raises(
        ValueError, match=re.escape(f"with lower={highest_lower!r}, which the search can sample")
    ):
        fix_activation(hp, "rrelu", upper=0.15)
    assert hp.space == []
    # Both fixed, or one that suits the other's whole range: accepted.
    assert (
        fix_activation(keras_tuner.HyperParameters(), "rrelu", lower=0.3, upper=0.4).values[
            "activation/rrelu/lower"
        ]
        == 0.3
    )
    assert (
        fix_activation(keras_tuner.HyperParameters(), "rrelu", lower=0.05).values["activation/rrelu/lower"]
        == 0.05
    )


def test_fixed_values_keras_tuner_cannot_record_are_refused_before_anything_is_declared():
    hp = keras_tuner.HyperParameters()
    with pytest.raises(
        ValueError,
        match=re.escape(
            "must be an int, float, str or bool (what KerasTuner records). Received: half_normal=None"
        ),
    ):
        fix_activation(hp, "noisy_hard_tanh", alpha=1.2, half_normal=None)
    assert hp.space == [] and hp.values == {}
    # A NumPy scalar is a number: recorded as the Python number it holds.
    fix_activation(hp, "competitive_relu", scale_bound=np.float32(3.0), competition=np.str_("l1"))
    assert hp.values["activation/competitive_relu/scale_bound"] == 3.0
    assert type(hp.values["activation/competitive_relu/scale_bound"]) is float
    assert type(hp.values["activation/competitive_relu/competition"]) is str


def test_the_guide_names_every_choice_that_accepts_axis():
    accepting = []
    for choice in SEARCH_SPACES:
        try:
            choose_activation(keras_tuner.HyperParameters(), [choice], axis=-1)
        except ValueError:
            continue
        accepting.append(LAYERS[choice].__name__)
    (sentence,) = re.findall(r"the choices must all accept `axis`: only (.+?) do\.", GUIDE.read_text())
    assert sorted(re.findall(r"\w+", sentence.replace(" and ", " "))) == sorted(accepting)


def guide_table():
    """Rows `(choice, hyper-parameter, values, default)` of the search-space table in the tuning guide."""
    rows = []
    for line in GUIDE.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].startswith("`") and cells[0] != "`choice`":
            rows.append((cells[0].strip("`"), cells[2].strip("`"), cells[3], cells[4]))
    return rows


def number(text):
    return float(Fraction(text.strip("` ")))


def test_the_guide_documents_every_searched_hyperparameter_as_declared():
    space = {parameter.name: parameter for parameter in declared_space(list(SEARCH_SPACES)).space}
    documented = set()
    for choice, argument, values, default in guide_table():
        assert choice in SEARCH_SPACES, choice
        if argument == "—":
            assert not [name for name in space if name.startswith(f"activation/{choice}/")], choice
            documented.add(choice)
            continue
        parameter = space[f"activation/{choice}/{argument}"]
        documented.add(parameter.name)
        if isinstance(parameter, keras_tuner.engine.hyperparameters.Boolean):
            assert values == "`True`, `False`"
            assert default == f"`{parameter.default}`"
        elif isinstance(parameter, keras_tuner.engine.hyperparameters.Choice):
            assert values == ", ".join(f"`{value}`" for value in parameter.values)
            assert default == f"`{parameter.default}`"
        else:
            low, high, sampling = re.fullmatch(r"(\S+) to (\S+) \((\w+)\)", values).groups()
            assert (number(low), number(high), sampling) == (
                parameter.min_value,
                parameter.max_value,
                parameter.sampling,
            )
            assert number(default) == pytest.approx(parameter.default)
    without_arguments = {
        choice
        for choice in SEARCH_SPACES
        if not any(name.startswith(f"activation/{choice}/") for name in space)
    }
    assert documented == (set(space) - {"activation"}) | without_arguments


# ----------------------------------------------------------------------------------------------
# Real searches


# get_best_models builds a fresh model and loads the checkpoint's weights: Keras notes that the
# fresh optimizer has fewer variables than the saved one. The weights are what is tested.
@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer:UserWarning")
@pytest.mark.slow
def test_random_search_finds_and_reloads_the_best_model(tmp_path):
    x, y, x_val, y_val = tuning_process.data()
    tuner = keras_tuner.RandomSearch(
        ActivationHyperModel(tuning_process.build, choices=tuning_process.CHOICES),
        objective="val_loss",
        max_trials=3,
        seed=2,
        directory=tmp_path,
        project_name="search",
    )
    tuner.search(x, y, validation_data=(x_val, y_val), epochs=2, batch_size=16, verbose=0)

    trials = tuner.oracle.get_best_trials(10)
    assert len(trials) == 3 and all(trial.status == "COMPLETED" for trial in trials)
    for trial in trials:
        chosen = trial.hyperparameters.values["activation"]
        assert chosen in tuning_process.CHOICES
        conditional = {name for name in trial.hyperparameters.values if name.count("/") == 2}
        assert all(name.startswith(f"activation/{chosen}/") for name in conditional)
        assert len(conditional) == len(SEARCH_SPACES[chosen].arguments(keras_tuner.HyperParameters(), "p"))

    best_trial = trials[0]
    (best,) = tuner.get_best_models(1)
    (activation,) = [layer for layer in best.layers if not isinstance(layer, keras.layers.Dense)]
    assert type(activation) is LAYERS[best_trial.hyperparameters.values["activation"]]
    assert best.evaluate(x_val, y_val, verbose=0) == pytest.approx(best_trial.score, rel=1e-5)


@pytest.mark.slow
def test_searched_values_are_the_ones_the_trained_layer_had(tmp_path):
    built = []

    def build(hp, activation):
        model = tuning_process.build(hp, activation)
        built.append((dict(hp.values), model.layers[1].get_config()))
        return model

    x, y, x_val, y_val = tuning_process.data()
    tuner = keras_tuner.RandomSearch(
        ActivationHyperModel(build, choices=["competitive_relu"]),
        objective="val_loss",
        max_trials=2,
        seed=5,
        directory=tmp_path,
    )
    tuner.search(x, y, validation_data=(x_val, y_val), epochs=1, verbose=0)
    trial_values = [trial.hyperparameters.values for trial in tuner.oracle.trials.values()]
    for values in trial_values:
        (config,) = [config for built_values, config in built if built_values == values]
        assert config["competition"] == values["activation/competitive_relu/competition"]
        assert config["scale_bound"] == values["activation/competitive_relu/scale_bound"]
        assert config["init"] == values["activation/competitive_relu/init"]


def search_with(tmp_path, hyperparameters, max_trials=3):
    x, y, x_val, y_val = tuning_process.data()
    tuner = keras_tuner.RandomSearch(
        ActivationHyperModel(tuning_process.build),
        objective="val_loss",
        max_trials=max_trials,
        seed=3,
        hyperparameters=hyperparameters,
        directory=tmp_path,
    )
    tuner.search(x, y, validation_data=(x_val, y_val), epochs=1, verbose=0)
    return [trial.hyperparameters.values for trial in tuner.oracle.trials.values()]


@pytest.mark.slow
def test_fixed_arguments_are_used_in_every_trial_and_the_rest_is_searched(tmp_path):
    fixed = fix_activation(keras_tuner.HyperParameters(), "CompetitiveReLU", competition="l1")
    trials = search_with(tmp_path, fixed)
    assert len(trials) == 3
    assert {values["activation"] for values in trials} == {"competitive_relu"}
    assert {values["activation/competitive_relu/competition"] for values in trials} == {"l1"}
    assert len({values["activation/competitive_relu/scale_bound"] for values in trials}) == 3


@pytest.mark.slow
def test_an_argument_fixed_in_its_scope_while_the_choice_is_still_searched(tmp_path):
    # The guide's recipe: declare the choice, then fix the argument inside its conditional scope.
    hp = keras_tuner.HyperParameters()
    hp.Choice("activation", ["relu", "noisy_hard_tanh"])
    with hp.conditional_scope("activation", ["noisy_hard_tanh"]):
        hp.Fixed("activation/noisy_hard_tanh/half_normal", True)
    trials = search_with(tmp_path, hp, max_trials=6)
    assert {values["activation"] for values in trials} == {"relu", "noisy_hard_tanh"}
    noisy = [values for values in trials if values["activation"] == "noisy_hard_tanh"]
    assert all(values["activation/noisy_hard_tanh/half_normal"] is True for values in noisy)


# ----------------------------------------------------------------------------------------------
# Processes: an interrupted search resumes; distributed tuning


def run_env(**extra):
    # The helper process runs on the backend this test runs on: the searches are backend-neutral.
    env = {**os.environ, "KERAS_BACKEND": keras.backend.backend(), "TF_CPP_MIN_LOG_LEVEL": "3", **extra}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def helper_command(tmp_path, *args):
    return [sys.executable, str(HELPER), "--directory", str(tmp_path), "--log", str(tmp_path / "log"), *args]


def trial_files(tmp_path):
    files = sorted((tmp_path / "search").glob("trial_*/trial.json"))
    return {trial["trial_id"]: trial for trial in (json.loads(file.read_text()) for file in files)}


def started(tmp_path):
    return [json.loads(line) for line in (tmp_path / "log").read_text().splitlines()]


@pytest.mark.slow
def test_an_interrupted_search_resumes_without_redoing_finished_trials(tmp_path):
    crashed = subprocess.run(
        helper_command(tmp_path, "--crash-at-trial", "1"), env=run_env(), capture_output=True, timeout=240
    )
    assert crashed.returncode == 3, crashed.stderr.decode()[-3000:]
    first = trial_files(tmp_path)
    assert first["0"]["status"] == "COMPLETED"
    assert first["1"]["status"] == "RUNNING"
    assert [record["trial_id"] for record in started(tmp_path)] == ["0", "1"]

    resumed = subprocess.run(helper_command(tmp_path), env=run_env(), capture_output=True, timeout=240)
    assert resumed.returncode == 0, resumed.stderr.decode()[-3000:]
    assert [record["trial_id"] for record in started(tmp_path)[2:]] == ["1", "2"]  # "0" is not redone
    final = trial_files(tmp_path)
    assert sorted(final) == ["0", "1", "2"]
    assert all(trial["status"] == "COMPLETED" for trial in final.values())
    assert final["0"]["score"] == first["0"]["score"]
    assert final["1"]["hyperparameters"]["values"] == first["1"]["hyperparameters"]["values"]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_distributed_search_shares_trials_between_two_workers(tmp_path):
    distribution = {"KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": str(free_port())}
    processes = {
        tuner_id: subprocess.Popen(
            helper_command(tmp_path, "--max-trials", "4", "--wait-for-tuners", "2"),
            env=run_env(KERASTUNER_TUNER_ID=tuner_id, **distribution),
            stdout=subprocess.DEVNULL,
            stderr=open(tmp_path / f"{tuner_id}.err", "w"),  # noqa: SIM115 (closed with the process)
        )
        for tuner_id in ("chief", "tuner0", "tuner1")
    }
    deadline = time.monotonic() + 300
    try:
        while any(process.poll() is None for process in processes.values()) and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
            process.wait()
            process.stderr.close() if process.stderr else None
    errors = {tuner_id: (tmp_path / f"{tuner_id}.err").read_text()[-2000:] for tuner_id in processes}
    assert {tuner_id: process.returncode for tuner_id, process in processes.items()} == {
        "chief": 0,
        "tuner0": 0,
        "tuner1": 0,
    }, errors

    records = started(tmp_path)
    trials = trial_files(tmp_path)
    assert sorted(trials) == ["0", "1", "2", "3"]
    assert all(trial["status"] == "COMPLETED" for trial in trials.values())
    assert sorted(record["trial_id"] for record in records) == ["0", "1", "2", "3"]  # each ran once
    assert {record["tuner_id"] for record in records} == {"tuner0", "tuner1"}  # the chief trains nothing
    for record in records:
        assert trials[record["trial_id"]]["hyperparameters"]["values"] == record["values"]


# ----------------------------------------------------------------------------------------------
# Bad input and the optional extra


@pytest.mark.parametrize(
    ("choices", "message"),
    [
        (["relu", "swishy"], "Unknown activation 'swishy'"),
        (["mixed_activation"], "'mixed_activation' cannot be a tuning choice: it is a transition"),
        (["gelu"], "'gelu' cannot be a tuning choice: it has no search space"),
        (["competitve_relu"], "did you mean 'competitive_relu'?"),
        (["relu", "ReLU"], "names an activation twice"),
        ([], "`choices` is empty"),
        ("relu", "must be a list of activation names"),
        ([keras.layers.ReLU], "Activation choices are names"),
    ],
)
def test_bad_choices_are_refused(choices, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        choose_activation(keras_tuner.HyperParameters(), choices)
    with pytest.raises(ValueError, match=re.escape(message)):
        ActivationHyperModel(tuning_process.build, choices=choices)


def test_other_bad_arguments_are_refused():
    hp = keras_tuner.HyperParameters()
    with pytest.raises(ValueError, match=r"`default` must be one of the choices \['relu'\]"):
        choose_activation(hp, ["relu"], default="rrelu")
    with pytest.raises(
        ValueError, match=r"\['scale_bound'\] are searched for 'competitive_relu': fix them with `fix_"
    ):
        choose_activation(hp, ["competitive_relu"], scale_bound=3.0)
    with pytest.raises(ValueError, match=r"`hp` must be a keras_tuner\.HyperParameters"):
        choose_activation({"activation": "relu"})
    with pytest.raises(ValueError, match="`hp_name` must be a non-empty string"):
        choose_activation(hp, hp_name="")
    with pytest.raises(ValueError, match=r"The fixed arguments \{'axis': -1\} do not suit 'relu'"):
        choose_activation(hp, ["competitive_relu", "relu"], axis=-1)
    with pytest.raises(ValueError, match="`build` must be a function"):
        ActivationHyperModel("build")
    with pytest.raises(ValueError, match="`default` must be one of the choices"):
        ActivationHyperModel(tuning_process.build, choices=["relu"], default="rrelu")
    with pytest.raises(
        ValueError, match=r"\['scale_bound'\] are not searched for 'relu' \(its searched arguments: none"
    ):
        fix_activation(hp, "relu", scale_bound=2.0)
    with pytest.raises(
        ValueError, match=r"\['beta'\] are not searched for 'competitive_relu' .*competition, scale_bound, i"
    ):
        fix_activation(hp, "competitive_relu", beta=2.0)
    with pytest.raises(
        ValueError, match=r"'competitive_relu' rejects \{'competition': 'l2'\}: `competition`"
    ):
        fix_activation(hp, "competitive_relu", competition="l2")
    with pytest.raises(ValueError, match="Unknown activation 'swishy'"):
        fix_activation(hp, "swishy")
    assert hp.values == {} and hp.space == []  # nothing was declared by the refused calls


def test_fixed_constructor_arguments_pass_through():
    layer = choose_activation(keras_tuner.HyperParameters(), ["competitive_relu"], name="act", axis=-1)
    assert layer.axis == -1 and layer.name == "act"


BLOCK_KERAS_TUNER = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "keras_tuner" or name.startswith("keras_tuner."):
            raise ImportError("No module named 'keras_tuner'")
sys.meta_path.insert(0, Block())
import keras_adaptive_acts as kaa
print("package imported")
try:
    kaa.tuning
except ImportError as error:
    print(error)
"""


@pytest.mark.slow
def test_without_the_tuner_extra_the_package_imports_and_tuning_says_what_to_install():
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_KERAS_TUNER], env=run_env(), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0] == "package imported"
    assert 'pip install "keras-adaptive-acts[tuner]"' in lines[1]
    assert "No module named 'keras_tuner'" in lines[1]


def test_tuning_is_reached_from_the_package_without_being_in_all():
    assert kaa.tuning.choose_activation is choose_activation
    assert kaa.export.__name__ == "keras_adaptive_acts.export"
    assert "tuning" not in kaa.__all__ and "export" not in kaa.__all__
    with pytest.raises(AttributeError, match="has no attribute 'nonsense'"):
        kaa.nonsense  # noqa: B018


def test_hypermodel_builds_with_fixed_layer_arguments():
    def build(hp, activation):
        inputs = keras.Input((3, 4))
        outputs = activation(name="act", axis=-1)(keras.layers.Dense(4)(inputs))
        return keras.Model(inputs, outputs)

    hp = keras_tuner.HyperParameters()
    hp.values["activation"] = "competitive_relu"
    model = ActivationHyperModel(build, choices=["competitive_relu"]).build(hp)
    layer = model.get_layer("act")
    assert isinstance(layer, kaa.CompetitiveReLU) and layer.axis == -1
    x = np.ones((2, 3, 4), dtype="float32")
    assert model(x).shape == (2, 3, 4)


def small_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(160, 8)).astype("float32")
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype("int64")
    return x[:120], y[:120], x[120:], y[120:]


@pytest.mark.slow
def test_a_seed_makes_a_search_reproducible(tmp_path):
    runs = []
    for run in range(2):
        # Other random activity in between: a trial's result must not depend on the global state.
        keras.utils.set_random_seed(100 + run)
        keras.layers.Dense(3).build((None, 2))
        _, rows = search_activations(
            small_data(),
            choices=["relu", "noisy_hard_tanh", "rrelu"],
            max_trials=3,
            epochs=2,
            seed=7,
            directory=tmp_path / f"run{run}",
        )
        runs.append(rows)
    assert len(runs[0]) == 3
    assert runs[0] == runs[1]  # values, scores and their order (the best trial first)
    assert len({row["val_accuracy"] for row in runs[0]}) > 1  # the trials do differ from one another


@pytest.mark.slow
def test_resuming_a_search_with_other_data_or_training_settings_is_refused_before_any_trial(tmp_path):
    # The oracle stores only the search space: resumed with other data, epochs or seed, a search
    # reported the earlier trials' scores as this command's (or failed deep in KerasTuner).
    data = small_data()
    search_activations(data, choices=["rrelu"], max_trials=1, epochs=1, seed=1, directory=tmp_path)
    trials = sorted(path.name for path in (tmp_path / "kaa_tune").iterdir() if path.name.startswith("trial_"))
    project = repr(str(tmp_path / "kaa_tune"))
    other_data = tuple(np.array(array, copy=True) for array in data)
    other_data[0][0, 0] += 1.0  # one value of one row
    for changed, shown in [
        ({"epochs": 2}, "epochs=1, not 2"),
        ({"seed": 5}, "seed=1, not 5"),
        ({"batch_size": 32}, "batch_size=64, not 32"),
        ({"data": other_data}, "other data"),
    ]:
        arguments = {"data": data, "epochs": 1, "seed": 1, **changed}
        with pytest.raises(StoredSearchMismatch) as error:
            search_activations(choices=["rrelu"], max_trials=2, directory=tmp_path, **arguments)
        assert str(error.value).startswith(f"The search kept in {project} was made with {shown}: "), changed
    after = sorted(path.name for path in (tmp_path / "kaa_tune").iterdir() if path.name.startswith("trial_"))
    assert after == trials  # no trial ran
    # The same settings resume; overwrite=True starts afresh and keeps the new settings.
    _, rows = search_activations(data, choices=["rrelu"], max_trials=2, epochs=1, seed=1, directory=tmp_path)
    assert len(rows) == 2
    search_activations(
        data, choices=["rrelu"], max_trials=1, epochs=2, seed=1, directory=tmp_path, overwrite=True
    )
    with pytest.raises(StoredSearchMismatch, match="epochs=2, not 1"):
        search_activations(data, choices=["rrelu"], max_trials=2, epochs=1, seed=1, directory=tmp_path)


@pytest.mark.slow
def test_resuming_a_search_with_other_choices_is_refused_before_any_trial(tmp_path):
    data = small_data()
    search_activations(data, choices=["rrelu"], max_trials=1, epochs=1, directory=tmp_path)
    trials = sorted(path.name for path in (tmp_path / "kaa_tune").iterdir() if path.name.startswith("trial_"))
    with pytest.raises(StoredSearchMismatch) as error:
        search_activations(
            data, choices=["relu", "competitive_relu"], max_trials=3, epochs=1, directory=tmp_path
        )
    assert isinstance(error.value, ValueError)
    assert str(error.value) == (
        f"The search kept in {str(tmp_path / 'kaa_tune')!r} was made with the choices ['rrelu'], not "
        "['relu', 'competitive_relu']: start afresh (overwrite=True, `kaa tune --overwrite`) or keep the new "
        "search in another directory."
    )
    after = sorted(path.name for path in (tmp_path / "kaa_tune").iterdir() if path.name.startswith("trial_"))
    assert after == trials  # no trial ran
    # The same choice, spelt otherwise, resumes; overwrite=True starts afresh with the new choices.
    _, rows = search_activations(data, choices=["RReLU"], max_trials=2, epochs=1, directory=tmp_path)
    assert [row["activation"] for row in rows] == ["rrelu", "rrelu"]
    _, rows = search_activations(
        data, choices=["relu", "competitive_relu"], max_trials=2, epochs=1, directory=tmp_path, overwrite=True
    )
    assert {row["activation"] for row in rows} <= {"relu", "competitive_relu"} and len(rows) == 2
