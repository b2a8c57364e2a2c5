"""Activation-sparsity regularizers, for `activity_regularizer=` or the `ActivitySparsity` layer.

Each has a documented scale that does not depend on the Keras version: `penalty(a)` is the
strength times a per-example quantity averaged over the batch (KL: times a batch statistic).
Keras 3 divides an `activity_regularizer`'s result by the batch size since a fix of January 2026
(keras-team/keras#22018) and did not before; `__call__`, which Keras calls, compensates for the
division where this Keras makes it, so the loss Keras adds is `penalty(a)` either way.
Activations need a batch axis (rank >= 1, `ValueError` for a scalar); an empty batch gives a
penalty of 0 on every backend (see `keras_adaptive_acts.ops.sparsity`).
"""

from __future__ import annotations

import functools
import threading

import keras
from keras import ops

from keras_adaptive_acts.ops.sparsity import check_rho, hoyer_square_penalty, kl_sparsity_penalty, l1_penalty
from keras_adaptive_acts.registry import register
from keras_adaptive_acts.validation import check_number

# The three penalties, and their base class: the type `ActivitySparsity` takes, and the class to subclass
# for a penalty of one's own. `keras_divides_activity_loss` is an internal probe, not part of the API.
__all__ = ["ActivationL1", "ActivityPenalty", "HoyerSquare", "KLSparsity"]


@functools.cache
def keras_divides_activity_loss() -> bool:
    """Whether this Keras divides an `activity_regularizer`'s result by the batch size (probed once).

    The probe calls a small layer on a batch of 4 and reads the loss Keras records. It runs in a
    thread of its own, so that it executes eagerly whatever the caller is in: the first regularizer
    of a process may be created while Keras traces a model (a layer that creates its sublayers in
    `build`, in a Sequential model without `Input`, is built inside the traced train step), where
    the probe's loss would be a symbolic tensor. TensorFlow's graph and function-tracing state, JAX's
    traces and Keras' own scopes (symbolic build, stateless scope, name scopes) are all per thread,
    so the new thread starts outside all of them, and the answer never depends on what ran before.
    """
    answer: list[bool] = []
    failure: list[BaseException] = []

    def probe() -> None:
        try:

            class _Probe(keras.layers.Layer):
                def call(self, inputs):
                    return inputs

            layer = _Probe(activity_regularizer=lambda _: ops.convert_to_tensor(1.0))
            layer(ops.ones((4, 1)))
            answer.append(float(ops.convert_to_numpy(layer.losses[0])) == 0.25)
        except BaseException as error:  # re-raised in the caller's thread
            failure.append(error)

    thread = threading.Thread(target=probe, name="keras_adaptive_acts-activity-loss-probe")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return answer[0]


class ActivityPenalty(keras.regularizers.Regularizer):
    """Base of the package's activity regularizers: `penalty(a)` and a Keras-version-proof `__call__`.

    A subclass defines `penalty(activations)` (the loss at its documented scale) and, for arguments
    beyond `strength`, `get_config`; `__call__` makes Keras add exactly `penalty(a)` as an
    `activity_regularizer`, and `ActivitySparsity` accepts any instance. Register a subclass with
    `keras.saving.register_keras_serializable` for its models to load from `.keras` files.

    Args:
        strength: the factor of the penalty, >= 0.
    """

    def __init__(self, strength: float):
        self.strength = check_number("strength", strength, minimum=0)
        # Probed once, when the first regularizer is created (in a thread of its own, so also when
        # that happens inside a traced step); not at import, which would start TensorFlow's
        # devices before the user could configure them.
        keras_divides_activity_loss()

    def penalty(self, activations):
        """The loss this regularizer adds for `activations` (batch first), at its documented scale."""
        raise NotImplementedError

    def __call__(self, activations):
        value = self.penalty(activations)
        if keras_divides_activity_loss():
            value = value * ops.cast(ops.shape(activations)[0], value.dtype)
        return value

    def get_config(self):
        return {"strength": self.strength}


@register
class ActivationL1(ActivityPenalty):
    """L1 activity penalty: `strength * sum|a| / B`, the per-example L1 norm averaged over the batch.

    Args:
        strength: >= 0.

    Examples:
        >>> import numpy as np
        >>> float(ActivationL1(0.1).penalty(np.array([[1.0, -2.0], [0.0, 3.0]])))  # 0.1 * (3 + 3) / 2
        0.3
    """

    def penalty(self, activations):
        return self.strength * l1_penalty(activations)


@register
class HoyerSquare(ActivityPenalty):
    """Hoyer-square penalty (DeepHoyer): `strength * mean_b (sum|a_b|)**2 / sum(a_b**2)`.

    Scale-invariant: it rewards few large activations over many small ones without shrinking
    them all. Per example it lies between 1 (one non-zero entry) and n (n entries of one size);
    an all-zero example counts 0. Each example is divided by its largest `|a|` first, so huge
    activations (float32 squares overflow above about 1e19) give the same value as small ones.

    Args:
        strength: >= 0.

    Examples:
        >>> import numpy as np
        >>> float(HoyerSquare(1.0).penalty(np.array([[1.0, 1.0, 0.0, 0.0], [2.0, 0.0, 0.0, 0.0]])))
        1.5
    """

    def penalty(self, activations):
        return self.strength * hoyer_square_penalty(activations)


@register
class KLSparsity(ActivityPenalty):
    """KL sparsity target of sparse autoencoders: `strength * sum_j KL(rho || rho_hat_j)`.

    `rho_hat_j` is unit `j`'s mean activation (last axis) over the batch and any other axes: a
    batch statistic, so this penalty is per batch, not per example. Meant for activations in
    [0, 1] (after a sigmoid); `rho_hat` is clipped to [1e-7, 1 - 1e-7], so other activations give
    a finite, clipped penalty.

    Args:
        rho: the target mean activation, in (0, 1). Default 0.05.
        strength: >= 0. Default 1.

    Examples:
        >>> import numpy as np
        >>> round(float(KLSparsity(0.5).penalty(np.array([[0.5, 0.5]]))), 6)  # on target: no penalty
        0.0
    """

    def __init__(self, rho: float = 0.05, strength: float = 1.0):
        super().__init__(strength)
        self.rho = check_rho(rho)

    def penalty(self, activations):
        return self.strength * kl_sparsity_penalty(activations, self.rho)

    def get_config(self):
        return {"rho": self.rho, "strength": self.strength}
