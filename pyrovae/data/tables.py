"""Tables of numeric features: ``.csv`` (the first line names the columns) and ``.parquet``.

Every column must be numeric (booleans count as 0/1) and every value finite; the rows are
the datapoints, the columns their D features (``image_shape`` None, ``columns`` their
names), kept as raw float32 values (a value beyond float32's range is refused): standardizing
columns is the run's preprocessing (from the training rows), not the reader's. Tables have no test split of their own: the
seeded split of :mod:`pyrovae.data.splits` applies.
"""
from pathlib import Path

import numpy as np

from ..errors import DataError, one_line
from .datasets import Dataset, build_dataset
from .splits import TestSize, sha256_file

FLOAT32_MAX = float(np.finfo(np.float32).max)


def read_table(path: Path):
    """The table at ``path`` as a pandas DataFrame (a .csv, or a .parquet through pyarrow)."""
    import pandas as pd

    parquet = path.suffix.lower() in (".parquet", ".pq")
    try:
        if parquet:
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except ImportError as error:
        raise DataError(f"reading the Parquet file {path} needs pyarrow ({one_line(error, 80)}): "
                        "pip install pyarrow") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty (no header and no rows); give a table with a header line and rows") from None
    except (ValueError, OSError, pd.errors.ParserError, UnicodeDecodeError) as error:
        kind = "Parquet" if parquet else "CSV"
        raise DataError(f"{path} is not a readable {kind} table ({one_line(error)})") from None


def table_values(frame, path: Path) -> np.ndarray:
    """(N, D) float32 values of a DataFrame, refusing non-numeric columns and NaN/inf values
    with the column and row (row 1 is the first data row; in a CSV it is line 2)."""
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    csv = path.suffix.lower() == ".csv"
    where = (lambda i: f"row {i + 1} (line {i + 2})") if csv else (lambda i: f"row {i + 1}")  # noqa: E731
    if frame.shape[1] == 0:
        raise DataError(f"{path} has no columns; give a table with a header line and rows")
    if frame.shape[0] == 0:
        raise DataError(f"{path} has a header but no rows; give at least one row of data")
    for column in frame.columns:
        values = frame[column]
        if is_bool_dtype(values) or (is_numeric_dtype(values) and values.dtype.kind in "biuf"):
            continue
        text = values.astype(str)
        bad = [i for i, v in enumerate(values) if not _is_number(v)]
        example = f"{where(bad[0])} holds {text.iloc[bad[0]]!r}" if bad else f"its type is {values.dtype}"
        raise DataError(f"{path}: column {str(column)!r} is not numeric ({example}); drop the column or encode it "
                        "as numbers")
    array = frame.to_numpy(dtype=np.float64)  # (N, D)
    bad = ~np.isfinite(array)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        value = "a missing/NaN" if np.isnan(array[i, j]) else "an infinite"
        raise DataError(f"{path}: column {str(frame.columns[j])!r} has {value} value at {where(int(i))}; "
                        "fill or drop those rows")
    big = np.abs(array) > FLOAT32_MAX  # finite in float64, infinite in float32
    if big.any():
        i, j = np.argwhere(big)[0]
        raise DataError(f"{path}: column {str(frame.columns[j])!r} has the value {array[i, j]:g} at {where(int(i))}, "
                        "beyond the range of float32 (about 3.4e38) that pyrovae trains in; rescale the column or "
                        "drop those rows")
    return array.astype(np.float32)


def _is_number(value) -> bool:
    if value is None:
        return True  # a missing value: the NaN check names it
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def load_table(path: Path, *, test_size: TestSize = None, split_seed: int = 0) -> Dataset:
    """The :class:`~pyrovae.data.Dataset` of the table at ``path`` (module docstring)."""
    frame = read_table(path)
    values = table_values(frame, path)
    fmt = "csv" if path.suffix.lower() == ".csv" else "parquet"
    origin = {"kind": "file", "path": str(path), "format": fmt, "sha256": sha256_file(path)}
    ds = build_dataset(values, name=path.stem, source=f"{fmt} table {path}", test_size=test_size,
                       split_seed=split_seed, what=(str(path),) * 3, origin=origin,
                       columns=[str(c) for c in frame.columns])
    ds.levels = None  # a table's columns are features, not grey levels
    return ds
