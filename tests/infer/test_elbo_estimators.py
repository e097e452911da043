"""Trace_ELBO and TraceMeanField_ELBO estimate the same ELBO for the same model and data,
and the analytic KL gives the smaller spread."""
import math

import pyro
import torch

import pyrovae
from pyrovae import make_elbo

R = 1000  # independent single-particle estimates per estimator


def repeated_losses(kind, vae, x, repeats=R, num_particles=1):
    elbo = make_elbo(kind, num_particles)
    with torch.no_grad():
        return torch.tensor([elbo.loss(vae.model, vae.guide, x) for _ in range(repeats)], dtype=torch.float64)


def test_same_expectation_and_smaller_spread_for_analytic_kl(binary_batch):
    torch.manual_seed(0)
    vae = pyrovae.VAE(x_dim=784, z_dim=32, hidden=(64,))
    pyro.set_rng_seed(0)
    trace = repeated_losses("trace", vae, binary_batch)
    meanfield = repeated_losses("meanfield", vae, binary_batch)
    # Same expectation: the difference of the two sample means has standard error
    # sqrt(s1^2/R + s2^2/R) (independent draws); allow 4 of those (two-sided p ~ 6e-5).
    se = math.sqrt(trace.var().item() / R + meanfield.var().item() / R)
    assert abs(trace.mean().item() - meanfield.mean().item()) < 4 * se
    # Smaller spread: under equal variances the log of the ratio of two sample variances
    # of size R has standard deviation about sqrt(4 / (R - 1)) = 0.063; demand a ratio
    # beyond 3.09 of those (one-sided p = 0.001), i.e. > 1.216.
    ratio = trace.var().item() / meanfield.var().item()
    assert ratio > math.exp(3.09 * math.sqrt(4 / (R - 1))), ratio


def test_num_particles_shrinks_spread(small_vae, binary_batch):
    pyro.set_rng_seed(0)
    one = repeated_losses("trace", small_vae, binary_batch, repeats=200)
    ten = repeated_losses("trace", small_vae, binary_batch, repeats=200, num_particles=10)
    # the variance of a mean of 10 iid particles is a tenth; demand at least a factor 4
    assert one.var() > 4 * ten.var()
