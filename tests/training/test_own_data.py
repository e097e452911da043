"""A run on a user's own data: settings, preprocessing per data kind, and the record that
lets resume and evaluation reload the same data (or say in one line which data they need)."""
import json
import math

import numpy as np
import pytest
import torch
import torch.distributions as td

import pyrovae
from helpers import run_main, run_script
from pyrovae.analysis.evaluate import evaluate_run
from pyrovae.data.arrays import detect_levels
from pyrovae.data.prepare import prepare_data
from pyrovae.data.transforms import dequantize

QUIET = dict(progress=False)


@pytest.fixture(scope="module")
def digits():
    """scikit-learn's 8x8 digits, grey levels 0..16 scaled to [0, 1]: (1797, 8, 8)."""
    from sklearn.datasets import load_digits

    return load_digits().images.astype(np.float32) / 16.0


@pytest.fixture(scope="module")
def cancer():
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer().data.astype(np.float32)  # (569, 30), columns on very different scales


def test_levels_are_detected_from_the_values(digits, mnist_sample):
    assert detect_levels(torch.from_numpy(digits)) == 17
    assert detect_levels(mnist_sample.train_x) == 256
    assert detect_levels(torch.bernoulli(mnist_sample.train_x[:100])) == 2
    assert detect_levels(torch.rand(1000, 10)) is None  # continuous
    assert detect_levels(torch.tensor([[0.0, 2.0]])) is None  # outside [0, 1]


def test_dequantization_fills_the_bins_of_the_real_number_of_levels(digits):
    x = torch.from_numpy(digits).reshape(len(digits), -1)
    y = dequantize(x, torch.Generator().manual_seed(0), levels=17)
    k = (x * 16).round()
    # level k fills [k/17, (k+1)/17): floor(17 y) gives k back, and the noise is uniform in the bin
    assert torch.equal(torch.floor(y * 17), k)
    frac = (y * 17 - k).flatten()
    assert abs(frac.mean().item() - 0.5) < 5 * math.sqrt(1 / 12 / len(frac))


def test_gaussian_on_17_level_digits_is_dequantized_with_17_levels(digits):
    dataset = pyrovae.Dataset.from_arrays(digits)
    config = pyrovae.TrainConfig(likelihood="gaussian").validate()
    data = prepare_data(config, pyrovae.data.prepare.select_data(config, dataset), pyrovae.get_likelihood("gaussian"))
    assert data.transform == "dequantize" and data.levels == 17
    assert torch.equal(torch.floor(data.test_x * 17), (dataset.test_x * 16).round())


def test_table_columns_are_standardized_with_the_training_rows(cancer):
    dataset = pyrovae.Dataset.from_arrays(cancer)
    config = pyrovae.TrainConfig(likelihood="gaussian").validate()
    selected = pyrovae.data.prepare.select_data(config, dataset)
    data = prepare_data(config, selected, pyrovae.get_likelihood("gaussian"))
    assert data.transform == "none" and data.standardization is not None
    mean, std = selected.train_x.double().mean(0), selected.train_x.double().std(0)
    assert torch.allclose(data.standardization["mean"].double(), mean, rtol=1e-6)
    assert torch.allclose(data.train_x.double().mean(0), torch.zeros(30, dtype=torch.float64), atol=1e-4)
    assert torch.allclose(data.train_x.double().std(0), torch.ones(30, dtype=torch.float64), atol=1e-4)
    # the test rows use the training rows' statistics, not their own
    assert torch.allclose(data.test_x.double(), (selected.test_x.double() - mean) / std, atol=1e-4)


def test_a_table_with_bernoulli_is_one_clear_line(cancer, tmp_path):
    dataset = pyrovae.Dataset.from_arrays(cancer)
    with pytest.raises(pyrovae.DataError, match="bernoulli"):
        pyrovae.train(pyrovae.TrainConfig(out=str(tmp_path / "r"), epochs=1, **QUIET), dataset=dataset,
                      log=lambda s: None)


def test_train_takes_a_likelihood_object_or_callable(digits, tmp_path):
    dataset = pyrovae.Dataset.from_arrays(digits)

    def student_t(out):  # two decoder outputs per pixel
        loc, raw = out.chunk(2, dim=-1)
        return td.StudentT(4.0, loc, torch.nn.functional.softplus(raw) + 1e-3)

    lik = pyrovae.model.likelihoods.CallableLikelihood(student_t, outputs_per_pixel=2)
    out = tmp_path / "t"
    config = pyrovae.TrainConfig(likelihood=lik, epochs=1, z_dim=4, hidden=(32,), out=str(out), **QUIET)
    metrics = pyrovae.train(config, dataset=dataset, log=lambda s: None)
    assert math.isfinite(metrics["test_elbo"])
    settings = json.loads((out / "config.json").read_text())["settings"]
    assert settings["likelihood"] == {"name": "student_t", "outputs_per_pixel": 2, "custom": True}
    # resuming needs the callable and the data again: each missing one is one line
    with pytest.raises(pyrovae.PyrovaeError, match="callable"):
        pyrovae.resume(out, epochs=2, dataset=dataset, log=lambda s: None)
    with pytest.raises(pyrovae.DataError, match="given in Python"):
        pyrovae.resume(out, epochs=2, likelihood=student_t, log=lambda s: None)
    metrics = pyrovae.resume(out, epochs=2, likelihood=student_t, dataset=dataset, log=lambda s: None)
    assert len(metrics["history"]) == 2
    built_in = pyrovae.TrainConfig(likelihood=pyrovae.get_likelihood("laplace", scale=0.2)).validate()
    assert built_in.to_dict()["likelihood"] == {"name": "laplace", "scale": 0.2, "min_scale": 1e-3}


def test_cli_resume_and_evaluate_of_python_data_say_which_data_they_need(digits, tmp_path):
    out = tmp_path / "run"
    pyrovae.train(pyrovae.TrainConfig(likelihood="gaussian", epochs=1, z_dim=4, hidden=(32,), out=str(out), **QUIET),
                  dataset=pyrovae.Dataset.from_arrays(digits), log=lambda s: None)
    for result in (run_main("svi_train.py", "--resume", out), run_main("evaluate.py", out)):
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "given in Python" in lines[0] and "sha256" in lines[0], result.stderr


def test_a_file_source_is_recorded_and_reloaded_by_evaluate(digits, tmp_path):
    path = tmp_path / "digits.npy"
    np.save(path, digits)
    out = tmp_path / "run"
    config = pyrovae.TrainConfig(dataset=str(path), likelihood="gaussian", epochs=1, z_dim=4, hidden=(32,),
                                 out=str(out), **QUIET)
    pyrovae.train(config, log=lambda s: None)
    recorded = json.loads((out / "metrics.json").read_text())["dataset"]
    assert recorded["origin"]["path"] == str(path.resolve()) and len(recorded["origin"]["sha256"]) == 64
    assert len(recorded["split"]["test_rows"]) == recorded["num_test"]
    result = evaluate_run(out, num_samples=10, log=lambda s: None)
    assert result["num_test_images"] == recorded["num_test"]
    d = 64
    assert result["test_bpd"] == pytest.approx((result["test_nll"] + d * math.log(17)) / (d * math.log(2)))
    np.save(path, digits[::-1].copy())  # the file changes: evaluation refuses, naming the data
    with pytest.raises(pyrovae.DataError, match="digits"):
        evaluate_run(out, num_samples=10, log=lambda s: None)


def test_a_class_sorted_source_with_its_own_split_gives_up_random_validation_rows(digits):
    labels = np.repeat(np.arange(2), 100)  # training rows sorted by class, as class folders read
    data = pyrovae.Dataset.from_arrays(digits[:200], digits[200:260], train_y=labels).hold_out()
    assert data.held_out["rule"].startswith("a random") and len(data.held_out["valid_rows"]) == 20
    valid = np.asarray(data.held_out["valid_rows"])
    assert 0 < (valid >= 100).sum() < 20  # both classes, not only the last one
    assert torch.equal(data.valid_x, pyrovae.Dataset.from_arrays(digits[:200], digits[200:260]).train_x[valid])


def test_data_given_in_python_from_a_file_is_recorded_by_its_path(digits, tmp_path):
    path = tmp_path / "digits.npy"
    np.save(path, digits)
    out = tmp_path / "run"
    pyrovae.train(pyrovae.TrainConfig(likelihood="gaussian", epochs=1, z_dim=4, hidden=(32,), out=str(out), **QUIET),
                  dataset=pyrovae.load_dataset(path, test_size=100, split_seed=5), log=lambda s: None)
    settings = json.loads((out / "config.json").read_text())["settings"]
    assert (settings["dataset"], settings["test_size"], settings["split_seed"]) == (str(path.resolve()), 100, 5)
    result = run_script("svi_train.py", "--resume", out, "--epochs", "2", "--no-progress")
    assert result.returncode == 0, result.stderr
    path.unlink()  # the data are gone: one line that says so, not "damaged"
    result = run_main("evaluate.py", out)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "not there now" in lines[0] and "damaged" not in lines[0]


def test_encode_of_the_runs_own_rows_gives_their_places_in_the_source(digits, tmp_path):
    path = tmp_path / "digits.npy"
    np.save(path, digits)
    out = tmp_path / "run"
    pyrovae.train(pyrovae.TrainConfig(dataset=str(path), likelihood="gaussian", epochs=1, z_dim=4, hidden=(32,),
                                      out=str(out), **QUIET), log=lambda s: None)
    from pyrovae.analysis.encode import encode_run

    encode_run(out, "all", tmp_path / "own.npz", log=lambda s: None)
    encode_run(out, str(path), tmp_path / "file.npz", log=lambda s: None)
    with np.load(tmp_path / "own.npz") as own, np.load(tmp_path / "file.npz") as whole:
        assert sorted(own["row"].tolist()) == list(range(len(digits)))  # every source row once
        test_rows = json.loads((out / "metrics.json").read_text())["dataset"]["split"]["test_rows"]
        assert own["row"][-len(test_rows):].tolist() == test_rows
        order = np.argsort(own["row"])
        np.testing.assert_allclose(own["loc"][order], whole["loc"], rtol=1e-5, atol=1e-6)


def test_encode_dataset_takes_a_dataset(digits, tmp_path):
    from sklearn.datasets import load_digits

    data = pyrovae.Dataset.from_arrays(digits, train_y=load_digits().target).hold_out()
    torch.manual_seed(0)
    vae = pyrovae.VAE(x_dim=64, z_dim=3, hidden=(16,), likelihood="gaussian", image_shape=(8, 8))
    summary = pyrovae.encode_dataset(vae, data, tmp_path / "z.npz", batch_size=100)
    assert summary["rows"] == len(digits) and "y" in summary["arrays"]
    with np.load(tmp_path / "z.npz") as z:
        x = torch.cat([data.train_x, data.valid_x, data.test_x])
        np.testing.assert_allclose(z["loc"], vae.encode(x)[0].numpy(), rtol=1e-5, atol=1e-6)
