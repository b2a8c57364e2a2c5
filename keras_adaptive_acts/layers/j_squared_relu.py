"""The JSquaredReLU layer."""

from __future__ import annotations

import keras
from keras import ops

from keras_adaptive_acts.ops.sparsity import j_squared_relu
from keras_adaptive_acts.registry import register, with_default_name


@register(activation=True)
class JSquaredReLU(keras.layers.Layer):
    """J-SquaredReLU, the activation that raises activation sparsity (Peng et al., 2023).

    ```
    jsrelu(x)  = relu(x) + 0.5 * relu(x)**2
    jsrelu'(x) = (x + 1) * 1[x > 0]            # 0 at exactly x = 0, as ReLU's
    ```

    A drop-in replacement for the ReLU of an MLP block. To switch a trained ReLU network over
    gradually, use `MixedActivation("relu", "j_squared_relu")` with the `ActivationMixing` callback.

    Args:
        **kwargs (Any): base layer keyword arguments, such as `name` and `dtype`.

    Examples:
        >>> import numpy as np
        >>> keras.ops.convert_to_numpy(JSquaredReLU()(np.array([[-1.0, 0.0, 1.0, 2.0]]))).tolist()
        [[0.0, 0.0, 1.5, 4.0]]

    Reference:
        Z. Peng, L. Qi, Y. Shi, Y. Gao, "A Theoretical Explanation of Activation Sparsity through
        Flat Minima and Adversarial Robustness", [arXiv:2309.03004](https://arxiv.org/abs/2309.03004).
    """

    def __init__(self, **kwargs):
        super().__init__(**with_default_name(self, JSquaredReLU, kwargs))
        self.supports_masking = True

    def call(self, inputs):
        return j_squared_relu(ops.cast(inputs, self.compute_dtype))

    def compute_output_shape(self, input_shape):
        return input_shape
