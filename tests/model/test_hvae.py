"""The two-level VAE against a closed form: with no hidden layers, a Gaussian likelihood of fixed
scale and constant scales, the HVAE *is* a linear-Gaussian model z2 -> z1 -> x whose log p(x) is a
Gaussian's, and whose exact posterior its guide can hold; then every ELBO draw and the
importance-sampled log p(x) equal log p(x), and a worse guide's ELBO is below it. A trained
HVAE's importance-sampled log p(x) is above its ELBO, per layer KLs add up, and all of it runs
through the same machinery as the VAE (checkpoint, load, encode of both layers)."""
import math

import pytest
import torch
import torch.nn.functional as F

import pyrovae
from pyrovae.infer.elbos import make_elbo
from pyrovae.infer.evaluation import elbo, log_likelihood
from pyrovae.model.hvae import HVAE

A, C, S1 = 0.8, 0.3, 0.6  # z1 = A z2 + C + S1 e1
B = torch.tensor([[1.0, 0.5], [-0.4, 1.2]])  # x = B [z1, z2] + b + SX e, x in R^2
BIAS, SX = torch.tensor([0.2, -0.1]), 0.5


def joint():
    """Mean and covariance of (z2, z1, x1, x2), and log p(x) of rows x (N, 2)."""
    # (z2, z1, x) = M (e2, e1, e_x1, e_x2) + m
    M = torch.zeros(4, 4, dtype=torch.float64)
    M[0, 0] = 1.0
    M[1, 0], M[1, 1] = A, S1
    M[2:, :2] = B.double() @ M[:2, :2].flip(0)  # x's loadings on (e2, e1) through [z1, z2]
    M[2:, 2:] = SX * torch.eye(2, dtype=torch.float64)
    m = torch.tensor([0.0, C, 0.0, 0.0], dtype=torch.float64)
    m[2:] = B.double() @ torch.tensor([C, 0.0], dtype=torch.float64) + BIAS.double()
    return m, M @ M.T


def exact(x: torch.Tensor) -> torch.Tensor:
    m, cov = joint()
    return torch.distributions.MultivariateNormal(m[2:], cov[2:, 2:]).log_prob(x.double())


def conditional(m, cov, keep, given):
    """(coefficients on the given entries, constant, variance) of entry ``keep`` given ``given``."""
    k = torch.tensor(keep)
    g = torch.tensor(given)
    coef = cov[k][:, g] @ torch.linalg.inv(cov[g][:, g])
    return coef.squeeze(0), m[k] - coef @ m[g], (cov[k][:, k] - coef @ cov[g][:, k]).item()


def set_linear(layer, loc_weight, loc_bias, scale):
    """A no-hidden-layer Encoder's one linear layer: loc = W x + b, scale constant."""
    with torch.no_grad():
        layer.weight.zero_()
        layer.weight[0] = torch.as_tensor(loc_weight, dtype=torch.float32)
        layer.bias[0] = float(loc_bias)
        layer.bias[1] = math.log(math.expm1(scale - 1e-4))  # softplus(raw) + 1e-4 = scale


def linear_gaussian(exact_guide: bool = True) -> HVAE:
    model = HVAE(x_dim=2, z_dim=1, hidden=(), likelihood="gaussian", likelihood_options={"scale": SX}, arch="mlp",
                 image_shape=None)
    set_linear(model.prior1.net[0], [A], C, S1)  # p(z1 | z2)
    with torch.no_grad():
        decoder = model.decoder.net[0]  # p(x | z1, z2): loc = B [z1, z2] + b
        decoder.weight.copy_(B)
        decoder.bias.copy_(BIAS)
    m, cov = joint()
    coef2, const2, var2 = conditional(m, cov, [0], [2, 3])  # z2 | x
    coef1, const1, var1 = conditional(m, cov, [1], [2, 3, 0])  # z1 | x, z2
    if not exact_guide:  # a guide off the posterior: its mean shifted, its spread too wide
        const2, var2 = const2 + 0.7, 4 * var2
    set_linear(model.encoder.net[0], coef2, const2, math.sqrt(var2))
    set_linear(model.encoder1.net[0], coef1, const1, math.sqrt(var1))
    return model


@pytest.fixture
def x():
    torch.manual_seed(0)
    m, cov = joint()
    return torch.distributions.MultivariateNormal(m[2:], cov[2:, 2:]).sample((64,)).float()


def test_with_the_exact_posterior_every_bound_is_log_p_x(x):
    model = linear_gaussian()
    truth = exact(x).float()
    torch.manual_seed(1)
    monte_carlo = elbo(model, x, num_particles=50, analytic_kl=False)  # each draw is log p(x) exactly
    assert torch.allclose(monte_carlo.elbo, truth, atol=2e-4)
    assert torch.allclose(log_likelihood(model, x, num_samples=20), truth, atol=2e-4)
    analytic = elbo(model, x, num_particles=20000, analytic_kl=True)  # closed-form KL per layer, MC over z2
    assert torch.allclose(analytic.elbo, truth, atol=0.02)


def test_a_worse_guide_bounds_log_p_x_from_below_and_importance_sampling_closes_the_gap(x):
    model = linear_gaussian(exact_guide=False)
    truth = exact(x).float()
    torch.manual_seed(2)
    bound = elbo(model, x, num_particles=20000, analytic_kl=True).elbo
    assert (bound < truth - 0.05).all()  # KL(q || posterior) > 0 for every row
    estimate = log_likelihood(model, x, num_samples=20000)
    assert (estimate - truth).abs().mean() < 0.02 < (bound - truth).abs().mean()


def test_the_training_loss_is_minus_the_summed_elbo(x):
    model = linear_gaussian()
    with model.local_params():
        loss = make_elbo("trace", 1).differentiable_loss(model.model, model.guide, x)  # each draw: log p(x)
    assert loss.item() == pytest.approx(-exact(x).sum().item(), rel=1e-3)


def test_a_trained_hvae_bounds_and_runs_through_the_machinery(mnist_sample, tmp_path):
    config = pyrovae.TrainConfig(model="hvae", arch="gated", hidden=(64,), z_dim=8, prior="vamp",
                                 prior_options={"components": 20}, epochs=3, train_limit=600, test_limit=100,
                                 valid_size=100, batch_size=50, progress=False, out=str(tmp_path))
    metrics = pyrovae.train(config, log=lambda s: None, dataset=mnist_sample)
    assert metrics["model"] == "hvae"
    model = pyrovae.load(tmp_path / "best.pt")
    x = torch.bernoulli(mnist_sample.test_x[:100], generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    bound = elbo(model, x, num_particles=10)
    log_p = log_likelihood(model, x, num_samples=500)
    assert (log_p.mean() >= bound.elbo.mean()).item()  # log p(x) >= ELBO, so the IS-NLL <= -ELBO
    latents = model.latents(mnist_sample.test_x[:5])
    assert {k: tuple(v.shape) for k, v in latents.items()} == {"z2_loc": (5, 8), "z2_scale": (5, 8),
                                                               "z1_loc": (5, 8), "z1_scale": (5, 8)}
    assert F.mse_loss(model.reconstruct(mnist_sample.test_x[:5]), mnist_sample.test_x[:5]) < 0.2
