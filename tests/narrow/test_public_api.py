"""What `keras_adaptive_acts.narrow` exports: what a user calls; the algorithm steps stay in their modules."""

import importlib

import pytest

from keras_adaptive_acts import narrow

# Written out by hand (not derived from the package) so that a name added to or dropped from
# `narrow.__all__` is a decision someone makes here too.
USER_FACING = {
    "NarrowReLULearner",
    "ReLUNetwork",
    "make_planted_regression",
    "planted_network",
    "population_mse",
    "population_variance",
    "relative_population_mse",
    "build_keras_model",
    "narrow_relu_model",
    "network_from_keras",
    "train_square_loss",
    "gaussian_check",
    "recommended_samples",
}

# The learner's steps and the Gaussian facts they rest on, by the module that holds each.
ALGORITHM_STEPS = {
    "moments": [
        "first_moment",
        "second_moment",
        "low_degree_residual",
        "fourth_moment_contractions",
        "projected_fourth_moment",
    ],
    "decomposition": [
        "estimate_subspace",
        "contraction_vectors",
        "jennrich",
        "contraction_directions",
        "merge_directions",
        "rank_one_weights",
    ],
    "readout": ["least_squares_readout"],
    "exact": ["relu_hermite_coefficients", "arccos_kernel"],
}


def test_all_lists_exactly_what_a_user_calls():
    assert len(narrow.__all__) == len(set(narrow.__all__))
    assert set(narrow.__all__) == USER_FACING
    for name in narrow.__all__:
        assert callable(getattr(narrow, name)), name


def test_star_import_gives_exactly_the_user_facing_names():
    namespace = {}
    exec("from keras_adaptive_acts.narrow import *", namespace)
    assert {name for name in namespace if name != "__builtins__"} == USER_FACING


@pytest.mark.parametrize(
    ("module_name", "name"),
    [(module_name, name) for module_name, names in ALGORITHM_STEPS.items() for name in names],
)
def test_each_algorithm_step_is_importable_from_its_module_only(module_name, name):
    module = importlib.import_module(f"keras_adaptive_acts.narrow.{module_name}")
    assert callable(getattr(module, name))
    assert name in module.__all__
    assert not hasattr(narrow, name), f"{name} is re-exported from keras_adaptive_acts.narrow"


@pytest.mark.parametrize(
    "module_name",
    [
        "decomposition",
        "exact",
        "inputs",
        "keras_model",
        "learner",
        "moments",
        "network",
        "planted",
        "readout",
    ],
)
def test_every_module_all_names_exist_and_star_import_gives_them(module_name):
    module = importlib.import_module(f"keras_adaptive_acts.narrow.{module_name}")
    namespace = {}
    exec(f"from keras_adaptive_acts.narrow.{module_name} import *", namespace)
    assert {name for name in namespace if name != "__builtins__"} == set(module.__all__)
    for name in module.__all__:
        assert getattr(module, name).__module__ == module.__name__, name  # defined there, not re-imported


def test_the_user_facing_names_are_the_ones_their_modules_define():
    # The re-exports are the same objects as in the defining modules (one definition, two import paths).
    from keras_adaptive_acts.narrow import exact, inputs, keras_model, learner, network, planted

    for module in (exact, inputs, keras_model, learner, network, planted):
        for name in set(module.__all__) & USER_FACING:
            assert getattr(narrow, name) is getattr(module, name), name
