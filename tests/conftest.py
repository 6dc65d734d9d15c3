import os

import pytest
import torch

# Tests are deterministic and small: one intra-op thread keeps them fast and repeatable on 2 cores.
torch.set_num_threads(1)
os.environ.setdefault("CONVBENCH_GRID", "smoke")


@pytest.fixture
def rng() -> torch.Generator:
    return torch.Generator().manual_seed(0)
