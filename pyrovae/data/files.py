"""Reading data files, checking that what a source holds is what it claims to be, and
leaving no folder behind when a download fails."""
import gzip
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

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


@contextmanager
def removing_new_folders(folder) -> Iterator[None]:
    """Run a download into ``folder``; when it raises, remove every folder at or under
    ``folder`` (and the missing parents of ``folder``) that did not exist before and is empty
    after, then re-raise. Files, and folders that existed before, are never removed."""
    folder = Path(folder).absolute()
    top = folder  # the highest folder that the download could create
    while not top.parent.exists() and top.parent != top:
        top = top.parent
    before = {Path(d) for d, _, _ in os.walk(folder)} if folder.exists() else set()
    try:
        yield
    except BaseException:
        if top.exists():
            for d, _, _ in os.walk(top, topdown=False):  # the deepest first: a parent empties after its children
                if Path(d) not in before:
                    try:
                        os.rmdir(d)  # fails, and keeps the folder, unless it is empty
                    except OSError:
                        pass
        raise
