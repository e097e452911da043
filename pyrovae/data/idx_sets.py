"""The built-in sets read from IDX files (MNIST's format), 28x28 grey, 256 levels, labels 0..9:

* ``fashion-mnist``: 60,000 / 10,000 images, torchvision's files under ``data_dir``
  (``FashionMNIST/raw``), else the files of the Debian package ``dataset-fashion-mnist``
  (:data:`DEBIAN_FASHION_MNIST`), else a download into ``data_dir``;
* ``mnist-test``: the 10,000 labelled digits of the official MNIST test set, from
  ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (each also gzipped, ``.gz``) in
  ``data_dir`` or ``data_dir/MNIST/raw``, never downloaded. It has no split of its own: the
  seeded split of :mod:`pyrovae.data.splits` applies (``test_size``, ``split_seed``).
"""
from pathlib import Path
from typing import Optional, Tuple

import torch

from ..errors import DataError
from .builtin import CLASSES, file_origin, flat_unit, made, torchvision_arrays
from .dataset import Dataset, build_dataset
from .files import _expect, read_idx
from .splits import TestSize
from .vision import quoted

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
#: the two files of the official MNIST test set (each may also be gzipped: name + ".gz")
MNIST_TEST_FILES = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def read_idx_pair(images: Path, labels: Path) -> Tuple[torch.Tensor, torch.Tensor]:
    """(uint8 images (N, 28, 28), uint8 labels (N,) 0..9) of an IDX images file and its labels."""
    x, y = read_idx(images), read_idx(labels)
    _expect(x, str(images), (None, 28, 28), "uint8")
    _expect(y, str(labels), (len(x),), "uint8", "labels")
    return x, y


# -------------------------------------------------------------- Fashion-MNIST
def load_fashion_mnist(data_dir: Path, download: bool) -> Dataset:
    """Fashion-MNIST from torchvision's files, the Debian package's, or a download (module docstring)."""
    from torchvision.datasets import FashionMNIST

    source = f"torchvision FashionMNIST in {data_dir}"
    try:
        parts, root, files = torchvision_arrays(FashionMNIST, data_dir, download=False)
        return made("fashion-mnist", source, parts[0], parts[2], parts[1], parts[3], root=root, files=files)
    except RuntimeError:
        pass
    if DEBIAN_FASHION_MNIST.is_dir():
        d = DEBIAN_FASHION_MNIST
        parts, files = [], []
        for split in ("train", "t10k"):
            images, labels = d / f"{split}-images-idx3-ubyte.gz", d / f"{split}-labels-idx1-ubyte.gz"
            x, y = read_idx_pair(images, labels)
            parts += [flat_unit(x), y.long()]
            files += [images, labels]
        return made("fashion-mnist", f"Debian dataset-fashion-mnist ({d})", parts[0], parts[2], parts[1], parts[3],
                    root=d, files=files)
    reason = "downloading was turned off"
    if download:
        try:
            parts, root, files = torchvision_arrays(FashionMNIST, data_dir, download)
            return made("fashion-mnist", source, parts[0], parts[2], parts[1], parts[3], root=root, files=files)
        except RuntimeError as error:
            reason = f"could not be downloaded ({quoted(error)})"
    raise DataError(f"Fashion-MNIST is not in {data_dir} or {DEBIAN_FASHION_MNIST} and {reason}; install the Debian "
                    f"package dataset-fashion-mnist, or put torchvision's FashionMNIST/raw files in {data_dir} "
                    "(or pass --data-dir)")


# -------------------------------------------------------------- MNIST test set
def mnist_test_files(data_dir: Path) -> Optional[Tuple[Path, Path]]:
    """(images, labels) of the official MNIST test set in ``data_dir`` or
    ``data_dir/MNIST/raw`` (the first folder that has both; a file before its ``.gz``), or None."""
    for folder in (data_dir, data_dir / "MNIST" / "raw"):
        found = [next((folder / n for n in (name, name + ".gz") if (folder / n).is_file()), None)
                 for name in MNIST_TEST_FILES]
        if all(found):
            return found[0], found[1]
    return None


def load_mnist_test(data_dir: Path, test_size: TestSize = None, split_seed: int = 0) -> Dataset:
    """``mnist-test`` (module docstring): the official MNIST test set with the seeded split."""
    found = mnist_test_files(data_dir)
    if found is None:
        raise DataError(f"mnist-test reads the official MNIST test set from {MNIST_TEST_FILES[0]}(.gz) and "
                        f"{MNIST_TEST_FILES[1]}(.gz), which are not in {data_dir} or {data_dir / 'MNIST' / 'raw'} "
                        "(they are not downloaded); put the two files in one of those folders, or pass --data-dir "
                        "with the folder that holds them")
    images, labels = found
    x, y = read_idx_pair(images, labels)  # (N, 28, 28) uint8 -> rows / 255 (256 levels), (N,) labels
    return build_dataset(x.numpy(), train_y=y.numpy(), name="mnist-test", source=f"MNIST test set in {images.parent}",
                         test_size=test_size, split_seed=split_seed, what=(str(images),) * 3,
                         origin=file_origin("mnist-test", images.parent, [images, labels]),
                         classes=CLASSES["mnist-test"])
