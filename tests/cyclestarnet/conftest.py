"""One torch thread for the Cycle-StarNet tests: the small networks gain nothing from a second thread, and on a
loaded 2-core machine two threads per process oversubscribe the cores (a training test went from seconds to
minutes)."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
