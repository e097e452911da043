"""The seeded train/test split of a source without its own, and content hashes that say
which data a run saw.

Split: with :math:`\\pi` a permutation of the source rows ``0..N-1`` drawn from
``numpy.random.default_rng(seed)``, the test rows are :math:`\\{\\pi_0, ..., \\pi_{n-1}\\}`
(recorded sorted) and the training rows are :math:`\\pi_n, ..., \\pi_{N-1}` in that order, so
"the last k training rows" (:meth:`~pyrovae.data.Dataset.hold_out`) is a uniformly random
validation set too. The split depends only on ``(N, n, seed)``, never on the training seed.
"""
import hashlib
from pathlib import Path
from typing import Iterable, Optional, Tuple

import numpy as np
import torch

from ..errors import ConfigError, DataError

#: the share of a source's rows that becomes the test set when no size is given
DEFAULT_TEST_FRACTION = 0.1
_CHUNK = 1 << 20


def num_test_rows(num_rows: int, test_size: Optional[int] = None) -> int:
    """``test_size``, or :data:`DEFAULT_TEST_FRACTION` of ``num_rows`` (at least 1);
    refused when it leaves no training row."""
    if num_rows < 2:
        raise DataError(f"a train/test split needs at least 2 rows, the source has {num_rows}; give more data")
    n = max(1, round(DEFAULT_TEST_FRACTION * num_rows)) if test_size is None else int(test_size)
    if n < 1 or n >= num_rows:
        raise ConfigError(f"--test-size {n} leaves no {'test' if n < 1 else 'training'} rows "
                          f"(the source has {num_rows}); give a test size from 1 to {num_rows - 1}")
    return n


def seeded_split(num_rows: int, test_size: Optional[int] = None, seed: int = 0) -> Tuple[np.ndarray, np.ndarray, dict]:
    """(train_rows, test_rows, record): source-row indices (int64) of the two sets as in the
    module docstring, and the record ``{"seed", "test_size", "of", "test_rows"}`` that
    :meth:`~pyrovae.data.Dataset.summary` reports."""
    n_test = num_test_rows(num_rows, test_size)
    perm = np.random.default_rng(seed).permutation(num_rows)  # (N,)
    test_rows = np.sort(perm[:n_test])
    record = {"seed": int(seed), "test_size": n_test, "of": int(num_rows), "test_rows": test_rows.tolist()}
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
