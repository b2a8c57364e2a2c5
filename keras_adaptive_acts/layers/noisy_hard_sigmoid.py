"""The NoisyHardSigmoid layer."""

from keras_adaptive_acts.layers.noisy_activation import NoisyActivation
from keras_adaptive_acts.registry import register


@register(activation=True)
class NoisyHardSigmoid(NoisyActivation):
    """The paper's hard sigmoid with noise in its saturated regions while training (Gulcehre et al., 2016).

    Base function `h(x) = clip(0.25 * x + 0.5, 0, 1)` (the paper's; not Keras' `relu6(x + 3) / 6`),
    linearisation `u(x) = 0.25 * x + 0.5`, linear for `|x| <= 2`. The formulas are those of
    `NoisyHardTanh` with this `h` and `u`:

    ```
    delta = h(x) - u(x);  d = -sign(x) * sign(1 - alpha);  sigma = c * (sigmoid(p * delta) - 0.5)**2
    train:      alpha * h + (1 - alpha) * u + d * sigma * eps,     eps = |xi| (NAH, default) or xi
    inference:  alpha * h + (1 - alpha) * u + d * sigma * E[eps]   (E|xi| = sqrt(2/pi))
    input noise: h(x + c * xi) (NANI), only where |x| > threshold (NANIS), NANIL as in NoisyHardTanh;
                 inference h(x)
    ```

    Non-finite inputs behave as in `NoisyHardTanh` (NaN gives NaN; output noise is unbounded in
    the saturated regions unless `clip_output=True`); the docs page has the full table.

    Args:
        noise: "output" (default), "input", "input_saturated" or "input_learned".
        alpha: > 0; mixes `h` and `u` (output noise). Default 1.1.
        c: >= 0, the noise scale. Default 0.15 (output), 0.05 (input), 0.25 (input_saturated and
            input_learned).
        half_normal: output noise only: `|xi|` (NAH) instead of `xi` (NAN). Default True.
        threshold: input_saturated only: noise where `|x| > threshold`. Default 2.
        clip_output: output noise only: clip the result to [0, 1]. Default False.
        p_initializer: initializer of `p`; default uniform in [-1, 1].
        p_regularizer: optional regularizer of `p`.
        p_constraint: optional constraint on `p`.
        seed: int or None; the same seed gives the same noise stream.
        noise_at_inference: keep drawing noise when `training=False` (Monte Carlo). Default False.
        **kwargs (Any): base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: a floating tensor (integers are cast to the compute dtype).
        training: whether to draw noise (Keras sets it in `fit`; False in `predict`).

    Examples:
        >>> import numpy as np
        >>> import keras
        >>> layer = NoisyHardSigmoid(p_initializer="zeros")  # p = 0: no noise, sigma = 0
        >>> x = np.array([[-1.0, 0.0, 4.0]], dtype="float32")
        >>> outputs = layer(x, training=True)
        >>> np.round(keras.ops.convert_to_numpy(outputs), 4).tolist()  # 1 - 0.1 * 0.5 at x = 4
        [[0.25, 0.5, 0.95]]

    Reference:
        C. Gulcehre, M. Moczulski, M. Denil, Y. Bengio, "Noisy Activation Functions", ICML 2016,
        [arXiv:1603.00391](https://arxiv.org/abs/1603.00391).
    """

    base = "sigmoid"
    DEFAULT_ALPHA = 1.1
    DEFAULT_OUTPUT_C = 0.15
    DEFAULT_HALF_NORMAL = True
    DEFAULT_THRESHOLD = 2.0
