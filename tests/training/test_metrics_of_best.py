"""metrics.json's top-level test numbers are those of the checkpoint they are named for: the
best epoch's (best.pt), the last epoch's under names that say so; evaluate.py of checkpoint.pt
beside a best.pt leaves them to best.pt."""
import json

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

import pyrovae
from pyrovae.analysis.evaluate import evaluate_run
from pyrovae.training.parts import RunRecord, Selection

DIGITS = load_digits()


def test_the_record_names_the_best_and_the_last_epochs_test_numbers():
    record, selection = RunRecord(command="c", selection="valid_elbo"), Selection("valid_elbo")
    for epoch, valid, test, accuracy in [(1, -5.0, -6.0, 0.5), (2, -4.0, -5.0, 0.7), (3, -4.5, -4.8, 0.6)]:
        row = {"epoch": epoch, "valid_elbo": valid, "test_elbo": test, "test_accuracy": accuracy}
        record.add(row, "eager")
        selection.update(epoch, valid, test)
    metrics = record.metrics(selection)
    assert metrics["best"]["epoch"] == 2
    assert (metrics["test_elbo"], metrics["test_accuracy"]) == (-5.0, 0.7)
    assert (metrics["last_test_elbo"], metrics["last_test_accuracy"]) == (-4.8, 0.6)
    assert list(metrics)[:4] == ["command", "history", "test_elbo", "test_accuracy"]


@pytest.fixture(scope="module")
def m2_run(tmp_path_factory):
    """An m2 run of 4 epochs whose best epoch (by the validation ELBO) is the second, not tested
    (``test_frequency`` 3): noise added to every weight after it makes the later epochs worse."""
    out = tmp_path_factory.mktemp("m2") / "run"
    x, y = DIGITS.data[:400] / 16.0, DIGITS.target[:400]
    data = pyrovae.Dataset.from_arrays(x.astype(np.float32), train_y=y, test_size=100)
    config = pyrovae.TrainConfig(model="m2", likelihood="gaussian", z_dim=2, hidden=(16,), epochs=4, lr=0.01,
                                 labels_per_class=5, valid_size=60, test_frequency=3, progress=False, out=str(out))

    def spoil(epoch, vae, data):
        if epoch == 2:
            with torch.no_grad():
                for p in vae.parameters():
                    p.add_(3 * torch.randn_like(p))

    return out, data, pyrovae.train(config, dataset=data, log=lambda s: None, on_epoch_end=[spoil])


def test_an_m2_runs_test_numbers_are_those_of_best_pt(m2_run):
    out, data, metrics = m2_run
    history, best = metrics["history"], metrics["best"]["epoch"]
    assert best == 2 and history[1]["test_elbo"] is None  # best.pt's epoch was not tested in the loop
    assert metrics == json.loads((out / "metrics.json").read_text())
    assert (metrics["last_test_elbo"], metrics["last_test_accuracy"]) == (history[-1]["test_elbo"],
                                                                         history[-1]["test_accuracy"])
    vae = pyrovae.load(out / "best.pt")
    test_x, test_y = data.test_x, data.test_y
    right = (vae.classify(test_x).argmax(-1) == test_y).float().mean().item()
    assert metrics["test_accuracy"] == pytest.approx(right, abs=1e-6)
    assert metrics["test_accuracy"] != metrics["last_test_accuracy"] or metrics["test_elbo"] != metrics["last_test_elbo"]
    assert metrics["test_elbo"] == pytest.approx(
        pyrovae.elbo(vae, vae.to_model_space(test_x), num_particles=1, analytic_kl=True).elbo.mean().item(), abs=3.0)


def test_evaluate_of_the_last_checkpoint_leaves_the_top_level_numbers_to_best_pt(m2_run):
    out, data, _ = m2_run
    evaluate_run(out, num_samples=2, dataset=data, log=lambda s: None)
    before = json.loads((out / "metrics.json").read_text())
    assert before["evaluation"]["checkpoint"] == "best.pt"
    evaluate_run(out, num_samples=2, dataset=data, checkpoint="last", log=lambda s: None)
    after = json.loads((out / "metrics.json").read_text())
    assert after["evaluation_last"]["checkpoint"] == "checkpoint.pt"
    for key in ("test_nll", "test_accuracy", "test_elbo", "evaluation"):
        assert after[key] == before[key], key
