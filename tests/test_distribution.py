"""Noise under tf.distribute.MirroredStrategy: every replica draws its own noise (fresh processes)."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from keras_adaptive_acts import NoisyHardTanh, RReLU

    class PlainSeedRReLU(RReLU):  # the control: Keras' own SeedGenerator, shared by the replicas
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.seed_generator = keras.random.SeedGenerator(self.seed)

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    x = -tf.ones((4, 32))
    results = {}
    for name, make in [("noisy", lambda: NoisyHardTanh(seed=5, p_initializer="ones")),
                       ("rrelu", lambda: RReLU(seed=5)), ("plain", lambda: PlainSeedRReLU(seed=5))]:
        with strategy.scope():
            layer = make()
            layer.build(x.shape)
        step = tf.function(lambda v: layer(v * 3.0, training=True))
        out = strategy.run(step, args=(x,))
        results[name] = [t.numpy().tolist() for t in strategy.experimental_local_results(out)]
    print(json.dumps(results))
    """
)


def _run():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_each_replica_draws_different_noise_and_the_stream_is_reproducible():
    first, second = _run(), _run()
    for name in ("noisy", "rrelu"):
        replica_0, replica_1 = (np.array(r) for r in first[name])
        assert not np.array_equal(replica_0, replica_1), f"{name}: replicas drew the same noise"
        np.testing.assert_array_equal(np.array(first[name]), np.array(second[name]))  # seeded
    plain_0, plain_1 = (np.array(r) for r in first["plain"])
    np.testing.assert_array_equal(plain_0, plain_1)  # the problem ReplicaSeedGenerator solves
