"""`NarrowReLULearner`: recovery of planted networks, reproducibility, the estimator API and bad input."""

import warnings

import keras
import numpy as np
import pytest

from keras_adaptive_acts.narrow import (
    NarrowReLULearner,
    build_keras_model,
    gaussian_check,
    make_planted_regression,
    narrow_relu_model,
    network_from_keras,
    recommended_samples,
    relative_population_mse,
    train_square_loss,
)

# Small enough for the test suite; refinement shortened from the default 8000 steps.
QUICK = {"refine_steps": 1500, "refine_batch_size": 256}


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    ("input_dim", "k", "method"), [(10, 2, "jennrich"), (12, 3, "jennrich"), (8, 2, "contraction")]
)
@pytest.mark.slow
def test_recovers_small_planted_networks(input_dim, k, method, seed):
    n_samples = max(2 * recommended_samples(input_dim, k), 20_000)
    X, y, target = make_planted_regression(n_samples, input_dim, k, seed=seed)
    learner = NarrowReLULearner(k, method=method, seed=seed, **QUICK).fit(X, y)
    assert relative_population_mse(target, learner.moment_network_) < 0.1
    assert relative_population_mse(target, learner.network_) < 1e-4
    assert learner.history_["loss"][-1] < learner.history_["loss"][0]


def test_near_parallel_neurons_are_recovered_after_refinement():
    X, y, target = make_planted_regression(100_000, 10, 3, near_parallel_pairs=1, seed=0)
    learner = NarrowReLULearner(3, seed=0, **QUICK).fit(X, y)
    assert relative_population_mse(target, learner.network_) < 1e-3


def test_label_noise_still_gives_a_good_population_fit():
    X, y, target = make_planted_regression(50_000, 10, 2, label_noise=0.2, seed=1)
    learner = NarrowReLULearner(2, seed=1, **QUICK).fit(X, y)
    assert relative_population_mse(target, learner.network_) < 1e-3


def test_same_seed_same_estimate_and_fitted_attributes():
    X, y, _ = make_planted_regression(20_000, 9, 3, seed=3)
    first = NarrowReLULearner(3, refine=False, seed=5).fit(X, y)
    second = NarrowReLULearner(3, refine=False, seed=5).fit(X, y)
    np.testing.assert_array_equal(first.directions_, second.directions_)
    np.testing.assert_array_equal(first.network_.output_weights, second.network_.output_weights)
    assert first.n_features_in_ == 9 and first.n_samples_seen_ == 20_000
    assert first.subspace_.shape == (9, 3) and first.directions_.shape == (3, 9)
    assert first.network_ is first.moment_network_ and first.history_ is None
    assert set(first.fit_seconds_) == {"checks", "moments", "directions", "readout", "refine"}
    refined = [
        NarrowReLULearner(3, seed=5, refine_steps=200, refine_samples=5000).fit(X, y) for _ in range(2)
    ]
    np.testing.assert_array_equal(refined[0].network_.hidden_weights, refined[1].network_.hidden_weights)


def test_memmapped_inputs_give_the_same_estimate(tmp_path):
    X, y, _ = make_planted_regression(20_000, 8, 2, seed=4)
    np.save(tmp_path / "x.npy", X)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    from_memory = NarrowReLULearner(2, refine=False, seed=0).fit(X, y)
    from_disk = NarrowReLULearner(2, refine=False, seed=0).fit(mapped, y)
    np.testing.assert_array_equal(from_memory.network_.output_weights, from_disk.network_.output_weights)


def test_predict_score_and_keras_model_agree_with_the_network():
    X, y, _ = make_planted_regression(20_000, 8, 2, seed=6)
    learner = NarrowReLULearner(2, refine=False, seed=0).fit(X, y)
    net = learner.network_
    expected = np.maximum(X[:100] @ net.hidden_weights.T, 0.0) @ net.output_weights + net.bias
    np.testing.assert_allclose(learner.predict(X[:100]), expected, rtol=1e-12)
    from sklearn.metrics import r2_score

    assert learner.score(X, y) == pytest.approx(r2_score(y, learner.predict(X)), rel=1e-12)
    model = learner.to_keras()
    hidden, readout = model.layers
    assert (hidden.units, hidden.use_bias, keras.activations.serialize(hidden.activation)) == (
        4,
        False,
        "relu",
    )
    assert readout.units == 1
    np.testing.assert_allclose(model.predict(X[:100], verbose=0)[:, 0], expected, rtol=1e-4, atol=1e-5)


def test_the_keras_model_refines_with_plain_fit():
    X, y, target = make_planted_regression(20_000, 8, 2, seed=7)
    learner = NarrowReLULearner(2, refine=False, seed=0).fit(X, y)
    model = learner.to_keras()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    model.fit(X, y, batch_size=128, epochs=3, verbose=0)
    before = relative_population_mse(target, learner.network_)
    assert relative_population_mse(target, network_from_keras(model)) < before / 10


def test_refinement_passes_callbacks_and_records_history():
    X, y, _ = make_planted_regression(5_000, 6, 2, seed=8)
    epochs = []
    recorder = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: epochs.append(epoch))
    learner = NarrowReLULearner(2, seed=0, refine_steps=100, refine_batch_size=100).fit(
        X, y, callbacks=[recorder]
    )
    assert epochs == [0, 1] and len(learner.history_["loss"]) == 2  # 100 steps = 2 epochs of 50
    assert learner.network_ is not learner.moment_network_


def test_the_refinement_takes_the_steps_and_losses_of_one_step_per_call():
    # 2,500 rows in batches of 50: 50 steps per epoch, so 32 steps per call leaves a shorter last call
    # (18 steps) in each epoch; 60 steps round up to 2 epochs, 100 steps.
    X, y, _ = make_planted_regression(2_500, 6, 2, seed=9)
    start = NarrowReLULearner(2, refine=False, seed=0).fit(X, y).network_
    batch_ends = []
    counter = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: batch_ends.append(batch))
    model = build_keras_model(start)
    history = train_square_loss(model, X, y, steps=60, batch_size=50, learning_rate=0.01, callbacks=[counter])
    # The reference: Keras' own fit of the same model and schedule, one step per call.
    reference = build_keras_model(start)
    schedule = keras.optimizers.schedules.CosineDecay(0.01, decay_steps=100)
    reference.compile(optimizer=keras.optimizers.Adam(schedule), loss="mse", steps_per_execution=1)
    expected = reference.fit(
        X.astype("float32"), y.astype("float32"), batch_size=50, epochs=2, shuffle=False, verbose=0
    )
    assert int(model.optimizer.iterations) == 100
    np.testing.assert_allclose(history["loss"], expected.history["loss"], rtol=1e-5)
    for weight, expected_weight in zip(model.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(weight, expected_weight, rtol=1e-4, atol=1e-6)
    # Batch hooks: once per call, 2 calls per epoch (32 steps, then 18); PyTorch: one step per call.
    assert len(batch_ends) == 2 * (50 if keras.backend.backend() == "torch" else 2)


@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("constant", [3.0, 0.0])
def test_a_constant_target_is_fitted_by_the_bias(k, constant):
    # The moment tensor of a constant has no degree-4 part: no direction to find. With k=1 and an
    # all-zero target, a zero vector once passed for one, and the fit ended in NaN weights.
    X = np.random.default_rng(0).standard_normal((5_000, 5))
    learner = NarrowReLULearner(k, refine=False, seed=0).fit(X, np.full(5_000, constant))
    np.testing.assert_allclose(learner.predict(X[:10]), constant, atol=1e-6)


def test_scikit_learn_protocol():
    from sklearn.base import clone

    learner = NarrowReLULearner(3, refine=False, seed=2, learning_rate=1e-3)
    copy = clone(learner)
    assert copy.get_params() == learner.get_params() and copy is not learner
    assert copy.set_params(k=4).k == 4
    assert repr(learner) == "NarrowReLULearner(k=3, refine=False, learning_rate=0.001, seed=2)"
    with pytest.raises(ValueError, match="Invalid parameter 'depth'"):
        learner.set_params(depth=2)
    with pytest.raises(ValueError, match="k"):
        learner.set_params(k=0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"k": 0}, "`k` must be an integer >= 1"),
        ({"k": 2.0}, "`k` must be an integer"),
        ({"method": "svd"}, "method"),
        ({"input_check": "strict"}, "input_check"),
        ({"refine": "yes"}, "refine"),
        ({"refine_steps": 0}, "refine_steps"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"merge_angle": 0.0}, "merge_angle"),
        ({"merge_angle": np.pi / 2}, r"below pi/2 .* Received: merge_angle=1.57"),
        ({"merge_angle": 2.0}, r"below pi/2 .* Received: merge_angle=2.0"),
        ({"merge_angle": 10.0}, r"below pi/2 .* Received: merge_angle=10.0"),
        ({"ridge": -1e-8}, "ridge"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_arguments_are_refused_at_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NarrowReLULearner(**{"k": 2, **kwargs})


def gaussian(n, d, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d))


@pytest.mark.parametrize(
    ("X", "y", "match"),
    [
        (gaussian(100, 5)[:, :, None], np.zeros(100), "`X` must be 2-D"),
        (gaussian(100, 5), np.zeros((100, 2)), "`y` must be 1-D"),
        (gaussian(100, 5), np.zeros(99), "same number of rows"),
        (gaussian(100, 5).astype(str), np.zeros(100), "real numbers"),
        (gaussian(100, 2), np.zeros(100), r"`k` must be <= the input dimension d=2"),
        (gaussian(7, 5), np.zeros(7), "at least 2k \\+ 2 = 8 samples"),
    ],
)
def test_bad_data_gets_a_clear_error(X, y, match):
    with pytest.raises(ValueError, match=match):
        NarrowReLULearner(3, input_check="ignore").fit(X, y)


def test_non_finite_values_name_the_row():
    X, y = gaussian(20_000, 5), np.zeros(20_000)
    X[12_345, 2] = np.nan
    with pytest.raises(ValueError, match="row 12345"):
        NarrowReLULearner(2).fit(X, y)
    X[12_345, 2] = 0.0
    y[17] = np.inf
    with pytest.raises(ValueError, match="row 17"):
        NarrowReLULearner(2).fit(X, y)


def test_too_few_samples_warn_with_the_estimated_need():
    X, y, _ = make_planted_regression(1_000, 10, 3, seed=0)
    with pytest.warns(UserWarning, match=f"needs about {recommended_samples(10, 3)}"):
        NarrowReLULearner(3, refine=False).fit(X, y)


@pytest.mark.parametrize(
    ("transform", "match"),
    [
        (lambda x: 2.0 * x, "variance of feature"),
        (lambda x: x + 0.1, "mean"),
        (lambda x: x @ np.linalg.cholesky(np.eye(6) + 0.3), "covariance of features"),
        (np.sign, "kurtosis 1 "),  # mean 0, covariance I, but +-1 values
    ],
    ids=["scaled", "shifted", "correlated", "non-gaussian"],
)
def test_inputs_that_do_not_look_gaussian_are_refused_with_advice(transform, match):
    X = transform(gaussian(50_000, 6))
    with pytest.raises(ValueError, match=match) as error:
        NarrowReLULearner(2).fit(X, np.abs(X[:, 0]))
    assert "Whiten X" in str(error.value) and 'input_check="warn"' in str(error.value)
    assert ("kurtosis" in str(error.value)) == (match.startswith("kurtosis"))  # scale is not shape
    with pytest.warns(UserWarning, match=match):
        NarrowReLULearner(2, input_check="warn", refine=False).fit(X, np.abs(X[:, 0]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        NarrowReLULearner(2, input_check="ignore", refine=False).fit(X, np.abs(X[:, 0]))


def test_gaussian_inputs_pass_the_check_for_many_seeds():
    for seed in range(20):
        X = gaussian(2_000, 6, seed)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            NarrowReLULearner(1, refine=False, input_check="error").fit(
                X, np.maximum(X[:, 0], 0) + 0.0 * seed
            )


def test_gaussian_check_takes_two_dimensional_data_only():
    for bad in (np.ones(5), np.ones((4, 3, 2))):
        with pytest.raises(ValueError, match=r"`inputs` must be 2-D.*inputs.shape=\("):
            gaussian_check(bad)
    assert gaussian_check(gaussian(2_000, 3).tolist()) == []  # a nested list is read as an array


def test_the_fit_does_not_depend_on_the_unit_of_the_targets():
    # The targets times 2**70 (about 1e21): the float32 square loss of the refinement overflowed, and
    # targets of size 1000 moved the output layer by Adam's fixed steps. A power of two divides exactly,
    # so the reference is exact: 2**70 times the network fitted to the targets themselves.
    X, y, _ = make_planted_regression(5_000, 6, 2, seed=10)
    options = {"seed": 0, "refine_steps": 100, "refine_batch_size": 250}
    unit = NarrowReLULearner(2, **options).fit(X, y)
    scaled = NarrowReLULearner(2, **options).fit(X, 2.0**70 * y)
    for fitted in ("moment_network_", "network_"):
        reference, network = getattr(unit, fitted), getattr(scaled, fitted)
        np.testing.assert_array_equal(network.hidden_weights, reference.hidden_weights)
        np.testing.assert_array_equal(network.output_weights, 2.0**70 * reference.output_weights)
        assert network.bias == 2.0**70 * reference.bias
    assert scaled.history_ == unit.history_  # the refinement sees the same (scaled) targets
    assert scaled.target_scale_ == 2.0**70 * unit.target_scale_


def test_inputs_far_from_unit_variance_get_a_clear_error_when_the_check_is_off():
    X = gaussian(2_000, 4) * 1e60  # finite, but its fourth moments are not (1e240 squared)
    match = r"moments of `X` overflow float64.*values up to \d.*e\+60.*Whiten X"
    with np.errstate(all="ignore"), pytest.raises(ValueError, match=match):
        NarrowReLULearner(2, refine=False, input_check="ignore").fit(X, np.abs(X[:, 0]) / 1e60)


def test_score_of_a_constant_target_is_that_of_scikit_learn():
    from sklearn.metrics import r2_score

    X = gaussian(2_000, 4)
    learner = NarrowReLULearner(1, refine=False, seed=0).fit(X, np.full(2_000, 3.0))
    constant = np.full(100, 3.0)
    exact = learner.predict(X[:100])
    assert learner.score(X[:100], exact) == r2_score(exact, exact) == 1.0  # a constant target, fitted
    assert learner.score(X[:100], constant + 1.0) == r2_score(constant + 1.0, exact) == 0.0  # not fitted


def test_all_zero_inputs_fail_the_check_without_a_numpy_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "invalid value encountered in divide" on the way
        with pytest.raises(ValueError, match="variance of feature 0 is 0"):
            NarrowReLULearner(2).fit(np.zeros((2_000, 4)), np.zeros(2_000))


def test_predict_needs_a_fitted_learner_and_the_right_width():
    with pytest.raises(ValueError, match="not fitted"):
        NarrowReLULearner(2).predict(gaussian(3, 4))
    learner = NarrowReLULearner(1, refine=False).fit(gaussian(2_000, 4), np.ones(2_000))
    with pytest.raises(ValueError, match=r"shape \(n, 4\)"):
        learner.predict(gaussian(3, 5))


def test_network_from_keras_round_trip_and_refusals():
    X, _, target = make_planted_regression(10, 5, 2, seed=9)
    model = build_keras_model(target)
    back = network_from_keras(model)
    np.testing.assert_allclose(back.hidden_weights, target.hidden_weights, rtol=1e-6)
    np.testing.assert_allclose(back.output_weights, target.output_weights, rtol=1e-6)
    np.testing.assert_allclose(model.predict(X, verbose=0)[:, 0], target(X), rtol=1e-5, atol=1e-6)
    wrong = keras.Sequential(
        [keras.Input((5,)), keras.layers.Dense(3, "tanh", use_bias=False), keras.layers.Dense(1)]
    )
    with pytest.raises(ValueError, match="Expected a model of exactly"):
        network_from_keras(wrong)
    with pytest.raises(ValueError, match="Expected a model of exactly"):
        network_from_keras(
            keras.Sequential([keras.Input((5,)), keras.layers.Dense(3, "relu"), keras.layers.Dense(1)])
        )
    assert network_from_keras(narrow_relu_model(5, 3)).width == 3


def test_a_fitted_learner_pickles_and_predicts_the_same():
    import pickle

    X, y, _ = make_planted_regression(5_000, 6, 2, seed=10)
    learner = NarrowReLULearner(2, seed=0, refine_steps=50).fit(X, y)
    restored = pickle.loads(pickle.dumps(learner))
    np.testing.assert_array_equal(restored.predict(X[:50]), learner.predict(X[:50]))
    assert restored.get_params() == learner.get_params()


def test_callbacks_without_refinement_are_refused_before_any_work():
    # They were dropped silently. The data here are bad too: the callbacks are refused first.
    calls = []
    recorder = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: calls.append(epoch))
    with pytest.raises(ValueError, match=r"refine=False skips it.*Received: callbacks=\[<"):
        NarrowReLULearner(2, refine=False).fit(np.zeros(3), np.zeros(3), callbacks=[recorder])
    assert calls == []
    X, y, _ = make_planted_regression(2_000, 4, 1, seed=0)
    NarrowReLULearner(1, refine=False).fit(X, y, callbacks=[])  # nothing to drop


@pytest.mark.filterwarnings("ignore:NarrowReLULearner\\(k=4\\) received 5000 samples")
def test_a_zero_ridge_solves_a_singular_readout_by_least_squares():
    # k = 4 on a target of width 2: the readout's system is singular, and `ridge=0` once raised a bare
    # numpy LinAlgError. The minimum-norm solution fits as well as the smallest ridge.
    X, y, target = make_planted_regression(5_000, 5, 2, seed=0)
    errors = [
        relative_population_mse(
            target,
            NarrowReLULearner(4, ridge=ridge, refine=False, method="jennrich", seed=0).fit(X, y).network_,
        )
        for ridge in (1e-8, 0.0)
    ]
    assert errors[1] < 0.1
    assert errors[1] == pytest.approx(errors[0], rel=0.05)
