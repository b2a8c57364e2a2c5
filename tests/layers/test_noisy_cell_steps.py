"""Noise per step in NoisyLSTMCell and NoisyGRUCell: fresh at every step, inside `lax.scan` too.

A probe cell has zero kernels and biases that pin every gate where it is exact (a hard sigmoid at
-2 or 2 has delta = 0, hence no noise) and the candidate in its saturated region, so every output
is one noise draw of the candidate: h = 0.7 + sigma * xi with xi ~ N(0, 1), by the paper's formula.
"""

import keras
import numpy as np
import pytest
from keras import ops
from layer_testing import BACKEND

from keras_adaptive_acts import NoisyGRUCell, NoisyLSTMCell
from keras_adaptive_acts.layers.noisy_cell import NOISE_STEP_DIGITS, _next_noise_step

# Many rows and few steps: the statistical checks see BATCH * STEPS * UNITS = 2,560 draws, while an
# eager loop (TensorFlow's, PyTorch's) costs per step, not per row.
BATCH, STEPS, FEATURES, UNITS = 160, 8, 3, 2
X = np.random.default_rng(0).normal(size=(BATCH, STEPS, FEATURES)).astype("float32")
CANDIDATE_Z, CANDIDATE_P, TANH_ALPHA, TANH_C = 3.0, 0.5, 1.15, 0.5
# The candidate's output noise at z = 3 (the paper's formula, as in NoisyHardTanh's docs).
DELTA = 1.0 - CANDIDATE_Z  # hard tanh minus its linearisation
MEAN = 1.0 - (1 - TANH_ALPHA) * DELTA
SIGMA = TANH_C * (1 / (1 + np.exp(-CANDIDATE_P * DELTA)) - 0.5) ** 2
CELLS = [NoisyLSTMCell, NoisyGRUCell]


def probe_cell(cell_class, seed=1, **kwargs):
    return cell_class(
        UNITS,
        seed=seed,
        kernel_initializer="zeros",
        recurrent_initializer="zeros",
        activation_c=TANH_C,
        activation_alpha=TANH_ALPHA,
        **kwargs,
    )


def pin(cell):
    """Sets a built probe cell's biases and the candidate's p: every output is one noise draw."""
    blocks = {  # the pre-activation of each unit, in Keras' bias layout
        NoisyLSTMCell: [2.0, -2.0, CANDIDATE_Z, 2.0],  # i = 1, f = 0, o = 1: h = c = candidate
        NoisyGRUCell: [-2.0, 0.0, CANDIDATE_Z],  # z = 0: h = candidate
    }[type(cell)]
    bias = np.repeat(np.array(blocks, "float32"), UNITS)
    if isinstance(cell, NoisyGRUCell) and cell.reset_after:
        bias = np.stack([bias, np.zeros_like(bias)])
    cell.bias.assign(bias)
    cell.candidate.p.assign(np.full((UNITS,), CANDIDATE_P, "float32"))


def probe(cell_class, unroll=False, seed=1, features=FEATURES, **kwargs):
    """`RNN(return_sequences=True)` around a pinned probe cell, built."""
    rnn = keras.layers.RNN(probe_cell(cell_class, seed, **kwargs), return_sequences=True, unroll=unroll)
    rnn.build((None, STEPS, features))
    pin(rnn.cell)
    return rnn


def called_in_a_graph(layer, x, **kwargs):
    """`layer(x, **kwargs)`, on TensorFlow inside a `tf.function`: there an eager loop of a few hundred
    steps runs op by op and takes seconds. JAX's eager loop is already `lax.scan`."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        return tf.function(lambda: layer(x, **kwargs))()
    return layer(x, **kwargs)


def standardized(outputs):
    return (ops.convert_to_numpy(outputs).astype("float64") - MEAN) / SIGMA


def correlation(a, b):
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def assert_standard_normal(samples):
    n = samples.size
    assert abs(samples.mean()) < 5 / np.sqrt(n)
    assert abs(samples.std() - 1) < 5 / np.sqrt(2 * n)


@pytest.mark.parametrize("unroll", [False, True], ids=["loop", "unrolled"])
@pytest.mark.parametrize("cell_class", CELLS)
def test_every_step_and_row_draws_independent_noise(cell_class, unroll):
    first = standardized(probe(cell_class, unroll)(X, training=True))
    assert_standard_normal(first)
    assert abs(correlation(first[:, :-1], first[:, 1:])) < 0.1  # step t and t + 1
    assert abs(correlation(first[:-1], first[1:])) < 0.1  # row b and b + 1
    assert all(len(np.unique(row)) == row.size for row in first)  # no step repeats a draw


@pytest.mark.parametrize("cell_class", CELLS)
def test_the_loop_draws_what_the_unrolled_loop_draws(cell_class):
    # On JAX the loop is `lax.scan`, where a seed generator cannot advance.
    x = X * 2
    looped = keras.layers.RNN(cell_class(UNITS, seed=4), return_sequences=True)
    unrolled = keras.layers.RNN(cell_class(UNITS, seed=4), return_sequences=True, unroll=True)
    for rnn in (looped, unrolled):
        rnn.build(x.shape)
    unrolled.set_weights(looped.get_weights())
    for _ in range(2):  # and so does the next call
        np.testing.assert_allclose(
            ops.convert_to_numpy(looped(x, training=True)),
            ops.convert_to_numpy(unrolled(x, training=True)),
            rtol=1e-5,
            atol=1e-6,
        )


@pytest.mark.parametrize("cell_class", CELLS)
def test_each_call_draws_afresh_and_the_seed_reproduces_the_stream(cell_class):
    rnn = probe(cell_class, seed=5)
    calls = [standardized(rnn(X, training=True)) for _ in range(2)]
    assert abs(correlation(*calls)) < 0.1
    twin = probe(cell_class, seed=5)
    for expected in calls:
        np.testing.assert_array_equal(standardized(twin(X, training=True)), expected)


@pytest.mark.parametrize("cell_class", CELLS)
def test_inference_leaves_the_noise_stream_where_it_was(cell_class):
    rnn, twin = probe(cell_class, seed=6), probe(cell_class, seed=6)
    inference = ops.convert_to_numpy(rnn(X))
    np.testing.assert_array_equal(inference, ops.convert_to_numpy(rnn(X)))
    np.testing.assert_allclose(inference, MEAN, rtol=1e-6)  # the expectation: E[xi] = 0
    np.testing.assert_array_equal(
        ops.convert_to_numpy(rnn(X, training=True)), ops.convert_to_numpy(twin(X, training=True))
    )


@pytest.mark.parametrize("cell_class", CELLS)
def test_masked_rows_do_not_make_other_rows_repeat_noise(cell_class):
    # Row 0 runs 3 steps then is masked; row 1 is masked for 3 steps, then runs: a step count taken
    # from any single row would stall while the other row runs.
    mask = np.ones((BATCH, STEPS), bool)
    mask[0, 3:] = False
    mask[1, :3] = False
    mask[2::2, STEPS // 2 :] = False
    raw = ops.convert_to_numpy(probe(cell_class)(X, training=True, mask=mask))
    outputs = standardized(raw)
    for row, row_mask in zip(outputs, mask, strict=True):
        active = row[row_mask]
        assert len(np.unique(active)) == active.size
    assert_standard_normal(outputs[mask])
    # The mask is applied (keras-nightly's RNN warns that it drops it; it drops only the output mask):
    # a masked step passes the last output on, zeros before a row's first step.
    np.testing.assert_array_equal(raw[0, 3:], np.broadcast_to(raw[0, 2], raw[0, 3:].shape))
    np.testing.assert_array_equal(raw[1, :3], 0.0)


@pytest.mark.parametrize("cell_class", CELLS)
def test_the_states_end_with_the_noise_step_which_counts_in_base_256(cell_class, dtype_policy):
    dtype_policy("mixed_float16")  # the states are float16: a single counter would stop at 2048
    steps = 256 + 44  # past one carry
    x = np.zeros((2, steps, FEATURES), "float32")
    rnn = keras.layers.RNN(cell_class(UNITS), return_state=True)
    _, *states = called_in_a_graph(rnn, x, training=True)
    names = {NoisyLSTMCell: ("h", "c", "noise_step"), NoisyGRUCell: ("h", "noise_step")}[cell_class]
    assert rnn.cell.state_size == [UNITS] * (len(names) - 1) + [NOISE_STEP_DIGITS]
    assert [tuple(state.shape) for state in states] == [(2, UNITS)] * (len(names) - 1) + [(2, 3)]
    expected_digits = [44, 1, 0]
    np.testing.assert_array_equal(ops.convert_to_numpy(states[-1]), [expected_digits] * 2)
    # Inference does not count: nothing is drawn.
    _, *states = called_in_a_graph(rnn, x)
    np.testing.assert_array_equal(ops.convert_to_numpy(states[-1]), 0)


def test_the_step_count_carries_and_wraps_like_an_odometer():
    digits = np.array([[255, 255, 255], [255, 3, 0], [7, 255, 1]], "float32")
    expected = [[0, 0, 0], [0, 4, 0], [8, 255, 1]]
    np.testing.assert_array_equal(
        ops.convert_to_numpy(_next_noise_step(ops.convert_to_tensor(digits))), expected
    )


@pytest.mark.parametrize("cell_class", CELLS)
def test_states_returned_by_one_call_continue_the_sequence(cell_class):
    rnn = keras.layers.RNN(cell_class(UNITS, seed=2), return_sequences=True, return_state=True)
    whole, *_ = rnn(X)
    half, *states = rnn(X[:, : STEPS // 2])
    rest, *_ = rnn(X[:, STEPS // 2 :], initial_state=states)
    np.testing.assert_allclose(
        np.concatenate([ops.convert_to_numpy(half), ops.convert_to_numpy(rest)], axis=1),
        ops.convert_to_numpy(whole),
        rtol=1e-5,
        atol=1e-6,
    )
    # In training the continued half counts on, so it does not replay the first half's noise.
    probe_rnn = probe(cell_class)
    first = keras.layers.RNN(probe_rnn.cell, return_sequences=True, return_state=True)
    half, *states = first(X[:, :2], training=True)
    rest, *_ = first(X[:, :2], initial_state=states, training=True)
    assert not np.any(np.isin(ops.convert_to_numpy(rest), ops.convert_to_numpy(half)))


@pytest.mark.parametrize("cell_class", CELLS)
def test_an_initial_state_without_the_noise_step_is_refused(cell_class):
    rnn = keras.layers.RNN(cell_class(UNITS))
    keras_states = [np.zeros((BATCH, UNITS), "float32")] * (2 if cell_class is NoisyLSTMCell else 1)
    with pytest.raises(ValueError, match="noise_step"):
        rnn(X, initial_state=keras_states)
    with_step = [*keras_states, np.zeros((BATCH, NOISE_STEP_DIGITS), "float32")]
    assert tuple(rnn(X, initial_state=with_step).shape) == (BATCH, UNITS)


@pytest.mark.parametrize("cell_class", CELLS)
def test_a_refused_call_leaves_no_seeds_behind(cell_class):
    # RNN gives the cell its seeds before its loop and takes them back after it, but not after a
    # loop that raised: a compiled training step traced next held that call's seeds as constants
    # on TensorFlow, and drew the same noise at every step.
    rnn = probe(cell_class, seed=7)
    keras_states = [np.zeros((BATCH, UNITS), "float32")] * (2 if cell_class is NoisyLSTMCell else 1)
    with pytest.raises(ValueError, match="noise_step"):
        rnn(X, initial_state=keras_states, training=True)
    model = keras.Sequential([keras.Input((STEPS, FEATURES)), rnn])
    model.compile(keras.optimizers.SGD(0.0), "mse", jit_compile=BACKEND != "torch")
    y = np.zeros((BATCH, STEPS, UNITS), "float32")
    before = [u.noise_stream.pair() for u in rnn.cell.noisy_units]
    losses = [float(model.train_on_batch(X, y)) for _ in range(3)]  # learning rate 0: only noise moves
    assert len(set(losses)) == 3, losses
    for then, unit in zip(before, rnn.cell.noisy_units, strict=True):
        np.testing.assert_array_equal(unit.noise_stream.pair() - then, [0, 3])


@pytest.mark.parametrize("cell_class", CELLS)
def test_a_cell_called_on_its_own_draws_afresh_each_call(cell_class):
    cell = probe(cell_class).cell
    states = cell.get_initial_state(BATCH)
    first, second = (standardized(cell(X[:, 0], states, training=True)[0]) for _ in range(2))
    assert abs(correlation(first, second)) < 0.25  # 320 pairs: |r| < 0.25 at about 4.5 sigma
    assert not np.any(first == second)


def test_stacked_and_bidirectional_cells_draw_fresh_noise_per_step():
    stacked = keras.layers.RNN(
        [probe(NoisyGRUCell, seed=1).cell, probe(NoisyGRUCell, seed=2, features=UNITS).cell],
        return_sequences=True,
    )
    outputs = standardized(stacked(X, training=True))  # the second cell's draws (z = 0)
    assert_standard_normal(outputs)
    assert abs(correlation(outputs[:, :-1], outputs[:, 1:])) < 0.1
    # Seeded, the backward copy would draw the forward layer's noise (same config): unseeded here.
    rnn = keras.layers.RNN(probe_cell(NoisyLSTMCell, seed=None), return_sequences=True)
    both = keras.layers.Bidirectional(rnn, merge_mode=None)
    both.build((None, STEPS, FEATURES))
    pin(both.forward_layer.cell)
    pin(both.backward_layer.cell)
    forward, backward = (standardized(out) for out in both(X, training=True))
    assert abs(correlation(forward, backward)) < 0.1
    for outputs in (forward, backward):
        assert_standard_normal(outputs)
    # The documented caveat: with a seed, the backward copy repeats the forward draws, step for step.
    rnn = keras.layers.RNN(probe_cell(NoisyLSTMCell, seed=3), return_sequences=True)
    seeded = keras.layers.Bidirectional(rnn, merge_mode=None)
    seeded.build((None, STEPS, FEATURES))
    pin(seeded.forward_layer.cell)
    pin(seeded.backward_layer.cell)
    forward, backward = (ops.convert_to_numpy(out) for out in seeded(X, training=True))
    np.testing.assert_array_equal(forward, backward[:, ::-1])


@pytest.mark.parametrize("cell_class", CELLS)
def test_fit_on_this_backend_without_unrolling_draws_new_noise_every_batch(cell_class):
    # On JAX the loop is `lax.scan` inside a compiled step: the generators advance before it.
    rnn = probe(cell_class, seed=7)
    model = keras.Sequential([keras.Input((STEPS, FEATURES)), rnn, keras.layers.Dense(1)])
    model.compile("sgd", "mse", jit_compile=BACKEND != "torch")
    y = np.zeros((BATCH, STEPS, 1), "float32")
    seeds = [u.noise_stream.pair() for u in rnn.cell.noisy_units]  # [seed, draws] on every backend
    model.fit(X, y, batch_size=40, epochs=1, verbose=0)
    # Four batches: every unit's generator advanced four times, once per loop.
    after = [u.noise_stream.pair() for u in rnn.cell.noisy_units]
    for before, now in zip(seeds, after, strict=True):
        np.testing.assert_array_equal(now - before, [0, 4])
