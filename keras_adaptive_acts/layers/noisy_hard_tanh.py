"""The NoisyHardTanh layer."""

from keras_adaptive_acts.layers.noisy_activation import NoisyActivation
from keras_adaptive_acts.registry import register


@register(activation=True)
class NoisyHardTanh(NoisyActivation):
    """Hard tanh with noise in its saturated regions while training (Gulcehre et al., 2016).

    Base function `h(x) = clip(x, -1, 1)`, linearisation `u(x) = x`. Output noise (`noise="output"`:
    NAN, or NAH with `half_normal=True`):

    ```
    delta = h(x) - u(x)                        # 0 where |x| <= 1
    d     = -sign(x) * sign(1 - alpha)
    sigma = c * (sigmoid(p * delta) - 0.5)**2
    train:      alpha * h + (1 - alpha) * u + d * sigma * eps,     eps = xi or |xi|, xi ~ N(0, 1)
    inference:  alpha * h + (1 - alpha) * u + d * sigma * E[eps]   (E[eps] = 0 or sqrt(2/pi))
    ```

    Inference is the expectation of training, so with `alpha != 1` it is not `h(x)` where saturated.
    In the linear regime (`|x| <= 1`) both modes give exactly `h(x)`. Input noise:

    ```
    noise="input"            (NANI):  train h(x + c * xi)
    noise="input_saturated"  (NANIS): train h(x + c * xi) where |x| > threshold, else h(x)
    noise="input_learned"    (NANIL): train h(x + c * softplus(p * |delta| / (|xi| + 1e-10)) * xi)
    inference:                        h(x)
    ```

    NANI and NANIL add noise in the linear regime too, by definition. `p` is learned, one value per
    unit (last axis), for output noise and NANIL. `c` is a non-trainable variable: `NoiseAnnealing`
    (or `layer.c.assign(v)`) changes it in a compiled step without retracing.

    Where saturated, output noise with `alpha != 1` is linear in `x` (`alpha*h + (1-alpha)*u`), so
    it is unbounded unless `clip_output=True`: with `alpha > 1` it falls as `|x|` grows, and
    `x = +inf` gives `-inf` (clipped: -1). NaN gives NaN. An infinite input gives NaN where
    `p * delta` is `0 * inf` (a unit with `p == 0`, in training or with half-normal noise) and,
    in training, under NANIL; input noise otherwise gives `h(+-inf) = +-1`. The docs page has the
    full table.

    Args:
        noise: "output" (default), "input", "input_saturated" or "input_learned".
        alpha: > 0; mixes `h` and `u` (output noise). Default 1.15.
        c: >= 0, the noise scale. Default 0.5 (output), 0.05 (input), 0.25 (input_saturated and
            input_learned).
        half_normal: output noise only: `|xi|` (NAH) instead of `xi` (NAN). Default False.
        threshold: input_saturated only: noise where `|x| > threshold`. Default 1.
        clip_output: output noise only: clip the result to [-1, 1]. Default False.
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
        >>> layer = NoisyHardTanh(seed=0)
        >>> x = np.array([[-0.5, 0.25, 2.0]], dtype="float32")
        >>> outputs = layer(x)  # inference: h(x), and 1 - 0.15 at x = 2
        >>> np.round(keras.ops.convert_to_numpy(outputs), 4).tolist()
        [[-0.5, 0.25, 0.85]]

    Reference:
        C. Gulcehre, M. Moczulski, M. Denil, Y. Bengio, "Noisy Activation Functions", ICML 2016,
        [arXiv:1603.00391](https://arxiv.org/abs/1603.00391).
    """

    base = "tanh"
    DEFAULT_ALPHA = 1.15
    DEFAULT_OUTPUT_C = 0.5
    DEFAULT_HALF_NORMAL = False
    DEFAULT_THRESHOLD = 1.0
