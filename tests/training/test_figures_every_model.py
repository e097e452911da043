"""Every model draws the run's figures on every kind of data: images, flat rows and tables,
a conditional model reconstructing each test row with that row's label, a user's own model
with the ``reconstruct(x)`` and ``sample(n)`` the docs ask for; and a labelled model trained
on a table finishes its run, figures and all."""
import json

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

import pyrovae
from pyrovae.cli.svi_train import main
from pyrovae.model.networks import Decoder, Encoder
from pyrovae.training.report import Reporter, figure_data, table_figure_data

D, K = 4, 3
HISTORY = [{"epoch": 1, "train_elbo": -30.0, "test_elbo": -31.0}, {"epoch": 2, "train_elbo": -25.0, "test_elbo": -26.0}]
TABLE = {"mean": [0.5] * D, "std": [2.0] * D}


class OwnVAE(pyrovae.Model):
    """A user's model with the documented ``reconstruct(x)`` and ``sample(n)``, nothing more."""

    def __init__(self, x_dim=D, image_shape=None):
        super().__init__(x_dim, image_shape)
        self.likelihood = pyrovae.get_likelihood("bernoulli")
        self.encoder, self.decoder = Encoder(x_dim, 2, (8,)), Decoder(2, x_dim, (8,))

    def config(self):
        return {"x_dim": self.x_dim, "image_shape": self.image_shape}

    def model(self, x=None, y=None):
        self.register("decoder", self.decoder)
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(torch.zeros(len(x), 2), 1.0).to_event(1))
            pyro.sample("x", self.likelihood(self.decoder(z)), obs=x)

    def guide(self, x, y=None):
        self.register("encoder", self.encoder)
        with pyro.plate("data", len(x)):
            pyro.sample("z", dist.Normal(*self.encoder(x)).to_event(1))

    @torch.no_grad()
    def reconstruct(self, x):
        return torch.sigmoid(self.decoder(self.encoder(x)[0]))

    @torch.no_grad()
    def sample(self, n):
        return torch.sigmoid(self.decoder(torch.randn(n, 2)))


class OwnCVAE(pyrovae.CVAE):
    """A user's conditional model: every row comes with its class."""

    kind = "custom"


def make(kind, image_shape, standardization):
    torch.manual_seed(0)
    common = {"image_shape": image_shape, "standardization": standardization}
    likelihood = "gaussian" if standardization else "bernoulli"
    if kind == "vae":
        return pyrovae.VAE(x_dim=D, z_dim=2, hidden=(8,), likelihood=likelihood, **common)
    if kind == "hvae":
        return pyrovae.HVAE(x_dim=D, z_dim=2, hidden=(8,), likelihood=likelihood, arch="mlp", **common)
    if kind in ("cvae", "m2", "own-cvae"):
        cls = {"cvae": pyrovae.CVAE, "m2": pyrovae.M2, "own-cvae": OwnCVAE}[kind]
        return cls(x_dim=D, num_classes=K, z_dim=2, hidden=(8,), likelihood=likelihood, **common)
    return OwnVAE(image_shape=image_shape)


DATA = {"image": ((2, 2), None), "flat": (None, None), "table": (None, TABLE)}


@pytest.mark.parametrize("data", sorted(DATA))
@pytest.mark.parametrize("kind", ["vae", "hvae", "cvae", "m2", "own", "own-cvae"])
def test_every_model_draws_its_figures_on_every_kind_of_data(kind, data, tmp_path):
    image_shape, standardization = DATA[data]
    if kind == "own" and standardization:
        pytest.skip("the user's model here has no standardization")
    vae = make(kind, image_shape, standardization)
    test_x, test_y = torch.rand(30, D), torch.arange(30) % K
    reporter = Reporter(tmp_path, image_shape, kind, tensorboard=image_shape is not None)
    try:
        reporter.epoch({**HISTORY[0], "kl_scale": 1.0, "seconds": 1.0, "lr": 1e-3}, vae, test_x, test_y)
        reporter.finish(HISTORY, vae, test_x, test_y=test_y)
    finally:
        reporter.close()
    for name in ("elbo_curves.png", "reconstructions.png", "samples.png"):
        assert (tmp_path / name).stat().st_size > 0, name


@pytest.mark.parametrize("image_shape", [(2, 2), None])
def test_a_conditional_model_reconstructs_each_test_row_with_its_own_label(image_shape):
    vae = make("cvae", image_shape, None if image_shape else TABLE)
    test_x, test_y = torch.rand(30, D), torch.arange(30) % K
    if image_shape is None:
        originals, reconstructions, _ = table_figure_data(vae, test_x, n=10, test_y=test_y)
        picked = torch.linspace(0, 29, 10).long()
    else:
        originals, reconstructions, _ = figure_data(vae, test_x, test_y)
        picked = torch.linspace(0, 29, 30).long()
    assert torch.equal(originals, vae.to_data_space(test_x[picked]))
    assert torch.allclose(reconstructions, vae.reconstruct(originals, test_y[picked]))
    assert not torch.allclose(reconstructions, vae.reconstruct(originals, (test_y[picked] + 1) % K))


@pytest.mark.parametrize("model", ["cvae", "m2"])
def test_a_labelled_model_on_a_table_finishes_its_run_and_its_resume(model, tmp_path, capsys):
    rng = np.random.default_rng(0)
    label = np.repeat([3, 5, 9], 40)
    rows = rng.normal(size=(120, 4)) + label[:, None] / 3
    table = tmp_path / "table.csv"
    np.savetxt(table, np.column_stack([rows, label]), delimiter=",", header="a,b,c,d,kind", comments="", fmt="%.5f")
    out = tmp_path / "run"
    argv = ["--dataset", str(table), "--label-column", "kind", "--model", model, "--likelihood", "gaussian",
            "--z-dim", "2", "--hidden", "8", "--batch-size", "32", "--no-progress", "--out", str(out)]
    if model == "m2":
        argv += ["--labels-per-class", "5"]
    assert main(argv + ["--epochs", "1"]) == 0, capsys.readouterr().err
    assert (out / "reconstructions.png").stat().st_size > 0 and (out / "samples.png").stat().st_size > 0
    (out / "reconstructions.png").unlink()
    assert main(["--resume", str(out), "--epochs", "2", "--no-progress"]) == 0, capsys.readouterr().err
    assert (out / "reconstructions.png").stat().st_size > 0
    assert len(json.loads((out / "metrics.json").read_text())["history"]) == 2
