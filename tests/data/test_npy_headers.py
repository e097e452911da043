""".npy files whose header does not describe the file: each is one line, before any row is read.
The arrays are scikit-learn's digits (real data); the headers are written by the tests."""
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits

import pyrovae
from pyrovae.data.datasets import load_dataset

PIXELS = (load_digits().images.reshape(-1, 64) / 16).astype(np.float32)  # (1797, 64)


def write_npy(path, shape, data: bytes, dtype="<f4"):
    """A version-1.0 .npy file: a header claiming ``shape``, then ``data``."""
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": dtype, "fortran_order": False, "shape": shape})
        f.write(data)
    return path


def refused(path, match):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one error, no warning printed before it
        with pytest.raises(pyrovae.DataError, match=match) as info:
            load_dataset(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)
    return str(info.value)


def test_a_true_header_loads(tmp_path):
    path = write_npy(tmp_path / "digits.npy", PIXELS.shape, PIXELS.tobytes())
    assert load_dataset(path).x_dim == 64


@pytest.mark.parametrize("shape", [(-5, 64), (1797, -64)])
def test_a_negative_dimension_is_refused(tmp_path, shape):
    path = write_npy(tmp_path / "negative.npy", shape, PIXELS.tobytes())
    refused(path, r"damaged header: its shape \(.*-.*\) is not non-negative whole numbers")


def test_an_absurd_shape_is_a_truncated_file(tmp_path):
    path = write_npy(tmp_path / "huge.npy", (10**15, 64), PIXELS.tobytes())
    refused(path, r"is truncated: its header describes a float32 array of shape \(1000000000000000, 64\)")


def test_a_header_that_claims_fewer_rows_than_the_file_holds(tmp_path):
    path = write_npy(tmp_path / "short_header.npy", (100, 64), PIXELS.tobytes())
    message = refused(path, "holds more data than its header describes")
    assert f"{PIXELS.nbytes} bytes after the header, {100 * 64 * 4} for a float32 array of shape (100, 64)" in message


def test_a_file_cut_short_is_truncated(tmp_path):
    path = write_npy(tmp_path / "cut.npy", PIXELS.shape, PIXELS.tobytes()[:-10])
    refused(path, f"is truncated: .* \\({PIXELS.nbytes} bytes\\) but {PIXELS.nbytes - 10} bytes follow it")
