"""Model and guide as Pyro programs: sites, shapes, SVI steps, and the param store."""
import copy

import pyro
import pyro.poutine as poutine
import pytest
import torch
from pyro.infer import SVI, Trace_ELBO
from pyro.poutine.util import site_is_subsample

import pyrovae


def sample_sites(trace):
    """Names of the sample sites, without the plate's subsample site."""
    return [k for k, s in trace.nodes.items() if s["type"] == "sample" and not site_is_subsample(s)]


def test_model_and_guide_share_the_latent_site(small_vae, binary_batch):
    guide_trace = poutine.trace(small_vae.guide).get_trace(binary_batch)
    model_trace = poutine.trace(poutine.replay(small_vae.model, trace=guide_trace)).get_trace(binary_batch)
    guide_trace.compute_log_prob()
    model_trace.compute_log_prob()
    n = len(binary_batch)
    gz, mz, mx = guide_trace.nodes["z"], model_trace.nodes["z"], model_trace.nodes["x"]
    assert not gz["is_observed"] and not mz["is_observed"] and mx["is_observed"]
    assert gz["value"].shape == mz["value"].shape == (n, 8)
    assert torch.equal(gz["value"], mz["value"])  # replayed
    for site in (gz, mz, mx):
        assert site["fn"].batch_shape == (n,)
        assert site["log_prob"].shape == (n,)
        assert [f.name for f in site["cond_indep_stack"]] == ["data"]
    assert mz["fn"].event_shape == (8,) and mx["fn"].event_shape == (784,)
    # the prior is the standard normal
    assert torch.equal(mz["fn"].base_dist.loc, torch.zeros(n, 8))
    assert torch.equal(mz["fn"].base_dist.scale, torch.ones(n, 8))
    assert sample_sites(model_trace) == ["z", "x"] and sample_sites(guide_trace) == ["z"]


def test_one_svi_step_changes_every_parameter(small_vae, binary_batch):
    before = copy.deepcopy(small_vae.state_dict())
    svi = SVI(small_vae.model, small_vae.guide, pyro.optim.Adam({"lr": 1e-2}), Trace_ELBO())
    loss = svi.step(binary_batch)
    assert loss > 0
    for name, value in small_vae.state_dict().items():
        assert not torch.equal(value, before[name]), f"{name} did not change"


def test_two_vaes_keep_separate_parameters(binary_batch):
    torch.manual_seed(0)
    a = pyrovae.VAE(x_dim=784, z_dim=4, hidden=(16,))
    torch.manual_seed(0)
    b = pyrovae.VAE(x_dim=784, z_dim=4, hidden=(16,))  # same init, same shapes
    assert a.name != b.name
    b_before = copy.deepcopy(b.state_dict())
    for vae in (a, b):  # both registered in the global param store
        poutine.trace(vae.guide).get_trace(binary_batch)
        poutine.trace(vae.model).get_trace(binary_batch)
    store = pyro.get_param_store()
    assert store[f"{a.name}.encoder$$$net.0.weight"] is a.encoder.net[0].weight
    assert store[f"{b.name}.encoder$$$net.0.weight"] is b.encoder.net[0].weight
    svi = SVI(a.model, a.guide, pyro.optim.Adam({"lr": 1e-2}), Trace_ELBO())
    for _ in range(3):
        svi.step(binary_batch)
    assert not torch.equal(a.encoder.net[0].weight, b_before["encoder.net.0.weight"])
    for name, value in b.state_dict().items():
        assert torch.equal(value, b_before[name]), f"training a changed b's {name}"


def test_a_deep_copy_is_a_second_vae_in_the_param_store(small_vae, binary_batch):
    copied = copy.deepcopy(small_vae)
    assert copied.name != small_vae.name
    assert all(p is not q and torch.equal(p, q) for p, q in zip(copied.parameters(), small_vae.parameters()))
    before = copy.deepcopy(small_vae.state_dict())
    SVI(copied.model, copied.guide, pyro.optim.Adam({"lr": 1e-2}), Trace_ELBO()).step(binary_batch)
    assert not torch.equal(copied.encoder.net[0].weight, before["encoder.net.0.weight"])
    assert all(torch.equal(v, before[k]) for k, v in small_vae.state_dict().items())


def test_local_params_registers_nothing(small_vae, binary_batch):
    with small_vae.local_params():
        trace = poutine.trace(small_vae.guide).get_trace(binary_batch)
    assert not [n for n, site in trace.nodes.items() if site["type"] == "param"]
    assert not [k for k in pyro.get_param_store().keys() if k.startswith(small_vae.name)]
    trace = poutine.trace(small_vae.guide).get_trace(binary_batch)  # registered again outside
    assert [n for n, site in trace.nodes.items() if site["type"] == "param"]


def test_inference_helpers_shapes(small_vae, binary_batch):
    loc, scale = small_vae.encode(binary_batch)
    assert loc.shape == scale.shape == (64, 8) and bool((scale > 0).all())
    q = small_vae.posterior(binary_batch)
    assert q.batch_shape == (64,) and q.event_shape == (8,)
    assert torch.equal(q.base_dist.loc, loc)
    x_mean = small_vae.reconstruct(binary_batch)
    assert x_mean.shape == (64, 784) and bool(((x_mean >= 0) & (x_mean <= 1)).all())
    assert small_vae.sample(7).shape == (7, 784)
    assert set(small_vae.sample(5, mean=False).unique().tolist()) <= {0.0, 1.0}


def test_model_without_data_generates(small_vae):
    x = small_vae.model(None, num_samples=3)
    assert x.shape == (3, 784)


@pytest.mark.parametrize("bad,match", [
    (torch.zeros(3, 10), r"shape \(N, 784\)"),
    (torch.zeros(784), r"shape \(N, 784\)"),
    (torch.zeros(2, 784, dtype=torch.long), "floating-point"),
    ([[0.0] * 784], "torch.Tensor"),
])
def test_encode_rejects_bad_input(small_vae, bad, match):
    with pytest.raises(pyrovae.DataError, match=match):
        small_vae.encode(bad)


@pytest.mark.parametrize("kwargs", [{"z_dim": 0}, {"x_dim": -3}, {"hidden": (0,)}])
def test_bad_sizes_are_config_errors(kwargs):
    with pytest.raises(pyrovae.ConfigError):
        pyrovae.VAE(**kwargs)
