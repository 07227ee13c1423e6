"""One torch thread for the Cycle-StarNet tests: the small networks gain nothing from a second thread, and on a
loaded 2-core machine two threads per process oversubscribe the cores (a training test went from seconds to
minutes)."""

import pytest
import torch

from latentsky.cyclestarnet.model import NetworkSettings


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def small_network() -> NetworkSettings:
    """A small network for training and response tests (all strides 2: 219 pixels map onto a latent of length 2),
    so a run takes a fraction of a second; the arithmetic and blocks are the same code as Table 1's."""
    return NetworkSettings(
        n_pixels=219,
        width_factor=0.125,
        shared_z_filters=4,
        domain_strides=[2, 2],
        shared_strides=[2, 2, 2],
        split_strides=[2, 2, 2],
        critic_x_filters=[16, 32, 64],
        critic_x_strides=[2, 2, 2],
    )
