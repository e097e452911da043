"""evaluate.py and plot_latent.py on small real runs."""
import json
import math
import shutil
from pathlib import Path

import pytest
import torch

import pyrovae
from helpers import run_main, tiny_run
from pyrovae.analysis.evaluate import evaluate_run
from pyrovae.analysis.plot_latent import plot_latent_run
from pyrovae.data.prepare import prepare_data
from pyrovae.training.run import Run

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bernoulli_run(mnist_sample, tmp_path_factory):
    return tiny_run(tmp_path_factory.mktemp("bern"), mnist_sample, z_dim=2)


def test_evaluate_writes_nll_below_minus_elbo(bernoulli_run):
    result = evaluate_run(bernoulli_run, num_samples=300, log=lambda s: None)
    metrics = json.loads((bernoulli_run / "metrics.json").read_text())
    assert metrics["test_nll"] == result["test_nll"] and metrics["evaluation"]["num_test_images"] == 100
    assert "test_bpd" not in metrics  # binary data: nats only
    # log p_K >= ELBO in expectation: NLL <= -ELBO (the gap is well above the noise here)
    assert result["test_nll"] < -result["test_elbo"]
    assert math.isclose(result["test_elbo"], result["expected_log_likelihood"] - result["kl"], rel_tol=1e-5)
    assert 0 <= result["active_units"] <= 2 and result["test_nll_se"] > 0


def test_the_spot_check_is_what_the_public_api_recomputes_from_the_checkpoint(bernoulli_run, mnist_sample, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(bernoulli_run, run)
    check = evaluate_run(run, num_samples=40, test_subset=9, log=lambda s: None)["spot_check"]
    assert check["test_rows"] == [0, 33, 66, 99] and check["num_samples"] == 40 and check["device"] == "cpu"
    assert json.loads((run / "metrics.json").read_text())["evaluation"]["spot_check"] == check
    vae = pyrovae.load(run / "best.pt")  # (building a model draws: load first, then seed)
    with Run.open(run) as opened:  # the run's 100 test rows, binarized once as evaluate scores them
        test_x = prepare_data(opened.config, opened.dataset(mnist_sample, lambda s: None), vae.likelihood).test_x
    torch.manual_seed(check["seed"])
    assert pyrovae.log_likelihood(vae, test_x[check["test_rows"]], num_samples=40).tolist() == check["log_p"]
    torch.manual_seed(check["seed"] + 1)  # another draw differs: the record pins the draws, not only the model
    assert pyrovae.log_likelihood(vae, test_x[check["test_rows"]], num_samples=40).tolist() != check["log_p"]


def test_evaluate_on_an_evenly_spaced_subset(bernoulli_run, tmp_path):
    run = tmp_path / "run"  # a copy: evaluating rewrites the run's metrics.json, which the other tests read
    shutil.copytree(bernoulli_run, run)
    result = evaluate_run(run, num_samples=10, test_subset=7, log=lambda s: None)
    assert result["num_test_images"] == 7 and result["test_images"] == "7 of 100, evenly spaced"
    assert json.loads((run / "metrics.json").read_text())["evaluation"]["num_test_images"] == 7


def test_evaluate_reports_bits_per_dim_for_dequantized_data(mnist_sample, tmp_path):
    run = tiny_run(tmp_path, mnist_sample, z_dim=4, likelihood="beta")
    result = evaluate_run(run, num_samples=50, log=lambda s: None)
    assert math.isclose(result["test_bpd"], (result["test_nll"] + 784 * math.log(256)) / (784 * math.log(2)))
    assert 0 < result["test_bpd"] < 8  # below the 8 bits of a uniform model of 8-bit pixels


def test_plot_latent_two_dims_and_pca(bernoulli_run, mnist_sample, tmp_path):
    written = plot_latent_run(bernoulli_run, tmp_path / "fig2", log=lambda s: None)
    assert sorted(p.name for p in written) == ["interpolations.png", "latent.png", "manifold.png", "traversals.png"]
    run5 = tiny_run(tmp_path, mnist_sample, z_dim=5)
    written = plot_latent_run(run5, tmp_path / "fig5", log=lambda s: None)
    assert sorted(p.name for p in written) == ["interpolations.png", "latent.png", "traversals.png"]
    for p in written:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000


def test_evaluate_refuses_other_data(bernoulli_run, tmp_path):
    metrics = json.loads((bernoulli_run / "metrics.json").read_text())
    metrics["dataset"]["num_train"] = 12345
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("config.json", "checkpoint.pt"):
        (copy / name).write_bytes((bernoulli_run / name).read_bytes())
    (copy / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(pyrovae.DataError, match="the run was trained on"):
        evaluate_run(copy, num_samples=10, log=lambda s: None)


def test_evaluate_script_on_a_folder_that_is_not_a_run(tmp_path):
    result = run_main("evaluate.py", tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [f"error: {tmp_path} is not a finished run folder: config.json is missing"]
