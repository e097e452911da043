"""Each built-in likelihood scores data exactly as the matching torch.distributions
computation, and refuses data outside its support with a clear error."""
import pytest
import torch
import torch.distributions as td
import torch.nn.functional as F

import pyrovae
from pyrovae import DataError, get_likelihood
from pyrovae.model.likelihoods import BUILT_IN

N, D = 6, 20
torch.manual_seed(0)
OUT2 = torch.randn(N, 2 * D) * 2  # decoder output, two blocks of D
OUT1 = OUT2[:, :D]
BINARY = torch.bernoulli(torch.full((N, D), 0.4))
UNIT = torch.rand(N, D)
UNIT[0, :3] = torch.tensor([0.0, 1.0, 0.5])  # exact ends of [0, 1]
REAL = torch.randn(N, D) * 3


def softplus_pair(out, floor):
    a, b = out.chunk(2, dim=-1)
    return F.softplus(a) + floor, F.softplus(b) + floor


REFERENCES = [
    # name, options, decoder output, data, reference log p(x|z) per datapoint
    ("bernoulli", {}, OUT1, BINARY, lambda o, x: td.Bernoulli(logits=o).log_prob(x).sum(-1)),
    ("continuous-bernoulli", {}, OUT1, UNIT, lambda o, x: td.ContinuousBernoulli(logits=o).log_prob(x).sum(-1)),
    ("gaussian", {}, OUT2, REAL,
     lambda o, x: td.Normal(o[:, :D], F.softplus(o[:, D:]) + 1e-3).log_prob(x).sum(-1)),
    ("gaussian", {"scale": 0.3}, OUT1, REAL, lambda o, x: td.Normal(o, 0.3).log_prob(x).sum(-1)),
    ("laplace", {}, OUT2, REAL,
     lambda o, x: td.Laplace(o[:, :D], F.softplus(o[:, D:]) + 1e-3).log_prob(x).sum(-1)),
    ("laplace", {"scale": 0.5}, OUT1, REAL, lambda o, x: td.Laplace(o, 0.5).log_prob(x).sum(-1)),
    ("beta", {}, OUT2, UNIT,
     lambda o, x: td.Beta(*softplus_pair(o, 1e-3)).log_prob(x.clamp(1e-5, 1 - 1e-5)).sum(-1)),
]


@pytest.mark.parametrize("name,options,out,x,reference", REFERENCES,
                         ids=[f"{r[0]}{r[1] or ''}" for r in REFERENCES])
def test_log_prob_equals_torch_reference(name, options, out, x, reference):
    lik = get_likelihood(name, **options)
    assert out.shape[-1] == lik.outputs_per_pixel * D
    d = lik(out)
    assert d.batch_shape == (N,) and d.event_shape == (D,)
    lik.check(x)  # valid data passes
    got = d.log_prob(lik.prepare(x))
    assert torch.allclose(got, reference(out, x), rtol=1e-5, atol=1e-4)


def test_bernoulli_log_prob_closed_form():
    # x log sigmoid(o) + (1 - x) log sigmoid(-o), by hand
    by_hand = (BINARY * F.logsigmoid(OUT1) + (1 - BINARY) * F.logsigmoid(-OUT1)).sum(-1)
    assert torch.allclose(get_likelihood("bernoulli")(OUT1).log_prob(BINARY), by_hand, atol=1e-5)


GREY = torch.full((3, D), 0.5)
ABOVE_ONE = torch.full((3, D), 1.5)
NEGATIVE = torch.full((3, D), -0.2)
WITH_NAN = REAL.clone()
WITH_NAN[1, 2] = float("nan")


@pytest.mark.parametrize("name,bad,expect", [
    ("bernoulli", GREY, "binary data in {0, 1}"),
    ("bernoulli", NEGATIVE, "binary data"),
    ("continuous-bernoulli", ABOVE_ONE, "data in [0, 1]"),
    ("continuous-bernoulli", NEGATIVE, "data in [0, 1]"),
    ("beta", ABOVE_ONE, "data in [0, 1]"),
    ("beta", NEGATIVE, "data in [0, 1]"),
    ("gaussian", WITH_NAN, "NaN or infinite"),
    ("laplace", torch.full((2, D), float("inf")), "NaN or infinite"),
    ("bernoulli", torch.ones(2, D, dtype=torch.long), "floating-point"),
])
def test_rejects_data_outside_support(name, bad, expect):
    with pytest.raises(DataError) as info:
        get_likelihood(name).check(bad)
    message = str(info.value)
    assert expect in message and "\n" not in message
    assert name in message or expect in ("NaN or infinite", "floating-point")


def test_every_built_in_is_tested():
    assert {r[0] for r in REFERENCES} == set(BUILT_IN)


def test_unknown_name_is_a_config_error():
    with pytest.raises(pyrovae.ConfigError, match="unknown likelihood 'poisson'"):
        get_likelihood("poisson")


def test_user_callable_likelihood_torch_distribution():
    """A plain torch distribution with one value per pixel becomes an event of dim 1."""
    lik = get_likelihood(lambda o: td.Normal(o, 0.1))
    d = lik(OUT1)
    assert d.event_shape == (D,)
    assert torch.allclose(d.log_prob(REAL), td.Normal(OUT1, 0.1).log_prob(REAL).sum(-1))
    vae = pyrovae.VAE(x_dim=D, z_dim=3, hidden=(8,), likelihood=lambda o: td.Normal(o, 0.1))
    loss = pyrovae.make_elbo("trace").differentiable_loss(vae.model, vae.guide, REAL)
    assert torch.isfinite(loss)


def test_user_callable_with_two_outputs_per_pixel():
    def student(o):
        loc, raw = o.chunk(2, dim=-1)
        return td.StudentT(4.0, loc, F.softplus(raw) + 1e-3)

    vae = pyrovae.VAE(x_dim=D, z_dim=3, hidden=(8,), likelihood=student, likelihood_options={"outputs_per_pixel": 2})
    assert vae.decoder.net[-1].out_features == 2 * D
    loss = pyrovae.make_elbo("meanfield").differentiable_loss(vae.model, vae.guide, REAL)
    loss.backward()
    assert torch.isfinite(loss)


def test_user_callable_must_return_a_distribution():
    with pytest.raises(pyrovae.ConfigError, match="not a distribution"):
        get_likelihood(lambda o: o)(OUT1)
