"""The RReLU layer."""

from __future__ import annotations

from keras import ops

from keras_adaptive_acts.layers.stochastic import StochasticLayer
from keras_adaptive_acts.ops.noisy import rrelu
from keras_adaptive_acts.registry import register, with_default_name
from keras_adaptive_acts.validation import check_number


@register(activation=True)
class RReLU(StochasticLayer):
    """Randomized leaky ReLU: a random negative slope per element while training.

    ```
    train:      x if x >= 0 else a * x,   a ~ U(lower, upper), drawn per element and step
    inference:  x if x >= 0 else ((lower + upper) / 2) * x
    ```

    The Keras 3 replacement of `tfa.activations.rrelu` (tensorflow-addons is end of life and does not
    import with Keras 3), with the same defaults as tensorflow-addons and PyTorch. NaN stays NaN;
    `-inf` gives `-inf`, or NaN where the slope is 0 (`lower == 0`).

    Args:
        lower: the smallest slope, finite and >= 0. Default 1/8.
        upper: the largest slope, finite and >= `lower`. Default 1/3.
        seed: int or None; the same seed gives the same slopes.
        noise_at_inference: keep random slopes when `training=False` (Monte Carlo). Default False.
        **kwargs (Any): base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: a floating tensor (integers are cast to the compute dtype).
        training: whether to draw random slopes.

    Examples:
        >>> import numpy as np
        >>> import keras
        >>> layer = RReLU(lower=0.1, upper=0.3)
        >>> np.round(keras.ops.convert_to_numpy(layer(np.array([[-2.0, 3.0]], dtype="float32"))), 4).tolist()
        [[-0.4, 3.0]]

    Reference:
        B. Xu, N. Wang, T. Chen, M. Li, "Empirical Evaluation of Rectified Activations in
        Convolutional Network", [arXiv:1505.00853](https://arxiv.org/abs/1505.00853).
    """

    def __init__(
        self,
        lower: float = 1.0 / 8.0,
        upper: float = 1.0 / 3.0,
        seed: int | None = None,
        noise_at_inference: bool = False,
        **kwargs,
    ):
        kwargs = with_default_name(self, RReLU, kwargs)
        super().__init__(seed=seed, noise_at_inference=noise_at_inference, **kwargs)
        self.lower = check_number("lower", lower, minimum=0)
        self.upper = check_number("upper", upper)
        if self.upper < self.lower:
            raise ValueError(f"`upper` must be >= `lower`. Received: lower={lower!r}, upper={upper!r}")

    def call(self, inputs, training=False):
        x = ops.cast(inputs, self.compute_dtype)
        if self.noise_active(training):
            return rrelu(x, self.uniform(x, self.lower, self.upper))
        return rrelu(x, (self.lower + self.upper) / 2.0)

    def get_config(self):
        config = super().get_config()
        config.update({"lower": self.lower, "upper": self.upper})
        return config
