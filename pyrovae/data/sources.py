"""Data sets from a path: ``.npy`` / ``.npz`` arrays here, tables in :mod:`.tables`, image
folders in :mod:`.images`. Each reader only reads (nothing is written) and turns every
malformed file into one :class:`~pyrovae.errors.DataError` line naming the file.

``.npy``: one array, memory-mapped (``mmap_mode="r"``), no pickle; the seeded split.

``.npz`` (no pickle), one of:

* ``train`` and ``test`` (the source's own split), optional ``valid``, ``train_y``,
  ``test_y`` (integer labels);
* ``x`` with optional ``y`` (labels): the seeded split;
* a single array under any key: the seeded split.
"""
import math
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from ..errors import ConfigError, DataError, one_line
from .dataset import Dataset, build_dataset
from .splits import TestSize, sha256_file

ARRAY_SUFFIXES = (".npy", ".npz")
TABLE_SUFFIXES = (".csv", ".parquet", ".pq")
NPZ_SPLIT_KEYS = ("train", "test", "valid", "train_y", "test_y")
_LOAD_ERRORS = (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)


def load_path(path: Path, *, image_size: Optional[int] = None, test_size: TestSize = None,
              split_seed: int = 0, label_column: Optional[str] = None) -> Dataset:
    """The data set at ``path`` (absolute): a folder of images, or a file by its suffix;
    ``label_column`` applies to tables only."""
    from .images import IMAGE_SUFFIXES, load_image_folder

    if label_column is not None and (path.is_dir() or path.suffix.lower() not in TABLE_SUFFIXES):
        what = "a folder" if path.is_dir() else f"a {path.suffix or 'suffix-less'} file"
        raise ConfigError(f"--label-column names a column of a .csv or .parquet table; {path.name} is {what}, whose "
                          "labels come from class subfolders or train_y/test_y or y arrays: drop --label-column")
    if path.is_dir():
        return load_image_folder(path, image_size=image_size, test_size=test_size, split_seed=split_seed)
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        raise DataError(f"{path} is one image; give the folder that holds the images")
    if suffix not in ARRAY_SUFFIXES + TABLE_SUFFIXES:
        raise DataError(f"{path} is not a data set pyrovae reads (unknown extension {suffix or 'none'!r}); give a "
                        ".npy, .npz, .csv or .parquet file, or a folder of images")
    if image_size is not None:
        raise ConfigError(f"--image-size resizes image folders and celeba; {path.name} is a {suffix} file: drop it")
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty (0 bytes); give a file with data")
    if suffix in TABLE_SUFFIXES:
        from .tables import load_table

        return load_table(path, test_size=test_size, split_seed=split_seed, label_column=label_column)
    fmt = suffix[1:]
    origin = {"kind": "file", "path": str(path), "format": fmt, "sha256": sha256_file(path)}
    common = dict(name=path.stem, source=f"{fmt} file {path}", test_size=test_size, split_seed=split_seed,
                  origin=origin)
    if fmt == "npy":
        return build_dataset(read_npy(path), what=(str(path),) * 3, **common)
    arrays = _read_npz(path)
    keys = sorted(arrays)
    if "train" in arrays or "test" in arrays:
        if "train" not in arrays or "test" not in arrays or set(keys) - set(NPZ_SPLIT_KEYS):
            raise DataError(f"{path} has the arrays {keys}; a split archive has train and test, optionally valid, "
                            "train_y and test_y (or give one array, or x and y, for a seeded split)")
        what = tuple(f"{path} {k!r}" for k in ("train", "test", "valid"))
        return build_dataset(arrays["train"], arrays["test"], arrays.get("valid"), train_y=arrays.get("train_y"),
                             test_y=arrays.get("test_y"), what=what, **common)
    if set(keys) in ({"x"}, {"x", "y"}):
        return build_dataset(arrays["x"], train_y=arrays.get("y"), what=(f"{path} 'x'",) * 3, **common)
    if len(keys) == 1:
        return build_dataset(arrays[keys[0]], what=(f"{path} {keys[0]!r}",) * 3, **common)
    raise DataError(f"{path} has the arrays {keys}; give one array, or x (and y), or train and test "
                    "(optionally valid, train_y, test_y)")


def _pickle_refused(path: Path, error: BaseException) -> DataError:
    return DataError(f"{path} holds Python objects that only pickle could load ({one_line(error, 80)}); pyrovae "
                     "loads arrays without pickle: save numeric arrays, e.g. np.save(path, x.astype(np.float32))")


def read_npy(path: Path) -> np.ndarray:
    """The array of a .npy file, memory-mapped read-only. The header is checked first
    (:func:`npy_header`): an object array, a shape that is not non-negative integers, or a
    file whose size is not the header plus the array's bytes exactly, is refused."""
    npy_header(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            array = np.load(path, mmap_mode="r", allow_pickle=False)
    except _LOAD_ERRORS as error:
        raise DataError(f"{path} is not a readable .npy array ({one_line(error)})") from None
    if not isinstance(array, np.ndarray):
        raise DataError(f"{path} is not a .npy array (it reads as {type(array).__name__}); give a .npy or .npz file")
    return array


def npy_header(path: Path) -> Tuple[tuple, np.dtype]:
    """(shape, dtype) of the .npy file at ``path``, from its header, after checking that the
    header describes the file: every dimension a non-negative integer, a dtype without
    Python objects, and a file of exactly header + prod(shape) * itemsize bytes (what
    ``np.save`` writes)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        if f.read(6) != b"\x93NUMPY":  # else np.load would try the file as a pickle
            raise DataError(f"{path} is not a .npy file (no NumPy header); save arrays with np.save")
        f.seek(0)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                elif version in ((2, 0), (3, 0)):  # 3.0 differs only in an utf-8 header
                    shape, _, dtype = np.lib.format.read_array_header_2_0(f)
                else:
                    raise ValueError(f"unknown .npy format version {version[0]}.{version[1]}")
        except _LOAD_ERRORS as error:
            raise DataError(f"{path} is not a readable .npy array ({one_line(error)})") from None
        start = f.tell()
    if dtype.hasobject:
        raise _pickle_refused(path, ValueError(f"its dtype {dtype} holds Python objects"))
    if any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in shape):
        raise DataError(f"{path} has a damaged header: its shape {shape} is not non-negative whole numbers; "
                        "save the array again with np.save")
    need = math.prod(shape) * dtype.itemsize  # Python ints: no overflow for absurd shapes
    have = size - start
    if have > need:
        raise DataError(f"{path} holds more data than its header describes ({have} bytes after the header, "
                        f"{need} for a {dtype} array of shape {shape}); the file is damaged: save it again with np.save")
    if have < need:
        raise DataError(f"{path} is truncated: its header describes a {dtype} array of shape {shape} ({need} bytes) "
                        f"but {have} bytes follow it; copy or save the file again")
    return shape, dtype


def _read_npz(path: Path) -> dict:
    """The arrays of a .npz archive by key (read into memory; object arrays are refused)."""
    if not zipfile.is_zipfile(path):  # else np.load would try the file as a pickle
        raise DataError(f"{path} is not a readable .npz archive (not a zip file); save arrays with np.savez")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            archive = np.load(path, allow_pickle=False)
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise DataError(f"{path} is a .npy array, not a .npz archive; rename it to .npy")
            with archive:
                arrays = {key: archive[key] for key in archive.files}
    except ValueError as error:
        if isinstance(error, DataError):
            raise
        if "pickle" in str(error).lower():
            raise _pickle_refused(path, error) from None
        raise DataError(f"{path} is not a readable .npz archive ({one_line(error)})") from None
    except _LOAD_ERRORS as error:
        raise DataError(f"{path} is not a readable .npz archive ({one_line(error)})") from None
    if not arrays:
        raise DataError(f"{path} is an empty .npz archive (no arrays); give at least one array")
    return arrays
