"""A VAE that holds a column standardization: encode/reconstruct/sample in data units, the
model in standardized units, the change-of-variables identity for densities, and checkpoints
that carry the buffers. Data: scikit-learn's bundled breast-cancer features (569 x 30)."""
import math

import pytest
import torch
from sklearn.datasets import load_breast_cancer

import pyrovae
from pyrovae.training.checkpoint import save_checkpoint


@pytest.fixture(scope="module")
def table():
    """(x (569, 30) float32 in data units, {"mean", "std"} of its first 400 rows)."""
    x = torch.tensor(load_breast_cancer().data, dtype=torch.float32)
    train = x[:400]
    return x, {"mean": train.mean(0).tolist(), "std": train.std(0).tolist()}


def standardized_vae(standardization, **kwargs):
    torch.manual_seed(0)
    return pyrovae.VAE(x_dim=len(standardization["mean"]), z_dim=3, hidden=(16,), likelihood="gaussian",
                       image_shape=None, standardization=standardization, **kwargs)


def test_round_trip_and_the_model_sees_standardized_columns(table):
    x, standardization = table
    vae = standardized_vae(standardization)
    y = vae.to_model_space(x)
    assert torch.allclose(vae.to_data_space(y), x, rtol=1e-5, atol=1e-4)
    train = y[:400]  # the rows the statistics came from: mean 0, std 1 in model space
    assert torch.allclose(train.mean(0), torch.zeros(30), atol=1e-3)
    assert torch.allclose(train.std(0), torch.ones(30), atol=1e-3)
    assert set(vae.standardizer.state_dict()) == {"mean", "std"}
    assert vae.standardizer.mean.shape == vae.standardizer.std.shape == (30,)


def test_encode_takes_data_units_and_reconstruct_sample_return_them(table):
    x, standardization = table
    vae = standardized_vae(standardization).eval()
    m, s = torch.tensor(standardization["mean"]), torch.tensor(standardization["std"])
    loc, scale = vae.encode(x[:20])
    with torch.no_grad():
        ref_loc, ref_scale = vae.encoder((x[:20] - m) / s)
        decoded = vae.likelihood(vae.decoder(ref_loc)).mean  # (20, 30) in model space
    assert torch.equal(loc, ref_loc) and torch.equal(scale, ref_scale)
    assert torch.equal(vae.posterior(x[:20]).base_dist.loc, ref_loc)
    assert torch.allclose(vae.reconstruct(x[:20]), decoded * s + m)
    g = torch.Generator().manual_seed(0)
    z = torch.randn(7, 3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = vae.likelihood(vae.decoder(z)).mean * s + m
    assert torch.allclose(vae.sample(7, generator=g), expected)


def test_without_a_standardization_nothing_changes():
    vae = pyrovae.VAE(x_dim=12, z_dim=2, hidden=(4,), image_shape=None)
    x = torch.rand(3, 12)
    assert vae.to_model_space(x) is x and vae.to_data_space(x) is x
    assert vae.log_det_standardization() == 0.0 and "standardized" not in vae.config()
    assert not any(k.startswith("standardizer") for k in vae.state_dict())


def test_change_of_variables_for_a_gaussian_likelihood():
    r"""log p_data(x|z) = log p_model((x - m)/s | z) - sum_d log s_d: against the closed form
    N(x; s mu + m, s sigma) in 2-d, and integrating to 1 over a grid in 1-d."""
    torch.manual_seed(0)
    m, s = [3.0, -1.0], [0.5, 4.0]
    vae = pyrovae.VAE(x_dim=2, z_dim=1, hidden=(4,), likelihood="gaussian", likelihood_options={"scale": 0.7},
                      image_shape=None, standardization={"mean": m, "std": s})
    assert math.isclose(vae.log_det_standardization(), math.log(0.5) + math.log(4.0), rel_tol=1e-6)
    z = torch.randn(5, 1)
    with torch.no_grad():
        mu = vae.decoder(z)  # (5, 2): the Gaussian's mean in model space
        x = vae.to_data_space(mu + torch.randn(5, 2))
        model_side = vae.likelihood(vae.decoder(z)).log_prob(vae.to_model_space(x)) - vae.log_det_standardization()
    closed = torch.distributions.Normal(mu * torch.tensor(s) + torch.tensor(m), 0.7 * torch.tensor(s))
    assert torch.allclose(model_side, closed.log_prob(x).sum(-1), atol=1e-5)

    one = pyrovae.VAE(x_dim=1, z_dim=1, hidden=(4,), likelihood="gaussian", likelihood_options={"scale": 0.7},
                      image_shape=None, standardization={"mean": [10.0], "std": [3.0]})
    grid = torch.linspace(-40.0, 60.0, 20001).unsqueeze(1)  # (G, 1) in data units
    with torch.no_grad():
        p_x = one.likelihood(one.decoder(torch.zeros(1, 1)))
        log_model = p_x.log_prob(one.to_model_space(grid))  # (G,)
    log_p = log_model - one.log_det_standardization()
    assert abs(float(torch.trapezoid(log_p.exp(), grid[:, 0])) - 1.0) < 1e-4
    assert abs(float(torch.trapezoid(log_model.exp(), grid[:, 0])) - 3.0) < 1e-3  # without the term: s


def test_checkpoint_round_trip_keeps_the_standardization(table, tmp_path):
    x, standardization = table
    vae = standardized_vae(standardization)
    save_checkpoint(tmp_path / "c.pt", vae)
    state = torch.load(tmp_path / "c.pt", weights_only=True)
    assert state["vae"]["standardized"] is True and state["vae"]["image_shape"] is None
    assert "mean" not in str(state["vae"])  # the buffers live in the state_dict, not the config
    again = pyrovae.load(tmp_path / "c.pt")
    assert torch.equal(again.standardizer.mean, vae.standardizer.mean)
    assert torch.equal(again.standardizer.std, vae.standardizer.std)
    assert torch.equal(again.encode(x[:10])[0], vae.encode(x[:10])[0])
    assert pyrovae.VAE(**{**vae.config(), "likelihood": "gaussian"}).standardizer is not None  # placeholders
    state["state_dict"]["standardizer.std"][3] = -1.0  # a crafted or damaged file
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(pyrovae.CheckpointError, match="std that is not positive"):
        pyrovae.load(tmp_path / "bad.pt")


@pytest.mark.parametrize("standardization, words", [
    ({"mean": [0.0] * 4, "std": [1.0] * 3}, "std must hold x_dim=4 values"),
    ({"mean": [0.0] * 4, "std": [1.0, 0.0, 1.0, 1.0]}, "a constant column has std 0"),
    ({"mean": [0.0, float("nan"), 0.0, 0.0], "std": [1.0] * 4}, "mean must be finite"),
    ([0.0, 1.0], "must be a dict"),
])
def test_bad_standardizations_are_one_line_config_errors(standardization, words):
    with pytest.raises(pyrovae.ConfigError, match=words) as info:
        pyrovae.VAE(x_dim=4, z_dim=2, hidden=(4,), image_shape=None, standardization=standardization)
    assert "\n" not in str(info.value)
