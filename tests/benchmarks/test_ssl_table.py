"""scripts/ssl_table.py: M2 runs and their supervised baselines on the same labelled rows, in a
table with mean and spread over seeds; finished runs are kept when the table is made again."""
import hashlib
import json

import numpy as np
import pytest
from sklearn.datasets import load_digits

import pyrovae
from benchmarks.ssl_table import supervised_baseline
from helpers import run_main, run_script
from pyrovae.training.run import Run


def test_the_table_compares_m2_with_its_classifier_on_the_same_labels(tmp_path):
    digits = load_digits()  # 1,797 real 8x8 digits, 17 grey levels, labelled
    path = tmp_path / "digits.npz"
    np.savez(path, x=digits.images.astype(np.float32) / 16.0, y=digits.target)
    out = tmp_path / "table"
    args = ["--dataset", path, "--labels", "5", "--seeds", "0", "1", "--epochs", "2", "--hidden", "32",
            "--z-dim", "4", "--baseline-steps", "200", "--threads", "1", "--out", out]
    result = run_script("ssl_table.py", *args)
    assert result.returncode == 0, result.stderr
    table = json.loads((out / "table.json").read_text())
    assert [(r["labels_per_class"], r["seed"], r["labelled_rows"]) for r in table["rows"]] == [(5, 0, 50), (5, 1, 50)]
    [summary] = table["summary"]
    assert summary["seeds"] == 2 and 0.1 < summary["baseline_mean"] <= 1 and 0 <= summary["m2_mean"] <= 1
    assert "| 5 | 50 |" in (out / "table.md").read_text()
    labelled = [json.loads((out / f"m2-5-seed{s}" / "metrics.json").read_text())["dataset"]["labels"]
                for s in (0, 1)]
    assert labelled[0]["labelled_rows"] != labelled[1]["labelled_rows"]  # each seed draws its own labelled rows
    again = run_script("ssl_table.py", *args)  # the finished runs are kept, not trained again
    assert again.returncode == 0 and "epoch" not in again.stdout, again.stdout
    baseline = supervised_baseline(out / "m2-5-seed0", steps=200, seed=0)
    assert baseline == json.loads((out / "m2-5-seed0" / "baseline.json").read_text())  # the same, again


def test_the_table_refuses_settings_it_sets_itself(tmp_path):
    result = run_main("ssl_table.py", "--labels-per-class", "3", "--out", tmp_path / "t")
    assert result.returncode == 2 and "set per table row" in result.stderr
    assert not (tmp_path / "t").exists()


def test_m1_plus_m2_stacks_m2_on_the_posterior_means_of_a_vae(tmp_path):
    digits = load_digits()
    path = tmp_path / "digits.npz"
    np.savez(path, x=digits.images.astype(np.float32) / 16.0, y=digits.target)
    out = tmp_path / "stacked"
    result = run_script("ssl_table.py", "--dataset", path, "--labels", "5", "--seeds", "0", "--epochs", "2",
                        "--hidden", "32", "--z-dim", "4", "--baseline-steps", "100", "--threads", "1", "--stack",
                        "--m1-epochs", "2", "--m1-z-dim", "6", "--m1-hidden", "32", "--alphas", "1", "1000",
                        "--out", out)
    assert result.returncode == 0, result.stderr
    m1 = json.loads((out / "m1-seed0" / "config.json").read_text())["settings"]
    assert (m1["model"], m1["z_dim"], m1["labels_per_class"]) == ("vae", 6, None)  # M1 learns without labels
    m2 = json.loads((out / "m2-5-seed0" / "config.json").read_text())
    assert m2["settings"]["likelihood"] == "gaussian" and m2["resolved"]["standardize"] is not None
    # each M2 row is an m1m2 run on its seed's M1: a run folder that stands alone and classifies pixels
    assert (m2["settings"]["model"], m2["settings"]["m1_run"]) == ("m1m2", str((out / "m1-seed0").resolve()))
    assert m2["m1"]["sha256"] == hashlib.sha256((out / "m1-seed0" / "best.pt").read_bytes()).hexdigest()
    model = pyrovae.load(out / "m2-5-seed0" / "best.pt")
    with Run.open(out / "m2-5-seed0") as run:
        test = run.dataset(log=lambda line: None)  # the run's rows in pixels
    assert type(model) is pyrovae.M1M2 and (model.x_dim, model.m1.z_dim) == (64, 6)
    right = (model.classify(test.test_x).argmax(-1) == test.test_y).float().mean().item()
    [row] = json.loads((out / "table.json").read_text())["rows"]
    assert right == pytest.approx(row["m2"], abs=1e-7)  # the table's M2 accuracy is the run's, on pixels
    metrics = json.loads((out / "m2-5-seed0" / "metrics.json").read_text())
    assert metrics["dataset"]["num_test"] == 180 and metrics["dataset"]["labels"]["per_class"] == 5
    assert "M1+M2" in (out / "table.md").read_text()
    tuning = json.loads((out / "tuning.json").read_text())  # alpha chosen first, on validation rows, seed 100
    assert tuning["seed"] == 100 and [t["alpha"] for t in tuning["tried"]] == [1.0, 1000.0]
    best = max(tuning["tried"], key=lambda t: t["valid_accuracy"])["alpha"]
    assert tuning["chosen"] == best == json.loads((out / "m2-5-seed0" / "config.json").read_text())["settings"]["alpha"]
    assert "Alpha was chosen before the table" in (out / "table.md").read_text()


def test_the_table_refuses_a_kept_run_of_other_settings_and_data_without_labels(tmp_path):
    digits = load_digits()
    path, unlabelled = tmp_path / "digits.npz", tmp_path / "digits.npy"
    np.savez(path, x=digits.images.astype(np.float32) / 16.0, y=digits.target)
    np.save(unlabelled, digits.images.astype(np.float32) / 16.0)
    out = tmp_path / "table"
    args = ["--dataset", path, "--labels", "5", "--seeds", "0", "--epochs", "1", "--z-dim", "4",
            "--baseline-steps", "10", "--threads", "1", "--out", out]
    assert run_script("ssl_table.py", *args, "--hidden", "32").returncode == 0
    other = run_main("ssl_table.py", *args, "--hidden", "16")  # the same --out, another network
    assert other.returncode == 2 and "holds a run whose hidden is [32], not [16]" in other.stderr
    none = run_main("ssl_table.py", "--dataset", unlabelled, "--stack", "--out", tmp_path / "none")
    assert none.returncode == 2 and "has no class labels" in none.stderr and "epoch" not in none.stdout
    assert not (tmp_path / "none").exists()
