"""Property-based tests (hypothesis) of every public layer, on any Keras backend.

For random ranks (those in `CASES`), shapes with sizes 0 and 1 (batch 0 too), dtype policies
(float16, bfloat16, float32, float64, mixed_float16, mixed_bfloat16), inputs mixing normal values
with 0, +-1, +-2, +-6e4, +-1e30, NaN and +-Inf, and constructor arguments drawn from each layer's
documented valid ranges:

(a) the output shape is `compute_output_shape(...)` and the documented shape; the output dtype is
    the layer's compute dtype;
(b) no NaN where every input an output depends on is finite after the cast to the compute dtype
    (training or not); NaN where the docstring promises it;
(c) `training=False` is deterministic: two calls agree bit for bit;
(d) `from_config(get_config())` has the same config and, with the weights copied, the same
    `training=False` output; a `.keras` file round trip does too.

Examples are derandomized (reproducible in CI): 20 per layer and property (8 on JAX, which compiles
each new shape). `KAA_HYPOTHESIS_EXAMPLES=200` runs a longer fuzz.
Bugs these tests found have a named test in `test_fuzz_regressions.py`.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import tempfile
from collections.abc import Callable

import keras
import numpy as np
import property_strategies as ps
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import keras_adaptive_acts as kaa
from keras_adaptive_acts.model_graph import all_layers

# Inputs beyond float16's range are drawn on purpose: casting them may warn (on JAX).
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")

# JAX compiles every op anew for each shape and dtype (about 9x TensorFlow's time here): fewer there.
DEFAULT_EXAMPLES = 8 if keras.backend.backend() == "jax" else 20
EXAMPLES = int(os.environ.get("KAA_HYPOTHESIS_EXAMPLES", DEFAULT_EXAMPLES))
settings.register_profile(
    "kaa-properties",
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
PROPERTY_SETTINGS = settings.get_profile("kaa-properties")
KERAS_FILE_SETTINGS = settings(PROPERTY_SETTINGS, max_examples=max(2, EXAMPLES // 10))


# --- what each layer promises ------------------------------------------------------------------------


def _all_axes(rank):
    return tuple(range(1, rank))


def _normalized(axis, rank):
    if axis is None:
        return _all_axes(rank)
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    return tuple(sorted(a % rank for a in axes))


def _mixing_axes(kwargs, options, rank):
    # A CompetitiveReLU part competes over the whole sample; every other part is elementwise.
    return _all_axes(rank) if "competitive_relu" in (kwargs["start"], kwargs["end"]) else ()


def _sparsified_mlp_axes(kwargs, options, rank):
    # Tokens are independent (norm, Dense and zeroth bias act per token) unless CompetitiveReLU
    # competes over the whole sample.
    return _all_axes(rank) if kwargs["activation"] == "competitive_relu" else (rank - 1,)


# The input ranks each layer documents, as tested (ranks 2 to 5 where any rank >= 2 is valid).
RANKS = {
    "CompetitiveReLU": (2, 3, 4, 5),  # rank >= 2: the competition is measured per sample
    "NoisyHardTanh": (2, 3, 4, 5),  # elementwise; `p` is per unit (the last axis)
    "NoisyHardSigmoid": (2, 3, 4, 5),
    "RReLU": (2, 3, 4, 5),  # elementwise
    "JSquaredReLU": (2, 3, 4, 5),
    "LiSHT": (2, 3, 4, 5),  # elementwise
    "Snake": (2, 3, 4, 5),  # elementwise, one frequency
    "TLU": (2, 3, 4, 5),  # elementwise; parameters per entry of `axis`
    "MixedActivation": (2, 3, 4, 5),  # as its parts
    "ActivitySparsity": (2, 3, 4, 5),  # identity; the penalty needs a batch axis
    "RestrictedLayerNormalization": (2, 3, 4, 5),  # normalises over `axis`
    "SparsifiedMLP": (2, 3),  # (batch, d_model) without zeroth bias, or (batch, L, d_model)
    "ZerothBias": (3,),  # (batch, L, d_model)
    "NoisyLSTMCell": (3,),  # (batch, time, features) into keras.layers.RNN
    "NoisyGRUCell": (3,),
}


@dataclasses.dataclass(frozen=True)
class Case:
    """A public layer: how to draw its arguments and which inputs each output depends on."""

    cls: type
    arguments: Callable  # input shape -> strategy of (constructor kwargs, call options)
    # The input axes an output entry depends on jointly, besides its own position (() elementwise).
    joint_axes: Callable = lambda kwargs, options, rank: ()
    min_sizes: tuple[int, ...] = ()  # smallest size per axis (default 0)
    rnn: bool = False  # a cell, tested inside keras.layers.RNN

    @property
    def name(self):
        return self.cls.__name__

    @property
    def ranks(self):
        return RANKS[self.name]


CASES = [
    Case(
        kaa.CompetitiveReLU,
        ps.competitive_relu_args,
        joint_axes=lambda kwargs, options, rank: _normalized(kwargs["axis"], rank),
    ),
    Case(kaa.NoisyHardTanh, ps.noisy_activation_args),
    Case(kaa.NoisyHardSigmoid, ps.noisy_activation_args),
    Case(kaa.RReLU, ps.rrelu_args),
    Case(kaa.JSquaredReLU, ps.j_squared_relu_args),
    Case(kaa.LiSHT, ps.lisht_args),
    Case(kaa.Snake, ps.snake_args),
    Case(kaa.TLU, ps.tlu_args),
    Case(kaa.MixedActivation, ps.mixed_activation_args, joint_axes=_mixing_axes),
    Case(kaa.ActivitySparsity, ps.activity_sparsity_args),
    Case(
        kaa.RestrictedLayerNormalization,
        ps.restricted_layer_normalization_args,
        joint_axes=lambda kwargs, options, rank: _normalized(kwargs["axis"], rank),
    ),
    Case(kaa.SparsifiedMLP, ps.sparsified_mlp_args, joint_axes=_sparsified_mlp_axes),
    Case(kaa.ZerothBias, ps.zeroth_bias_args),
    # Every output of a sample depends on all its steps. time >= 1: Keras' own RNN layers fail on
    # zero time steps.
    Case(
        kaa.NoisyLSTMCell,
        lambda shape: ps.noisy_cell_args(shape, lstm=True),
        joint_axes=lambda kwargs, options, rank: (1, 2),
        min_sizes=(0, 1),
        rnn=True,
    ),
    Case(
        kaa.NoisyGRUCell,
        lambda shape: ps.noisy_cell_args(shape, lstm=False),
        joint_axes=lambda kwargs, options, rank: (1, 2),
        min_sizes=(0, 1),
        rnn=True,
    ),
]


# test_sparsified_mlp_with_keras_layer_normalization_of_huge_inputs_is_finite: on torch, Keras'
# LayerNormalization (so SparsifiedMLP(norm="layer")) gives NaN for a slice with |x| above about 1e19.
TORCH_LAYER_NORM_OVERFLOW = 1e19


# Weight dtypes whose QR decomposition (the orthogonal initializer) each backend lacks on CPU.
QR_MISSING = {"tensorflow": ("bfloat16",), "jax": ("float16", "bfloat16"), "torch": ("float16", "bfloat16")}


def _keras_limitation(case, kwargs, shape, policy):
    """Examples that Keras itself cannot run (not this package's bugs)."""
    if case.cls is kaa.SparsifiedMLP and shape[-1] == 0:
        return True  # d_model = 0: keras.layers.Dense refuses 0 units for fc2
    if case.rnn and policy in QR_MISSING.get(keras.backend.backend(), ()):
        # No QR in this dtype: the orthogonal initializer fails (Keras' own GRU and LSTM too).
        return "orthogonal" in (kwargs["kernel_initializer"], kwargs["recurrent_initializer"])
    return False


# --- examples ----------------------------------------------------------------------------------------


@dataclasses.dataclass
class Example:
    case: Case
    shape: tuple[int, ...]
    policy: str
    kwargs: dict
    options: dict
    inputs: list[np.ndarray]
    training: bool

    def make_layer(self):
        kwargs = ps.materialize(self.kwargs)
        if not self.case.rnn:
            return self.case.cls(**kwargs, dtype=self.policy)
        cell = self.case.cls(**kwargs, dtype=self.policy)
        return keras.layers.RNN(cell, **self.options, dtype=self.policy)

    @property
    def call_inputs(self):
        return self.inputs if self.options.get("two_inputs") else self.inputs[0]

    @property
    def input_shape(self):
        return [self.shape, self.shape] if self.options.get("two_inputs") else self.shape

    def documented_output_shape(self):
        if not self.case.rnn:
            return self.shape
        units = self.kwargs["units"]
        if self.options["return_sequences"]:
            return (self.shape[0], self.shape[1], units)
        return (self.shape[0], units)


@st.composite
def examples(draw, case):
    rank = draw(st.sampled_from(case.ranks))
    shape = draw(ps.shapes(rank, min_sizes=case.min_sizes))
    kwargs, options = draw(case.arguments(shape))
    policy = draw(ps.policies)
    assume(not _keras_limitation(case, kwargs, shape, policy))
    count = 2 if options.get("two_inputs") else 1
    return Example(
        case=case,
        shape=shape,
        policy=policy,
        kwargs=kwargs,
        options=options,
        inputs=[draw(ps.inputs(shape)) for _ in range(count)],
        training=draw(st.booleans()),
    )


# --- helpers -----------------------------------------------------------------------------------------


def build(layer, example):
    """Builds `layer` (unless built); gives every zeroth bias values (it starts at zero) within its clip."""
    if not layer.built:
        layer.build(example.input_shape)
    for sublayer in all_layers(layer):
        if isinstance(sublayer, kaa.ZerothBias):
            rng = np.random.default_rng(len(example.shape))
            values = rng.uniform(-sublayer.clip, sublayer.clip, size=sublayer.b0.shape)
            sublayer.b0.assign(values.astype(sublayer.b0.dtype))


def numpy_output(tensor):
    return np.asarray(keras.ops.convert_to_numpy(tensor))


def as_float64(tensor_or_array):
    return numpy_output(tensor_or_array).astype("float64")


def cast_to(array, dtype):
    """`array` as the layer sees it: cast to its compute dtype (then float64, for NumPy checks)."""
    return as_float64(keras.ops.cast(array, dtype))


def statistics_dtype(compute_dtype):
    return "float32" if compute_dtype in ("float16", "bfloat16") else compute_dtype


def inference_is_stochastic(layer):
    return any(getattr(sublayer, "noise_at_inference", False) for sublayer in all_layers(layer))


def assert_bitwise_equal(actual, expected):
    actual, expected = numpy_output(actual), numpy_output(expected)
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    np.testing.assert_array_equal(actual.astype("float64"), expected.astype("float64"))  # NaN == NaN
    assert actual.tobytes() == expected.tobytes(), "equal values but different bits (signed zeros?)"


def assert_output_dtype(output, layer):
    actual = keras.backend.standardize_dtype(output.dtype)
    assert actual == layer.compute_dtype, f"output dtype {actual}, compute dtype {layer.compute_dtype}"


UNBOUNDED_CELL_INPUT_LIMIT = 10.0  # inputs a cell with unbounded units must handle without NaN


def cell_units_bounded(kwargs):
    """Whether every noisy unit of a cell stays in its hard range (documented: alpha 1 or input noise)."""
    return all(
        kwargs[f"{kind}_noise"] != "output" or kwargs[f"{kind}_alpha"] == 1.0
        for kind in ("gate", "activation")
    )


def _competition_counts(kwargs):
    """Whether a CompetitiveReLU part of MixedActivation affects the output (t selects one part at 0, 1)."""
    parts = {0.0: (kwargs["start"],), 1.0: (kwargs["end"],)}.get(
        kwargs["t"], (kwargs["start"], kwargs["end"])
    )
    return "competitive_relu" in parts


def competitive_relu_nan_slices(example, source, axes, compute):
    """The slices the docstring calls NaN: with energy or l1, those holding a NaN or whose positive
    part overflows (+Inf, or squares too large for the statistics dtype); none with count."""
    if example.kwargs["competition"] == "count":
        return np.zeros(source.shape, bool)
    positive = np.where(source > 0, source, 0.0)
    with np.errstate(all="ignore"):
        if example.kwargs["competition"] == "energy":
            positive = np.square(positive)
        numerator = np.sum(positive, axis=axes, keepdims=True)
    overflow = ~(numerator <= np.finfo(statistics_dtype(compute)).max)
    return overflow | np.any(np.isnan(source), axis=axes, keepdims=True)


# Elementwise layers whose docstrings promise NaN for a NaN input.
NAN_IN_NAN_OUT = (kaa.NoisyHardTanh, kaa.NoisyHardSigmoid, kaa.RReLU, kaa.LiSHT, kaa.Snake, kaa.TLU)


def nan_expectations(example, layer, output_shape):
    """(must_not_be_nan, must_be_nan) masks of the output, from the inputs as the layer sees them."""
    compute = layer.compute_dtype
    xs = [cast_to(x, compute) for x in example.inputs]
    rank = len(example.shape)
    axes = example.case.joint_axes(example.kwargs, example.options, rank)
    bad = ~np.isfinite(xs[0])
    must_be_nan = np.zeros(output_shape, bool)
    if example.case.rnn and example.training and example.kwargs["dropout"]:
        # Keras' dropout scales the kept inputs by 1 / (1 - rate): in float16 that can overflow.
        with np.errstate(all="ignore"):
            bad |= ~np.isfinite(cast_to(xs[0] / (1.0 - example.kwargs["dropout"]), compute))
    if example.case.cls is kaa.CompetitiveReLU:
        bad_slice = competitive_relu_nan_slices(example, xs[-1], axes, compute)
        bad = bad | bad_slice
        must_be_nan = np.broadcast_to(bad_slice, output_shape)
    elif example.case.cls is kaa.MixedActivation and _competition_counts(example.kwargs):
        # A CompetitiveReLU part (energy, per sample) is documented NaN where it overflows.
        energy = dataclasses.replace(example, kwargs={"competition": "energy"})
        bad = np.any(bad, axis=axes, keepdims=True) | competitive_relu_nan_slices(
            energy, xs[0], axes, compute
        )
    elif example.case.rnn and not cell_units_bounded(example.kwargs):
        # Documented: unbounded units can overflow the state on large inputs.
        bad = np.any(bad | (np.abs(xs[0]) > UNBOUNDED_CELL_INPUT_LIMIT), axis=axes, keepdims=True)
    elif axes:
        keras_norm = example.case.cls is kaa.SparsifiedMLP and example.kwargs["norm"] == "layer"
        if keras_norm and keras.backend.backend() == "torch":  # see TORCH_LAYER_NORM_OVERFLOW
            bad = bad | (np.abs(xs[0]) > TORCH_LAYER_NORM_OVERFLOW)
        bad = np.any(bad, axis=axes, keepdims=True)
    if example.case.cls in NAN_IN_NAN_OUT:
        must_be_nan = np.isnan(xs[0])  # documented: NaN gives NaN
    if bad.shape != output_shape and axes == _all_axes(rank):  # per sample (the RNN)
        bad = bad.reshape(bad.shape[:1] + (1,) * (len(output_shape) - 1))
    return ~np.broadcast_to(bad, output_shape), must_be_nan


# --- the properties ----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
@PROPERTY_SETTINGS
@given(data=st.data())
def test_call_properties(case, data):
    """(a) shape and dtype, (b) no NaN from finite inputs, (c) deterministic inference."""
    example = data.draw(examples(case))
    layer = example.make_layer()
    build(layer, example)
    output = layer(example.call_inputs, training=example.training)

    # (a)
    expected_shape = tuple(example.documented_output_shape())
    assert tuple(output.shape) == expected_shape
    assert tuple(layer.compute_output_shape(example.input_shape)) == expected_shape
    assert_output_dtype(output, layer)

    # (b)
    values = as_float64(output)
    must_not_be_nan, must_be_nan = nan_expectations(example, layer, expected_shape)
    assert not np.any(np.isnan(values) & must_not_be_nan), "NaN from finite inputs"
    assert np.all(np.isnan(values[must_be_nan])), "no NaN where the docstring promises one"

    if case.cls is kaa.ActivitySparsity:  # documented: returns its inputs unchanged, adds a penalty
        assert_bitwise_equal(output, keras.ops.cast(example.inputs[0], layer.compute_dtype))
        (loss,) = layer.losses
        if np.all(np.isfinite(cast_to(example.inputs[0], layer.compute_dtype))):  # 0 if empty
            assert np.isfinite(as_float64(loss)), "penalty of finite activations not finite"

    # (c)
    if not inference_is_stochastic(layer):
        first = layer(example.call_inputs, training=False)
        assert_bitwise_equal(layer(example.call_inputs, training=False), first)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
@PROPERTY_SETTINGS
@given(data=st.data())
def test_config_round_trip(case, data):
    """(d) from_config(get_config()): the same config and, with the weights copied, the same outputs."""
    example = data.draw(examples(case))
    layer = example.make_layer()
    build(layer, example)
    config = layer.get_config()
    clones = [type(layer).from_config(copy.deepcopy(config)) for _ in range(2)]  # RNN's pops "cell"
    outputs = []
    for clone in clones:
        assert clone.get_config() == config
        build(clone, example)
        clone.set_weights(layer.get_weights())
        outputs.append(clone(example.call_inputs, training=False))
    # Noise at inference comes from a seed (see ps._noise_switches): fresh copies replay it.
    assert_bitwise_equal(outputs[1], outputs[0])
    if not inference_is_stochastic(layer):
        assert_bitwise_equal(outputs[0], layer(example.call_inputs, training=False))


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
@KERAS_FILE_SETTINGS
@given(data=st.data())
def test_keras_file_round_trip(case, data):
    """(d) a model around the layer saved to `.keras` and loaded (safe mode) computes the same outputs."""
    example = data.draw(examples(case))
    layer = example.make_layer()
    inputs = [keras.Input(shape=example.shape[1:]) for _ in example.inputs]
    inputs = inputs if len(inputs) == 2 else inputs[0]
    model = keras.Model(inputs, layer(inputs))
    build(layer, example)
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "model.keras")
        model.save(path)
        loaded = [keras.saving.load_model(path, safe_mode=True) for _ in range(2)]
    outputs = [m(example.call_inputs, training=False) for m in loaded]
    assert_bitwise_equal(outputs[1], outputs[0])  # a seed generator's state is not saved: replayed
    if not inference_is_stochastic(layer):
        assert_bitwise_equal(outputs[0], model(example.call_inputs, training=False))


NOISY_CASES = [case for case in CASES if case.cls in (kaa.NoisyHardTanh, kaa.NoisyHardSigmoid)]


@pytest.mark.parametrize("case", NOISY_CASES, ids=lambda case: case.name)
@PROPERTY_SETTINGS
@given(data=st.data())
def test_zero_noise_scale_trains_as_inference(case, data):
    """`c = 0` (where NoiseAnnealing ends) draws no noise: training gives the inference output."""
    example = data.draw(examples(case))
    example.kwargs = {**example.kwargs, "c": 0.0, "noise_at_inference": False}
    layer = example.make_layer()
    build(layer, example)
    finite = np.isfinite(cast_to(example.inputs[0], layer.compute_dtype))
    trained = as_float64(layer(example.call_inputs, training=True))[finite]
    np.testing.assert_array_equal(trained, as_float64(layer(example.call_inputs, training=False))[finite])


def test_every_public_layer_is_covered():
    """Every layer in `__all__` has a case (and its ranks)."""
    public_layers = {
        name
        for name in kaa.__all__
        if isinstance(getattr(kaa, name), type) and issubclass(getattr(kaa, name), keras.layers.Layer)
    }
    assert {case.name for case in CASES} == public_layers == set(RANKS)


def test_inputs_cover_the_special_values():
    """The input strategy does produce every special value (with shapes of size 0 and 1)."""
    seen = set()

    @settings(PROPERTY_SETTINGS, max_examples=300)
    @given(st.one_of(ps.shapes(2), st.just((3, 4))).flatmap(ps.inputs))
    def collect(array):
        seen.update(repr(float(v)) for v in array.ravel() if not math.isfinite(v) or v in ps.SPECIAL_FINITE)

    collect()
    assert {repr(float(v)) for v in ps.SPECIAL_FINITE + ps.NON_FINITE} <= seen
