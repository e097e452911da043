"""M1+M2 as a run (``--model m1m2 --m1-run RUN``): M2 trained on the posterior means of a finished
vae run, one run folder that stands alone and classifies pixels; resumed exactly; refused in one
line where the M1 run is not a finished vae run on the same data."""
import hashlib
import json
import shutil

import numpy as np
import pytest
import torch

import pyrovae
from helpers import run_main
from pyrovae.analysis.encode import encode_run
from pyrovae.analysis.evaluate import evaluate_run
from pyrovae.errors import ConfigError
from pyrovae.training.checkpoint import read_checkpoint
from pyrovae.training.run import Run
from pyrovae.training.stacked import features

TINY = {"epochs": 2, "hidden": (16,), "batch_size": 64, "threads": 1, "progress": False, "test_size": 60}


def _npz(path, sample, rows):
    x, y = sample.train_x.numpy(), sample.train_y.numpy()
    idx = np.random.default_rng(0).permutation(len(x))[rows]  # the sample is sorted by class: a mix of classes
    np.savez(path, x=x[idx].reshape(-1, 28, 28), y=y[idx])
    return path


@pytest.fixture(scope="module")
def data(mnist_sample, tmp_path_factory):
    """(digits.npz: 300 real digits with labels, other.npz: 300 others)."""
    folder = tmp_path_factory.mktemp("m1m2-data")
    return _npz(folder / "digits.npz", mnist_sample, slice(0, 300)), _npz(folder / "other.npz", mnist_sample,
                                                                          slice(300, 600))


@pytest.fixture(scope="module")
def m1(data, tmp_path_factory):
    """A finished vae run (M1) on digits.npz."""
    out = tmp_path_factory.mktemp("m1m2-runs") / "m1"
    torch.set_num_threads(1)
    pyrovae.train(pyrovae.TrainConfig(dataset=str(data[0]), z_dim=6, elbo="meanfield", out=str(out), **TINY),
                  log=lambda line: None)
    return out


def stacked(m1_run, out, **settings):
    return pyrovae.TrainConfig(**{"dataset": json.loads((m1_run / "config.json").read_text())["settings"]["dataset"],
                                  "model": "m1m2", "m1_run": str(m1_run), "likelihood": "gaussian", "z_dim": 3,
                                  "labels_per_class": 2, "alpha": 100.0, "out": str(out), **TINY, **settings})


def test_m1m2_run_stands_alone_and_classifies_pixels(m1, data, tmp_path):
    out, m1 = tmp_path / "m1m2", shutil.copytree(m1, tmp_path / "m1")  # a copy: it is removed below
    metrics = pyrovae.train(stacked(m1, out), log=lambda line: None)
    record = json.loads((out / "config.json").read_text())
    m1_best = (m1 / "best.pt").read_bytes()
    assert record["m1"] == {"run": str(m1.resolve()), "run_id": json.loads((m1 / "config.json").read_text())["run_id"],
                            "checkpoint": "best.pt", "epoch": read_checkpoint(m1 / "best.pt")["epoch"],
                            "sha256": hashlib.sha256(m1_best).hexdigest()}
    assert record["settings"]["binarize"] == record["settings"]["dequantize"] == "none"
    assert metrics["model"] == "m1m2" and metrics["dataset"]["labels"]["labelled_rows"]
    model = pyrovae.load(out / "best.pt")
    assert type(model) is pyrovae.M1M2 and (model.x_dim, model.m1.z_dim, model.z_dim) == (784, 6, 3)
    m1_weights = read_checkpoint(m1 / "best.pt")["state_dict"]
    assert all(torch.equal(model.m1.state_dict()[k], v) for k, v in m1_weights.items())  # M1 copied, frozen
    x = torch.from_numpy(np.load(data[0])["x"][:50].reshape(50, -1)).float()
    probs = model.classify(x)
    assert torch.equal(probs, model.m2.classify(model.m1.encode(x)[0]))  # pixels -> M1's loc -> M2's q(y|.)
    assert torch.equal(torch.softmax(model.pixel_classifier()(x), -1), probs)
    # M2's standardization is that of the training rows' posterior means
    with Run.open(out) as run:
        train = features(model.m1, run.dataset(log=lambda line: None)).train_x
    assert torch.equal(model.m2.standardizer.mean, train.double().mean(0).float())
    shutil.rmtree(m1)  # the run stands alone: evaluate, encode and resume never open M1
    result = evaluate_run(out, num_samples=5, log=lambda line: None)
    assert "M1's posterior means (6 columns)" in result["units"] and 0 <= result["test_accuracy"] <= 1
    assert result["test_accuracy"] == json.loads((out / "metrics.json").read_text())["test_accuracy"]
    summary = encode_run(out, "test", tmp_path / "z.npz", log=lambda line: None)
    with np.load(tmp_path / "z.npz") as z:
        assert z["probs"].shape == (60, 10) and z["loc"].shape == (60, 3) and summary["rows"] == 60
    assert pyrovae.resume(out, epochs=3, log=lambda line: None)["history"][-1]["epoch"] == 3


def test_m1m2_resumes_exactly(m1, tmp_path):
    whole = pyrovae.train(stacked(m1, tmp_path / "whole"), log=lambda line: None)

    def stop(epoch, vae, data):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pyrovae.train(stacked(m1, tmp_path / "cut"), log=lambda line: None, on_epoch_end=[stop])
    resumed = pyrovae.resume(tmp_path / "cut", log=lambda line: None)
    assert [h["train_elbo"] for h in resumed["history"]] == [h["train_elbo"] for h in whole["history"]]
    a, b = (read_checkpoint(tmp_path / f / "checkpoint.pt")["state_dict"] for f in ("whole", "cut"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _refused(capsys_args, out):
    result = run_main("svi_train.py", *map(str, capsys_args))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), \
        result.stderr
    assert not out.exists()
    return result.stderr


def test_m1m2_refuses_an_m1_that_is_not_a_finished_vae_run_on_the_same_data(m1, data, tmp_path):
    flags = ["--model", "m1m2", "--likelihood", "gaussian", "--labels-per-class", "2", "--epochs", "1",
             "--hidden", "8", "--z-dim", "2", "--test-size", "60", "--threads", "1", "--no-progress"]
    out = tmp_path / "new"
    m2 = tmp_path / "m2"
    pyrovae.train(pyrovae.TrainConfig(dataset=str(data[0]), model="m2", labels_per_class=2, out=str(m2), z_dim=2,
                                      **{**TINY, "epochs": 1}), log=lambda line: None)
    assert "holds a m2 run; M1 is a finished vae run" in _refused(
        ["--dataset", data[0], "--m1-run", m2, *flags, "--out", out], out)
    unfinished = tmp_path / "unfinished"

    def stop(epoch, vae, rows):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pyrovae.train(pyrovae.TrainConfig(dataset=str(data[0]), z_dim=6, out=str(unfinished), **TINY),
                      log=lambda line: None, on_epoch_end=[stop])
    assert "has not finished: 1 of its 2 epochs" in _refused(
        ["--dataset", data[0], "--m1-run", unfinished, *flags, "--out", out], out)
    assert "(its origin.path differs)" in _refused(["--dataset", data[1], "--m1-run", m1, *flags, "--out", out], out)
    split = _refused(["--dataset", data[0], "--m1-run", m1, *flags, "--split-seed", "1", "--out", out], out)
    assert "(its split." in split and "give an M1 trained on the same data" in split
    changed = tmp_path / "changed"  # M1's best.pt replaced by another run's
    shutil.copytree(m1, changed)
    shutil.copy(unfinished / "best.pt", changed / "best.pt")
    assert "belongs to another run" in _refused(["--dataset", data[0], "--m1-run", changed, *flags, "--out", out], out)
    assert "is not a run folder (it does not exist)" in _refused(
        ["--dataset", data[0], "--m1-run", tmp_path / "none", *flags, "--out", out], out)
    assert "use --likelihood gaussian or laplace" in _refused(
        ["--dataset", data[0], "--m1-run", m1, *flags, "--likelihood", "bernoulli", "--out", out], out)
    assert "drop --standardize columns" in _refused(
        ["--dataset", data[0], "--m1-run", m1, *flags, "--standardize", "columns", "--out", out], out)
    assert "give --model m1m2, or drop --m1-run" in _refused(
        ["--dataset", data[0], "--m1-run", m1, "--model", "m2", "--out", out], out)
    with pytest.raises(ConfigError, match="give --m1-run RUN_DIR"):  # the same rule for Python and config files
        pyrovae.TrainConfig(model="m1m2", likelihood="gaussian").validate()
