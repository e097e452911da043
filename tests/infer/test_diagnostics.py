"""The KL of each latent dimension (pyrovae.infer.diagnostics): the closed form against torch's own
and against the run's KL, the Monte-Carlo estimate against the closed form and against numerical
integration, for any pyrovae.Model through its guide; where it is not defined, None and why."""
import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from torch.distributions import kl_divergence

import pyrovae
from pyrovae.infer.diagnostics import CLOSED_FORM, closed_form_kl, kl_per_dim
from pyrovae.infer.evaluation import active_units
from pyrovae.model.labelled import CVAE, join
from pyrovae.model.m2 import M2
from pyrovae.model.networks import Decoder, Encoder


@pytest.fixture(scope="module")
def digits(mnist_sample):
    """300 real test digits, binarized with a fixed generator: (300, 784) in {0, 1}."""
    idx = torch.linspace(0, len(mnist_sample.test_x) - 1, 300).long()
    return torch.bernoulli(mnist_sample.test_x[idx], generator=torch.Generator().manual_seed(0))


def vae(**options):
    torch.manual_seed(0)
    return pyrovae.VAE(784, 6, (32,), **options).eval()


def test_gaussian_closed_form_is_torchs_kl():
    g = torch.Generator().manual_seed(1)
    loc_q, loc_p = torch.randn(50, 7, generator=g) * 2, torch.randn(50, 7, generator=g)
    scale_q, scale_p = torch.rand(50, 7, generator=g) * 2 + 0.05, torch.rand(50, 7, generator=g) * 2 + 0.05
    ours = closed_form_kl(dist.Normal(loc_q, scale_q), dist.Normal(loc_p, scale_p))
    theirs = kl_divergence(torch.distributions.Normal(loc_q, scale_q), torch.distributions.Normal(loc_p, scale_p))
    assert torch.allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    standard = closed_form_kl(dist.Normal(loc_q, scale_q), dist.Normal(torch.zeros(()), torch.ones(())))
    assert torch.allclose(standard, 0.5 * (scale_q**2 + loc_q**2 - 1 - torch.log(scale_q**2)), rtol=1e-5, atol=1e-6)


def test_closed_form_per_dimension_and_its_sum_are_the_runs_kl(digits):
    model = vae()
    [site] = kl_per_dim(model, digits, batch_size=128).values()  # three chunks
    loc, scale = model.encoder(digits)
    exact = kl_divergence(torch.distributions.Normal(loc, scale), torch.distributions.Normal(0.0, 1.0)).mean(0)
    assert site.method == CLOSED_FORM and site.values.shape == (6,)
    assert torch.allclose(site.values, exact, rtol=1e-5, atol=1e-6) and bool((site.standard_error == 0).all())
    # the per-dimension KLs of a factorized q against N(0, I) sum to the KL the scores use
    run_kl = pyrovae.elbo(model, digits, analytic_kl=True).kl.mean()
    assert site.values.sum().item() == pytest.approx(run_kl.item(), rel=1e-5)
    # the same pass gives the active units' statistic: the variance of the posterior means over the rows
    assert torch.allclose(site.mean_variance, active_units(model, digits)[1], rtol=1e-4, atol=1e-8)


def _one_component_prior(n):
    """N(0, I) written as a mixture of one component: no closed form, the same distribution."""
    zeros = torch.zeros(n, 1, 6)
    return dist.MixtureSameFamily(dist.Categorical(logits=torch.zeros(n, 1)), dist.Normal(zeros, 1.0).to_event(1))


def test_monte_carlo_agrees_with_the_closed_form_within_its_standard_error(digits):
    mc_model = vae(prior=_one_component_prior)
    loc, scale = mc_model.encoder(digits)
    exact = kl_divergence(torch.distributions.Normal(loc, scale), torch.distributions.Normal(0.0, 1.0)).mean(0)
    # Var(log q - log p) per row and dimension, z = mu + s eps against N(0, 1): (s^2 - 1)^2 / 2 + mu^2 s^2
    # (tests/model/test_kl.py), so the standard error of the mean over N rows and S draws is exact
    samples = 64
    se = (((scale**2 - 1) ** 2 / 2 + loc**2 * scale**2).sum(0) / samples).sqrt() / len(digits)
    torch.manual_seed(5)
    [site] = kl_per_dim(mc_model, digits, num_samples=samples).values()
    assert site.method == f"Monte Carlo, {samples} draws per row"
    z = (site.values - exact) / se
    assert bool((z.abs() < 4.5).all()), z  # 6 dimensions: a false alarm has probability < 1e-4
    assert torch.allclose(site.standard_error, se, rtol=0.25)  # the estimate's own standard error is right
    assert bool((4.5 * se < 0.05 * exact + 0.01).all())  # and tight enough to mean something


def _mixture_marginal_kl(q_loc, q_scale, weights, locs, scales, grid=20001):
    """KL(N(q_loc, q_scale^2) || sum_c w_c N(locs_c, scales_c^2)) by the trapezoid rule over q_loc +- 12 q_scale."""
    z = torch.linspace(-12, 12, grid, dtype=torch.float64) * q_scale + q_loc
    log_q = torch.distributions.Normal(q_loc, q_scale).log_prob(z)
    log_p = torch.logsumexp(torch.log(weights)[:, None] + torch.distributions.Normal(locs[:, None], scales[:, None])
                            .log_prob(z), dim=0)
    return torch.trapezoid(log_q.exp() * (log_q - log_p), z).item()


def test_a_mixture_priors_marginal_against_numerical_integration(digits):
    model = vae(prior="mog", prior_options={"components": 3})
    with torch.no_grad():
        model.prior.locs.copy_(torch.tensor([[-2.0], [0.5], [3.0]]).expand(3, 6) + torch.randn(3, 6) * 0.3)
        model.prior.logits.copy_(torch.tensor([0.0, 1.0, -0.5]))
    rows = digits[:4]
    samples = 4000
    torch.manual_seed(2)
    [site] = kl_per_dim(model, rows, num_samples=samples, component_draws=3 * samples).values()
    loc, scale = (v.double() for v in model.encoder(rows))
    weights = torch.softmax(model.prior.logits.detach().double(), 0)
    scales = (torch.nn.functional.softplus(model.prior.raw_scales) + 1e-3).detach().double()
    locs = model.prior.locs.detach().double()
    exact = torch.tensor([[_mixture_marginal_kl(loc[n, k], scale[n, k], weights, locs[:, k], scales[:, k])
                           for k in range(6)] for n in range(len(rows))]).mean(0)
    z = (site.values.double() - exact) / site.standard_error.double()
    assert bool((z.abs() < 4.5).all()), (site.values, exact, site.standard_error)
    assert bool((site.standard_error < 0.02).all())


def test_vampprior_and_a_student_t_prior_are_estimated(digits):
    vamp = vae(prior="vamp", prior_options={"components": 500})  # S C within 64: one draw per row
    [site] = kl_per_dim(vamp, digits[:50]).values()
    assert site.method == "Monte Carlo, 1 draw per row" and bool(torch.isfinite(site.values).all())
    assert bool(torch.isnan(site.standard_error).all())  # one draw: no within-row variance to estimate it from
    [site] = kl_per_dim(vae(prior="mog"), digits[:50]).values()
    assert site.method == "Monte Carlo, 6 draws per row"  # 10 components
    student = vae(prior=lambda n: dist.StudentT(3.0, torch.zeros(n, 6), 1.0).to_event(1))
    [site] = kl_per_dim(student, digits[:50], num_samples=4).values()
    assert site.method.startswith("Monte Carlo") and bool((site.values > -0.1).all())


def test_a_flow_guide_has_no_per_dimension_kl(digits):
    [site] = kl_per_dim(vae(guide="iaf"), digits[:20]).values()
    assert site.values is None and site.standard_error is None and "not factorized" in site.method
    assert site.mean_variance.shape == (6,)  # the base distribution's means, as posterior_params reads them


def test_labelled_models_per_site(digits, mnist_sample):
    idx = torch.linspace(0, len(mnist_sample.test_x) - 1, 300).long()
    labels = mnist_sample.test_y[idx]
    torch.manual_seed(0)
    cvae = CVAE(784, 10, 4, (32,)).eval()
    sites = kl_per_dim(cvae, digits, y=labels)
    assert list(sites) == ["z"] and sites["z"].method == CLOSED_FORM
    loc, scale = cvae.posterior_params(digits, labels).values()
    exact = kl_divergence(torch.distributions.Normal(loc, scale), torch.distributions.Normal(0.0, 1.0)).mean(0)
    assert torch.allclose(sites["z"].values, exact, rtol=1e-5, atol=1e-6)
    m2 = M2(784, 10, 4, (32,)).eval()  # no labels: z given the guide's draw of y (the labelled rows' site is absent)
    sites = kl_per_dim(m2, digits)
    assert list(sites) == ["z"] and sites["z"].values.shape == (4,) and bool((sites["z"].values >= 0).all())


class TwoLevel(pyrovae.Model):
    """p(z2) = N(0, I_2), p(z1 | z2) = N(W z2, I_3), p(x | z1) Bernoulli; q(z2 | x) q(z1 | x, z2)."""

    latent_sites = ("z1", "z2")

    def __init__(self):
        super().__init__(784, (28, 28))
        self.likelihood = pyrovae.get_likelihood("bernoulli")
        self.top, self.encoder, self.decoder = torch.nn.Linear(2, 3), Encoder(784, 2, (16,)), Decoder(3, 784, (16,))
        self.bottom = Encoder(784 + 2, 3, (16,))
        self.decoded = 0

    def model(self, x, y=None):
        with pyro.plate("data", len(x)):
            z2 = pyro.sample("z2", dist.Normal(x.new_zeros(len(x), 2), 1.0).to_event(1))
            z1 = pyro.sample("z1", dist.Normal(self.top(z2), 1.0).to_event(1))
            self.decoded += 1
            pyro.sample("x", self.likelihood(self.decoder(z1)), obs=x)

    def guide(self, x, y=None):
        with pyro.plate("data", len(x)):
            z2 = pyro.sample("z2", dist.Normal(*self.encoder(x)).to_event(1))
            pyro.sample("z1", dist.Normal(*self.bottom(join(x, z2))).to_event(1))  # (..., N, 784 + 2)


def test_a_model_with_two_latent_sites_and_a_conditional_prior(digits):
    torch.manual_seed(0)
    model = TwoLevel().eval()
    torch.manual_seed(3)
    sites = kl_per_dim(model, digits)
    assert model.decoded == 0  # the program stops at its last latent site: no likelihood is computed
    assert set(sites) == {"z1", "z2"} and sites["z1"].values.shape == (3,) and sites["z2"].values.shape == (2,)
    # the same draw of z2 for the run's own reading of the traces: the sum is its KL
    torch.manual_seed(3)
    run_kl = pyrovae.elbo(model, digits, analytic_kl=True).kl.mean().item()
    total = sum(site.values.sum().item() for site in sites.values())
    assert total == pytest.approx(run_kl, rel=1e-5) and math.isfinite(total)
