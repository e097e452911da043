"""--beta weighs the KL term of the training objective (beta x the warm-up's min(1, e/W)); the
validation and test scores stay the ELBO itself, and every bad beta is one line."""
import math

import pytest
import torch

import pyrovae
from pyrovae.cli import main
from pyrovae.training.config import TrainConfig
from pyrovae.training.parts import Selection


def tiny(tmp_path, name, **settings):
    options = dict(epochs=3, train_limit=600, test_limit=200, z_dim=8, hidden=(64,), progress=False,
                   out=str(tmp_path / name))
    return TrainConfig(**{**options, **settings})


@pytest.mark.parametrize("beta", [-0.5, float("nan"), float("inf"), True, "1"])
def test_a_bad_beta_is_one_line(beta):
    with pytest.raises(pyrovae.ConfigError, match="beta must be a non-negative finite number") as error:
        TrainConfig(beta=beta).validate()
    assert "\n" not in str(error.value)


def test_the_iwae_bound_takes_no_beta():
    with pytest.raises(pyrovae.ConfigError, match="--elbo iwae cannot take --beta 0.5: the IWAE bound is not"):
        TrainConfig(elbo="iwae", num_particles=5, beta=0.5).validate()
    TrainConfig(elbo="iwae", num_particles=5, beta=1).validate()  # beta 1 is the bound itself


@pytest.mark.parametrize("argv,fragment", [(["--beta", "-1"], "beta must be a non-negative finite number"),
                                           (["--beta", "nan"], "beta must be a non-negative finite number"),
                                           (["--elbo", "iwae", "--beta", "2"], "--elbo iwae cannot take --beta 2")])
def test_the_command_line_refuses_in_one_line_and_writes_nothing(argv, fragment, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and fragment in err[0]
    assert not (tmp_path / "run").exists()


def test_runs_recorded_before_beta_keep_beta_one():
    settings = TrainConfig().to_dict()
    del settings["beta"]
    assert TrainConfig.from_dict(settings).beta == 1


def test_beta_zero_leaves_the_kl_unpenalized_and_the_scores_the_true_elbo(mnist_sample, tmp_path):
    checked, lines = {}, []

    def check(epoch, vae, data):  # the last epoch's weights: the true ELBO on the validation rows, 50 draws each
        if epoch == 3:
            vae.eval()
            with torch.random.fork_rng():
                torch.manual_seed(1)
                log_lik, kl = vae.log_terms(data.valid_x, None, 50, True)  # (50, N) and (1, N)
            n = log_lik.shape[1]
            # the run's one-draw estimate and this 50-draw one differ by Monte-Carlo noise alone
            se = math.sqrt(log_lik.var(0).sum().item() * (1 + 1 / 50)) / n
            checked.update(elbo=(log_lik.mean() - kl.mean()).item(), se=se, kl=kl.mean().item())

    free = pyrovae.train(tiny(tmp_path, "beta0", beta=0.0), log=lines.append, dataset=mnist_sample,
                         on_epoch_end=[check])
    usual = pyrovae.train(tiny(tmp_path, "beta1"), log=lambda s: None, dataset=mnist_sample)
    kl_free = [sum(h["kl_per_dim"]["z"]) for h in free["history"]]
    kl_usual = [sum(h["kl_per_dim"]["z"]) for h in usual["history"]]
    assert kl_free[-1] > kl_usual[-1] and kl_free[-1] > kl_free[0]  # nothing holds the KL back
    last = free["history"][-1]
    assert abs(last["valid_elbo"] - checked["elbo"]) < 5 * checked["se"]  # the ELBO itself ...
    assert checked["kl"] > 8 * checked["se"]  # ... which a score without the KL would miss by more than 5 se
    assert last["test_elbo"] == pytest.approx(last["test_expected_log_likelihood"] - last["test_kl"], rel=1e-5)
    assert [h["kl_scale"] for h in free["history"]] == [0.0, 0.0, 0.0]
    assert all("train objective" in line and "(KL weight 0.000)" in line for line in lines if line.startswith("epoch"))
    assert "the ELBO itself (KL weight 1)" in free["test_elbo_estimator"]
    assert usual["test_elbo_estimator"] == "TraceMeanField_ELBO (analytic KL), 1 particle"

    from pyrovae.analysis.evaluate import evaluate_run
    result = evaluate_run(tmp_path / "beta0", num_samples=5, log=lambda s: None)
    assert "the ELBO itself (KL weight 1)" in result["elbo_estimator"]


def test_beta_times_the_warm_up_and_patience_counted_after_the_warm_up(mnist_sample, tmp_path, monkeypatch):
    flags, update = [], Selection.update

    def spy(self, epoch, valid_elbo, test_elbo, warming_up=False):
        flags.append(warming_up)
        return update(self, epoch, valid_elbo, test_elbo, warming_up)

    monkeypatch.setattr(Selection, "update", spy)
    metrics = pyrovae.train(tiny(tmp_path, "warm", beta=0.5, kl_warmup=2, train_limit=200, test_limit=50,
                                 hidden=(16,)), log=lambda s: None, dataset=mnist_sample)
    assert [h["kl_scale"] for h in metrics["history"]] == [0.25, 0.5, 0.5]
    assert flags == [True, False, False]  # a beta below 1 is not a warm-up that never ends
