"""Every combination of prior, guide and objective trains, resumes, evaluates, loads and
encodes, or is refused in one line (issue 15): 3 priors x 2 guides x 3 ELBOs, on real
digits, with --fast and --distributed for the parts that are not plain Gaussians."""
import itertools
import math

import numpy as np
import pytest
import torch
from test_distributed import assert_close_runs, torchrun

import pyrovae
from helpers import assert_log_p_not_below_elbo
from pyrovae.analysis.encode import encode_run
from pyrovae.analysis.evaluate import evaluate_run
from pyrovae.cli import main
from pyrovae.training.config import TrainConfig

PRIORS, GUIDES, ELBOS = ("normal", "mog", "vamp"), ("normal", "iaf"), ("trace", "meanfield", "iwae")
QUIET = lambda line: None  # noqa: E731


def _config(out, prior, guide, elbo, **extra):
    return TrainConfig(dataset="mnist", prior=prior, guide=guide, elbo=elbo, num_particles=3 if elbo == "iwae" else 1,
                       prior_options={"components": 5} if prior != "normal" else {}, z_dim=4, hidden=(32,),
                       epochs=1, train_limit=200, test_limit=40, batch_size=50, out=str(out), progress=False,
                       **extra)  # no threads=: torch.set_num_threads is global to the test process


@pytest.mark.parametrize("prior,guide,elbo", list(itertools.product(PRIORS, GUIDES, ELBOS)))
def test_each_combination_runs_end_to_end_or_is_refused_in_one_line(mnist_sample, tmp_path, prior, guide, elbo):
    out = tmp_path / "run"
    config = _config(out, prior, guide, elbo)
    if elbo == "meanfield" and guide == "iaf":  # no closed-form KL for a flow
        with pytest.raises(pyrovae.ConfigError, match="closed-form KL") as caught:
            pyrovae.train(config, dataset=mnist_sample, log=QUIET)
        assert "\n" not in str(caught.value)
        return
    first = pyrovae.train(config, dataset=mnist_sample, log=QUIET)
    metrics = pyrovae.resume(out, epochs=2, dataset=mnist_sample, log=QUIET)
    assert [h["epoch"] for h in metrics["history"]] == [1, 2] and metrics["history"][0] == first["history"][0]
    result = evaluate_run(out, num_samples=20, log=QUIET, dataset=mnist_sample)
    vae = pyrovae.load(out / "checkpoint.pt")
    # log p(x) >= ELBO holds for the exact values; the estimates (K = 20, 10 particles) differ from them by
    # Monte-Carlo error, whose size the same estimates on 40 real test digits give (helpers)
    rows = torch.bernoulli(mnist_sample.test_x[::25], generator=torch.Generator().manual_seed(1))
    se = assert_log_p_not_below_elbo(pyrovae.log_likelihood(vae, rows, num_samples=20),
                                     pyrovae.elbo(vae, rows, num_particles=10).elbo)
    assert math.isfinite(result["test_nll"]) and result["test_nll"] <= -result["test_elbo"] + 4 * se
    x = torch.bernoulli(mnist_sample.test_x[:5], generator=torch.Generator().manual_seed(0))
    loc, scale = vae.encode(x)
    z = vae.posterior(x).sample()
    assert loc.shape == scale.shape == z.shape == (5, 4) and bool(torch.isfinite(z).all())


def test_encode_writes_the_latents_of_a_flow_guide_with_a_vampprior(mnist_sample, tmp_path):
    out = tmp_path / "run"
    pyrovae.train(_config(out, "vamp", "iaf", "iwae"), dataset=mnist_sample, log=QUIET)
    rows = tmp_path / "rows.npy"
    np.save(rows, (mnist_sample.test_x[:30].numpy() * 255).astype(np.uint8))
    encode_run(out, str(rows), tmp_path / "z.npz", score=True, num_samples=10, log=QUIET)
    with np.load(tmp_path / "z.npz", allow_pickle=False) as z:
        assert z["loc"].shape == (30, 4) and np.isfinite(z["log_px"]).all() and np.isfinite(z["elbo"]).all()


def test_fast_step_trains_a_flow_guide_with_a_vampprior_and_iwae(mnist_sample, tmp_path):
    out = tmp_path / "fast"
    lines = []
    metrics = pyrovae.train(_config(out, "vamp", "iaf", "iwae", fast=True), dataset=mnist_sample, log=lines.append)
    assert metrics["svi_step"] != "eager" and math.isfinite(metrics["test_elbo"]), lines


def test_distributed_flow_guide_with_a_mixture_prior_equals_one_process_and_iwae_is_refused(tmp_path, capsys):
    flags = ("--prior", "mog", "--prior-components", "3", "--guide", "iaf", "--epochs", "1", "--threads", "1")
    torchrun(1, tmp_path / "one", *flags)
    result = torchrun(2, tmp_path / "two", *flags)
    assert "final test ELBO" in result.stdout
    assert_close_runs(tmp_path / "one", tmp_path / "two")  # the flow's noise does not depend on the sharding
    # the settings are refused before a rank joins the group: every rank refuses alike, so one, in this process, shows it
    out = tmp_path / "ddp-iwae"
    assert main(["--dataset", "mnist", "--no-download", "--data-dir", str(tmp_path / "no-mnist"), "--distributed",
                 "--elbo", "iwae", "--num-particles", "3", "--epochs", "1", "--no-progress", "--out", str(out)]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: --elbo iwae cannot take --distributed") and not out.exists()
