"""pyrovae's ELBO classes are Pyro's with the loss kept on the device: the same value and
the same gradient as pyro.infer.Trace_ELBO / TraceMeanField_ELBO for the same draws,
and no host read (Tensor.item) inside differentiable_loss."""
import pyro
import pyro.distributions as dist
import pytest
import torch

import pyrovae
from pyrovae.infer import elbos

PYRO = {"trace": pyro.infer.Trace_ELBO, "meanfield": pyro.infer.TraceMeanField_ELBO}


def loss_and_grads(elbo, model, guide, params, *args, seed=0):
    pyro.set_rng_seed(seed)
    loss = elbo.differentiable_loss(model, guide, *args)
    return loss.detach(), torch.autograd.grad(loss, params)


@pytest.mark.parametrize("kind", ["trace", "meanfield"])
@pytest.mark.parametrize("num_particles", [1, 3])
def test_same_value_and_gradient_as_pyro(kind, num_particles, small_vae, binary_batch):
    params = list(small_vae.parameters())
    ours = pyrovae.make_elbo(kind, num_particles)
    theirs = PYRO[kind](num_particles=num_particles, vectorize_particles=num_particles > 1, max_plate_nesting=1)
    assert isinstance(ours, PYRO[kind])
    with pyro.validation_enabled(True):
        for seed in range(3):
            value, grads = loss_and_grads(ours, small_vae.model, small_vae.guide, params, binary_batch, seed=seed)
            ref_value, ref_grads = loss_and_grads(theirs, small_vae.model, small_vae.guide, params, binary_batch, seed=seed)
            assert torch.allclose(value, ref_value, rtol=1e-6), (value, ref_value)
            for g, r in zip(grads, ref_grads):
                assert torch.allclose(g, r, rtol=1e-5, atol=1e-6)


def test_score_function_latent_same_value_and_gradient():
    """A non-reparameterized (Bernoulli) latent: the surrogate differs from the ELBO, and
    the value must be the ELBO while the gradient is the surrogate's, as in Pyro."""
    data = torch.tensor([1.2, -0.3, 0.8, 2.0])
    logit_q = torch.tensor(0.3, requires_grad=True)
    shift = torch.tensor(0.5, requires_grad=True)

    def model(data):
        c = pyro.sample("c", dist.Bernoulli(0.5))
        with pyro.plate("data", len(data)):
            pyro.sample("x", dist.Normal(c * shift, 1.0), obs=data)

    def guide(data):
        pyro.sample("c", dist.Bernoulli(logits=logit_q))

    params = [logit_q, shift]
    for seed in range(6):  # both values of c occur
        value, grads = loss_and_grads(elbos.Trace_ELBO(), model, guide, params, data, seed=seed)
        ref_value, ref_grads = loss_and_grads(pyro.infer.Trace_ELBO(), model, guide, params, data, seed=seed)
        assert torch.allclose(value, ref_value, rtol=1e-6)
        assert all(torch.allclose(g, r, rtol=1e-6) for g, r in zip(grads, ref_grads))
        assert grads[0].abs() > 0  # the score-function term reached the guide's parameter


@pytest.mark.parametrize("kind", ["trace", "meanfield"])
def test_no_host_read(kind, small_vae, binary_batch, monkeypatch):
    def no_item(self):
        raise AssertionError("host read: Tensor.item() inside differentiable_loss")

    monkeypatch.setattr(torch.Tensor, "item", no_item)
    with pyro.validation_enabled(False):
        with pytest.raises(AssertionError, match="host read"):  # the check bites: Pyro's own reads
            PYRO[kind](max_plate_nesting=1).differentiable_loss(small_vae.model, small_vae.guide, binary_batch)
        loss = pyrovae.make_elbo(kind).differentiable_loss(small_vae.model, small_vae.guide, binary_batch)
    assert loss.dim() == 0 and loss.requires_grad
