"""The importance-sampled log-likelihood against a model whose log p(x) is exact.

Linear-Gaussian VAE: z ~ N(0, I_K), x | z ~ N(W z + b, s^2 I_D), so
p(x) = N(x; b, W W^T + s^2 I_D) exactly. It is pyrovae.VAE itself with no hidden layer
(the decoder is one Linear layer) and a Gaussian likelihood of fixed scale s.
"""
import math

import pyro
import torch

import pyrovae
from exact_models import K, S, data, exact_log_p, linear_gaussian_vae
from helpers import assert_log_p_not_below_elbo


def test_guide_matches_exact_posterior_mean():
    vae, W, b = linear_gaussian_vae()
    x = data(W, b, n=5)
    loc, scale = vae.encode(x)
    sigma = torch.linalg.inv(torch.eye(K) + W.T @ W / S**2)
    assert torch.allclose(loc, (x - b) @ (sigma @ W.T / S**2).T, atol=1e-5)
    assert torch.allclose(scale, sigma.diagonal().sqrt().expand(5, K), atol=1e-5)


def test_estimate_converges_to_exact_log_p():
    vae, W, b = linear_gaussian_vae()
    x = data(W, b)
    pyro.set_rng_seed(0)
    K_SAMPLES = 5000
    estimate = pyrovae.log_likelihood(vae, x, num_samples=K_SAMPLES)
    exact = exact_log_p(x, W, b)
    # Tolerance from the estimator itself: by the delta method log(mean w) has standard
    # deviation std(w) / (mean(w) sqrt(K)). Measure the weights' relative spread on fresh
    # draws (1000 per datapoint) and allow 5 of those per datapoint, plus 6 times its
    # average over the 200 datapoints for the mean difference.
    pyro.set_rng_seed(1)
    with torch.no_grad(), pyro.validation_enabled(False):
        log_lik, log_ratio = vae.log_terms(x, None, 1000, analytic_kl=False)  # the model's own trace terms
    w = torch.exp((log_lik - log_ratio) - exact)  # (1000, N): normalized weights, mean 1
    se = w.std(0) / math.sqrt(K_SAMPLES)  # (N,)
    assert bool(((estimate - exact).abs() < 5 * se + 1e-4).all()), (estimate - exact).abs().max()
    assert abs((estimate - exact).mean().item()) < 6 * se.mean().item() / math.sqrt(len(x)) + 1e-4
    assert se.mean() < 0.02, "the tolerance is tight: about a hundredth of a nat per datapoint"


def test_elbo_below_estimate_below_exact_and_rising_with_k():
    vae, W, b = linear_gaussian_vae(good_guide=False)  # a random linear guide: far from exact
    x = data(W, b)
    exact_rows = exact_log_p(x, W, b)
    exact = exact_rows.mean().item()
    pyro.set_rng_seed(0)
    split = pyrovae.elbo(vae, x, num_particles=100, analytic_kl=True)
    rows = [pyrovae.log_likelihood(vae, x, num_samples=k) for k in (1, 10, 100, 1000, 10000)]
    estimates = [r.mean().item() for r in rows]
    elbo = split.elbo.mean().item()
    assert torch.allclose(split.elbo, split.expected_log_likelihood - split.kl)
    # K = 1 estimates the ELBO itself (same expectation)
    assert abs(estimates[0] - elbo) < 0.1 * abs(elbo)
    # in expectation log p_K rises with K; averaged over 200 datapoints the rises here are
    # several nats, far beyond the estimator's noise
    assert all(a < b for a, b in zip(estimates, estimates[1:])), estimates
    assert elbo < estimates[-1], (elbo, estimates)
    # and below log p(x) in expectation (Jensen): the mean of the paired differences to the exact values is
    # above zero only by Monte-Carlo error, of which std / sqrt(n) is an upper estimate (helpers)
    assert_log_p_not_below_elbo(exact_rows, rows[-1])
    assert exact - elbo > 1.0, "the random guide leaves a real gap for the test to see"


def test_elbo_split_analytic_and_monte_carlo_agree():
    vae, W, b = linear_gaussian_vae(good_guide=False)
    x = data(W, b)
    pyro.set_rng_seed(0)
    analytic = pyrovae.elbo(vae, x, num_particles=2000, analytic_kl=True)
    mc = pyrovae.elbo(vae, x, num_particles=2000, analytic_kl=False)
    # closed-form KL of the diagonal Gaussian guide against N(0, I)
    loc, scale = vae.encode(x)
    kl = 0.5 * (scale**2 + loc**2 - 1 - 2 * scale.log()).sum(-1)
    assert torch.allclose(analytic.kl, kl, rtol=1e-5, atol=1e-5)
    # same ELBO: the Monte-Carlo KL of 2000 draws is within a few percent per datapoint,
    # and its mean over 200 datapoints within 1%
    assert abs(mc.kl.mean() - analytic.kl.mean()) < 0.01 * analytic.kl.mean()
    assert abs(mc.elbo.mean() - analytic.elbo.mean()) < 0.01 * abs(analytic.elbo.mean())


def test_matches_trace_elbo_loss_on_a_trained_bernoulli_vae(small_vae, binary_batch):
    pyro.set_rng_seed(0)
    split = pyrovae.elbo(small_vae, binary_batch, num_particles=500, analytic_kl=True)
    loss = pyrovae.make_elbo("meanfield", 500).loss(small_vae.model, small_vae.guide, binary_batch)
    # both average 500 particles of the same estimator of the batch's summed -ELBO
    assert abs(-split.elbo.sum().item() - loss) < 0.005 * loss


def test_active_units_counts_dimensions_that_vary():
    vae, W, b = linear_gaussian_vae()
    x = data(W, b)
    n, variance = pyrovae.active_units(vae, x)
    assert n == K and variance.shape == (K,)
    with torch.no_grad():
        vae.encoder.net[0].weight[0].zero_()  # the first latent's mean no longer depends on x
    n, variance = pyrovae.active_units(vae, x)
    assert n == K - 1 and variance[0] == 0
