"""One process of tests/test_torch_distribution.py: `python torch_distribution_worker.py OUT_DIR RANK WORLD`.

PyTorch's `DistributedDataParallel` on CPU (the gloo backend), `WORLD` processes on this machine.
Each builds the same small noisy model from the same Keras seed, wraps it in DDP (which copies rank
0's weights, stream positions included, to every process) and, with `WORLD` > 1, runs two training
steps of its own. It writes the noise each rank draws (the noisy layers' outputs on its own input
of ones, noise on) and the weights after the steps to OUT_DIR/rank{RANK}.npz. With `WORLD` = 1 there
is no process group: the draws of one process, the reference for rank 0.

Importing this module changes nothing and needs no PyTorch: pytest imports every module of tests/
for its doctests, on every backend.
"""

import os
import sys
from pathlib import Path

import numpy as np

UNITS, ROWS = 6, 4


def main(out_dir: Path, rank: int, world: int) -> None:
    import keras
    import torch

    from keras_adaptive_acts import NoisyHardTanh, RReLU

    torch.set_num_threads(1)
    if world > 1:
        torch.distributed.init_process_group(
            "gloo", init_method=f"file://{out_dir / 'rendezvous'}", rank=rank, world_size=world
        )
    keras.utils.set_random_seed(0)
    # On the input itself, -3 everywhere: every entry is noisy (RReLU's negative part, a saturated
    # NoisyHardTanh), so every entry of two ranks' draws must differ. NoisyHardTanh's `p` is the
    # parameter DDP needs to train.
    inputs = keras.Input((UNITS,))
    model = keras.Model(
        inputs, [RReLU(seed=3, name="rrelu")(inputs), NoisyHardTanh(seed=4, name="noisy")(inputs)]
    )
    module = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    ones = torch.ones((ROWS, UNITS))
    draws = {"rrelu": [], "noisy": []}
    for _ in range(2):
        optimizer.zero_grad()
        rrelu, noisy = module(ones * -3.0, training=True)
        draws["rrelu"].append(rrelu.detach().numpy())
        draws["noisy"].append(noisy.detach().numpy())
        (rrelu.sum() + noisy.sum()).backward()
        optimizer.step()
    weights = [keras.ops.convert_to_numpy(weight) for weight in model.trainable_weights]
    np.savez(
        out_dir / f"rank{rank}.npz",
        rrelu=np.stack(draws["rrelu"]),
        noisy=np.stack(draws["noisy"]),
        **{f"weight{index}": weight for index, weight in enumerate(weights)},
    )
    if world > 1:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    os.environ["KERAS_BACKEND"] = "torch"  # set here, not on import (see the docstring)
    main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
