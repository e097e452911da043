"""Arrays (NumPy, memory-mapped NumPy or torch) as the rows of a data set: the shape and
dtype rules of :meth:`pyrovae.Dataset.from_arrays`, and the grey levels of data in [0, 1].

Shapes (the first axis counts the examples, N >= 1):

* (N, D): vector data, ``image_shape`` None (unless given, with prod = D);
* (N, H, W): grey images, ``image_shape`` (H, W);
* (N, H, W, C) or (N, C, H, W) with C in {1, 3, 4}: stored channel-first, ``image_shape``
  (C, H, W), or (H, W) when C = 1. The channel axis is the one of the two (second or last)
  whose length is 1, 3 or 4; when both are, ``image_shape=(C, H, W)`` says which.

Every row is flattened channel-first row-major: pixel (c, h, w) is entry c*H*W + h*W + w.

Values: ``uint8`` -> x / 255 (256 levels); ``bool`` -> 0 or 1 (2 levels); other integers need
``levels=L`` -> x / (L - 1), values 0..L-1; floats are kept (as float32), must be finite and within
float32's range, and
their levels are found by :func:`detect_levels` unless given.
"""
import math
from typing import Optional, Tuple

import numpy as np
import torch

from ..errors import DataError

CHANNELS = (1, 3, 4)
MAX_LEVELS = 256
FLOAT32_MAX = float(np.finfo(np.float32).max)
_GRID_TOLERANCE = 1e-3  # |x*m - round(x*m)|: float32 error is ~1e-5 for m <= 255, grid points are 1 apart


def to_numpy(x) -> np.ndarray:
    """A torch tensor (any device) or array-like as a NumPy array; NumPy arrays (memory-mapped
    ones too) are returned as they are."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return x if isinstance(x, np.ndarray) else np.asarray(x)


def detect_levels(x) -> Optional[int]:
    r"""The number of grey levels L of data in [0, 1]: the smallest L <= 256 such that every
    value is :math:`k/(L-1)` for an integer :math:`0 \le k \le L-1` (2 for binary data, 17 for
    scikit-learn's digits / 16, 256 for 8-bit images / 255), else None (continuous, or outside
    [0, 1], or not finite). ``x``: NumPy or torch, any shape."""
    a = to_numpy(x)
    if a.size == 0 or a.dtype.kind not in "biuf":
        return None
    if a.dtype.kind == "b":
        return 2
    flat = a.reshape(-1)
    head = np.unique(flat[: 1 << 20])  # at most 256 distinct values on any grid of <= 256 levels
    if len(head) > MAX_LEVELS or not np.isfinite(head).all() or head[0] < 0 or head[-1] > 1:
        return None
    head = head.astype(np.float64)
    m = next((m for m in range(1, MAX_LEVELS) if _on_grid(head, m)), None)
    if m is None:
        return None
    step = 1 << 22
    for i in range(0, flat.size, step):
        part = np.asarray(flat[i:i + step], dtype=np.float64)
        if not (np.isfinite(part).all() and part.min() >= 0 and part.max() <= 1 and _on_grid(part, m)):
            return None
    return m + 1


def common_levels(*parts) -> Optional[int]:
    """The levels (:func:`detect_levels`) of the first part, where the other parts (None: absent) lie on the same grid."""
    levels = detect_levels(parts[0])
    for x in parts[1:]:
        if levels is None or x is None:
            continue
        other = detect_levels(x)
        if other is None or (levels - 1) % (other - 1):
            return None
    return levels


def _on_grid(values: np.ndarray, m: int) -> bool:
    scaled = values * m
    return bool(np.abs(scaled - np.round(scaled)).max() < _GRID_TOLERANCE)


def image_layout(shape: tuple, what: str, image_shape: Optional[tuple] = None) -> Tuple[str, Optional[tuple]]:
    """(layout, image_shape) of an array of ``shape`` under the module docstring's rules:
    layout "rows" (already (N, D) or (N, H, W)), "first" (N, C, H, W) or "last" (N, H, W, C)."""
    given = None if image_shape is None else tuple(int(n) for n in image_shape)
    if len(shape) not in (2, 3, 4):
        raise DataError(f"{what} is a {len(shape)}-d array of shape {tuple(shape)}; expected (N, D), (N, H, W), "
                        "(N, H, W, C) or (N, C, H, W) with C = 1, 3 or 4")
    if shape[0] == 0 or math.prod(shape[1:]) == 0:
        raise DataError(f"{what} is empty (shape {tuple(shape)}); give at least one row of at least one value")
    if given is not None and math.prod(given) != math.prod(shape[1:]):
        raise DataError(f"{what}: image_shape {given} does not hold the {math.prod(shape[1:])} values of a row "
                        f"of shape {tuple(shape[1:])}")
    if len(shape) == 2:
        return "rows", given
    if len(shape) == 3:
        return "rows", given or tuple(shape[1:])
    _, a, b, c = shape
    if given is not None and len(given) == 3:
        if (a, b, c) == given:
            return "first", given
        if (c, a, b) == given:
            return "last", given
    first, last = a in CHANNELS, c in CHANNELS
    if first == last:
        why = "both the second and the last axis could be" if first else "neither the second nor the last axis is"
        raise DataError(f"{what} has shape {tuple(shape)}: {why} the channel axis (C = 1, 3 or 4); "
                        "pass image_shape=(C, H, W), or transpose the array to (N, C, H, W)")
    channels, height, width = (a, b, c) if first else (c, a, b)
    out = (height, width) if channels == 1 else (channels, height, width)
    return ("first" if first else "last"), out


def value_scale(a: np.ndarray, what: str, levels: Optional[int]) -> Tuple[Optional[float], Optional[int]]:
    """(divisor, levels) for an array's dtype (module docstring); divisor None keeps values."""
    kind = a.dtype.kind
    if levels is not None and (isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or levels < 2):
        raise DataError(f"levels must be an integer >= 2 (the number of grey levels), got {levels!r}")
    if kind == "b":
        return None, 2
    if kind in "iu":
        if levels is not None:
            return float(levels - 1), int(levels)
        if a.dtype == np.uint8:
            return 255.0, 256
        raise DataError(f"{what} holds {a.dtype.name} integers; give levels=L when they are grey levels 0..L-1 "
                        "(e.g. levels=17 for 0..16), or convert the array to floats")
    if kind == "f":
        return None, None if levels is None else int(levels)
    if kind == "O":
        raise DataError(f"{what} holds Python objects (dtype object), not numbers; give a numeric array "
                        "(uint8, bool, integers with levels, or floats)")
    raise DataError(f"{what} has dtype {a.dtype.name}, not numbers pyrovae can train on; give uint8, bool, "
                    "integers with levels, or floats")


def as_rows(array, what: str, *, image_shape: Optional[tuple] = None, levels: Optional[int] = None,
            rows: Optional[np.ndarray] = None) -> Tuple[torch.Tensor, Optional[tuple], Optional[int]]:
    """(x, image_shape, levels): the rows ``rows`` (source-row indices; None: all, in order)
    of ``array`` as float32 (n, D) under the module docstring's rules. Converted in chunks
    of about 16 MB, so a memory-mapped array is read once and never held as float64.
    ``levels`` is None for floats unless given (:func:`detect_levels` is the caller's call)."""
    a = to_numpy(array)
    divisor, levels = value_scale(a, what, levels)
    layout, shape = image_layout(a.shape, what, image_shape)
    width = math.prod(a.shape[1:])
    n = a.shape[0] if rows is None else len(rows)
    out = np.empty((n, width), dtype=np.float32)  # (n, D)
    step = max(1, (1 << 22) // width)
    for i in range(0, n, step):
        part = np.asarray(a[i:i + step] if rows is None else a[rows[i:i + step]])
        if layout == "last":
            part = part.transpose(0, 3, 1, 2)  # (n, H, W, C) -> (n, C, H, W)
        part = part.reshape(len(part), width)  # (n, D), channel-first row-major
        if a.dtype.kind == "f":
            _check_finite(part, what, i if rows is None else rows[i:i + step])
        elif a.dtype.kind in "iu" and not (a.dtype == np.uint8 and levels == 256):
            _check_levels(part, what, levels, i if rows is None else rows[i:i + step])
        out[i:i + len(part)] = part
        if divisor is not None:
            out[i:i + len(part)] /= divisor
    return torch.from_numpy(out), shape, levels


def _source_row(offset, j: int) -> int:
    return int(offset + j) if np.isscalar(offset) else int(offset[j])


def _check_finite(part: np.ndarray, what: str, offset) -> None:
    """Refuse NaN, infinite values, and finite values beyond float32's range (wider floats)."""
    bad = ~np.isfinite(part)
    if bad.any():
        j, k = np.argwhere(bad)[0]
        raise DataError(f"{what} has {'a NaN' if np.isnan(part[j, k]) else 'an infinite'} value at row "
                        f"{_source_row(offset, j)} (entry {k} of the row); clean or drop those rows")
    if part.dtype.itemsize > 4:
        big = np.abs(part) > FLOAT32_MAX
        if big.any():
            j, k = np.argwhere(big)[0]
            raise DataError(f"{what} has the value {part[j, k]:g} at row {_source_row(offset, j)} (entry {k} of the "
                            "row), beyond the range of float32 (about 3.4e38) that pyrovae trains in; rescale the "
                            "data or drop those rows")


def _check_levels(part: np.ndarray, what: str, levels: int, offset) -> None:
    bad = (part < 0) | (part > levels - 1)
    if bad.any():
        j, k = np.argwhere(bad)[0]
        raise DataError(f"{what} has the value {part[j, k]} at row {_source_row(offset, j)} (entry {k}), "
                        f"outside the grey levels 0..{levels - 1} of levels={levels}; give the right levels")


def as_labels(y, num_rows: int, what: str, rows: Optional[np.ndarray] = None) -> Optional[torch.Tensor]:
    """Labels (N,) of whole numbers, one per source row, as int64 (n,) (``rows`` selects),
    or None for None."""
    if y is None:
        return None
    a = to_numpy(y)
    if a.ndim != 1 or a.dtype.kind not in "biuf":
        raise DataError(f"{what} must be a 1-d array of whole-number labels, got {a.dtype.name} of shape {a.shape}")
    if a.dtype.kind == "f" and not (np.isfinite(a).all() and (a == np.round(a)).all()):
        raise DataError(f"{what} has labels that are not whole numbers; give integer class labels")
    if len(a) != num_rows:
        raise DataError(f"{what} has {len(a)} labels for {num_rows} rows; give one label per row")
    return torch.from_numpy(np.asarray(a if rows is None else a[rows]).astype(np.int64))


def check_class_numbers(labels, what: str, classes=None) -> None:
    """Refuse, in one line, labels (int64 tensors, all of a source's) that are not class numbers
    0..K-1 with every one of them used (-1 marks a hidden label); with ``classes`` (the source's
    names of its classes), numbers 0..len(classes)-1. Sparse or huge label values would give the
    labelled models classes with no rows, or a one-hot layer of billions of columns."""
    values = torch.unique(torch.cat([y.flatten() for y in labels])) if labels else torch.empty(0, dtype=torch.long)
    if not len(values):
        return
    low, high = int(values[0]), int(values[-1])
    used = values[values >= 0]
    if classes is not None:
        if low >= -1 and high < len(classes):
            return
        raise DataError(f"the labels of {what} run from {low} to {high}; its {len(classes)} classes are numbered 0 to "
                        f"{len(classes) - 1} (-1 marks a hidden label)")
    if low >= -1 and (not len(used) or int(used[-1]) == len(used) - 1):
        return
    shown = ", ".join(str(int(v)) for v in used[:5]) + (", ..." if len(used) > 5 else "")
    raise DataError(f"the labels of {what} run from {low} to {high} ({len(used)} distinct values: {shown}); labels "
                    "must be class numbers 0..K-1 with every class used (-1 marks a hidden label): recode them, "
                    "e.g. with numpy.unique(y, return_inverse=True)[1]")


def count_classes(labels, classes=None) -> Optional[int]:
    """The number of classes of a labelled data set's ``labels`` (its parts' int64 tensors, None where
    a part has none): ``len(classes)`` where the source names them, else the largest label + 1
    (labels are 0..K-1); None without labels."""
    given = [y for y in labels if y is not None and len(y)]
    if not given:
        return None
    if classes is not None:
        return len(classes)
    return max(int(y.max()) for y in given) + 1


def class_name(classes, k: int) -> str:
    """Class ``k`` as messages name it: its name and number where the source names it otherwise, else its number."""
    if classes is not None and 0 <= k < len(classes) and classes[k] != str(k):
        return f"{classes[k]!r} (label {k})"
    return str(k)
