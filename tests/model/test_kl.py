"""The KL term: pyrovae's own KL code (the per-site KL of a model's ELBO, analytic and Monte
Carlo, and the diagnostics' closed form) against the Gaussian closed form; and the closed form vs
what TraceMeanField_ELBO uses vs Trace_ELBO's Monte Carlo.

With no observed site, the model is p(z) = N(0, I) and the loss of either ELBO is
KL(q || p) summed over the plate, so the ELBOs' KL can be read off their loss.
"""
import math

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO

from pyrovae.infer.diagnostics import closed_form_kl as diagnostics_kl

N, K = 5, 3
torch.manual_seed(0)
LOC = torch.randn(N, K)
SCALE = torch.rand(N, K) * 1.5 + 0.2


def prior_only_model():
    with pyro.plate("data", N):
        pyro.sample("z", dist.Normal(torch.zeros(N, K), 1.0).to_event(1))


def gaussian_guide():
    with pyro.plate("data", N):
        pyro.sample("z", dist.Normal(LOC, SCALE).to_event(1))


def closed_form_kl(loc, scale):
    """KL(N(mu, diag s^2) || N(0, I)) = 1/2 sum_k (s_k^2 + mu_k^2 - 1 - 2 log s_k), per row."""
    return 0.5 * (scale**2 + loc**2 - 1.0 - 2.0 * scale.log()).sum(-1)


def test_closed_form_matches_torch_and_meanfield_elbo():
    exact = closed_form_kl(LOC, SCALE)  # (N,)
    torch_kl = torch.distributions.kl_divergence(
        dist.Normal(LOC, SCALE).to_event(1), dist.Normal(torch.zeros(N, K), 1.0).to_event(1))
    assert torch.allclose(torch_kl, exact, rtol=1e-6, atol=1e-6)
    loss = TraceMeanField_ELBO().loss(prior_only_model, gaussian_guide)
    # deterministic: the analytic KL involves no sample at all
    assert math.isclose(loss, exact.sum().item(), rel_tol=1e-6)
    assert math.isclose(TraceMeanField_ELBO().loss(prior_only_model, gaussian_guide), loss, rel_tol=0, abs_tol=0)


def test_monte_carlo_kl_agrees_within_its_standard_error():
    # Per sample, log q(z) - log p(z) with z = mu + s*eps, eps ~ N(0, 1), is
    # sum_k [-log s_k + ((s_k^2 - 1) eps_k^2 + 2 mu_k s_k eps_k + mu_k^2) / 2], whose
    # variance is exactly sum_k [(s_k^2 - 1)^2 / 2 + mu_k^2 s_k^2] (Var eps^2 = 2,
    # Cov(eps^2, eps) = 0), summed over the N rows. With P particles the standard error
    # is sqrt(var / P); a 4.5-sigma band fails by chance with probability < 1e-5.
    P = 50_000
    variance = ((SCALE**2 - 1) ** 2 / 2 + LOC**2 * SCALE**2).sum().item()
    se = math.sqrt(variance / P)
    pyro.set_rng_seed(1)
    mc = Trace_ELBO(num_particles=P, vectorize_particles=True, max_plate_nesting=1).loss(
        prior_only_model, gaussian_guide)
    exact = closed_form_kl(LOC, SCALE).sum().item()
    assert abs(mc - exact) < 4.5 * se, (mc, exact, se)
    # and the band is tight enough to mean something: 1% of the KL
    assert 4.5 * se < 0.01 * exact


def mc_standard_error(loc, scale, particles):
    """The standard error of the Monte-Carlo KL against N(0, I), summed over all rows (see above)."""
    return math.sqrt(((scale**2 - 1) ** 2 / 2 + loc**2 * scale**2).sum().item() / particles)


def test_the_diagnostics_closed_form_is_the_gaussian_formula():
    exact = 0.5 * (SCALE**2 + LOC**2 - 1.0 - 2.0 * SCALE.log())  # elementwise, against N(0, 1)
    got = diagnostics_kl(dist.Normal(LOC, SCALE), dist.Normal(torch.zeros(N, K), 1.0))
    torch.testing.assert_close(got, exact, rtol=1e-6, atol=1e-6)
    # against another Gaussian: log(s_p / s_q) + (s_q^2 + (m_q - m_p)^2) / (2 s_p^2) - 1/2
    m, s = torch.full((N, K), 0.3), torch.full((N, K), 2.0)
    other = torch.log(s / SCALE) + (SCALE**2 + (LOC - m) ** 2) / (2 * s**2) - 0.5
    torch.testing.assert_close(diagnostics_kl(dist.Normal(LOC, SCALE), dist.Normal(m, s)), other, rtol=1e-6, atol=1e-6)


def test_a_vaes_kl_term_is_the_closed_form_and_its_monte_carlo_agrees(small_vae, binary_batch):
    """The KL of pyrovae's ELBO (VAE.kl_by_site: analytic, or log q(z) - log p(z) at the guide's
    draws) for a Gaussian guide against the N(0, I) prior, row by row."""
    loc, scale = (t.detach() for t in small_vae.encode(binary_batch))
    exact = closed_form_kl(loc, scale)  # (64,)
    analytic = small_vae.kl_by_site(binary_batch, None, num_samples=1, analytic_kl=True)
    assert list(analytic) == ["z"]
    torch.testing.assert_close(analytic["z"], exact, rtol=1e-5, atol=1e-5)
    P = 4000
    pyro.set_rng_seed(0)
    mc = small_vae.kl_by_site(binary_batch, None, num_samples=P, analytic_kl=False)["z"]
    se = mc_standard_error(loc, scale, P)
    assert abs(mc.sum().item() - exact.sum().item()) < 4.5 * se, (mc.sum().item(), exact.sum().item(), se)
    assert 4.5 * se < 0.01 * exact.sum().item()  # a band of 1% of the KL at most
