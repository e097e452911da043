"""scripts/bench_peers.py: a tiny run writes peers-<cpu>.md and .json with every row, naming the
CPU, the threads and the versions, each row's CPU seconds and threads used, the faster floor
and the goals; the 1-thread rows held to one core; the
NumPyro row skipped with its reason where NumPyro is not importable, the floor's products
counted as stated, the "before" rows computing what the rows after each change compute;
bad flags are one line and exit status 2."""
import copy
import importlib.util
import json
import os
import shlex

import numpy as np
import pytest
import torch

from benchmarks.bench_peers import ENVIRONMENT, TORCH_SYSTEMS, flops, matmul_shapes
from benchmarks.bench_peers import main as bench_peers_main
from benchmarks.bench_peers_report import (
    FAST,
    FAST_HOST_BEFORE,
    FAST_ONEDNN,
    FAST_ORIGINAL,
    FLOOR_MM,
    FLOORS,
    MEANFIELD,
    MEANFIELD_BEFORE,
    NUMPYRO,
    REFERENCE,
)
from benchmarks.host import cpu_slug
from pyrovae.environment import cpu_model
from pyrovae.infer.compiled import onednn_available


def test_the_floor_counts_each_product_of_a_step():
    shapes = matmul_shapes(784, [400], 50, 256)
    assert len(shapes) == 11  # 4 layers: forward, weight gradient, input gradient but the first layer's
    assert shapes[:4] == [(256, 784, 400), (256, 400, 100), (256, 50, 400), (256, 400, 784)]
    f = flops(784, [400], 50, 256)
    assert f["forward"] == 2 * 256 * (784 * 400 + 400 * 100 + 50 * 400 + 400 * 784)
    assert f["backward_2x"] == 2 * f["forward"]
    assert f["step_needed"] == 3 * f["forward"] - 2 * 256 * 784 * 400


def test_a_tiny_run_writes_both_files(binary_batch, tmp_path, capsys, monkeypatch):
    rows = tmp_path / "rows.npy"
    np.save(rows, binary_batch.numpy().astype(np.float32))  # 64 binary digits
    out = tmp_path / "out"
    affinity = os.sched_getaffinity(0)
    masks = []  # every mask set, in order
    monkeypatch.setattr(os, "sched_setaffinity", lambda pid, cpus, set_=os.sched_setaffinity: (
        masks.append((pid, set(cpus))), set_(pid, cpus)))
    code = bench_peers_main(["--dataset", str(rows), "--batch-size", "16", "--hidden", "8", "--z-dim", "2",
                             "--threads", "1", "--rounds", "1", "--steps-per-block", "2", "--max-steps", "2",
                             "--numpyro-path", str(tmp_path / "nothing-here"), "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert os.sched_getaffinity(0) == affinity  # the 1-thread rows were held to a core, the mask given back
    assert masks == [(0, {min(affinity)}), (0, affinity)] * 2  # warm-up, then the round
    stem = f"peers-{cpu_slug(cpu_model())}"
    assert sorted(p.name for p in out.iterdir()) == [f"{stem}.json", f"{stem}.md"]
    result = json.loads((out / f"{stem}.json").read_text())
    md = (out / f"{stem}.md").read_text()
    assert result["machine"]["cpu"] == cpu_model() and result["protocol"]["one_thread_core"] == min(affinity)
    v = result["versions"]
    assert md.startswith(f"# pyrovae against its peers on {cpu_model()}\n")
    assert (f"Ran on: {cpu_model()}, {os.cpu_count()} logical CPU{'s' * (os.cpu_count() != 1)}, torch threads 1; "
            f"torch {v['torch']}, pyro {v['pyro']}, python {v['python']}") in md
    assert f"every 1-thread row held to core {min(affinity)}" in md
    summary = result["summary"]["1"]
    for name, row in summary["rows"].items():  # CPU seconds and threads used beside wall seconds, every row
        e = [x["epochs"]["1"][name] for x in result["rounds"]][0]
        assert row["epoch_cpu_s"]["median"] == e["cpu_s"] and row["threads_used"]["median"] == e["cpu_s"] / e["wall_s"]
        assert f"| {e['cpu_s']:.2f} | {e['cpu_s'] / e['wall_s']:.2f} |" in md
    floors = [f for f in FLOORS if f in summary["rows"]]
    best = min(floors, key=lambda f: summary["rows"][f]["epoch_s"]["median"])
    assert summary["floor"] == best and f"x floor ({best.split(': ')[-1]}) |" in md
    assert "- Goal `--fast` <= NumPyro per epoch, in CPU seconds: " in md
    fast = summary["rows"][FAST]["x_floor"][best]["median"]
    assert (f"- Goal `--fast` <= 1.3x the matmul floor ({best.split(': ')[-1]}), in wall seconds: "
            f"{'**met**' if fast <= 1.3 else '**not met**'}, {fast:.2f}x") in md
    rows_timed = result["rounds"][0]["epochs"]["1"]
    timed = set(TORCH_SYSTEMS) - (set() if onednn_available() else {FAST_ONEDNN})  # forced oneDNN: where it is
    assert timed | {FLOOR_MM} <= set(rows_timed) and (FAST_ONEDNN in rows_timed) == onednn_available()
    fast_step = result["warmup"]["1"][FAST]["fast_step"]  # the choice is recorded, and checked where oneDNN is
    assert fast_step["matmul"] in ("onednn", "mm") and fast_step["threads"] == 1
    assert ("- `--fast`'s GEMM: it chose " in md) == onednn_available()
    assert all(r["wall_s"] > 0 for r in rows_timed.values())
    assert result["summary"]["1"]["rows"][REFERENCE]["ratio"]["median"] == 1.0
    assert result["protocol"]["steps_per_epoch"] == 2 and result["versions"]["torch"]
    if importlib.util.find_spec("numpyro") is None:  # not in this environment: the row says why
        assert not result["numpyro"]["ran"] and "not importable" in result["numpyro"]["reason"]
        assert NUMPYRO not in rows_timed and "NumPyro row skipped" in md
    # the command as a user reruns it: the settings the environment gave (ENVIRONMENT) come first
    settings = "".join(f"{k}={shlex.quote(os.environ[k])} " for k in ENVIRONMENT if k in os.environ)
    assert "| PyTorch by hand (eager, torch.optim.Adam) |" in md
    assert f"Command: `{settings}python scripts/bench_peers.py --dataset " in md


@pytest.mark.parametrize("argv", [["--rounds", "0"], ["--threads", "0"], ["--batch-size", "-1"], ["--bogus"]])
def test_bad_flags_are_one_line(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        bench_peers_main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")


def test_the_before_rows_compute_what_the_after_rows_compute(small_vae, binary_batch):
    """Each speed change keeps the numbers: --fast with and without oneDNN, TorchDynamo's guards
    and Optimizer.step reach the same parameters; the mean-field ELBO with every site scored
    gives the same losses bit for bit."""
    pairs = [(FAST, [FAST_HOST_BEFORE, FAST_ORIGINAL]), (MEANFIELD, [MEANFIELD_BEFORE])]
    for after, befores in pairs:
        vaes = {name: copy.deepcopy(small_vae) for name in [after, *befores]}
        steps = {name: TORCH_SYSTEMS[name][0](vae) for name, vae in vaes.items()}
        losses = {name: [] for name in steps}
        for seed in range(6):
            for name, step in steps.items():
                torch.manual_seed(seed)
                losses[name].append(step(binary_batch[:32]))
        for name in befores:
            exact = after == MEANFIELD
            for a, b in zip(losses[after], losses[name]):
                assert torch.equal(a, b) if exact else torch.allclose(a, b, rtol=1e-5), (name, a, b)
            for pa, pb in zip(vaes[after].parameters(), vaes[name].parameters()):
                assert torch.equal(pa, pb) if exact else torch.allclose(pa, pb, rtol=1e-4, atol=1e-6), name
    if onednn_available():  # every product of the step runs on the GEMM --fast chose: 4 layers, 11 products
        fast = TORCH_SYSTEMS[FAST][0](copy.deepcopy(small_vae))
        fast(binary_batch[:32])
        assert fast.mode == "compiled" and fast.fast_step["products"] == len(matmul_shapes(784, [64], 8, 32)) == 11
        assert fast.onednn_matmuls == (11 if fast.fast_step["matmul"] == "onednn" else 0)


FAKE_WORKER = '''import json, os, sys
for line in sys.stdin:
    request = json.loads(line)
    if request["cmd"] == "quit":
        break
    print(json.dumps({"versions": {"numpyro": "0", "jax": "0", "jaxlib": "0"}, "os_threads": 1,
                      "xla_flags": os.environ.get("XLA_FLAGS", ""), "affinity": sorted(os.sched_getaffinity(0))}),
          flush=True)
'''


def test_the_one_thread_numpyro_process_is_held_to_the_core_from_its_start(tmp_path, monkeypatch):
    """The 1-thread process runs on the given core alone, with Eigen's threads off; the 2-thread one as it comes."""
    import argparse

    from benchmarks import bench_peers_worker

    (tmp_path / "worker.py").write_text(FAKE_WORKER)
    monkeypatch.setattr(bench_peers_worker, "WORKER", tmp_path / "worker.py")
    monkeypatch.setattr(bench_peers_worker, "PROBE", "pass")
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    args = argparse.Namespace(threads=[1, 2], batch_size=4, hidden=[8], z_dim=2)
    core, everything = min(os.sched_getaffinity(0)), sorted(os.sched_getaffinity(0))
    workers = bench_peers_worker.NumPyroWorkers(True, None, torch.zeros(8, 4), tmp_path, args, 2, print, core)
    workers.close()
    assert workers.status["ran"] and workers.status["affinity"] == {1: [core], 2: everything}
    assert workers.status["xla_flags"] == {1: "--xla_cpu_multi_thread_eigen=false", 2: ""}
    assert os.sched_getaffinity(0) == set(everything)  # this process is not held
