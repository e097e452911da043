"""evaluate.py prints and records the KL of each latent dimension; plot_latent.py draws latent
traversals of the dimensions whose posterior means vary most, and skips them in one line where
z alone does not decode."""
import json

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_breast_cancer, load_digits

import pyrovae
from pyrovae.analysis.evaluate import evaluate_run
from pyrovae.analysis.plot_latent import _plot_traversals, plot_latent_run, prior_spread
from pyrovae.cli import plot_latent_main


@pytest.fixture(scope="module")
def run(mnist_sample, tmp_path_factory):
    out = tmp_path_factory.mktemp("diag") / "run"
    config = pyrovae.TrainConfig(epochs=2, train_limit=600, test_limit=100, z_dim=6, hidden=(64,), progress=False,
                                 out=str(out))
    pyrovae.train(config, log=lambda s: None, dataset=mnist_sample)
    return out


def test_evaluate_prints_and_records_the_kl_per_dimension(run):
    lines = []
    result = evaluate_run(run, num_samples=5, log=lines.append)
    kl = result["kl_per_dim"]["z"]
    assert len(kl) == 6 and result["kl_per_dim_estimator"] == {"z": "closed form"}
    assert sum(kl) == pytest.approx(result["kl"], rel=1e-4)  # the analytic KL of the same test rows, summed
    [line] = [line for line in lines if line.startswith("KL per dimension of z, largest first")]
    printed = [float(v) for v in line.split(": ", 1)[1].split()]
    assert printed == sorted(printed, reverse=True) and printed == pytest.approx(sorted(kl, reverse=True), abs=0.006)
    assert any(f"{result['active_units']}/6 active units" in line for line in lines)
    assert json.loads((run / "metrics.json").read_text())["evaluation"]["kl_per_dim"] == result["kl_per_dim"]


def test_traversals_are_drawn_from_the_command_line(run, tmp_path, capsys):
    assert plot_latent_main([str(run), "--out", str(tmp_path / "figs"), "--traversal-dims", "3", "--threads", "1"]) == 0
    assert "traversals.png" in capsys.readouterr().out
    width, height = Image.open(tmp_path / "figs" / "traversals.png").size
    assert width > height > 100  # 3 rows of 11 tiles
    with pytest.raises(SystemExit) as stop:
        plot_latent_main([str(run), "--traversal-dims", "0"])
    assert stop.value.code == 2 and "--traversal-dims must be a positive integer" in capsys.readouterr().err


def test_each_row_sweeps_one_of_the_most_varying_dimensions(mnist_sample, tmp_path):
    torch.manual_seed(0)
    vae = pyrovae.VAE(784, 5, (32,)).eval()
    test_x = mnist_sample.test_x[::10]  # (100, 784) in data units
    decoded = []
    vae.decoder.register_forward_pre_hook(lambda module, args: decoded.append(args[0].clone()))
    with torch.no_grad():
        _plot_traversals(vae, test_x, (28, 28), tmp_path / "t.png", k=3, steps=11)
        loc = vae.encode(test_x)[0]  # (100, 5)
    [z] = decoded  # (3, 11, 5)
    dims = torch.argsort(loc.var(0), descending=True)[:3]
    assert z.shape == (3, 11, 5)
    for r, d in enumerate(dims.tolist()):
        others = [j for j in range(5) if j != d]
        assert torch.allclose(z[r][:, others], loc[0, others].expand(11, 4))  # the first test image's mean
        assert torch.allclose(z[r][:, d], torch.linspace(-3, 3, 11), atol=1e-6)  # +-3 sd of N(0, 1)
    assert (tmp_path / "t.png").stat().st_size > 1000


def test_a_mixture_priors_spread_is_its_marginal_mean_and_deviation():
    torch.manual_seed(0)
    vae = pyrovae.VAE(784, 3, (16,), prior="mog", prior_options={"components": 4})
    mean, sd = prior_spread(vae)
    with torch.no_grad():
        w = torch.softmax(vae.prior.logits, 0)[:, None]  # (C, 1)
        m, s = vae.prior.locs, torch.nn.functional.softplus(vae.prior.raw_scales) + 1e-3  # (C, K)
        exact_mean = (w * m).sum(0)
        exact_sd = ((w * (s**2 + m**2)).sum(0) - exact_mean**2).sqrt()  # the law of total variance
    assert torch.allclose(mean, exact_mean, atol=1e-6) and torch.allclose(sd, exact_sd, atol=1e-6)


def test_other_models_and_tables_skip_the_traversals_in_one_line(tmp_path):
    digits = load_digits()
    path = tmp_path / "digits.npz"
    np.savez(path, x=digits.images[:300].astype(np.float32) / 16.0, y=digits.target[:300])
    config = pyrovae.TrainConfig(model="cvae", dataset=str(path), epochs=1, hidden=(16,), z_dim=2, progress=False,
                                 out=str(tmp_path / "cvae"))
    pyrovae.train(config, log=lambda s: None)
    cancer = tmp_path / "cancer.npy"
    np.save(cancer, load_breast_cancer().data.astype(np.float32))
    config = pyrovae.TrainConfig(dataset=str(cancer), likelihood="gaussian", epochs=1, hidden=(16,), z_dim=2,
                                 progress=False, out=str(tmp_path / "table"))
    pyrovae.train(config, log=lambda s: None)
    for name, fragment in (("cvae", "the cvae model: drawing latent.png only"),
                           ("table", "the data are a table (no image shape): drawing latent.png only")):
        lines = []
        written = plot_latent_run(tmp_path / name, tmp_path / f"{name}-figs", log=lines.append)
        assert [p.name for p in written] == ["latent.png"]
        said = [line for line in lines if fragment in line]
        assert len(said) == 1 and "traversals.png" in said[0]
        assert not (tmp_path / f"{name}-figs" / "traversals.png").exists()
