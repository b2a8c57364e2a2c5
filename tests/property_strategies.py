"""Hypothesis strategies of the property tests: shapes, dtype policies, inputs and valid layer arguments.

Every argument strategy draws from the range the layer's docstring calls valid; each returns
`(constructor_kwargs, call_options)`, the options being how the test wraps or calls the layer.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from hypothesis import strategies as st

from keras_adaptive_acts import NoisyHardSigmoid, NoisyHardTanh, RReLU, regularizers

DTYPES = ("float16", "bfloat16", "float32", "float64")
POLICIES = (*DTYPES, "mixed_float16", "mixed_bfloat16")
# The kinks of the hard functions (+-1, +-2), 0 (both signs), a value near float16's largest (65504)
# and one that overflows float16 and, squared, float32.
SPECIAL_FINITE = (0.0, -0.0, 1.0, -1.0, 2.0, -2.0, 6e4, -6e4, 1e30, -1e30)
NON_FINITE = (math.nan, math.inf, -math.inf)
MAX_DIM = 4

policies = st.sampled_from(POLICIES)


class Instance:
    """A constructor argument that is a Keras object: created by `materialize`, outside the strategies.

    (Keras draws unseeded seeds with the `random` module, which hypothesis forbids in strategies.)
    `as_config=True` gives the object's config dict instead, the other documented form.
    """

    def __init__(self, cls, build_shape=None, as_config=False, **kwargs):
        self.cls, self.build_shape, self.as_config, self.kwargs = cls, build_shape, as_config, kwargs

    def __repr__(self):
        arguments = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"{self.cls.__name__}({arguments}){'.get_config()' if self.as_config else ''}"

    def create(self):
        obj = self.cls(**self.kwargs)
        if self.build_shape is not None:
            obj.build(self.build_shape)
        return keras.saving.serialize_keras_object(obj) if self.as_config else obj


def materialize(kwargs: dict) -> dict:
    """`kwargs` with every `Instance` replaced by a new object."""
    return {k: v.create() if isinstance(v, Instance) else v for k, v in kwargs.items()}


seeds = st.one_of(st.none(), st.integers(0, 2**16))


def shapes(rank: int, *, min_sizes: tuple[int, ...] = ()) -> st.SearchStrategy[tuple[int, ...]]:
    """Static shapes of `rank` with every size in [0, MAX_DIM] (batch in [0, 3]), at least `min_sizes`."""
    lows = list(min_sizes) + [0] * (rank - len(min_sizes))
    highs = [3] + [MAX_DIM] * (rank - 1)
    return st.tuples(*(st.integers(low, high) for low, high in zip(lows, highs, strict=True)))


@st.composite
def inputs(draw, shape: tuple[int, ...]) -> np.ndarray:
    """Normal values of a drawn scale, some entries replaced by special values (maybe NaN and +-Inf)."""
    size = math.prod(shape)
    rng = np.random.default_rng(draw(st.integers(0, 2**16), label="values_seed"))
    scale = draw(st.sampled_from((1.0, 0.01, 100.0)), label="scale")
    values = rng.normal(size=size) * scale
    specials = SPECIAL_FINITE + (NON_FINITE if draw(st.booleans(), label="non_finite") else ())
    if size:
        entry = st.tuples(st.integers(0, size - 1), st.sampled_from(specials))
        for index, value in draw(st.lists(entry, max_size=min(size, 6)), label="special_entries"):
            values[index] = value
    return values.reshape(shape).astype(draw(st.sampled_from(("float32", "float64")), label="array_dtype"))


def _constant(low: float, high: float):
    return st.floats(low, high, allow_subnormal=False).map(lambda v: keras.initializers.Constant(v))


def _initializer(low: float, high: float):
    """None (the layer's default), a constant in [low, high] or a seeded random initializer."""
    return st.one_of(
        st.none(),
        _constant(low, high),
        st.integers(0, 100).map(lambda s: keras.initializers.RandomUniform(low, high, seed=s)),
    )


def _axes(rank: int):
    """A non-empty set of non-batch axes of a rank-`rank` input: None, an int or a tuple, any sign."""
    single = st.integers(1, rank - 1).flatmap(lambda a: st.sampled_from((a, a - rank)))
    several = st.lists(st.integers(1, rank - 1), min_size=1, max_size=rank - 1, unique=True).flatmap(
        lambda axes: st.tuples(*(st.sampled_from((a, a - rank)) for a in axes))
    )
    return st.one_of(st.none(), single, several)


def _noise_switches():
    """(seed, noise_at_inference): noise at inference only with a seed, so clones replay the noise."""
    return seeds.flatmap(lambda s: st.tuples(st.just(s), st.just(False) if s is None else st.booleans()))


@st.composite
def competitive_relu_args(draw, shape):
    init = draw(st.sampled_from(("relu", "competition")))
    beta_initializer = draw(_initializer(-2.0, 2.0))
    # init="relu" needs scale_bound > 1 unless beta is given (documented).
    low = 1.0 if init == "relu" and beta_initializer is None else 0.0
    kwargs = {
        "competition": draw(st.sampled_from(("energy", "l1", "count"))),
        "scale_bound": draw(st.floats(low, 100.0, exclude_min=True, allow_subnormal=False)),
        "eps": draw(st.floats(1e-8, 1.0, allow_subnormal=False)),
        "axis": draw(_axes(len(shape))),
        "init": init,
        "alpha_initializer": draw(_initializer(-4.0, 4.0)),
        "beta_initializer": beta_initializer,
    }
    return kwargs, {"two_inputs": draw(st.booleans())}


@st.composite
def noisy_activation_args(draw, shape):
    seed, noise_at_inference = draw(_noise_switches())
    kwargs = {
        "noise": draw(st.sampled_from(("output", "input", "input_saturated", "input_learned"))),
        "alpha": draw(st.one_of(st.none(), st.just(1.0), st.floats(0.01, 3.0))),
        "c": draw(st.one_of(st.none(), st.just(0.0), st.floats(0.0, 2.0))),
        "half_normal": draw(st.one_of(st.none(), st.booleans())),
        "threshold": draw(st.one_of(st.none(), st.floats(0.0, 4.0))),
        "clip_output": draw(st.booleans()),
        "p_initializer": draw(_initializer(-3.0, 3.0)),
        "seed": seed,
        "noise_at_inference": noise_at_inference,
    }
    return kwargs, {}


@st.composite
def rrelu_args(draw, shape):
    seed, noise_at_inference = draw(_noise_switches())
    lower = draw(st.one_of(st.just(0.0), st.floats(0.0, 1.0)))
    upper = lower + draw(st.one_of(st.just(0.0), st.floats(0.0, 1.0)))
    return {"lower": lower, "upper": upper, "seed": seed, "noise_at_inference": noise_at_inference}, {}


def j_squared_relu_args(shape):
    return st.just(({}, {}))


def lisht_args(shape):
    return st.just(({}, {}))


@st.composite
def snake_args(draw, shape):
    if draw(st.booleans()):
        return {"frequency": draw(st.one_of(st.just(0.0), st.floats(-4.0, 4.0, allow_subnormal=False)))}, {}
    return {"frequency_initializer": draw(_initializer(-4.0, 4.0))}, {}


@st.composite
def tlu_args(draw, shape):
    rank = len(shape)
    single = st.integers(1, rank - 1).flatmap(lambda a: st.sampled_from((a, a - rank)))
    several = st.lists(st.integers(1, rank - 1), min_size=1, max_size=rank - 1, unique=True)
    kwargs = {
        "affine": draw(st.booleans()),
        "axis": draw(st.one_of(single, several)),
        "tau_initializer": draw(_initializer(-2.0, 2.0)),
        "alpha_initializer": draw(_initializer(-2.0, 2.0)),
    }
    return {key: value for key, value in kwargs.items() if value is not None}, {}


ELEMENTWISE_PARTS = (
    "relu",
    "gelu",
    "tanh",
    "sigmoid",
    "linear",
    "j_squared_relu",
    "rrelu",
    "noisy_hard_tanh",
    "noisy_hard_sigmoid",
    "lisht",
    "snake",
    "tlu",
)


@st.composite
def _mixing_part(draw):
    """A part of MixedActivation: a Keras or package activation name, or a (seeded) layer instance."""
    kind = draw(st.sampled_from(("name", "competitive_relu", "instance")))
    if kind == "name":
        return draw(st.sampled_from(ELEMENTWISE_PARTS))
    if kind == "competitive_relu":
        return "competitive_relu"
    cls = draw(st.sampled_from((RReLU, NoisyHardTanh, NoisyHardSigmoid)))
    kwargs, _ = draw(rrelu_args(()) if cls is RReLU else noisy_activation_args(()))
    return Instance(cls, **kwargs)


@st.composite
def mixed_activation_args(draw, shape):
    t = draw(st.one_of(st.sampled_from((0.0, 1.0)), st.floats(0.0, 1.0)))
    return {"start": draw(_mixing_part()), "end": draw(_mixing_part()), "t": t}, {}


@st.composite
def activity_sparsity_args(draw, shape):
    strength = draw(st.one_of(st.just(0.0), st.floats(0.0, 10.0)))
    kind = draw(st.sampled_from(("l1", "hoyer", "kl")))
    if kind == "l1":
        regularizer = Instance(regularizers.ActivationL1, strength=strength)
    elif kind == "hoyer":
        regularizer = Instance(regularizers.HoyerSquare, strength=strength)
    else:
        rho = draw(st.floats(0.0, 1.0, exclude_min=True, exclude_max=True, allow_subnormal=False))
        regularizer = Instance(regularizers.KLSparsity, rho=rho, strength=strength)
    regularizer.as_config = draw(st.booleans())
    return {"regularizer": regularizer}, {}


@st.composite
def restricted_layer_normalization_args(draw, shape):
    mode = draw(st.sampled_from(("scratch", "finetune")))
    axis = draw(_axes(len(shape)).filter(lambda a: a is not None))
    center = draw(st.sampled_from((None, False) if mode == "scratch" else (None, False, True)))
    kwargs = {
        "mode": mode,
        "axis": list(axis) if isinstance(axis, tuple) else axis,
        # Documented as "small positive float" (0 is accepted but divides by zero on constant slices).
        "epsilon": draw(st.floats(1e-6, 0.1)),
        "center": center,
        "gamma_initializer": draw(_initializer(-3.0, 3.0)) or "ones",
        "beta_initializer": draw(_initializer(-3.0, 3.0)) or "zeros",
        "gamma_constraint": draw(st.sampled_from((None, "non_neg", "unit_norm"))),
    }
    return kwargs, {}


def _max_len(length: int):
    """None (take the input's length) or an int >= max(1, length)."""
    return st.one_of(st.none(), st.integers(max(1, length), max(1, length) + 3))


@st.composite
def zeroth_bias_args(draw, shape):
    kwargs = {
        "max_len": draw(_max_len(shape[1])),
        "clip": draw(st.one_of(st.just(0.0), st.floats(0.0, 2.0))),
    }
    if draw(st.booleans()):  # the reference form: |b0| <= clip * |gamma| (acts only in training)
        name = f"reference_norm_{draw(st.integers(0, 9))}"
        kwargs["reference_norm"] = Instance(keras.layers.LayerNormalization, (None, shape[-1]), name=name)
    return kwargs, {}


SPARSIFIED_MLP_ACTIVATIONS = (
    "j_squared_relu",
    "relu",
    "gelu",
    "competitive_relu",
    "rrelu",
    "noisy_hard_tanh",
)


@st.composite
def sparsified_mlp_args(draw, shape):
    zeroth_bias = len(shape) == 3 and draw(st.booleans())  # rank 2 only without zeroth bias
    kwargs = {
        "hidden_units": draw(st.integers(1, MAX_DIM)),
        "activation": draw(st.sampled_from(SPARSIFIED_MLP_ACTIVATIONS)),
        "norm": draw(st.sampled_from(("restricted", "layer"))),
        "zeroth_bias": zeroth_bias,
        "zeroth_bias_position": draw(st.sampled_from(("input", "output"))),
        "max_len": draw(_max_len(shape[1])) if zeroth_bias else None,
        "clip": draw(st.floats(0.0, 1.0)),
        "residual": draw(st.booleans()),
        "dropout": draw(st.one_of(st.just(0.0), st.floats(0.0, 0.9))),
        "epsilon": draw(st.floats(1e-6, 0.1)),
        "seed": draw(seeds),
    }
    return kwargs, {}


_CELL_INITIALIZERS = ("glorot_uniform", "orthogonal", "zeros", "ones", "random_normal")


@st.composite
def noisy_cell_args(draw, shape, *, lstm: bool):
    seed, noise_at_inference = draw(_noise_switches())
    noise_modes = st.sampled_from(("output", "input", "input_saturated", "input_learned"))
    kwargs = {
        "units": draw(st.integers(1, MAX_DIM)),
        "gate_noise": draw(noise_modes),
        "activation_noise": draw(noise_modes),
        "gate_alpha": draw(st.one_of(st.none(), st.just(1.0), st.floats(0.05, 3.0))),
        "activation_alpha": draw(st.one_of(st.none(), st.just(1.0), st.floats(0.05, 3.0))),
        "gate_c": draw(st.one_of(st.none(), st.floats(0.0, 2.0))),
        "activation_c": draw(st.one_of(st.none(), st.floats(0.0, 2.0))),
        "use_bias": draw(st.booleans()),
        "kernel_initializer": draw(st.sampled_from(_CELL_INITIALIZERS)),
        "recurrent_initializer": draw(st.sampled_from(_CELL_INITIALIZERS)),
        "bias_initializer": draw(st.sampled_from(("zeros", "ones", "random_normal"))),
        "dropout": draw(st.one_of(st.just(0.0), st.floats(0.0, 0.5))),
        "recurrent_dropout": draw(st.one_of(st.just(0.0), st.floats(0.0, 0.5))),
        "implementation": draw(st.sampled_from((1, 2))),
        "seed": seed,
        "noise_at_inference": noise_at_inference,
    }
    if lstm:
        kwargs["unit_forget_bias"] = draw(st.booleans())
    else:
        kwargs["reset_after"] = draw(st.booleans())
    options = {
        "return_sequences": draw(st.booleans()),
        "go_backwards": draw(st.booleans()),
        "unroll": draw(st.booleans()),
    }
    return kwargs, options
