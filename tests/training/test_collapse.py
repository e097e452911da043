"""Every run records, per epoch on its validation rows, the KL of each latent dimension and the active
units (metrics.json, TensorBoard, kl_per_dim.png), without changing what it trains."""
import json

import pytest
import torch
from PIL import Image

import pyrovae
from pyrovae.infer.diagnostics import kl_per_dim
from pyrovae.infer.evaluation import active_units
from pyrovae.training import collapse
from pyrovae.training.collapse import CollapseDiagnostics, kl_matrices, plot_kl_per_dim


def tiny(tmp_path, **settings):
    options = dict(epochs=2, train_limit=600, test_limit=100, z_dim=5, hidden=(32,), progress=False,
                   out=str(tmp_path / "run"))
    return pyrovae.TrainConfig(**{**options, **settings})


def test_every_epoch_records_the_kl_per_dimension_and_the_active_units(mnist_sample, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    seen, lines = {}, []

    def check(epoch, vae, data):  # after the epoch's record: the same weights, the same validation rows
        if epoch:
            vae.eval()
            seen[epoch] = (kl_per_dim(vae, data.valid_x)["z"].values.tolist(), active_units(vae, data.valid_x)[0],
                           pyrovae.elbo(vae, data.valid_x, analytic_kl=True).kl.mean().item())

    metrics = pyrovae.train(tiny(tmp_path, tensorboard=True), log=lines.append, dataset=mnist_sample,
                            on_epoch_end=[check])
    for record in metrics["history"]:
        values, n_active, kl = seen[record["epoch"]]
        assert set(record["kl_per_dim"]) == {"z"} and len(record["kl_per_dim"]["z"]) == 5
        assert record["kl_per_dim"]["z"] == pytest.approx(values, rel=1e-6)
        assert record["active_units"] == n_active and isinstance(n_active, int)
        assert sum(record["kl_per_dim"]["z"]) == pytest.approx(kl, rel=1e-5)  # the run's analytic KL, summed
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["history"] == metrics["history"]
    assert sum("active units" in line for line in lines if line.startswith("epoch")) == 2
    image = Image.open(tmp_path / "run" / "kl_per_dim.png")
    assert image.size[0] > 300 and image.size[1] > 150
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard")).Reload()
    assert [(e.step, e.value) for e in events.Scalars("collapse/active_units")] == \
        [(h["epoch"], h["active_units"]) for h in metrics["history"]]
    for k in range(5):
        logged = [(e.step, e.value) for e in events.Scalars(f"kl_per_dim/z/{k:03d}")]
        assert logged == [(h["epoch"], pytest.approx(h["kl_per_dim"]["z"][k], rel=1e-6)) for h in metrics["history"]]


def test_the_diagnostics_change_nothing_the_run_trains(mnist_sample, tmp_path, monkeypatch):
    with_them = pyrovae.train(tiny(tmp_path / "a", epochs=3), log=lambda s: None, dataset=mnist_sample)
    monkeypatch.setattr(CollapseDiagnostics, "epoch", lambda self, vae, data: {})
    without = pyrovae.train(tiny(tmp_path / "b", epochs=3), log=lambda s: None, dataset=mnist_sample)
    drop = {"kl_per_dim", "active_units", "seconds"}
    assert [{k: v for k, v in h.items() if k not in drop} for h in with_them["history"]] == \
        [{k: v for k, v in h.items() if k != "seconds"} for h in without["history"]]
    assert not (tmp_path / "b" / "run" / "kl_per_dim.png").exists()


def test_without_a_validation_set_nothing_is_recorded_and_it_is_said_once(mnist_sample, tmp_path):
    lines = []
    metrics = pyrovae.train(tiny(tmp_path, valid_size=0), log=lines.append, dataset=mnist_sample)
    assert all("kl_per_dim" not in h and "active_units" not in h for h in metrics["history"])
    assert sum("no validation set: kl_per_dim and active_units are not recorded" in line for line in lines) == 1
    assert not (tmp_path / "run" / "kl_per_dim.png").exists()


def test_a_flow_guide_records_null_and_says_why_once(mnist_sample, tmp_path):
    lines = []
    metrics = pyrovae.train(tiny(tmp_path, guide="iaf"), log=lines.append, dataset=mnist_sample)
    assert [h["kl_per_dim"] for h in metrics["history"]] == [{"z": None}, {"z": None}]
    assert all(isinstance(h["active_units"], int) for h in metrics["history"])
    said = [line for line in lines if line.startswith("kl_per_dim of z is not recorded (null)")]
    assert len(said) == 1 and "not factorized" in said[0]
    assert not (tmp_path / "run" / "kl_per_dim.png").exists()


HISTORY = [{"epoch": 1, "kl_per_dim": {"z1": [0.5, 0.1, 2.0], "z2": None}},
           {"epoch": 2, "kl_per_dim": {"z1": [0.2, 0.3, 3.0], "z2": [1.0, 0.0]}},
           {"epoch": 3, "kl_per_dim": {"z1": [0.0, 0.4, 3.5], "z2": [1.5, 0.01]}},
           {"epoch": 4}]  # an epoch without the diagnostics (none recorded) is left out


def test_the_heat_map_sorts_dimensions_by_their_final_kl(tmp_path):
    matrices = kl_matrices(HISTORY)
    epochs, kl, order = matrices["z1"]
    assert epochs == [1, 2, 3] and order.tolist() == [2, 1, 0]
    assert torch.allclose(kl, torch.tensor([[2.0, 3.0, 3.5], [0.1, 0.3, 0.4], [0.5, 0.2, 0.0]]))
    epochs, kl, order = matrices["z2"]
    assert epochs == [2, 3] and order.tolist() == [0, 1] and kl.shape == (2, 2)
    assert plot_kl_per_dim(HISTORY, tmp_path / "kl.png") and Image.open(tmp_path / "kl.png").size[1] > 200
    assert not plot_kl_per_dim([{"epoch": 1}], tmp_path / "none.png") and not (tmp_path / "none.png").exists()


def test_the_json_keeps_each_sites_dimensions_in_order():
    sites = {"z2": collapse.SiteKL(torch.tensor([1.0, 2.0]), None, "closed form"),
             "z1": collapse.SiteKL(None, None, "why"), "z3": collapse.SiteKL(torch.tensor([3.0]), None, "mc")}
    assert collapse.as_json(sites) == {"z2": [1.0, 2.0], "z1": None, "z3": [3.0]}
