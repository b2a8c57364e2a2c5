"""The LiSHT layer."""

from __future__ import annotations

import keras
from keras import ops

from keras_adaptive_acts.ops.addons import lisht
from keras_adaptive_acts.registry import register, with_default_name


@register(activation=True)
class LiSHT(keras.layers.Layer):
    """LiSHT, the linearly scaled hyperbolic tangent, as a layer (no weights).

    ```
    lisht(x)  = x * tanh(x)
    lisht'(x) = tanh(x) + x * (1 - tanh(x)**2)
    ```

    The Keras 3 replacement of `tfa.activations.lisht`; `activation_layer("lisht")` and the
    package's tools (the tuner, `swap_activations`, `MixedActivation`) know it as `"lisht"`. The
    plain function is `keras_adaptive_acts.ops.lisht`. `+-inf` gives `+inf`; NaN stays NaN.

    Args:
        **kwargs (Any): base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: a floating tensor of any shape (integers are cast to the compute dtype).

    Examples:
        >>> import numpy as np
        >>> np.round(keras.ops.convert_to_numpy(LiSHT()(np.array([[-1.0, 0.0, 2.0]]))), 4).tolist()
        [[0.7616, 0.0, 1.9281]]

    Reference:
        S. K. Roy, S. Manna, S. R. Dubey, B. B. Chaudhuri, "LiSHT: Non-Parametric Linearly Scaled
        Hyperbolic Tangent Activation Function for Neural Networks",
        [arXiv:1901.05894](https://arxiv.org/abs/1901.05894).
    """

    def __init__(self, **kwargs):
        super().__init__(**with_default_name(self, LiSHT, kwargs))
        self.supports_masking = True

    def call(self, inputs):
        return lisht(ops.cast(inputs, self.compute_dtype))

    def compute_output_shape(self, input_shape):
        return input_shape
