"""Small real runs for the export tests, trained once per session, and their exports; a stand-in for the
explorer page's runtime."""
import hashlib

import numpy as np
import pytest
from export_helpers import ROWS, RUNS, TINY

import pyrovae
from pyrovae.export import export_run, runtime


def _evenly(x, n=ROWS):
    """``n`` rows evenly spaced over ``x`` (the MNIST sample's rows are sorted by class)."""
    return x[np.linspace(0, len(x) - 1, n).astype(int)]


@pytest.fixture(scope="session")
def cancer_table():
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer().data.astype(np.float32)  # (569, 30), columns from about 1e-3 to 4e3


@pytest.fixture(scope="session")
def cancer_labels():
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer().target.astype(np.int64)  # (569,), 0 malignant, 1 benign


@pytest.fixture(scope="session")
def digit_images():
    from sklearn.datasets import load_digits

    return (load_digits().images / 16).astype(np.float32)  # (1797, 8, 8), 17 grey levels in [0, 1]


@pytest.fixture(scope="session")
def datasets(mnist_sample, cancer_table, cancer_labels, digit_images):
    """name -> (Dataset to train on, real rows (ROWS, D) float32 in data units to export-check on)."""
    return {"mnist": (mnist_sample, _evenly(mnist_sample.test_x.numpy())),
            "cancer": (pyrovae.Dataset.from_arrays(cancer_table), _evenly(cancer_table)),
            "cancer-labelled": (pyrovae.Dataset.from_arrays(cancer_table, train_y=cancer_labels),
                                _evenly(cancer_table)),
            "digits": (pyrovae.Dataset.from_arrays(digit_images, levels=17),
                       _evenly(digit_images.reshape(len(digit_images), -1)))}


@pytest.fixture(scope="session")
def trained(datasets, tmp_path_factory):
    """name -> run folder, each trained on first use."""
    folders = {}

    def get(name):
        if name not in folders:
            data, settings = RUNS[name]
            out = tmp_path_factory.mktemp(name) / "run"
            pyrovae.train(pyrovae.TrainConfig(**{**TINY, **settings, "out": str(out)}), dataset=datasets[data][0],
                          log=lambda s: None)
            folders[name] = out
        return folders[name]

    return get


@pytest.fixture(scope="session")
def exported(trained, tmp_path_factory):
    """(name, format) -> the export folder of that run, written on first use."""
    folders = {}

    def get(name, fmt):
        if (name, fmt) not in folders:
            out = tmp_path_factory.mktemp(f"{name}-{fmt}") / "export"
            export_run(trained(name), fmt, out, log=lambda s: None)
            folders[name, fmt] = out
        return folders[name, fmt]

    return get


@pytest.fixture
def fake_runtime(tmp_path, monkeypatch):
    """A folder with three small stand-ins for the explorer page's runtime files, which runtime.FILES is set
    to; the cache is an empty folder of the test's own."""
    folder = tmp_path / "ort"
    folder.mkdir()
    names = tuple(runtime.FILES)
    for name in names:
        (folder / name).write_bytes(f"stand-in for {name}".encode())
    monkeypatch.setattr(runtime, "FILES", {n: hashlib.sha256((folder / n).read_bytes()).hexdigest() for n in names})
    monkeypatch.setenv("PYROVAE_CACHE_DIR", str(tmp_path / "cache"))
    return folder
