"""load_dataset on paths and torchvision names: .npy/.npz, image folders, CSV/Parquet tables,
and one line for every malformed source. The files are written by the tests from
scikit-learn's bundled digits and breast-cancer table (real data)."""
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_breast_cancer, load_digits

import pyrovae
from pyrovae.data.datasets import load_dataset
from pyrovae.data.splits import sha256_folder

DIGITS = load_digits()
GREY8 = (DIGITS.images * 255 / 16).round().astype(np.uint8)  # (1797, 8, 8) 8-bit


def one_line_error(spec, error=pyrovae.DataError, match=None, **kwargs):
    with pytest.raises(error, match=match) as info:
        load_dataset(spec, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


def listing(folder):
    return sorted((str(p), p.stat().st_mtime_ns) for p in folder.rglob("*"))


# ------------------------------------------------------------------- arrays
def test_npy_is_memory_mapped_split_and_hashed(tmp_path, monkeypatch):
    path = tmp_path / "digits.npy"
    np.save(path, (DIGITS.images / 16).astype(np.float32))
    calls = []
    real_load = np.load
    monkeypatch.setattr(np, "load", lambda *a, **k: calls.append(k) or real_load(*a, **k))
    ds = load_dataset(path, test_size=97, split_seed=3)
    assert calls == [{"mmap_mode": "r", "allow_pickle": False}]
    assert ds.image_shape == (8, 8) and ds.levels == 17 and len(ds.test_x) == 97 and len(ds.train_x) == 1700
    assert ds.origin["kind"] == "file" and ds.origin["format"] == "npy" and ds.origin["path"] == str(path)
    summary = ds.summary()
    assert summary["split"]["seed"] == 3 and summary["origin"]["sha256"] == ds.origin["sha256"]
    before = ds.origin["sha256"]
    np.save(path, (DIGITS.images[::-1] / 16).astype(np.float32))
    assert load_dataset(path).origin["sha256"] != before


def test_npz_with_its_own_split_and_labels(tmp_path):
    path = tmp_path / "digits.npz"
    np.savez(path, train=GREY8[:1500], test=GREY8[1500:1700], valid=GREY8[1700:], train_y=DIGITS.target[:1500],
             test_y=DIGITS.target[1500:1700])
    ds = load_dataset(path)
    assert ds.split is None and (len(ds.train_x), len(ds.test_x), len(ds.valid_x)) == (1500, 200, 97)
    assert ds.levels == 256 and torch.equal(ds.test_y, torch.from_numpy(DIGITS.target[1500:1700]))
    one_line_error(path, pyrovae.ConfigError, "drop --test-size", test_size=10)


def test_npz_x_and_y_or_one_array_get_the_seeded_split(tmp_path):
    np.savez(tmp_path / "xy.npz", x=GREY8, y=DIGITS.target)
    ds = load_dataset(tmp_path / "xy.npz")
    assert ds.split["of"] == 1797 and torch.equal(ds.test_y, torch.from_numpy(DIGITS.target[ds.split["test_rows"]]))
    np.savez(tmp_path / "one.npz", pixels=GREY8.reshape(-1, 64))
    assert load_dataset(tmp_path / "one.npz").image_shape is None
    np.savez(tmp_path / "odd.npz", a=GREY8, b=GREY8)
    one_line_error(tmp_path / "odd.npz", match=r"has the arrays \['a', 'b'\]")
    np.savez(tmp_path / "half.npz", train=GREY8)
    one_line_error(tmp_path / "half.npz", match="a split archive has train and test")


def test_arrays_that_need_pickle_are_refused(tmp_path):
    ragged = np.empty(2, dtype=object)
    ragged[0], ragged[1] = GREY8[0], GREY8[1, :4]  # two images of different sizes: only pickle holds them
    np.save(tmp_path / "ragged.npy", ragged, allow_pickle=True)
    np.savez(tmp_path / "ragged.npz", train=ragged, test=ragged)
    for name in ("ragged.npy", "ragged.npz"):
        message = one_line_error(tmp_path / name, match="only pickle could load")
        assert str(tmp_path / name) in message


def test_wrong_dimensions_and_damaged_files(tmp_path):
    np.save(tmp_path / "flat.npy", GREY8.reshape(-1))
    one_line_error(tmp_path / "flat.npy", match="flat.npy is a 1-d array")
    (tmp_path / "cut.npy").write_bytes((tmp_path / "flat.npy").read_bytes()[:100])
    one_line_error(tmp_path / "cut.npy", match="cut.npy is not a readable .npy array")
    (tmp_path / "bad.npz").write_bytes(b"PK not a zip")
    one_line_error(tmp_path / "bad.npz", match="bad.npz is not a readable .npz archive")


@pytest.mark.parametrize("name", ["empty.npy", "empty.npz", "empty.csv", "empty.parquet"])
def test_an_empty_file_is_one_line(tmp_path, name):
    (tmp_path / name).write_bytes(b"")
    one_line_error(tmp_path / name, match="is empty")


def test_a_path_that_is_not_a_data_set(tmp_path):
    (tmp_path / "notes.txt").write_text("digits")
    one_line_error(tmp_path / "notes.txt", match="unknown extension '.txt'")
    one_line_error(tmp_path, match="holds no images.*found notes.txt.*not a data set")
    one_line_error(tmp_path / "missing.npy", pyrovae.ConfigError, "neither a data set name")
    Image.fromarray(GREY8[0]).save(tmp_path / "one.png")
    one_line_error(tmp_path / "one.png", match="is one image; give the folder")


# ------------------------------------------------------------------- images
def write_pngs(folder, rows, labels=None, rgb=False):
    for i in rows:
        sub = folder if labels is None else folder / f"class{labels[i]}"
        sub.mkdir(parents=True, exist_ok=True)
        image = Image.fromarray(GREY8[i])
        (image.convert("RGB") if rgb else image).save(sub / f"{i:04d}.png")


def test_folder_of_grey_pngs_with_class_subfolders(tmp_path):
    write_pngs(tmp_path / "digits", range(60), DIGITS.target)
    before = listing(tmp_path)
    ds = load_dataset(tmp_path / "digits")
    assert listing(tmp_path) == before  # loading writes nothing
    assert ds.image_shape == (8, 8) and ds.levels == 256 and ds.split["of"] == 60 and len(ds.test_x) == 6
    assert ds.classes == [f"class{k}" for k in range(10)] and ds.origin["files"] == 60
    # source rows are the images in sorted order of their relative paths: class0/0000.png, class0/0010.png, ...
    order = sorted(range(60), key=lambda i: f"class{DIGITS.target[i]}/{i:04d}.png")
    first = order[ds.split["test_rows"][0]]
    assert torch.equal(ds.test_x[0], torch.from_numpy(GREY8[first].reshape(64)).float() / 255)
    assert int(ds.test_y[0]) == DIGITS.target[first]
    hash_before = ds.origin["sha256"]
    (tmp_path / "digits" / "class0" / "0000.png").rename(tmp_path / "digits" / "class0" / "renamed.png")
    assert load_dataset(tmp_path / "digits").origin["sha256"] != hash_before


def test_train_and_test_subfolders_are_the_split_and_rgb_is_three_channels(tmp_path):
    write_pngs(tmp_path / "set" / "train", range(40), rgb=True)
    write_pngs(tmp_path / "set" / "test", range(40, 50), rgb=True)
    ds = load_dataset(tmp_path / "set")
    assert ds.split is None and (len(ds.train_x), len(ds.test_x)) == (40, 10) and ds.image_shape == (3, 8, 8)
    assert torch.equal(ds.test_x[0, 64:128], torch.from_numpy(GREY8[40].reshape(64)).float() / 255)


def test_mixed_grey_and_rgb_read_as_rgb_with_a_note(tmp_path):
    write_pngs(tmp_path / "mixed", range(10))
    write_pngs(tmp_path / "mixed", range(10, 20), rgb=True)
    ds = load_dataset(tmp_path / "mixed")
    assert ds.image_shape == (3, 8, 8) and any("all read as RGB" in n for n in ds.notes)


def test_mixed_sizes_need_image_size(tmp_path):
    write_pngs(tmp_path / "sizes", range(10))
    Image.fromarray(GREY8[10]).resize((16, 12)).save(tmp_path / "sizes" / "big.png")
    message = one_line_error(tmp_path / "sizes", match="images of different sizes")
    assert "0000.png is 8x8" in message and "big.png is 16x12" in message and "--image-size" in message
    ds = load_dataset(tmp_path / "sizes", image_size=12)
    assert ds.image_shape == (12, 12) and ds.x_dim == 144 and any("resized to 12x12" in n for n in ds.notes)


def test_a_corrupt_image_is_named(tmp_path):
    write_pngs(tmp_path / "broken", range(10))
    good = (tmp_path / "broken" / "0003.png").read_bytes()
    (tmp_path / "broken" / "0003.png").write_bytes(good[: len(good) // 2])
    one_line_error(tmp_path / "broken", match="0003.png is not a readable image")
    (tmp_path / "broken" / "0003.png").write_bytes(b"\x89PNG not really")
    one_line_error(tmp_path / "broken", match="0003.png is not a readable image")


# ------------------------------------------------------------------- tables
@pytest.fixture(scope="module")
def cancer():
    return load_breast_cancer(as_frame=True).data  # (569, 30) real features


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_table_of_features(tmp_path, cancer, suffix):
    path = tmp_path / f"cancer{suffix}"
    cancer.to_csv(path, index=False) if suffix == ".csv" else cancer.to_parquet(path)
    ds = load_dataset(path)
    assert ds.image_shape is None and ds.levels is None and ds.columns == list(cancer.columns) and ds.x_dim == 30
    rows = ds.split["test_rows"]
    assert torch.allclose(ds.test_x, torch.from_numpy(cancer.to_numpy()[rows]).float())  # raw, not standardized
    assert ds.origin["format"] == suffix[1:]


def test_table_refusals_name_column_and_row(tmp_path, cancer):
    frame = cancer.copy()
    frame.insert(0, "patient", [f"p{i}" for i in range(len(frame))])
    frame.to_csv(tmp_path / "named.csv", index=False)
    one_line_error(tmp_path / "named.csv", match=r"column 'patient' is not numeric \(row 1 \(line 2\) holds 'p0'\); drop")
    frame = cancer.copy()
    frame.iloc[41, 2] = np.nan
    frame.to_csv(tmp_path / "hole.csv", index=False)
    one_line_error(tmp_path / "hole.csv", match=r"column 'mean perimeter' has a missing/NaN value at row 42 \(line 43\)")
    frame.iloc[41, 2] = np.inf
    frame.to_parquet(tmp_path / "inf.parquet")
    one_line_error(tmp_path / "inf.parquet", match="column 'mean perimeter' has an infinite value at row 42;")
    (tmp_path / "header.csv").write_text(",".join(cancer.columns) + "\n")
    one_line_error(tmp_path / "header.csv", match="has a header but no rows")
    one_line_error(tmp_path / "header.csv", pyrovae.ConfigError, "--image-size resizes image folders", image_size=8)


def test_a_value_beyond_float32_is_named_without_a_warning(tmp_path, cancer):
    frame = cancer.copy()
    frame.iloc[6, 3] = 1e308  # finite, but infinite as float32
    frame.to_csv(tmp_path / "huge.csv", index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy overflow warning before the error
        message = one_line_error(tmp_path / "huge.csv")
    assert "column 'mean area' has the value 1e+308 at row 7 (line 8)" in message
    assert "beyond the range of float32 (about 3.4e38)" in message and "infinite" not in message
    x = (DIGITS.images.reshape(-1, 64) / 16).astype(np.float64)
    x[11, 5] = -1e300
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(pyrovae.DataError, match=r"value -1e\+300 at row 11 \(entry 5 of the row\), beyond the range "
                                                    r"of float32"):
            pyrovae.Dataset.from_arrays(x)


# ------------------------------------------------------------ names
@pytest.mark.parametrize("name", ["cifar10", "svhn", "kmnist", "emnist-letters", "celeba"])
@pytest.mark.parametrize("download", [False, True])
def test_torchvision_names_offline_say_where_to_put_the_files(tmp_path, name, download):
    message = one_line_error(name, data_dir=tmp_path, download=download)
    assert message.startswith(f"{name} is not in {tmp_path}") and "put " in message and "download it" in message
    assert ("could not be downloaded" if download else "downloading was turned off") in message


def test_built_in_names_record_levels_and_origin(tmp_path):
    binary = np.tile(GREY8.reshape(-1, 64) > 127, 13)[:, :784]  # (N, 784) 0/1 rows made of real digits
    np.savez(tmp_path / "binarized_mnist.npz", **{k: np.packbits(binary[a:b], axis=1)  # (n, 98)
                                                  for k, a, b in (("train", 0, 30), ("valid", 30, 40), ("test", 40, 60))})
    ds = load_dataset("binarized-mnist", tmp_path, download=False)
    assert ds.levels == 2 and ds.origin == {"kind": "name", "name": "binarized-mnist", "files": ["binarized_mnist.npz"],
                                            "sha256": sha256_folder(tmp_path, [tmp_path / "binarized_mnist.npz"])}
    one_line_error("mnist", pyrovae.ConfigError, "drop --test-size", test_size=5)


def test_sample_mnist_has_256_levels(mnist_sample):
    assert mnist_sample.levels == 256 and mnist_sample.origin["files"] == ["mnist_5k.csv.gz"]
    assert mnist_sample.origin["kind"] == "name" and mnist_sample.origin["name"] == "mnist"
    assert len(mnist_sample.origin["sha256"]) == 64 and mnist_sample.classes == [str(k) for k in range(10)]


def test_cifar10_files_are_read_channel_last_with_torchvision_split(tmp_path, monkeypatch):
    import torchvision.datasets

    class FakeCIFAR10:  # torchvision's layout: .data (N, 32, 32, 3) uint8, .targets list, .classes, its files
        classes = [str(k) for k in range(10)]
        base_folder, meta = "cifar-10-batches-py", {"filename": "batches.meta"}
        train_list, test_list = [["data_batch_1", None]], [["test_batch", None]]

        def __init__(self, root, train=True, download=False):
            self.root, self.train = root, train
            rows = slice(0, 50) if train else slice(50, 60)
            big = GREY8[rows].repeat(4, axis=1).repeat(4, axis=2)  # (n, 32, 32): real digits, 4x4 blocks
            self.data = np.stack([big, big // 2, 255 - big], axis=-1)
            self.targets = list(DIGITS.target[rows])

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)
    (tmp_path / "cifar-10-batches-py").mkdir()
    for name in ("data_batch_1", "test_batch", "batches.meta"):
        (tmp_path / "cifar-10-batches-py" / name).write_bytes(name.encode())
    ds = load_dataset("cifar10", tmp_path, download=False)
    assert ds.image_shape == (3, 32, 32) and ds.levels == 256 and ds.split is None
    assert (len(ds.train_x), len(ds.test_x)) == (50, 10) and torch.equal(ds.test_y, torch.from_numpy(DIGITS.target[50:60]))
    assert float(ds.test_x[0, 2 * 1024]) == pytest.approx((255 - GREY8[50, 0, 0]) / 255)  # channel 2, pixel (0, 0)
    files = ["cifar-10-batches-py/batches.meta", "cifar-10-batches-py/data_batch_1", "cifar-10-batches-py/test_batch"]
    assert ds.origin == {"kind": "name", "name": "cifar10", "files": files,
                         "sha256": sha256_folder(tmp_path, [tmp_path / f for f in files])}
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(b"changed")
    assert load_dataset("cifar10", tmp_path, download=False).origin["sha256"] != ds.origin["sha256"]
    one_line_error("cifar10", pyrovae.ConfigError, "--image-size resizes image folders and celeba", data_dir=tmp_path,
                   image_size=16)
