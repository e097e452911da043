"""Runs made before a default changed keep what they were trained with: the validation rows of
the class-sorted MNIST sample, the units of the MLP; a checkpoint is read without its data; the
figures draw on a random stream of their own, so a run's next draws do not depend on them."""
import shutil

import numpy as np
import pytest
import torch

import pyrovae
from helpers import run_main
from pyrovae.data.prepare import select_data
from pyrovae.errors import CheckpointError
from pyrovae.model.vae import VAE
from pyrovae.training.checkpoint import check_same_model
from pyrovae.training.report import figure_data


def test_a_run_recorded_before_the_random_hold_out_keeps_its_last_rows(mnist_sample):
    old = pyrovae.TrainConfig.from_dict({"dataset": "mnist", "valid_size": None})  # no hold_out_rule recorded
    assert old.hold_out_rule == "as-recorded"
    held = select_data(old, mnist_sample).held_out
    assert held == {"rows": 400, "first_row": 3600, "of": 4000, "rule": "the last 10% (default)"}
    new = select_data(pyrovae.TrainConfig(), mnist_sample).held_out
    assert new["rule"].startswith("a random") and len(new["valid_rows"]) == 400


def test_auto_units_are_recorded_resolved_and_a_checkpoint_of_other_units_is_refused(tmp_path, mnist_sample):
    config = pyrovae.TrainConfig(epochs=1, train_limit=100, test_limit=20, valid_size=20, hidden=(8,), z_dim=2,
                                 progress=False, out=str(tmp_path))
    assert config.activation == "auto"
    pyrovae.train(config, log=lambda s: None, dataset=mnist_sample)
    assert config.activation == "relu"  # what config.json records: a later default cannot change the run
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    softplus = VAE(784, 2, (8,), activation="softplus")
    with pytest.raises(CheckpointError, match="holds a model whose activation is 'relu', but its settings build "
                                              "one whose activation is 'softplus'"):
        check_same_model(softplus, state, tmp_path / "checkpoint.pt")


def test_a_checkpoint_is_read_without_its_training_data(tmp_path):
    rows = np.random.default_rng(0).random((300, 6)).astype(np.float32)
    data = tmp_path / "rows.npy"
    np.save(data, rows)
    out = tmp_path / "run"
    trained = run_main("svi_train.py", "--dataset", data, "--likelihood", "gaussian", "--epochs", "1",
                       "--hidden", "8", "--z-dim", "2", "--no-progress", "--threads", "1", "--out", out)
    assert trained.returncode == 0, trained.stderr
    shutil.move(data, tmp_path / "moved.npy")  # the training data are gone from where the run recorded them
    np.save(tmp_path / "new.npy", rows[:10])
    encoded = run_main("encode.py", out, tmp_path / "new.npy", "--out", tmp_path / "z.npz")
    assert encoded.returncode == 0, encoded.stderr  # new rows need only the checkpoint
    scored = run_main("evaluate.py", out, "--num-samples", "2")
    assert scored.returncode == 2 and "was trained on data that is not there now" in scored.stderr


def test_the_figures_leave_the_runs_random_stream_alone(mnist_sample):
    torch.manual_seed(0)
    model = pyrovae.HVAE(784, z_dim=4, hidden=(16,), prior="vamp", prior_options={"components": 5})
    before = torch.get_rng_state()
    figure_data(model, mnist_sample.test_x[:60])  # a VampPrior and the lower layer draw from the global stream
    assert torch.equal(torch.get_rng_state(), before)
