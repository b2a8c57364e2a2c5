"""ZerothBias: per-position addition, the clip after XLA steps, lengths, errors, saving the reference."""

import json
import warnings
import zipfile

import keras
import numpy as np
import pytest
from keras import ops
from layer_testing import (
    assert_config_round_trip,
    assert_keras_file_round_trip,
    requires_tensorflow,
    run_layer_test,
)

from keras_adaptive_acts.layers.restricted_layer_normalization import RestrictedLayerNormalization
from keras_adaptive_acts.layers.zeroth_bias import ZerothBias


def random_input(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def numpy_value(variable):
    return ops.convert_to_numpy(variable)


def test_zero_initialised_so_the_layer_starts_as_the_identity():
    x = random_input((3, 5, 4))
    layer = ZerothBias(max_len=7)
    np.testing.assert_array_equal(ops.convert_to_numpy(layer(x)), x)
    assert layer.b0.shape == (7, 4) and layer.b0.trainable
    np.testing.assert_array_equal(numpy_value(layer.b0), np.zeros((7, 4)))


@pytest.mark.parametrize("length", [6, 4, 1])
def test_adds_the_first_rows_of_b0_per_position(length):
    layer = ZerothBias(max_len=6)
    layer.build((None, length, 3))
    b0 = random_input((6, 3), seed=1)
    layer.b0.assign(b0)
    x = random_input((2, length, 3), seed=2)
    np.testing.assert_allclose(ops.convert_to_numpy(layer(x)), x + b0[None, :length], rtol=0, atol=1e-6)


def test_max_len_none_takes_the_static_length():
    layer = ZerothBias()
    layer(random_input((2, 5, 3)))
    assert layer.max_len == 5 and layer.b0.shape == (5, 3)
    with pytest.raises(ValueError, match="max_len"):
        ZerothBias().build((None, None, 3))


def test_longer_sequences_raise():
    with pytest.raises(ValueError, match="longer than `max_len`"):
        ZerothBias(max_len=4)(random_input((2, 5, 3)))
    layer = ZerothBias(max_len=4)
    layer(random_input((2, 3, 3)))
    with pytest.raises(ValueError, match="longer than `max_len`"):
        layer(random_input((2, 5, 3)))


@requires_tensorflow
def test_longer_sequences_of_a_length_known_only_at_run_time_raise():
    import tensorflow as tf

    layer = ZerothBias(max_len=4)
    layer(random_input((2, 3, 3)))
    # Only known at run time: TensorFlow's slice raises (never a silent clip of the length).
    # (JAX and PyTorch always know the length when the layer runs: the check above covers them.)
    traced = tf.function(layer, input_signature=[tf.TensorSpec((None, None, 3))])
    assert tuple(traced(tf.zeros((2, 4, 3))).shape) == (2, 4, 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="size"):
        traced(tf.zeros((2, 5, 3)))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"clip": -0.1}, "clip"),
        ({"clip": float("nan")}, "clip"),
        ({"clip": float("inf")}, "clip"),
        ({"max_len": 0}, "max_len"),
        ({"max_len": 2.5}, "max_len"),
        ({"max_len": True}, "max_len"),
        ({"reference_norm": keras.layers.Dense(3)}, "LayerNormalization"),
        ({"reference_norm": keras.layers.LayerNormalization(scale=False)}, "gamma"),
        ({"reference_norm": keras.layers.LayerNormalization(name="a"), "reference_norm_name": "b"}, "name"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ZerothBias(**{"max_len": 4, **kwargs})


@pytest.mark.parametrize("shape", [(None, 4), (None, 2, 3, 4)])
def test_rank_other_than_three_raises(shape):
    with pytest.raises(ValueError, match="batch, length, d_model"):
        ZerothBias(max_len=4).build(shape)


def push_b0_up(model, x, epochs=3):
    """Fits targets far above the inputs with a big SGD step: the loss pushes b0 far beyond the clip."""
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse", jit_compile=True)
    model.fit(x, x + 10.0, batch_size=8, epochs=epochs, verbose=0)


def test_clip_relative_to_the_reference_gamma_holds_after_jit_compiled_steps():
    x = random_input((32, 5, 4), seed=3)
    inputs = keras.Input((5, 4))
    norm = keras.layers.LayerNormalization(
        center=False,  # a beta would absorb the shift and stop pushing b0 once it overshoots
        gamma_initializer=keras.initializers.RandomUniform(0.2, 3.0, seed=0),
    )
    bias = ZerothBias(max_len=8, clip=0.1, reference_norm=norm)
    model = keras.Model(inputs, bias(norm(inputs)))
    push_b0_up(model, x)
    b0, gamma = numpy_value(bias.b0), numpy_value(norm.gamma)
    bound = 0.1 * np.abs(gamma)
    assert np.all(np.abs(b0) <= bound * (1 + 1e-6))
    # The bound is reached (the gradient alone would take b0 far beyond it) and it is gamma's, per channel.
    np.testing.assert_allclose(b0[:5], np.broadcast_to(bound, (5, 4)), rtol=1e-6)
    np.testing.assert_array_equal(b0[5:], 0.0)  # rows beyond the sequence get no gradient
    assert np.ptp(bound) > 0.05


def test_clip_follows_a_restricted_norm_and_a_gamma_raised_between_steps():
    x = random_input((32, 5, 4), seed=4)
    inputs = keras.Input((5, 4))
    norm = RestrictedLayerNormalization(mode="finetune")
    bias = ZerothBias(max_len=5, clip=0.1, reference_norm=norm)
    model = keras.Model(inputs, bias(norm(inputs)))
    norm.gamma.assign(np.full(4, 0.5, "float32"))
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse", jit_compile=True)
    model.fit(x, x + 10.0, batch_size=8, epochs=1, verbose=0)
    gamma = numpy_value(norm.gamma)
    assert np.all(np.abs(numpy_value(bias.b0)) <= 0.1 * np.abs(gamma) * (1 + 1e-6))
    norm.gamma.assign(np.full(4, 2.0, "float32"))  # as GammaUplift does: no retracing
    model.fit(x, x + 10.0, batch_size=8, epochs=1, verbose=0)
    b0, gamma = numpy_value(bias.b0), numpy_value(norm.gamma)
    assert np.abs(b0).max() > 0.1 * 0.6  # the compiled step saw the new, larger gamma
    assert np.all(np.abs(b0) <= 0.1 * np.abs(gamma) * (1 + 1e-6))


@pytest.mark.parametrize("jit_compile", [True, False])
def test_clip_follows_a_frozen_reference_and_a_frozen_gamma_raised_by_gamma_uplift(jit_compile):
    """On JAX the optimizer step cannot read a frozen gamma (the trainer holds it outside the model)."""
    from keras_adaptive_acts import SparsifiedMLP
    from keras_adaptive_acts.callbacks import GammaUplift

    x = random_input((32, 5, 4), seed=5)
    inputs = keras.Input((5, 4))
    norm = keras.layers.LayerNormalization(center=False, name="frozen_ln")
    bias = ZerothBias(max_len=5, clip=0.1, reference_norm=norm)
    model = keras.Model(inputs, bias(norm(inputs)))  # only b0 trains: the loss pushes it up
    gamma = np.array([0.2, 0.5, 0.3, 0.4], "float32")
    norm.gamma.assign(gamma)
    norm.trainable = False  # fine-tuning with the norm frozen
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse", jit_compile=jit_compile)
    model.fit(x, x + 10.0, batch_size=8, epochs=1, verbose=0)
    np.testing.assert_array_equal(numpy_value(norm.gamma), gamma)  # frozen
    b0 = numpy_value(bias.b0)
    assert np.all(np.abs(b0) <= 0.1 * gamma * (1 + 1e-6))
    np.testing.assert_allclose(b0, np.broadcast_to(0.1 * gamma, (5, 4)), rtol=1e-6)  # reached

    # GammaUplift raises the frozen gamma between steps (floor 1 after the first step of 4): the
    # compiled step clips with the raised value from the next step on.
    model.fit(x, x + 10.0, batch_size=8, epochs=1, verbose=0, callbacks=[GammaUplift(1, layers=[norm])])
    np.testing.assert_array_equal(numpy_value(norm.gamma), np.ones(4, "float32"))
    b0 = numpy_value(bias.b0)
    np.testing.assert_allclose(b0, np.full((5, 4), 0.1), rtol=1e-6)  # the raised bound, reached

    # The same through SparsifiedMLP, freezing its own norm.
    block = SparsifiedMLP(8, max_len=5, clip=0.1)
    block_model = keras.Model(inputs, block(inputs))
    block.norm.gamma.assign(np.full(4, 1.5, "float32"))  # the scratch norm keeps gamma >= 1
    block.norm.trainable = False
    block_model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse", jit_compile=jit_compile)
    block_model.fit(x, x + 10.0, batch_size=8, epochs=2, verbose=0)
    b0 = numpy_value(block.zeroth_bias.b0)
    assert np.all(np.isfinite(b0)) and np.all(np.abs(b0) <= 0.15 * (1 + 1e-6)) and np.abs(b0).max() > 0


def test_absolute_clip_without_reference():
    x = random_input((32, 5, 4), seed=5)
    bias = ZerothBias(max_len=5, clip=0.05)
    model = keras.Sequential([keras.Input((5, 4)), bias])
    push_b0_up(model, x)
    np.testing.assert_allclose(numpy_value(bias.b0), 0.05, rtol=1e-6)
    zero = ZerothBias(max_len=5, clip=0.0)
    push_b0_up(keras.Sequential([keras.Input((5, 4)), zero]), x, epochs=1)
    np.testing.assert_array_equal(numpy_value(zero.b0), 0.0)


@pytest.mark.parametrize(
    "init_kwargs",
    [{"max_len": 6, "clip": 0.2}, {"clip": 0.05}],  # max_len None: the input's length, then saved
    ids=["max_len", "length_from_the_input"],
)
def test_passes_the_layer_test_harness(init_kwargs, tmp_path):
    run_layer_test(
        ZerothBias,
        init_kwargs,
        input_shape=(4, 5, 3),
        expected_num_trainable_weights=1,  # b0
        expected_num_non_trainable_weights=0,
        supports_masking=True,
        tmp_path=tmp_path,
    )


def test_config_round_trip_records_the_reference_by_name():
    norm = keras.layers.LayerNormalization(name="pre_mlp_norm")
    layer = ZerothBias(max_len=9, clip=0.2, reference_norm=norm)
    clone = assert_config_round_trip(layer)
    assert clone.reference_norm_name == "pre_mlp_norm" and clone.reference_norm is None
    assert clone.max_len == 9 and clone.clip == 0.2
    assert "position" not in clone.get_config()
    assert assert_config_round_trip(ZerothBias(max_len=3)).reference_norm_name is None


def test_the_removed_position_argument_warns_and_changes_nothing():
    # `position` was recorded but never used (version 0.1.0): passing it still builds the same layer.
    with pytest.warns(DeprecationWarning, match="position=.... is deprecated and ignored") as caught:
        layer = ZerothBias(max_len=4, clip=0.2, position="output", name="bias")
    assert caught[0].filename == __file__  # the warning points at the caller's line
    assert layer.get_config() == ZerothBias(max_len=4, clip=0.2, name="bias").get_config()
    assert not hasattr(layer, "position")
    b0 = random_input((4, 3), seed=9) * 0.1
    x = random_input((2, 4, 3), seed=10)
    layer.build(x.shape)
    layer.b0.assign(b0)
    np.testing.assert_allclose(ops.convert_to_numpy(layer(x)), x + b0[None], rtol=0, atol=1e-6)


def _add_position_to_zeroth_bias_configs(node, position):
    """Writes `position` into each ZerothBias config under `node`, as version 0.1.0 saved it; counts them."""
    count = 0
    if isinstance(node, dict):
        if node.get("class_name") == "ZerothBias":
            node["config"]["position"] = position
            count += 1
        for value in node.values():
            count += _add_position_to_zeroth_bias_configs(value, position)
    elif isinstance(node, list):
        for value in node:
            count += _add_position_to_zeroth_bias_configs(value, position)
    return count


def test_configs_and_keras_files_saved_with_position_load_without_a_warning(tmp_path):
    config = ZerothBias(max_len=3, clip=0.2).get_config()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        clone = ZerothBias.from_config({**config, "position": "output"})
    assert clone.get_config() == config

    model = model_with_reference("output")
    model.get_layer("b0").b0.assign(random_input((6, 4), seed=11) * 0.01)
    model.save(tmp_path / "new.keras")
    # The same file as version 0.1.0 wrote it: the same weights, and `position` in the layer's config.
    with zipfile.ZipFile(tmp_path / "new.keras") as new, zipfile.ZipFile(tmp_path / "old.keras", "w") as old:
        for item in new.infolist():
            data = new.read(item.filename)
            if item.filename == "config.json":
                saved = json.loads(data)
                assert _add_position_to_zeroth_bias_configs(saved, "output") == 1
                data = json.dumps(saved).encode()
            old.writestr(item, data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = keras.saving.load_model(tmp_path / "old.keras", safe_mode=True)
    assert not [str(w.message) for w in caught if "position" in str(w.message)]
    assert "position" not in loaded.get_layer("b0").get_config()
    assert loaded.get_layer("b0").reference_norm is loaded.get_layer("ln")
    x = random_input((3, 5, 4), seed=12)
    np.testing.assert_allclose(ops.convert_to_numpy(loaded(x)), ops.convert_to_numpy(model(x)), rtol=1e-6)


def model_with_reference(position):
    """LN -> ZerothBias -> Dense (`position="input"`) or LN -> Dense -> ZerothBias (`"output"`)."""
    keras.utils.set_random_seed(0)  # the Dense kernel decides which way the loss pushes b0
    inputs = keras.Input((5, 4))
    norm = keras.layers.LayerNormalization(name="ln")
    hidden = norm(inputs)
    bias = ZerothBias(max_len=6, reference_norm=norm, name="b0")
    if position == "input":
        outputs = keras.layers.Dense(4, name="fc")(bias(hidden))
    else:
        outputs = bias(keras.layers.Dense(4, name="fc")(hidden))
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("position", ["input", "output"])
def test_keras_file_round_trip_relinks_the_reference(position, tmp_path):
    model = model_with_reference(position)
    model.get_layer("b0").b0.assign(random_input((6, 4), seed=6) * 0.01)
    model.get_layer("ln").gamma.assign(np.linspace(0.5, 2.0, 4).astype("float32"))
    x = random_input((8, 5, 4), seed=7)
    loaded = assert_keras_file_round_trip(model, x, tmp_path / f"{position}.keras")
    restored = loaded.get_layer("b0")
    assert restored.reference_norm is loaded.get_layer("ln")
    # The relinked clip reads the loaded model's gamma in a compiled step.
    push_b0_up(loaded, x, epochs=1)
    bound = np.broadcast_to(0.1 * np.abs(numpy_value(loaded.get_layer("ln").gamma)), (5, 4))
    b0 = np.abs(numpy_value(restored.b0))[:5]  # row 5 is never used
    assert np.all(b0 <= bound * (1 + 1e-6))  # the invariant, for every entry
    assert np.mean(np.isclose(b0, bound, rtol=1e-5)) >= 0.5  # and the clip is what stopped them


def test_clone_model_links_the_clone_to_its_own_norm():
    model = model_with_reference("input")
    clone = keras.models.clone_model(model)
    assert clone.get_layer("b0").reference_norm is clone.get_layer("ln")
    assert clone.get_layer("ln") is not model.get_layer("ln")


def test_a_reference_outside_the_ancestors_is_linked_by_hand(tmp_path):
    inputs = keras.Input((5, 4))
    norm = keras.layers.LayerNormalization(name="side_norm")
    bias = ZerothBias(max_len=5, reference_norm=norm, name="b0")
    outputs = keras.layers.Concatenate()([norm(inputs), bias(inputs)])  # norm is not an ancestor of bias
    model = keras.Model(inputs, outputs)
    model.save(tmp_path / "side.keras")
    loaded = keras.saving.load_model(tmp_path / "side.keras", safe_mode=True)
    restored = loaded.get_layer("b0")
    assert restored.reference_norm is None and restored.reference_norm_name == "side_norm"
    x = random_input((8, 5, 4), seed=8)
    loaded.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse", jit_compile=True)
    with pytest.raises(ValueError, match="link_reference_norm"):
        loaded.fit(x, np.concatenate([x, x + 10.0], -1), verbose=0)
    if keras.backend.backend() == "jax":
        # Keras' JAX trainer empties the variables before the first step and refills them after the
        # epoch, so an error inside `fit` leaves them empty: load the file again.
        loaded = keras.saving.load_model(tmp_path / "side.keras", safe_mode=True)
        restored = loaded.get_layer("b0")
    restored.link_reference_norm(loaded)
    assert restored.reference_norm is loaded.get_layer("side_norm")
    loaded.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse", jit_compile=True)
    loaded.fit(x, np.concatenate([x, x + 10.0], -1), verbose=0)
    bound = 0.1 * np.abs(numpy_value(loaded.get_layer("side_norm").gamma))
    assert np.all(np.abs(numpy_value(restored.b0)) <= bound * (1 + 1e-6))
    with pytest.raises(ValueError, match="No layer named"):
        ZerothBias(max_len=5, reference_norm_name="missing").link_reference_norm(loaded)
    with pytest.raises(ValueError, match="nothing to link"):
        ZerothBias(max_len=5).link_reference_norm(loaded)
