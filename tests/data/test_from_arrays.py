"""Dataset.from_arrays: the shape and dtype rules, grey levels, the seeded split and the
content hash, on scikit-learn's bundled 8x8 digits (real data, grey levels 0..16)."""
import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

import pyrovae
from pyrovae.data.arrays import detect_levels
from pyrovae.data.splits import seeded_split

DIGITS = load_digits()
GREY = DIGITS.images / 16.0  # (1797, 8, 8) float64, values k/16


def rgb_digits():
    """(N, 8, 8, 3) uint8: each digit in a different intensity per channel (real pixels, scaled)."""
    grey = (DIGITS.images * 255 / 16).round().astype(np.uint8)  # (N, 8, 8)
    return np.stack([grey, grey // 2, 255 - grey], axis=-1)


def test_detect_levels_of_real_grids():
    assert detect_levels(GREY) == 17
    assert detect_levels(torch.from_numpy(GREY).float()) == 17  # float32 error stays inside the tolerance
    assert detect_levels((DIGITS.images * 255 / 16).round() / 255) == 256
    assert detect_levels(GREY > 0.5) == 2 and detect_levels((GREY > 0.5).astype(np.float32)) == 2
    assert detect_levels(DIGITS.images) is None  # 0..16: outside [0, 1]
    assert detect_levels(GREY * 0.9 + 0.001) is None  # off any grid of <= 256 levels
    x = GREY.copy()
    x[5, 3, 3] = np.nan
    assert detect_levels(x) is None


def test_vector_rows_and_grey_images():
    flat = Dataset_from(GREY.reshape(len(GREY), 64), test=None)
    assert flat.image_shape is None and not flat.is_image and flat.x_dim == 64
    shaped = Dataset_from(GREY.reshape(len(GREY), 64), image_shape=(8, 8))
    assert shaped.image_shape == (8, 8) and shaped.is_image
    grey = Dataset_from(GREY)
    assert grey.image_shape == (8, 8) and grey.levels == 17
    assert torch.equal(grey.train_x, flat.train_x)  # (N, H, W) flattens row-major


def Dataset_from(train, **kwargs):  # noqa: N802 (reads as the call it wraps)
    kwargs.setdefault("test", None)
    return pyrovae.Dataset.from_arrays(train, **kwargs)


def test_channel_last_and_channel_first_store_the_same_rows():
    hwc = rgb_digits()  # (N, 8, 8, 3)
    chw = np.ascontiguousarray(hwc.transpose(0, 3, 1, 2))  # (N, 3, 8, 8)
    a, b = Dataset_from(hwc), Dataset_from(torch.from_numpy(chw))
    assert a.image_shape == b.image_shape == (3, 8, 8) and a.levels == b.levels == 256
    assert torch.equal(a.train_x, b.train_x)
    source_row = a.split["test_rows"][0]  # test row 0: pixel (c, h, w) is entry c*H*W + h*W + w
    for c, h, w in ((0, 3, 5), (1, 4, 4), (2, 7, 0)):
        assert float(a.test_x[0, c * 64 + h * 8 + w]) == pytest.approx(hwc[source_row, h, w, c] / 255)


def test_single_channel_is_grey():
    one = (DIGITS.images * 255 / 16).round().astype(np.uint8)[..., None]  # (N, 8, 8, 1)
    assert Dataset_from(one).image_shape == (8, 8)
    assert Dataset_from(one.transpose(0, 3, 1, 2)).image_shape == (8, 8)


def test_dtypes_scale_to_levels():
    u8 = (DIGITS.images * 255 / 16).round().astype(np.uint8)
    ds = Dataset_from(u8)
    assert ds.levels == 256 and float(ds.train_x.max()) == 1.0 and ds.train_x.dtype == torch.float32
    ints = DIGITS.images.astype(np.int64)  # 0..16
    with pytest.raises(pyrovae.DataError, match="give levels=L"):
        Dataset_from(ints)
    ds = Dataset_from(ints, levels=17)
    assert ds.levels == 17 and torch.allclose(ds.train_x * 16, ds.train_x.mul(16).round())
    with pytest.raises(pyrovae.DataError, match="outside the grey levels 0..9"):
        Dataset_from(ints, levels=10)
    binary = Dataset_from(DIGITS.images > 8)
    assert binary.levels == 2 and binary.is_binary


@pytest.mark.parametrize("array, fragment", [
    (GREY[:, 0, 0], "1-d array"),
    (GREY[:, None, None], "5-d array"),
    (GREY[:0], "empty"),
    (GREY.reshape(-1, 8, 4, 2), "neither the second nor the last axis"),
    (np.zeros((5, 3, 4, 4)), "both the second and the last axis"),
    (np.array([[1, "a"]], dtype=object), "Python objects"),
    (GREY.astype(np.complex64), "complex64"),
])
def test_wrong_arrays_are_one_line(array, fragment):
    with pytest.raises(pyrovae.DataError, match=fragment) as info:
        Dataset_from(array)
    assert "\n" not in str(info.value)


def test_nan_and_inf_name_the_row():
    x = GREY.reshape(len(GREY), 64).copy()
    x[700, 10] = np.inf
    with pytest.raises(pyrovae.DataError, match=r"has an infinite value at row 700 \(entry 10"):
        Dataset_from(x)
    x[700, 10] = np.nan
    with pytest.raises(pyrovae.DataError, match=r"has a NaN value at row 700"):
        Dataset_from(x)


def test_given_test_and_valid_keep_their_order_and_shapes_must_agree():
    ds = pyrovae.Dataset.from_arrays(GREY[:1000], GREY[1000:1500], GREY[1500:], train_y=DIGITS.target[:1000],
                                     test_y=DIGITS.target[1000:1500])
    assert ds.split is None and len(ds.valid_x) == 297
    assert torch.equal(ds.test_x[0], torch.from_numpy(GREY[1000].reshape(64)).float())
    assert torch.equal(ds.test_y, torch.from_numpy(DIGITS.target[1000:1500]))
    with pytest.raises(pyrovae.DataError, match="differ from the training rows"):
        pyrovae.Dataset.from_arrays(GREY[:1000], GREY[1000:, :7, :])
    with pytest.raises(pyrovae.ConfigError, match="drop --test-size"):
        pyrovae.Dataset.from_arrays(GREY[:1000], GREY[1000:], test_size=10)
    with pytest.raises(pyrovae.DataError, match="999 labels for 1000 rows"):
        pyrovae.Dataset.from_arrays(GREY[:1000], GREY[1000:], train_y=DIGITS.target[:999])


def test_seeded_split_is_determined_by_its_seed():
    a, b = Dataset_from(GREY, train_y=DIGITS.target), Dataset_from(GREY, train_y=DIGITS.target)
    assert a.split == b.split and torch.equal(a.train_x, b.train_x)
    other = Dataset_from(GREY, split_seed=1)
    assert other.split["test_rows"] != a.split["test_rows"]
    rows = a.split["test_rows"]
    assert a.split["test_size"] == len(rows) == 180 and a.split["of"] == 1797 and rows == sorted(rows)
    assert torch.equal(a.test_x, torch.from_numpy(GREY[rows].reshape(-1, 64)).float())
    assert torch.equal(a.test_y, torch.from_numpy(DIGITS.target[rows]))
    train_rows, test_rows, _ = seeded_split(1797, None, 0)
    assert sorted(set(train_rows) | set(test_rows)) == list(range(1797)) and not set(train_rows) & set(test_rows)
    assert torch.equal(a.train_y, torch.from_numpy(DIGITS.target[train_rows]))
    assert list(train_rows) != sorted(train_rows)  # a seeded order: the last rows held out are random rows
    assert len(Dataset_from(GREY, test_size=50).test_x) == 50
    with pytest.raises(pyrovae.ConfigError, match="leaves no training rows"):
        Dataset_from(GREY, test_size=1797)


def test_origin_hash_follows_the_values():
    a, b = Dataset_from(GREY), Dataset_from(GREY.astype(np.float32))
    assert a.origin["kind"] == "arrays" and a.origin["sha256"] == b.origin["sha256"]
    changed = GREY.copy()
    changed[0, 0, 0] = 1 - changed[0, 0, 0]
    assert Dataset_from(changed).origin["sha256"] != a.origin["sha256"]


def test_summary_records_origin_split_shape_and_levels_and_survives_json():
    import json

    ds = Dataset_from(GREY).hold_out(100).limit(500, 50)
    summary = ds.summary()
    assert summary["image_shape"] == [8, 8] and summary["levels"] == 17
    assert summary["origin"]["kind"] == "arrays" and len(summary["split"]["test_rows"]) == 180
    assert ds.matches(json.loads(json.dumps(summary)))
    assert ds.levels == 17 and ds.split is not None and ds.origin  # limit and hold_out carry the new fields
    assert not ds.matches({**summary, "split": {**summary["split"], "seed": 1}})
