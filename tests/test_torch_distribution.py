"""PyTorch's `DistributedDataParallel` (gloo, on CPU) with the noisy layers: two processes that run
tests/torch_distribution_worker.py, and one without a process group for reference.

DDP copies rank 0's weights, stream positions included, to every process; the noisy layers fold
the rank into their seeds (`layers/noise.py`), so the ranks draw different noise and rank 0 draws
what one process draws. Runs where PyTorch is installed (CI's PyTorch job).
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="torch.distributed: needs the torch extra (CI's PyTorch job runs it)")
pytestmark = pytest.mark.slow  # three fresh processes

WORKER = Path(__file__).with_name("torch_distribution_worker.py")
TIMEOUT_S = 300  # about 10 s per process: PyTorch and Keras imported, two steps of a small model


def start(out_dir, rank, world):
    environment = {**os.environ, "KERAS_BACKEND": "torch", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(out_dir), str(rank), str(world)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
        cwd=WORKER.parent,
    )


def finish(process):
    _, errors = process.communicate(timeout=TIMEOUT_S)
    assert process.returncode == 0, errors[-5000:]


@pytest.fixture(scope="module")
def draws(tmp_path_factory):
    alone, group = tmp_path_factory.mktemp("one_process"), tmp_path_factory.mktemp("two_ranks")
    processes = [start(group, 0, 2), start(group, 1, 2)]
    for process in processes:
        finish(process)
    finish(start(alone, 0, 1))
    return np.load(alone / "rank0.npz"), np.load(group / "rank0.npz"), np.load(group / "rank1.npz")


@pytest.mark.parametrize("layer", ["rrelu", "noisy"])
def test_rank_zero_draws_what_one_process_draws_and_rank_one_draws_other_noise(draws, layer):
    alone, rank0, rank1 = draws
    assert alone[layer].shape == (2, 4, 6)
    # The first step only: from the second on, the weights differ (DDP averages the ranks' gradients).
    np.testing.assert_array_equal(rank0[layer][0], alone[layer][0])
    # Every entry differs: the same noise on rank 1 (DDP's copy of rank 0's stream) gave equal arrays.
    assert np.all(rank0[layer] != rank1[layer])
    # Each step draws anew on each rank.
    assert np.all(rank1[layer][0] != rank1[layer][1])


def test_the_ranks_end_with_the_same_weights_as_ddp_averages_their_gradients(draws):
    _, rank0, rank1 = draws
    names = [name for name in rank0.files if name.startswith("weight")]
    assert names
    for name in names:
        np.testing.assert_allclose(rank0[name], rank1[name], rtol=0, atol=1e-6)
