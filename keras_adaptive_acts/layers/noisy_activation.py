"""The shared body of NoisyHardTanh and NoisyHardSigmoid (not a public layer)."""

from __future__ import annotations

from keras import constraints, initializers, ops, regularizers

from keras_adaptive_acts.exact_numbers import exact_initializer
from keras_adaptive_acts.layers.stochastic import StochasticLayer
from keras_adaptive_acts.ops.noisy import INPUT_NOISE_C, NOISE_MODES, noisy_input, noisy_output
from keras_adaptive_acts.validation import check_choice, check_number


class NoisyActivation(StochasticLayer):
    """A noisy hard activation: `base` is "tanh" or "sigmoid"; subclasses set it and the defaults.

    The default noise scale `c` is the subclass's `DEFAULT_OUTPUT_C` for output noise and the
    spec's `INPUT_NOISE_C` for the input-noise modes, the same for both bases.
    """

    base: str
    DEFAULT_ALPHA: float
    DEFAULT_OUTPUT_C: float
    DEFAULT_HALF_NORMAL: bool
    DEFAULT_THRESHOLD: float

    def __init__(
        self,
        noise: str = "output",
        alpha: float | None = None,
        c: float | None = None,
        half_normal: bool | None = None,
        threshold: float | None = None,
        clip_output: bool = False,
        p_initializer: str | dict | initializers.Initializer | None = None,
        p_regularizer: str | dict | regularizers.Regularizer | None = None,
        p_constraint: str | dict | constraints.Constraint | None = None,
        seed: int | None = None,
        noise_at_inference: bool = False,
        **kwargs,
    ):
        super().__init__(seed=seed, noise_at_inference=noise_at_inference, **kwargs)
        check_choice("noise", noise, NOISE_MODES)
        self.noise = noise
        self.alpha = check_number(
            "alpha", self.DEFAULT_ALPHA if alpha is None else alpha, minimum=0, strict=True
        )
        if c is None:
            c = self.DEFAULT_OUTPUT_C if noise == "output" else INPUT_NOISE_C[noise]
        self.initial_c = check_number("c", c, minimum=0)
        half_normal = self.DEFAULT_HALF_NORMAL if half_normal is None else half_normal
        if not isinstance(half_normal, bool):
            raise ValueError(
                f"`half_normal` must be True, False or None. Received: half_normal={half_normal!r}"
            )
        self.half_normal = half_normal
        threshold = self.DEFAULT_THRESHOLD if threshold is None else threshold
        self.threshold = check_number("threshold", threshold, minimum=0)
        if not isinstance(clip_output, bool):
            raise ValueError(f"`clip_output` must be True or False. Received: clip_output={clip_output!r}")
        self.clip_output = clip_output
        self.p_initializer = initializers.get(
            p_initializer or initializers.RandomUniform(-1.0, 1.0, seed=seed)
        )
        self.p_regularizer = regularizers.get(p_regularizer)
        self.p_constraint = constraints.get(p_constraint)

    @property
    def uses_p(self) -> bool:
        """Whether this noise mode has the learnable per-unit `p` (output noise and NANIL)."""
        return self.noise in ("output", "input_learned")

    def build(self, input_shape):
        # c is a variable so that a schedule can change it in a compiled step without retracing.
        self.c = self.add_weight(
            shape=(), name="c", initializer=exact_initializer(self.initial_c), trainable=False
        )
        if self.uses_p:
            if len(input_shape) == 0:
                raise ValueError(
                    f"`p` is per unit (the last axis): noise={self.noise!r} needs inputs of rank >= 1. "
                    f"Received: shape={tuple(input_shape)}"
                )
            units = input_shape[-1]
            if units is None:
                raise ValueError(
                    f"The last axis (units) must be known to create `p`. Received: shape={input_shape}"
                )
            self.p = self.add_weight(
                shape=(units,),
                name="p",
                initializer=exact_initializer(self.p_initializer),
                regularizer=self.p_regularizer,
                constraint=self.p_constraint,
            )

    def call(self, inputs, training=False):
        x = ops.cast(inputs, self.compute_dtype)
        xi = self.standard_normal(x) if self.noise_active(training) else None
        c = ops.cast(self.c, self.compute_dtype)
        p = ops.cast(self.p, self.compute_dtype) if self.uses_p else None
        if self.noise == "output":
            return noisy_output(
                x,
                p,
                c,
                xi,
                base=self.base,
                alpha=self.alpha,
                half_normal=self.half_normal,
                clip_output=self.clip_output,
            )
        return noisy_input(x, c, xi, base=self.base, mode=self.noise, threshold=self.threshold, p=p)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "noise": self.noise,
                "alpha": self.alpha,
                "c": self.initial_c,
                "half_normal": self.half_normal,
                "threshold": self.threshold,
                "clip_output": self.clip_output,
                "p_initializer": initializers.serialize(self.p_initializer),
                "p_regularizer": regularizers.serialize(self.p_regularizer),
                "p_constraint": constraints.serialize(self.p_constraint),
            }
        )
        return config
