"""The seeded train/test split of a source without its own, and content hashes that say
which data a run saw.

Split: with :math:`\\pi` a permutation of the source rows ``0..N-1`` drawn from
``numpy.random.default_rng(seed)``, the test rows are :math:`\\{\\pi_0, ..., \\pi_{n-1}\\}`
(recorded sorted) and the training rows are :math:`\\pi_n, ..., \\pi_{N-1}` in that order, so
"the last k training rows" (:meth:`~pyrovae.data.Dataset.hold_out`) is a uniformly random
validation set too. ``n`` is a count, or a fraction of ``N`` (:func:`num_test_rows`). The
split depends only on ``(N, n, seed)``, never on the training seed.
"""
import hashlib
import math
from pathlib import Path
from typing import Iterable, Optional, Tuple, Union

import numpy as np
import torch

from ..errors import ConfigError, DataError

#: the share of a source's rows that becomes the test set when no size is given
DEFAULT_TEST_FRACTION = 0.1
_CHUNK = 1 << 20
#: the size of a split's test set: a fraction in (0, 1), a number of rows, or None (the default)
TestSize = Optional[Union[int, float]]


def num_test_rows(num_rows: int, test_size: TestSize = None) -> int:
    """The number of test rows of a split of ``num_rows``: ``test_size`` rows for a count (an
    int, or a float with no fractional part), ``round(test_size * num_rows)`` for a fraction
    in (0, 1) (at least 1 and fewer than ``num_rows``), :data:`DEFAULT_TEST_FRACTION` of them
    (at least 1) for None; refused when a count leaves no training row."""
    if num_rows < 2:
        raise DataError(f"a train/test split needs at least 2 rows, the source has {num_rows}; give more data")
    if test_size is None:
        return max(1, round(DEFAULT_TEST_FRACTION * num_rows))
    if isinstance(test_size, (bool, np.bool_)) or not isinstance(test_size, (int, float, np.integer, np.floating)) \
            or not math.isfinite(test_size) or (not float(test_size).is_integer() and not 0 < test_size < 1):
        raise ConfigError(f"--test-size must be a fraction in (0, 1) or a whole number of rows, got {test_size!r}")
    if not float(test_size).is_integer():  # a fraction
        return min(num_rows - 1, max(1, round(float(test_size) * num_rows)))
    n = int(test_size)
    if n < 1 or n >= num_rows:
        raise ConfigError(f"--test-size {n} leaves no {'test' if n < 1 else 'training'} rows "
                          f"(the source has {num_rows}); give a test size from 1 to {num_rows - 1}, or a fraction "
                          "in (0, 1)")
    return n


def given_test_size(test_size: TestSize):
    """``test_size`` as the split records it: a float fraction, an int count, or None."""
    if test_size is None:
        return None
    return int(test_size) if float(test_size).is_integer() else float(test_size)


def seeded_split(num_rows: int, test_size: TestSize = None, seed: int = 0) -> Tuple[np.ndarray, np.ndarray, dict]:
    """(train_rows, test_rows, record): source-row indices (int64) of the two sets as in the
    module docstring, and the record ``{"seed", "test_size", "of", "test_rows", "given"}``
    that :meth:`~pyrovae.data.Dataset.summary` reports: ``test_size`` is the number of test
    rows, ``given`` the size as it was asked for (a fraction, a count, or None for the
    default)."""
    n_test = num_test_rows(num_rows, test_size)
    perm = np.random.default_rng(seed).permutation(num_rows)  # (N,)
    test_rows = np.sort(perm[:n_test])
    record = {"seed": int(seed), "test_size": n_test, "of": int(num_rows), "test_rows": test_rows.tolist(),
              "given": given_test_size(test_size)}
    return perm[n_test:].astype(np.int64), test_rows.astype(np.int64), record


def sha256_file(path) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def sha256_folder(root, files: Iterable[Path]) -> str:
    """Hex SHA-256 over the sorted relative paths (POSIX form) and the bytes of ``files``
    under ``root``: a renamed, added, removed or changed file changes it."""
    root = Path(root)
    h = hashlib.sha256()
    for rel in sorted(Path(f).relative_to(root).as_posix() for f in files):
        h.update(rel.encode("utf-8") + b"\0" + str((root / rel).stat().st_size).encode("ascii") + b"\0")
        with open(root / rel, "rb") as f:
            for block in iter(lambda: f.read(_CHUNK), b""):  # noqa: B023 (used at once)
                h.update(block)
    return h.hexdigest()


def sha256_tensors(*tensors: Optional[torch.Tensor]) -> str:
    """Hex SHA-256 over the float32 bytes of the given tensors (None skipped, but marked so
    that a missing validation set differs from an empty one)."""
    h = hashlib.sha256()
    for t in tensors:
        if t is None:
            h.update(b"none")
            continue
        a = t.detach().to("cpu", torch.float32).contiguous().numpy()
        h.update(str(a.shape).encode("ascii"))
        h.update(a.tobytes())
    return h.hexdigest()
