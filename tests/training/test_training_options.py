"""The options of a long training: KL warm-up scales exactly the KL term, the conv
networks keep the MLP's contract, validation hold-out, best.pt, learning-rate schedules
and early stopping do what they say."""
import json
import math

import pyro
import pytest
import torch

import pyrovae
from pyrovae.infer.svi import ScaleLatent, kl_warmup_scale
from pyrovae.model.networks import ConvDecoder, ConvEncoder
from pyrovae.training.checkpoint import read_checkpoint


def test_kl_warmup_schedule():
    assert [kl_warmup_scale(e, 4) for e in range(1, 7)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert kl_warmup_scale(1, 0) == 1.0


@pytest.mark.parametrize("beta", [0.1, 0.5, 1.0])
def test_scaled_latent_site_scales_exactly_the_analytic_kl(beta, small_vae, binary_batch):
    """TraceMeanField with the latent scaled by beta = -(E log p(x|z) - beta KL) with the
    same draw of z; the split comes from pyrovae.elbo, an independent reading of traces."""
    elbo = pyrovae.make_elbo("meanfield")
    with pyro.validation_enabled(False):
        pyro.set_rng_seed(7)
        loss = elbo.differentiable_loss(ScaleLatent(torch.tensor(beta))(small_vae.model),
                                        ScaleLatent(torch.tensor(beta))(small_vae.guide), binary_batch)
        pyro.set_rng_seed(7)
        split = pyrovae.elbo(small_vae, binary_batch, num_particles=1, analytic_kl=True)
    expected = -(split.expected_log_likelihood - beta * split.kl).sum()
    assert torch.allclose(loss, expected, rtol=1e-5), (loss, expected)


def test_scaled_latent_site_scales_the_monte_carlo_kl(small_vae, binary_batch):
    elbo = pyrovae.make_elbo("trace")
    with pyro.validation_enabled(False):
        values = {}
        for beta in (0.25, 1.0):
            pyro.set_rng_seed(3)
            values[beta] = elbo.differentiable_loss(ScaleLatent(beta)(small_vae.model),
                                                    ScaleLatent(beta)(small_vae.guide), binary_batch)
        pyro.set_rng_seed(3)
        split = pyrovae.elbo(small_vae, binary_batch, num_particles=1, analytic_kl=False)
    mc_kl = split.kl.sum()
    assert torch.allclose(values[1.0], -(split.expected_log_likelihood.sum() - mc_kl), rtol=1e-5)
    assert torch.allclose(values[1.0] - values[0.25], 0.75 * mc_kl, rtol=1e-4)


def test_conv_networks_accept_leading_dims_and_mirror_the_layout():
    torch.manual_seed(0)
    enc, dec = ConvEncoder((28, 28), 6, (4, 8), hidden=16), ConvDecoder(6, (28, 28), 2, (4, 8), hidden=16)
    loc, scale = enc(torch.rand(3, 5, 784))  # (particles, batch, D)
    assert loc.shape == scale.shape == (3, 5, 6) and bool((scale > 0).all())
    out = dec(torch.randn(3, 5, 6))
    assert out.shape == (3, 5, 2 * 784)
    one = dec(torch.randn(6))
    assert one.shape == (2 * 784,)
    with pytest.raises(pyrovae.ConfigError, match="at least 4x4"):
        pyrovae.VAE(x_dim=24, arch="conv", image_shape=(3, 8))
    with pytest.raises(pyrovae.ConfigError, match="does not hold"):
        pyrovae.VAE(x_dim=100, arch="conv")


def test_conv_vae_trains_saves_and_loads(mnist_sample, tmp_path):
    config = pyrovae.TrainConfig(arch="conv", channels=(4, 8), hidden=(32,), z_dim=4, epochs=2, train_limit=200,
                                 test_limit=50, likelihood="beta", progress=False, out=str(tmp_path))
    metrics = pyrovae.train(config, log=lambda s: None, dataset=mnist_sample)
    assert metrics["history"][1]["train_elbo"] > metrics["history"][0]["train_elbo"]
    vae = pyrovae.load(tmp_path / "checkpoint.pt")
    assert vae.arch == "conv" and vae.channels == (4, 8)
    assert vae.reconstruct(mnist_sample.test_x[:3]).shape == (3, 784)


def test_validation_hold_out_is_disjoint_and_selects_best(mnist_sample, tmp_path):
    config = pyrovae.TrainConfig(epochs=4, valid_size=300, train_limit=500, test_limit=100, z_dim=4, hidden=(32,),
                                 progress=False, out=str(tmp_path))
    metrics = pyrovae.train(config, log=lambda s: None, dataset=mnist_sample)
    held = mnist_sample.hold_out(300)  # the sample's rows are sorted by class: 300 seeded random rows
    rows = torch.tensor(held.held_out["valid_rows"])
    assert len(held.valid_x) == 300 and torch.equal(held.valid_x, mnist_sample.train_x[rows])
    assert len(held.train_x) == len(mnist_sample.train_x) - 300
    assert len(held.valid_y.unique()) == 10  # every class, not the last one only
    assert metrics["dataset"]["num_valid"] == 100  # the test limit applies to the validation set too
    assert metrics["selection"] == "valid_elbo"
    best = max(metrics["history"], key=lambda h: h["valid_elbo"])
    assert metrics["best"]["epoch"] == best["epoch"]
    assert pyrovae.training.checkpoint.read_checkpoint(tmp_path / "best.pt")["epoch"] == best["epoch"]
    with pytest.raises(pyrovae.ConfigError, match="leaves no training"):
        mnist_sample.hold_out(len(mnist_sample.train_x))


def _selection_run(dataset, out):
    """A run whose plateau schedule halves the rate and whose early stopping ends it (lr
    0.3 is far too high), with the default validation hold-out."""
    config = pyrovae.TrainConfig(epochs=30, lr=0.3, lr_schedule="plateau", lr_patience=1, early_stopping=3,
                                 train_limit=300, test_limit=100, z_dim=2, hidden=(16,), progress=False, out=str(out))
    assert config.valid_size is None
    return pyrovae.train(config, log=lambda s: None, dataset=dataset)


def test_selection_follows_validation_and_never_the_test_set(mnist_sample, tmp_path):
    """With --valid-size unset: best.pt, the plateau schedule (it halves the rate after each epoch
    without a better validation ELBO) and early stopping follow the validation ELBO of the held-out 10% of the training set, and a different test set
    changes none of them."""
    metrics = _selection_run(mnist_sample, tmp_path / "a")
    history = metrics["history"]
    assert metrics["selection"] == "valid_elbo"
    held_out = metrics["dataset"]["valid_held_out"]  # the sample's rows are sorted by class: a random 10%
    assert (held_out["rows"], held_out["of"], len(held_out["valid_rows"])) == (100, 4000, 400)
    assert held_out["rule"] == "a random 10% (default) (seed 0)"
    valid = [h["valid_elbo"] for h in history]
    best_epoch = history[valid.index(max(valid))]["epoch"]
    assert metrics["best"]["epoch"] == best_epoch and metrics["stopped_early"]
    assert len(history) == best_epoch + 3  # early stopping counted on the validation ELBO
    # the rates are those of a plateau schedule fed the validation ELBOs
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.3)
    replay = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.5, patience=1)
    expected = [0.3]
    for value in valid[:-1]:
        replay.step(value)
        expected.append(optimizer.param_groups[0]["lr"])
    assert [h["lr"] for h in history] == expected and min(expected) < 0.3
    # lr 0.3 is far too high to improve after the first epochs: halvings only, never up, and
    # early stopping ends the run before its 30 epochs
    lrs = [h["lr"] for h in history]
    assert lrs[0] == 0.3 and all(b <= a for a, b in zip(lrs, lrs[1:])) and len(history) < 30
    assert all(math.log2(0.3 / lr) == round(math.log2(0.3 / lr)) for lr in lrs)

    # other test images (noise in [0, 1], not digits): the same selection, rates and weights
    generator = torch.Generator().manual_seed(1)
    other = pyrovae.Dataset(mnist_sample.name, mnist_sample.source, mnist_sample.train_x,
                            torch.rand(mnist_sample.test_x.shape, generator=generator), mnist_sample.train_y,
                            origin=mnist_sample.origin)
    swapped = _selection_run(other, tmp_path / "b")
    assert [h["test_elbo"] for h in swapped["history"]] != [h["test_elbo"] for h in history]
    assert swapped["best"]["epoch"] == metrics["best"]["epoch"]
    assert [h["lr"] for h in swapped["history"]] == [h["lr"] for h in history]
    assert len(swapped["history"]) == len(history)
    assert [h["valid_elbo"] for h in swapped["history"]] == valid
    best_a = read_checkpoint(tmp_path / "a" / "best.pt")
    best_b = read_checkpoint(tmp_path / "b" / "best.pt")
    assert best_a["epoch"] == best_b["epoch"] == best_epoch
    assert best_a["state_dict"].keys() == best_b["state_dict"].keys()
    assert all(torch.equal(best_a["state_dict"][k], best_b["state_dict"][k]) for k in best_a["state_dict"])


def test_valid_size_zero_means_no_validation_set(mnist_sample, tmp_path):
    config = pyrovae.TrainConfig(epochs=3, valid_size=0, train_limit=200, test_limit=50, z_dim=2, hidden=(8,),
                                 progress=False, out=str(tmp_path))
    metrics = pyrovae.train(config, log=lambda s: None, dataset=mnist_sample)
    assert metrics["selection"] == "last_epoch" and "num_valid" not in metrics["dataset"]
    assert metrics["best"]["epoch"] == 3 == read_checkpoint(tmp_path / "best.pt")["epoch"]
    assert all("valid_elbo" not in h for h in metrics["history"])
    for extra in ({"lr_schedule": "plateau"}, {"early_stopping": 2}):
        with pytest.raises(pyrovae.ConfigError, match="needs a validation set"):
            pyrovae.TrainConfig(valid_size=0, **extra).validate()


def test_cosine_schedule_reaches_lr_min(mnist_sample, tmp_path):
    config = pyrovae.TrainConfig(epochs=4, lr=1e-3, lr_schedule="cosine", lr_min=1e-5, train_limit=200,
                                 test_limit=50, z_dim=2, hidden=(8,), progress=False, out=str(tmp_path))
    metrics = pyrovae.train(config, log=lambda s: None, dataset=mnist_sample)
    lrs = [h["lr"] for h in metrics["history"]]  # the rate each epoch trained with
    expected = [1e-5 + (1e-3 - 1e-5) * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)]
    assert lrs == pytest.approx(expected, rel=1e-6)
    config_json = json.loads((tmp_path / "config.json").read_text())
    assert config_json["settings"]["lr_schedule"] == "cosine"


def test_gated_units_compute_value_times_sigmoid_gate():
    from pyrovae.model.networks import GatedLinear

    torch.manual_seed(0)
    layer = GatedLinear(5, 3)
    x = torch.randn(4, 5)
    expected = (x @ layer.value.weight.T + layer.value.bias) * torch.sigmoid(x @ layer.gate.weight.T + layer.gate.bias)
    assert torch.allclose(layer(x), expected, atol=1e-6)
    vae = pyrovae.VAE(x_dim=784, z_dim=3, hidden=(16, 8), arch="gated")
    assert sum(isinstance(m, GatedLinear) for m in vae.modules()) == 4  # two hidden layers each way
    assert vae.encode(torch.rand(2, 784))[0].shape == (2, 3)


def test_an_early_stopped_run_tests_its_last_epoch(mnist_sample, tmp_path):
    config = pyrovae.TrainConfig(epochs=40, lr=0.3, early_stopping=2, valid_size=200, test_frequency=1000,
                                 train_limit=300, test_limit=100, z_dim=2, hidden=(16,), progress=False,
                                 out=str(tmp_path))
    metrics = pyrovae.train(config, log=lambda s: None, dataset=mnist_sample)
    assert metrics["stopped_early"] and len(metrics["history"]) < 40
    assert [h["test_elbo"] is not None for h in metrics["history"]] == [False] * (len(metrics["history"]) - 1) + [True]
    assert metrics["last_test_elbo"] == metrics["history"][-1]["test_elbo"]
    best = metrics["best"]  # two epochs before the last, not tested in the loop: best.pt scored once at the end
    assert best["epoch"] == len(metrics["history"]) - 2 and metrics["test_elbo"] == best["test_elbo"] is not None
