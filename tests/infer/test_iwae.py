"""The IWAE bound: equal to a hand-written per-datapoint bound for the same draws (value and
gradients), the ELBO at K = 1, below and converging to the exact log p(x) of a
linear-Gaussian VAE, equal to Pyro's RenyiELBO(alpha=0) for the same draws, and
trainable, eager and --fast."""
import math

import pyro
import pytest
import torch
import torch.nn.functional as F

import pyrovae
from exact_models import data, exact_log_p, linear_gaussian_vae
from pyrovae.infer.iwae import IWAE_ELBO


class Draws(pyro.poutine.messenger.Messenger):
    """Give the latent site ``z`` these values instead of a draw (still a sampled site)."""

    def __init__(self, z):
        super().__init__()
        self.z = z

    def _pyro_sample(self, msg):
        if msg["name"] == "z":
            msg["value"] = self.z


def hand_written_bound(vae, x, z):
    """sum_n log (1/K) sum_k p(x_n, z_nk) / q(z_nk | x_n) for given z (K, B, Z): the IWAE
    bound written out with torch only."""
    loc, scale = vae.encoder(x)  # (B, Z) each
    logits = vae.decoder(z)  # (K, B, D)
    log_px_z = -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(-1)
    log_pz = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
    log_qz = torch.distributions.Normal(loc, scale).log_prob(z).sum(-1)
    log_w = log_px_z + log_pz - log_qz  # (K, B)
    return (torch.logsumexp(log_w, 0) - math.log(z.shape[0])).sum()


@pytest.mark.parametrize("k", [1, 7])
def test_equals_the_hand_written_bound_value_and_gradients(small_vae, binary_batch, k):
    x = binary_batch[:10]
    z = torch.randn(k, len(x), small_vae.z_dim, generator=torch.Generator().manual_seed(k))
    guide = Draws(z)(small_vae.guide)  # the same draws for both
    with small_vae.local_params(), pyro.validation_enabled(False):
        loss = IWAE_ELBO(num_particles=k).differentiable_loss(small_vae.model, guide, x)
    grads = torch.autograd.grad(loss, list(small_vae.parameters()))
    expected = -hand_written_bound(small_vae, x, z)
    expected_grads = torch.autograd.grad(expected, list(small_vae.parameters()))
    assert torch.allclose(loss, expected, rtol=1e-5), (loss, expected)
    for g, e in zip(grads, expected_grads):
        assert torch.allclose(g, e, rtol=1e-4, atol=1e-5)


def test_k1_is_the_elbo_for_the_same_draw(small_vae, binary_batch):
    with small_vae.local_params(), pyro.validation_enabled(False):
        torch.manual_seed(5)
        iwae = IWAE_ELBO(num_particles=1).differentiable_loss(small_vae.model, small_vae.guide, binary_batch)
        torch.manual_seed(5)
        trace = pyrovae.make_elbo("trace").differentiable_loss(small_vae.model, small_vae.guide, binary_batch)
    assert torch.allclose(iwae, trace, rtol=1e-5), (iwae, trace)


def test_bound_rises_with_k_towards_the_exact_log_p():
    vae, W, b = linear_gaussian_vae(good_guide=False)  # a poor guide: a loose ELBO, room for K to help
    x = data(W, b, n=100)
    exact = exact_log_p(x, W, b).sum().item()
    bounds = {}
    with vae.local_params(), pyro.validation_enabled(False), torch.no_grad():
        for k in (1, 10, 1000):
            draws = [-IWAE_ELBO(num_particles=k).differentiable_loss(vae.model, vae.guide, x).item() for _ in range(20)]
            mean = sum(draws) / len(draws)
            se = (sum((d - mean) ** 2 for d in draws) / (len(draws) - 1) / len(draws)) ** 0.5
            bounds[k] = (mean, se)
    (b1, s1), (b10, s10), (b1000, s1000) = bounds[1], bounds[10], bounds[1000]
    assert b1 + 4 * (s1 + s10) < b10 < b1000 + 4 * (s10 + s1000)  # rises with K, by more than the noise
    assert b1000 <= exact + 4 * s1000  # a lower bound on the exact log-likelihood
    assert exact - b1000 < 0.25 * (exact - b1)  # and K = 1000 closes most of the ELBO's gap


def test_equals_pyros_renyi_elbo_alpha_0_for_the_same_draws(small_vae, binary_batch):
    x, k = binary_batch[:16], 10
    params = list(small_vae.parameters())
    with small_vae.local_params(), pyro.validation_enabled(False):
        torch.manual_seed(3)
        ours = IWAE_ELBO(num_particles=k).differentiable_loss(small_vae.model, small_vae.guide, x)
        ours_grads = torch.autograd.grad(ours, params)
    renyi = pyro.infer.RenyiELBO(alpha=0, num_particles=k, vectorize_particles=True, max_plate_nesting=1)
    with pyro.validation_enabled(False):  # Pyro's way: the networks in its param store, backward inside
        torch.manual_seed(3)
        theirs = renyi.loss_and_grads(small_vae.model, small_vae.guide, x)  # a float: Pyro reads it to the host
    assert ours.item() == pytest.approx(theirs, rel=1e-6)
    for p, g in zip(params, ours_grads):
        assert torch.allclose(p.grad, g, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("fast", [False, True], ids=["eager", "fast"])
def test_training_with_iwae(fast, mnist_sample, tmp_path):
    config = pyrovae.TrainConfig(epochs=2, elbo="iwae", num_particles=5, train_limit=500, test_limit=100,
                                 valid_size=100, z_dim=4, hidden=(32,), batch_size=50, fast=fast, progress=False,
                                 out=str(tmp_path / "run"))
    metrics = pyrovae.train(config, log=lambda s: None, dataset=mnist_sample)
    assert metrics["svi_step"] == ("compiled" if fast else "eager")
    first, last = metrics["history"][0], metrics["history"][-1]
    assert math.isfinite(last["test_elbo"]) and last["train_elbo"] > first["train_elbo"]  # it learns


@pytest.mark.parametrize("extra,fragment", [(["--kl-warmup", "3"], "--kl-warmup"),
                                            (["--distributed"], "--distributed")])
def test_iwae_refuses_scaled_log_densities(extra, fragment):
    config = pyrovae.TrainConfig(elbo="iwae", num_particles=5, kl_warmup=3 if "--kl-warmup" in extra else 0,
                                 distributed="--distributed" in extra)
    with pytest.raises(pyrovae.ConfigError, match=fragment):
        config.validate()
