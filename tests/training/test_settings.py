"""Settings that TrainConfig takes as VAE does, the line a run starts with, and the sizes of a
quick run (a fraction or a count of test rows; limits that keep evenly spaced rows)."""
import pyro.distributions as dist
import pytest
import torch
import torch.nn.functional as F

import pyrovae
from pyrovae.errors import ConfigError

quiet = lambda line: None  # noqa: E731


def two_outputs(o):
    """A user's Gaussian likelihood reading two decoder outputs per pixel (loc, raw scale)."""
    loc, raw = o.chunk(2, dim=-1)
    return dist.Normal(loc, F.softplus(raw) + 1e-3).to_event(1)


def test_a_callable_likelihood_takes_its_options_through_train_config(mnist_sample, tmp_path):
    config = pyrovae.TrainConfig(likelihood=two_outputs, likelihood_options={"outputs_per_pixel": 2}, epochs=1,
                                 train_limit=100, test_limit=20, valid_size=20, hidden=(8,), z_dim=2, progress=False,
                                 dequantize="none", out=str(tmp_path))
    pyrovae.train(config, log=quiet, dataset=mnist_sample)
    vae = pyrovae.load(tmp_path / "best.pt", likelihood=two_outputs)
    assert vae.likelihood.outputs_per_pixel == 2 and vae.decoder.net[-1].out_features == 2 * 784
    resumed = pyrovae.resume(tmp_path, log=quiet, dataset=mnist_sample, likelihood=two_outputs, epochs=2)
    assert len(resumed["history"]) == 2
    with pytest.raises(ConfigError, match="takes the options outputs_per_pixel and name, not 'scale'"):
        pyrovae.TrainConfig(likelihood=two_outputs, likelihood_options={"scale": 0.1}).validate()


def test_the_first_line_names_the_model_the_preprocessing_and_the_device(mnist_sample, tmp_path):
    lines = []
    config = pyrovae.TrainConfig(epochs=1, train_limit=100, test_limit=20, valid_size=20, hidden=(8,), z_dim=2,
                                 prior="vamp", prior_options={"components": 5}, guide="iaf", progress=False,
                                 out=str(tmp_path))
    pyrovae.train(config, log=lines.append, dataset=mnist_sample)
    first = lines[0]
    for part in ("100 train / 20 valid / 20 test", "p(x|z) Bernoulli()", "p(z) vamp (components 5)",
                 "q(z|x) iaf (steps 2, hidden [8, 8])", "mlp hidden [8] (relu units), z 2", "Trace_ELBO x1",
                 "minibatch transform binarize", "device cpu"):
        assert part in first, (part, first)


def test_a_standardized_table_says_so(tmp_path):
    x = torch.randn(200, 5) * torch.tensor([1.0, 10.0, 100.0, 0.1, 3.0])
    data = pyrovae.Dataset.from_arrays(x.numpy())
    lines = []
    config = pyrovae.TrainConfig(likelihood="gaussian", epochs=1, hidden=(8,), z_dim=2, progress=False,
                                 out=str(tmp_path))
    pyrovae.train(config, log=lines.append, dataset=data)
    assert "minibatch transform none, columns standardized" in lines[0], lines[0]


@pytest.mark.parametrize("given, test_rows", [(0.25, 50), (30, 30), (None, 20)])
def test_test_size_is_a_fraction_or_a_count(given, test_rows):
    rows = torch.rand(200, 6)
    config = pyrovae.TrainConfig(test_size=given).validate()
    data = pyrovae.Dataset.from_arrays(rows.numpy(), test_size=config.test_size)
    assert len(data.test_x) == test_rows and len(data.train_x) == 200 - test_rows


def test_a_run_recorded_before_the_limit_rule_keeps_its_first_rows():
    assert pyrovae.TrainConfig.from_dict({"train_limit": 5}).limit_rule == "first"
    assert pyrovae.TrainConfig().limit_rule == "evenly-spaced"
