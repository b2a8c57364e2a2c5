"""ActivitySparsity as a Keras layer (its penalties are tested with the regularizers)."""

import pytest
from layer_testing import run_layer_test

from keras_adaptive_acts import ActivitySparsity
from keras_adaptive_acts.regularizers import ActivationL1, HoyerSquare, KLSparsity


@pytest.mark.parametrize(
    "regularizer",
    [ActivationL1(0.01), HoyerSquare(0.001), KLSparsity(0.1, 0.5)],
    ids=["activation_l1", "hoyer_square", "kl_sparsity"],
)
def test_passes_the_layer_test_harness(regularizer, tmp_path):
    # The penalty is part of the fit's loss: finite, and the gradient still reaches the Dense before.
    result = run_layer_test(
        ActivitySparsity,
        {"regularizer": regularizer},
        input_shape=(8, 6),
        expected_num_trainable_weights=0,
        expected_num_non_trainable_weights=0,
        supports_masking=True,
        tmp_path=tmp_path,
    )
    # The loaded layer carries the same penalty (same class and settings), not a default one.
    loaded = result.loaded_layer.regularizer
    assert type(loaded) is type(regularizer) and loaded.get_config() == regularizer.get_config()
