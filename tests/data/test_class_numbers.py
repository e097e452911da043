"""Labels given as numbers (an .npz's y or train_y/test_y, arrays given in Python) must be class
numbers 0..K-1 with every class used: sparse or huge values are refused in one line that names
the range found and what is accepted, before any training, by every program that loads them."""
import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

import pyrovae
from pyrovae.cli.svi_train import main
from pyrovae.data.datasets import load_dataset

X = (load_digits().images[:60].reshape(60, 64) / 16).astype(np.float32)


@pytest.mark.parametrize("values, found", [
    ((0, 2 ** 62), "from 0 to 4611686018427387904 (2 distinct values: 0, 4611686018427387904)"),
    ((0, 7), "from 0 to 7 (2 distinct values: 0, 7)"),
    ((1, 2, 3), "from 1 to 3 (3 distinct values: 1, 2, 3)"),
    ((-3, 0, 1), "from -3 to 1 (2 distinct values: 0, 1)"),
])
def test_labels_that_are_not_class_numbers_are_refused_in_one_line(values, found, tmp_path):
    y = np.resize(np.array(values, dtype=np.int64), len(X))
    path = tmp_path / "labelled.npz"
    np.savez(path, x=X, y=y)
    with pytest.raises(pyrovae.DataError) as info:
        load_dataset(str(path))
    message = str(info.value)
    assert "\n" not in message and f"the labels of {path} 'x' run {found}; labels must be class numbers 0..K-1 " \
        "with every class used (-1 marks a hidden label)" in message
    with pytest.raises(pyrovae.DataError, match="the labels of the training array run " + found.split(" (")[0]):
        pyrovae.Dataset.from_arrays(X, train_y=y)
    with pytest.raises(pyrovae.DataError, match="the labels of the training array and the test array run"):
        pyrovae.Dataset.from_arrays(X[:40], X[40:], train_y=y[:40], test_y=y[40:])


@pytest.mark.parametrize("model", ["cvae", "m2"])
def test_a_run_on_sparse_labels_is_refused_before_it_trains(model, tmp_path, capsys):
    path = tmp_path / "labelled.npz"
    np.savez(path, x=X, y=np.resize([0, 7], len(X)))
    out = tmp_path / "run"
    code = main(["--dataset", str(path), "--model", model, "--epochs", "1", "--z-dim", "2", "--hidden", "8",
                 "--likelihood", "gaussian", "--no-progress", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: the labels of ")
    assert "run from 0 to 7 (2 distinct values: 0, 7); labels must be class numbers 0..K-1" in err[0]
    assert not out.exists()


def test_class_numbers_and_hidden_labels_are_kept():
    y = np.resize(np.arange(3), len(X))
    y[:5] = -1
    ds = pyrovae.Dataset.from_arrays(X, train_y=y, test_size=10)
    assert ds.summary()["num_classes"] == 3
    assert set(torch.cat([ds.train_y, ds.test_y]).tolist()) == {-1, 0, 1, 2}
    ds = pyrovae.Dataset.from_arrays(X[:40], X[40:], train_y=np.resize([0, 1], 40), test_y=np.resize([2], 20))
    assert ds.summary()["num_classes"] == 3  # a class of the test rows alone is still a class number
