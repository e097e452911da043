"""Reading data files, and checking that what a source holds is what it claims to be."""
import gzip
from typing import Optional

import numpy as np
import torch

from ..errors import DataError


def read_idx(path) -> torch.Tensor:
    """An IDX file (optionally gzipped), as used by MNIST and Fashion-MNIST, as a uint8 tensor."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path} is not an IDX file of unsigned bytes")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise DataError(f"{path} is truncated: expected {int(np.prod(shape))} values, found {data.size}")
    return torch.from_numpy(data.reshape(shape).copy())


def _expect(array, what: str, shape: tuple, dtype: str, values: Optional[str] = None, hint: str = "") -> None:
    """Refuse a source's ``array`` (numpy or torch) unless it is what the source claims to
    be: ``shape`` (``None``: any number of rows above 0), ``dtype`` (numpy's name) and, with
    ``values``, "binary" pixels (0 or 1) or "labels" (0 to 9). One :class:`DataError` line
    says what was found and what was expected."""
    a = np.asarray(array)
    dims = ", ".join("N" if n is None else str(n) for n in shape)
    expected = f"{dtype} of shape ({dims}{',' if len(shape) == 1 else ''})"
    expected += " with N >= 1" if None in shape else ""
    expected += {"binary": ", pixels 0 or 1", "labels": ", labels 0 to 9", None: ""}[values]
    if hint:
        expected += f" ({hint})"
    found = f"{a.dtype.name} of shape {tuple(a.shape)}" if a.size else "no data"
    ok = a.dtype.name == dtype and a.ndim == len(shape) and all(
        n > 0 if want is None else n == want for want, n in zip(shape, a.shape))
    if ok and values is not None:
        allowed = (0, 1) if values == "binary" else range(10)
        bad = ~np.isin(a, allowed)
        if bad.any():
            ok = False
            shown = ", ".join(f"{v:g}" for v in np.unique(a[bad])[:4])  # NaN last; at most 4 shown
            found += f" with values such as {shown}"
    if not ok:
        raise DataError(f"{what}: found {found}, expected {expected}")
