"""Data-parallel SVI with torchrun (2 CPU processes, gloo) and TensorBoard tracking.

Two ranks at global batch B reach the same parameters as one process at batch B with
the same draws: the only differences are the float32 rounding of sums split across
ranks (about 1e-8 measured here after 4 steps), so the tolerance is 1e-6 absolute, a
thousandth of one Adam step (lr 1e-3). The shards of every global minibatch are
disjoint and cover it; resume works the same with two ranks."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import pyrovae
from pyrovae.infer.distributed import shard_bounds
from pyrovae.training.checkpoint import read_checkpoint

ROOT = Path(__file__).resolve().parents[2]


def test_shards_are_disjoint_and_cover_every_global_batch():
    for batch in range(1, 40):
        for world in range(1, 6):
            bounds = [shard_bounds(batch, r, world) for r in range(world)]
            assert bounds[0][0] == 0 and bounds[-1][1] == batch
            assert all(hi == lo for (_, hi), (lo, _) in zip(bounds, bounds[1:]))  # contiguous, no overlap
            sizes = [hi - lo for lo, hi in bounds]
            assert max(sizes) - min(sizes) <= 1


def test_an_epoch_of_shards_is_a_partition_of_the_data():
    n, batch, world = 201, 50, 2
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    seen = {r: [] for r in range(world)}
    for global_batch in order.split(batch):
        for r in range(world):
            lo, hi = shard_bounds(len(global_batch), r, world)
            seen[r] += global_batch[lo:hi].tolist()
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == list(range(n))


def torchrun(nproc, out, *extra, check=True):
    # --standalone: torchrun's rendezvous store binds localhost:0, a free port the system picks, so
    # torchruns started at once (pytest -n workers, other checkouts' tests) never share a port
    # 201 images at batch 50: four full global minibatches and one of a single image,
    # which leaves the second rank without a row (it must still join the all_reduce)
    args = ["--dataset", "mnist", "--no-download", "--data-dir", str(out.parent / "no-mnist"), "--train-limit", "201",
            "--test-limit", "50", "--z-dim", "4", "--hidden", "32", "--batch-size", "50", "--no-progress",
            "--distributed", "--out", str(out), *extra]
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", PYTHONFAULTHANDLER="1")  # a crash shows where
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                             str(nproc), str(ROOT / "scripts" / "svi_train.py"), *args],
                            capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    if check:
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


def assert_close_runs(a: Path, b: Path, atol=1e-6):
    sa, sb = read_checkpoint(a / "checkpoint.pt"), read_checkpoint(b / "checkpoint.pt")
    for key, value in sa["state_dict"].items():
        assert torch.allclose(value, sb["state_dict"][key], rtol=0, atol=atol), \
            (key, float((value - sb["state_dict"][key]).abs().max()))
    ha, hb = sa["history"], sb["history"]
    assert [h["train_elbo"] for h in ha] == pytest.approx([h["train_elbo"] for h in hb], rel=1e-6)
    assert [h["test_elbo"] for h in ha] == pytest.approx([h["test_elbo"] for h in hb], rel=1e-5)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    torchrun(1, tmp / "one", "--epochs", "1")
    two = torchrun(2, tmp / "two", "--epochs", "1")
    return tmp, two


def test_two_ranks_reach_the_parameters_of_one_process(runs):
    tmp, two = runs
    assert_close_runs(tmp / "one", tmp / "two")
    state = read_checkpoint(tmp / "two" / "checkpoint.pt")
    assert state["loop"]["global_step"] == 5  # 5 global minibatches, not 2 x 5
    metrics = json.loads((tmp / "two" / "metrics.json").read_text())
    assert metrics["device"].startswith("2 x cpu") and metrics["dataset"]["num_train"] == 201


def test_only_rank_zero_prints_and_writes(runs):
    tmp, two = runs
    epoch_lines = [line for line in two.stdout.splitlines() if line.startswith("epoch ")]
    assert len(epoch_lines) == 1, two.stdout  # one line per epoch, not one per rank
    assert not list((tmp / "two").glob(".*.tmp"))


def test_distributed_resume_equals_uninterrupted(runs, tmp_path):
    tmp, _ = runs
    part = tmp_path / "two"  # a copy: resuming rewrites the folder, which the other tests read
    shutil.copytree(tmp / "two", part)
    torchrun(2, tmp_path / "whole", "--epochs", "2")
    resumed = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                              "2", str(ROOT / "scripts" / "svi_train.py"), "--resume", str(part), "--epochs",
                              "2", "--distributed", "--no-progress"],
                             capture_output=True, text=True, cwd=ROOT, timeout=600,
                             env=dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES=""))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    # bit for bit: every process here (both runs, both ranks) runs one thread (OMP_NUM_THREADS=1), on
    # this machine, so the same sums are done in the same order
    a, b = read_checkpoint(tmp_path / "whole" / "checkpoint.pt"), read_checkpoint(part / "checkpoint.pt")
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key


def test_distributed_outside_torchrun_is_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "svi_train.py"), "--distributed", "--out",
                             str(tmp_path / "o")], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: --distributed needs the environment torchrun provides; start it with "
        "torchrun --nproc_per_node=N scripts/svi_train.py --distributed ..."]


def test_a_rank_under_torchrun_that_finished_leaves_without_the_interpreters_teardown(tmp_path):
    # a finished rank's output and exit status survive and the interpreter's exit handlers (where
    # libtorch's threads are torn down) do not run; outside torchrun, or after a refusal, they do
    (tmp_path / "program.py").write_text("import atexit, os, sys\n"
                                         "def main():\n"
                                         "    atexit.register(lambda: print('teardown ran'))\n"
                                         "    print('wrote the run', end='')\n"
                                         "    sys.stderr.write('a line on stderr')\n"
                                         "    return int(os.environ['CODE'])\n")
    driver = f"import sys; sys.path[:0] = [{str(ROOT / 'scripts')!r}, {str(tmp_path)!r}]; " \
             "from _startup import run; sys.exit(run('program', 'main'))"
    for under_torchrun, code, teardown in ((True, 0, False), (True, 2, True), (False, 0, True)):
        env = {k: v for k, v in os.environ.items() if k != "TORCHELASTIC_RUN_ID"}
        env["CODE"] = str(code)
        if under_torchrun:
            env["TORCHELASTIC_RUN_ID"] = "test"
        result = subprocess.run([sys.executable, "-c", driver], capture_output=True, text=True, env=env, timeout=60)
        assert result.returncode == code and result.stderr == "a line on stderr"
        assert result.stdout == "wrote the run" + ("teardown ran\n" if teardown else "")


def test_tensorboard_event_files_hold_the_scalars_and_images(mnist_sample, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = pyrovae.TrainConfig(epochs=3, train_limit=300, test_limit=60, valid_size=100, z_dim=4, hidden=(16,),
                                 tensorboard=True, progress=False, out=str(tmp_path / "run"))
    metrics = pyrovae.train(config, log=lambda s: None, dataset=mnist_sample)
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    tags = events.Tags()
    assert {"elbo/train", "elbo/valid", "elbo/test", "test/expected_log_likelihood", "test/kl",
            "time/seconds_per_epoch", "train/lr"} <= set(tags["scalars"])
    for tag, key in [("elbo/train", "train_elbo"), ("elbo/valid", "valid_elbo"), ("elbo/test", "test_elbo"),
                     ("test/kl", "test_kl"), ("time/seconds_per_epoch", "seconds")]:
        logged = [(e.step, e.value) for e in events.Scalars(tag)]
        assert logged == [(h["epoch"], pytest.approx(h[key], rel=1e-6)) for h in metrics["history"]], tag
    assert {"reconstructions", "samples"} <= set(tags["images"])
    assert len(events.Images("samples")) == 3
