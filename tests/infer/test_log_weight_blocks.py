"""The models' untraced log-weights (what pyrovae.log_likelihood sums) against the traced ones:
the same draws give the same weights, and the encoder runs once per chunk of images."""
import pyro
import pytest
import torch

import pyrovae
from pyrovae.infer.evaluation import log_likelihood
from pyrovae.model.hvae import HVAE
from pyrovae.model.priors import log_density

VAES = [dict(hidden=(20,)), dict(arch="gated", hidden=(12, 12), prior="vamp", prior_options={"components": 7}),
        dict(hidden=(20,), prior="mog", prior_options={"components": 3}), dict(hidden=(20,), guide="iaf"),
        dict(hidden=(20,), likelihood="gaussian"), dict(hidden=(20,), likelihood="beta"),
        dict(arch="conv", hidden=(16,), channels=(4, 8), z_dim=3)]
HVAES = [dict(hidden=(12, 12), z_dim=4, prior="vamp", prior_options={"components": 5}),
         dict(arch="mlp", hidden=(10,), z_dim=3), dict(arch="mlp", hidden=(), z_dim=3),
         dict(arch="conv", hidden=(16,), channels=(4, 8), z_dim=3, guide="iaf")]


def _weights(model, x, sizes):
    with torch.no_grad(), pyro.validation_enabled(False):
        pyro.set_rng_seed(3)
        traced = [model.log_weights(x, None, s) for s in sizes]  # one Pyro trace pair per block
        pyro.set_rng_seed(3)
        blocks = list(model.log_weight_blocks(x, None, sizes))
    return torch.cat(traced), torch.cat(blocks)


@pytest.mark.parametrize("options", [("vae", o) for o in VAES] + [("hvae", o) for o in HVAES], ids=str)
def test_same_draws_give_the_traced_weights(options):
    kind, kw = options
    torch.manual_seed(0)
    model = pyrovae.VAE(z_dim=kw.pop("z_dim", 4), **kw) if kind == "vae" else HVAE(**kw)
    x = torch.rand(5, 784).clamp(0.05, 0.95)
    if model.likelihood.name == "bernoulli":
        x = (x < 0.3).float()
    traced, blocks = _weights(model, x, (4, 1, 3))
    assert traced.shape == blocks.shape == (8, 5)
    # the same random numbers: equal up to float32 rounding of sums of about 800 terms
    assert torch.allclose(blocks, traced, rtol=0, atol=1e-6 * traced.abs().max().item() + 1e-5), \
        (blocks - traced).abs().max()


def test_a_subclass_that_rewrites_the_program_is_scored_from_its_traces():
    class Tempered(pyrovae.VAE):
        def model(self, x=None, **kwargs):
            with pyro.poutine.scale(scale=0.5):
                return super().model(x, **kwargs)
    torch.manual_seed(0)
    model = Tempered(hidden=(10,), z_dim=3)
    x = (torch.rand(4, 784) < 0.3).float()
    traced, blocks = _weights(model, x, (2, 2))
    assert torch.equal(traced, blocks)


def test_encoder_runs_once_per_chunk_of_images():
    torch.manual_seed(0)
    vae = pyrovae.VAE(hidden=(10,), z_dim=3, prior="vamp", prior_options={"components": 4})
    calls = []
    vae.encoder.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    x = (torch.rand(6, 784) < 0.3).float()
    log_likelihood(vae, x, num_samples=40, batch_size=3, max_elements=3 * 784 * 5)  # 8 blocks per chunk
    # per chunk of 3 images: the rows once, the VampPrior's 4 pseudo-inputs once (no draws through the encoder)
    assert calls == [3, 4, 3, 4]


def test_mixture_density_from_one_product_matches_log_prob():
    torch.manual_seed(0)
    locs, scales = torch.randn(6, 3), torch.rand(6, 3) * 0.05 + 0.01  # narrow components: the terms cancel
    mix = pyro.distributions.MixtureSameFamily(pyro.distributions.Categorical(logits=torch.randn(6)),
                                               pyro.distributions.Normal(locs, scales).to_event(1)).expand([4])
    z = locs[torch.randint(6, (5, 4))] + 0.02 * torch.randn(5, 4, 3)  # (S, B, K) near the components
    exact = mix.log_prob(z.double())
    assert log_density(mix) != mix.log_prob, "a mixture every datapoint shares is one product, not a (S, B, C, K) temporary"
    assert torch.allclose(log_density(mix)(z).double(), exact, rtol=1e-6, atol=1e-4)
    normal = pyro.distributions.Normal(torch.zeros(4, 3), 1.0).to_event(1)
    assert log_density(normal) == normal.log_prob
