"""Tables of numeric features: ``.csv`` (the first line names the columns) and ``.parquet``.

Every column must be numeric (booleans count as 0/1) and every value finite; the rows are
the datapoints, the columns their D features (``image_shape`` None, ``columns`` their
names), kept as raw float32 values (a value beyond float32's range is refused): standardizing
columns is the run's preprocessing (from the training rows), not the reader's. Tables have no test split of their own: the
seeded split of :mod:`pyrovae.data.splits` applies. A ``label_column`` of integer class
labels becomes the labels (:func:`label_values`).
"""
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import DataError, one_line
from .dataset import Dataset, build_dataset
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

    where = _where(path)
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


def _where(path: Path):
    """Row i (from 0) of a table as messages name it: row 1 is the first data row, line 2 of a CSV."""
    if path.suffix.lower() == ".csv":
        return lambda i: f"row {i + 1} (line {i + 2})"
    return lambda i: f"row {i + 1}"


def label_values(frame, path: Path, column: str):
    """(features, labels, classes): ``frame`` without the label ``column``, that column's
    integer labels re-coded 0..K-1 in sorted order of their values (int64 (N,)), and
    ``classes``, the values as strings (label k is the value ``classes[k]``)."""
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    where = _where(path)
    names = [str(c) for c in frame.columns]
    if column not in names:
        shown = ", ".join(repr(n) for n in names[:20]) + (", ..." if len(names) > 20 else "")
        raise DataError(f"{path} has no column {column!r} for the labels; its columns are {shown}: give one of them "
                        "as --label-column")
    values = frame[frame.columns[names.index(column)]]
    missing = values.isna().to_numpy()
    if missing.any():
        raise DataError(f"{path}: label column {column!r} has no value at {where(int(missing.argmax()))}; every row "
                        "needs a class label: fill or drop those rows")
    if is_numeric_dtype(values) and not is_bool_dtype(values) and values.dtype.kind in "iu":
        labels = values.to_numpy(dtype=np.int64)
    else:
        whole = [_whole(v) for v in values]
        bad = next((i for i, v in enumerate(whole) if v is None), None)
        if bad is not None:
            value = values.iloc[bad]
            shown = repr(value) if isinstance(value, str) else str(value)  # 'seven', 2.5 (not np.float64(2.5))
            raise DataError(f"{path}: label column {column!r} holds {shown} at {where(bad)}, not an "
                            "integer class label; give integer labels (encode named classes as 0, 1, 2, ...)")
        labels = np.array(whole, dtype=np.int64)
    features = frame.drop(columns=[frame.columns[names.index(column)]])
    if features.shape[1] == 0:
        raise DataError(f"{path} has no columns besides the label column {column!r}; give feature columns too")
    found, codes = np.unique(labels, return_inverse=True)
    return features, codes.astype(np.int64).reshape(-1), [str(int(v)) for v in found]


def _whole(value):
    """``value`` as an int when it is a whole number (3, 3.0, "3"), else None."""
    if isinstance(value, (bool, np.bool_)):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if np.isfinite(number) and number.is_integer() else None


def _is_number(value) -> bool:
    if value is None:
        return True  # a missing value: the NaN check names it
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def load_table(path: Path, *, test_size: TestSize = None, split_seed: int = 0,
               label_column: Optional[str] = None) -> Dataset:
    """The :class:`~pyrovae.data.Dataset` of the table at ``path`` (module docstring); with
    ``label_column``, that column holds each row's integer class label: it leaves the
    features and becomes ``train_y`` / ``test_y`` (re-coded 0..K-1, :func:`label_values`)."""
    frame = read_table(path)
    labels = classes = None
    if label_column is not None:
        frame, labels, classes = label_values(frame, path, label_column)
    values = table_values(frame, path)
    fmt = "csv" if path.suffix.lower() == ".csv" else "parquet"
    origin = {"kind": "file", "path": str(path), "format": fmt, "sha256": sha256_file(path),
              **({"label_column": label_column} if label_column is not None else {})}
    ds = build_dataset(values, train_y=labels, name=path.stem, source=f"{fmt} table {path}", test_size=test_size,
                       split_seed=split_seed, what=(str(path),) * 3, origin=origin,
                       columns=[str(c) for c in frame.columns], classes=classes)
    ds.levels = None  # a table's columns are features, not grey levels
    return ds
