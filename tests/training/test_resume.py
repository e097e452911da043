"""Nothing lost: fault injection on real training subprocesses.

A run is killed (SIGKILL in the middle of an epoch; SIGKILL in the middle of writing a
checkpoint; SIGINT; SIGTERM), resumed with ``--resume``, and must end bit for bit where
the uninterrupted run ends (CPU, same machine, same thread count): the same weights,
optimizer state, best checkpoint and metrics (wall-clock seconds aside). No checkpoint
on disk is ever unreadable. A non-finite loss stops with one line; bad resume targets
get one line."""
import json
import re
from pathlib import Path

import pytest
import torch

import pyrovae
from helpers import run_main, run_python
from pyrovae.training.checkpoint import read_checkpoint
from resume_checks import DRIVER, assert_same_run

ROOT = Path(__file__).resolve().parents[2]
STEPS_PER_EPOCH = 12  # 600 training images in minibatches of 50


def train_args(tmp_path, out, *extra):
    # --threads 1 in every process (and in every resume): the runs compared bit for bit must sum in the
    # same order, which another thread count would change
    return ["--dataset", "mnist", "--no-download", "--data-dir", str(tmp_path / "no-mnist"), "--train-limit", "600",
            "--test-limit", "100", "--valid-size", "100", "--z-dim", "4", "--hidden", "32", "--batch-size", "50",
            "--epochs", "3", "--kl-warmup", "2", "--lr-schedule", "plateau", "--lr-patience", "1",
            "--checkpoint-every", "5", "--no-progress", "--threads", "1", "--out", str(out), *extra]


def drive(tmp_path, mode, at, args):
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    return run_python(driver, mode, at, *args, timeout=600)


def resume(tmp_path, out):
    # in this process (no subprocess's imports): --threads 1 sets its thread count for the test, so the
    # resumed run sums in the order of the driven ones
    return run_main("svi_train.py", "--resume", str(out), "--no-progress", "--threads", "1")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("whole")
    result = drive(tmp_path, "none", 0, train_args(tmp_path, tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    return tmp_path / "run"


@pytest.mark.parametrize("at", [STEPS_PER_EPOCH + 8, 2 * STEPS_PER_EPOCH])  # mid-epoch; just after an epoch's end
def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(uninterrupted, tmp_path, at):
    out = tmp_path / "run"
    killed = drive(tmp_path, "SIGKILL", at, train_args(tmp_path, out))
    assert killed.returncode == -9
    state = read_checkpoint(out / "checkpoint.pt")  # the last one written is whole
    assert at - 5 <= state["loop"]["global_step"] < at  # written every 5 steps and at epoch ends
    resumed = resume(tmp_path, out)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout
    assert_same_run(uninterrupted, out)
    assert json.loads((out / "metrics.json").read_text())["resumes"][0]["global_step"] == state["loop"]["global_step"]


def test_sigkill_while_writing_a_checkpoint(uninterrupted, tmp_path):
    out = tmp_path / "run"
    killed = drive(tmp_path, "in-write", 4, train_args(tmp_path, out))  # the 4th file written
    assert killed.returncode == -9
    assert list(out.glob(".*.tmp")), "the half-written temporary file is there"
    pyrovae.load(out / "checkpoint.pt")  # the previous checkpoint stands, readable
    resumed = resume(tmp_path, out)
    assert resumed.returncode == 0, resumed.stderr
    assert "removed 1 temporary file(s)" in resumed.stdout
    assert not list(out.glob(".*.tmp"))
    assert_same_run(uninterrupted, out)


@pytest.mark.parametrize("signame,code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_signal_saves_and_says_how_to_resume(uninterrupted, tmp_path, signame, code):
    out = tmp_path / "run"
    stopped = drive(tmp_path, signame, STEPS_PER_EPOCH + 3, train_args(tmp_path, out))
    assert stopped.returncode == code, stopped.stderr
    lines = stopped.stderr.strip().splitlines()
    assert lines == [f"{signame}: stopped after step {STEPS_PER_EPOCH + 3} and saved {out / 'checkpoint.pt'}; "
                     f"resume with: python scripts/svi_train.py --resume {out}"]
    assert read_checkpoint(out / "checkpoint.pt")["loop"]["global_step"] == STEPS_PER_EPOCH + 3
    if signame == "SIGINT":  # both signals save through the same handler: resuming one proves it
        resumed = resume(tmp_path, out)
        assert resumed.returncode == 0, resumed.stderr
        assert_same_run(uninterrupted, out)


def test_fast_run_resumes_exactly(tmp_path):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert drive(tmp_path, "none", 0, train_args(tmp_path, whole, "--fast")).returncode == 0
    assert drive(tmp_path, "SIGKILL", STEPS_PER_EPOCH + 8, train_args(tmp_path, cut, "--fast")).returncode == -9
    resumed = resume(tmp_path, cut)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(whole, cut)


def test_non_finite_loss_stops_with_one_line_and_keeps_the_last_good_checkpoint(tmp_path):
    out = tmp_path / "run"
    args = train_args(tmp_path, out)
    args[args.index("--checkpoint-every") + 1] = "1"
    # Adam's first step moves every weight by lr: at lr 1e10 the second step's logits
    # overflow float32, after the first step's checkpoint
    result = drive(tmp_path, "none", 0, args + ["--lr", "1e10"])
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the loss is not finite in epoch 1 at minibatch "), lines
    assert "lower --lr" in lines[0] and "Traceback" not in result.stderr
    bad_step = int(re.search(r"\(step (\d+)\)", lines[0]).group(1))
    state = read_checkpoint(out / "checkpoint.pt")  # the last good one
    assert 0 < state["loop"]["global_step"] < bad_step
    assert all(bool(torch.isfinite(v).all()) for v in state["state_dict"].values())


@pytest.mark.parametrize("content,message", [
    (None, "no checkpoint at"),
    (b"", "not a readable checkpoint"),
    (b"\x00garbage\xff" * 10, "not a readable checkpoint"),
    ("no config.json", "is not a finished run folder: config.json is missing"),
])
def test_resume_of_a_bad_folder_is_one_line(uninterrupted, tmp_path, content, message):
    out = tmp_path / "run"
    out.mkdir()
    if content != "no config.json":  # the run's own settings, and a checkpoint that is missing or damaged
        (out / "config.json").write_bytes((uninterrupted / "config.json").read_bytes())
    if isinstance(content, bytes):
        (out / "checkpoint.pt").write_bytes(content)
    result = run_main("svi_train.py", "--resume", out)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines


def test_resume_of_a_checkpoint_that_would_run_code(uninterrupted, tmp_path, code_running_checkpoint):
    path, target = code_running_checkpoint
    (path.parent / "config.json").write_bytes((uninterrupted / "config.json").read_bytes())
    result = run_main("svi_train.py", "--resume", path.parent)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and "was refused" in line and "could run code" in line
    assert not target.exists(), "loading ran the pickled code"


def test_resume_refuses_other_settings(uninterrupted, tmp_path):
    result = run_main("svi_train.py", "--resume", uninterrupted, "--lr", "0.1")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: --resume continues a run with its own settings; drop --lr (only --epochs, --cuda, --distributed, "
        "--threads and --no-progress may be given with --resume) (see --help)"]
