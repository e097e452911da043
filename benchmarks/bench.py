r"""Side-by-side step timing: pyrovae's SVI step against a hand-written PyTorch VAE step.

Every configuration trains its own copy of the same initial networks on the same
device-resident data with the same batch size and Adam (lr 1e-3); they are timed
interleaved (A B C A B C ...) in one process, so drifts of the machine hit all alike.
Each timing block runs ``steps_per_block`` steps and ends with a device synchronization;
the ms per step of a configuration is the median over blocks, with the inter-quartile
range as its spread. Compilation happens in the warm-up, before any timing.

The reference is the step a PyTorch user writes by hand, with the analytic KL and
``torch.optim.Adam`` as it comes:

.. math::
    \mathcal{L} = \sum_n \Big[\mathrm{BCE}(\mathrm{dec}(\mu_n + \sigma_n \epsilon_n), x_n)
    + \tfrac12 \sum_k (\sigma_{nk}^2 + \mu_{nk}^2 - 1 - 2\log\sigma_{nk})\Big]

Beside it: the same hand-written step compiled with ``torch.compile`` and fused Adam (the
best plain PyTorch here), stock Pyro (``pyro.infer.SVI`` with ``pyro.optim.Adam``, as its
examples train), and pyrovae's eager and compiled (``--fast``) steps with each ELBO; on a
GPU ``--fast`` replays a CUDA graph, and a row without it shows what the graph adds.

:func:`profile_step` lists where the eager step's time goes (the profiler's top entries);
:func:`time_log_likelihood` times the importance-sampled NLL of a briefly trained network.
:func:`run_benchmark` is the run behind ``scripts/bench.py``: the sweeps, then ``bench.md`` (written by
:mod:`.bench_report`) and ``bench.json`` (``gpu.md`` and ``gpu.json`` for a run with ``--cuda``).
"""
import copy
import statistics
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import pyro
import pyro.optim
import torch
import torch.nn.functional as F
from pyro.infer import SVI

from pyrovae.cli.common import _command, _guarded, _Help, _Parser
from pyrovae.data.datasets import DATASETS, load_dataset
from pyrovae.environment import device_name, select_device, versions
from pyrovae.infer.compiled import CompiledSVIStep
from pyrovae.infer.elbos import ELBO_CLASSES, make_elbo
from pyrovae.infer.svi import SVIStep, make_optimizer
from pyrovae.model.vae import VAE
from pyrovae.training.checkpoint import write_json

from .bench_report import REFERENCE, markdown, with_ratios
from .host import machine


def reference_loss(vae: VAE, x: torch.Tensor) -> torch.Tensor:
    """Hand-written -ELBO of a Bernoulli VAE, summed over the batch (analytic KL)."""
    loc, scale = vae.encoder(x)  # (B, z_dim) each
    z = loc + scale * torch.randn_like(loc)
    logits = vae.decoder(z)  # (B, x_dim)
    reconstruction = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
    kl = 0.5 * (scale.pow(2) + loc.pow(2) - 1.0 - 2.0 * scale.log()).sum()
    return reconstruction + kl


def reference_step(vae: VAE, compiled: bool = False, lr: float = 1e-3) -> Callable[[torch.Tensor], torch.Tensor]:
    """The hand-written step: eager with default Adam, or compiled with fused Adam."""
    loss_fn = torch.compile(reference_loss, dynamic=False) if compiled else reference_loss
    optimizer = make_optimizer(vae.parameters(), lr) if compiled else torch.optim.Adam(vae.parameters(), lr=lr)

    def step(x):
        loss = loss_fn(vae, x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step


def stock_pyro_step(vae: VAE, kind: str, lr: float = 1e-3) -> Callable[[torch.Tensor], float]:
    """``pyro.infer.SVI(model, guide, pyro.optim.Adam, Trace_ELBO()).step`` as Pyro's
    examples use it: Pyro's own ELBO and optimizer, the param store, default validation."""
    elbo = ELBO_CLASSES[kind].pyro_class  # the registry's entry names the Pyro class it subclasses
    return SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": lr}), elbo(max_plate_nesting=1)).step


def pyrovae_step(vae: VAE, kind: str, fast: bool, lr: float = 1e-3,
                 cuda_graph: bool = True) -> Callable[[torch.Tensor], torch.Tensor]:
    """pyrovae's training step (:class:`~pyrovae.infer.svi.SVIStep`, or with ``fast``
    :class:`~pyrovae.infer.compiled.CompiledSVIStep`, on CUDA replayed as a CUDA graph unless
    ``cuda_graph=False``)."""
    if fast:
        return CompiledSVIStep(vae, make_elbo(kind), make_optimizer(vae.parameters(), lr), cuda_graph=cuda_graph)
    return SVIStep(vae, make_elbo(kind), make_optimizer(vae.parameters(), lr))


CONFIGS: Dict[str, Callable[[VAE], Callable]] = {
    REFERENCE: lambda vae: reference_step(vae),
    "PyTorch by hand (torch.compile, fused Adam)": lambda vae: reference_step(vae, compiled=True),
    "stock Pyro SVI, Trace_ELBO": lambda vae: stock_pyro_step(vae, "trace"),
    "pyrovae Trace_ELBO": lambda vae: pyrovae_step(vae, "trace", fast=False),
    "pyrovae TraceMeanField_ELBO": lambda vae: pyrovae_step(vae, "meanfield", fast=False),
    "pyrovae Trace_ELBO --fast": lambda vae: pyrovae_step(vae, "trace", fast=True),
    "pyrovae TraceMeanField_ELBO --fast": lambda vae: pyrovae_step(vae, "meanfield", fast=True),
}
NO_CUDA_GRAPH = "pyrovae Trace_ELBO --fast without the CUDA graph"


def configs_for(device: torch.device) -> Dict[str, Callable[[VAE], Callable]]:
    """:data:`CONFIGS`, plus on a GPU the compiled step without CUDA-graph replay."""
    if device.type != "cuda":
        return dict(CONFIGS)
    return {**CONFIGS, NO_CUDA_GRAPH: lambda vae: pyrovae_step(vae, "trace", fast=True, cuda_graph=False)}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_configs(data: torch.Tensor, batch_size: int, hidden: Sequence[int], z_dim: int = 50,
                 blocks: int = 15, steps_per_block: int = 20, warmup: int = 10, configs=None) -> Dict[str, dict]:
    """Interleaved timing of every configuration at one batch size and width."""
    device = data.device
    configs = configs or configs_for(device)
    torch.manual_seed(0)
    base = VAE(data.shape[1], z_dim, hidden).to(device)
    g = torch.Generator(device=device).manual_seed(0)
    batches = [data[torch.randint(0, len(data), (batch_size,), device=device, generator=g)] for _ in range(8)]
    steps, compile_s = {}, {}
    for name, factory in configs.items():
        steps[name] = factory(copy.deepcopy(base))  # each its own copy (and param-store name)
        start = time.perf_counter()
        for i in range(warmup):
            steps[name](batches[i % len(batches)])
        _sync(device)
        compile_s[name] = time.perf_counter() - start
    times: Dict[str, List[float]] = {name: [] for name in steps}
    for _ in range(blocks):
        for name, step in steps.items():
            start = time.perf_counter()
            for i in range(steps_per_block):
                step(batches[i % len(batches)])
            _sync(device)
            times[name].append((time.perf_counter() - start) / steps_per_block * 1e3)
    out = {name: {**_summary(ms, batch_size), "warmup_s": compile_s[name]} for name, ms in times.items()}
    for name, step in steps.items():
        if isinstance(step, CompiledSVIStep):
            out[name]["mode"] = step.mode
    return out


def _summary(ms: List[float], batch_size: int) -> dict:
    q = statistics.quantiles(ms, n=4)
    median = statistics.median(ms)
    return {"ms_per_step": median, "iqr_ms": q[2] - q[0], "images_per_s": batch_size / median * 1e3, "blocks": len(ms)}


def time_epochs(data: torch.Tensor, batch_size: int, hidden: Sequence[int], z_dim: int = 50, repeats: int = 3,
                configs=None) -> Dict[str, dict]:
    """Seconds for one pass over ``data`` in shuffled minibatches (the last one smaller),
    per configuration: the median of ``repeats`` epochs, interleaved, after a warm-up on
    one full and one smaller minibatch (compilation) whose seconds are reported beside it."""
    device = data.device
    configs = configs or configs_for(device)
    torch.manual_seed(0)
    base = VAE(data.shape[1], z_dim, hidden).to(device)
    steps, warmup = {}, {}
    last = len(data) % batch_size or batch_size
    for name, factory in configs.items():
        steps[name] = factory(copy.deepcopy(base))
        start = time.perf_counter()
        for n in (batch_size, batch_size, last):
            steps[name](data[torch.randperm(len(data), device=device)[:n]])
        _sync(device)
        warmup[name] = time.perf_counter() - start
    seconds: Dict[str, List[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            for idx in torch.randperm(len(data), device=device).split(batch_size):
                step(data[idx])
            _sync(device)
            seconds[name].append(time.perf_counter() - start)
    return {name: {"seconds": statistics.median(s), "all_seconds": s, "warmup_s": warmup[name]}
            for name, s in seconds.items()}


def profile_step(data: torch.Tensor, batch_size: int = 128, hidden: Sequence[int] = (400,), z_dim: int = 50,
                 kind: str = "trace", steps: int = 50, top: int = 15) -> dict:
    """Where pyrovae's eager step spends its time: ``wall_us_per_step`` (timed without the
    profiler), ``operator_cpu_us_per_step`` (the host time inside PyTorch operators, launches
    included; the rest of the wall time is Python: Pyro's handlers, traces, the ELBO's
    bookkeeping) and ``top``, the operators with the most self CPU time, per step, with
    their device time."""
    from torch.profiler import ProfilerActivity, profile

    device = data.device
    torch.manual_seed(0)
    step = pyrovae_step(VAE(data.shape[1], z_dim, hidden).to(device), kind, fast=False)
    batch = data[:batch_size]
    for _ in range(5):
        step(batch)
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step(batch)
    _sync(device)
    wall_us = (time.perf_counter() - start) / steps * 1e6
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            step(batch)
        _sync(device)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    rows = []
    for e in events[:top]:
        cuda_us = getattr(e, "self_device_time_total", getattr(e, "self_cuda_time_total", 0.0))
        rows.append({"name": e.key, "calls_per_step": e.count / steps, "self_cpu_us_per_step": e.self_cpu_time_total / steps,
                     "self_cpu_share": e.self_cpu_time_total / total if total else 0.0,
                     "self_device_us_per_step": cuda_us / steps})
    return {"wall_us_per_step": wall_us, "operator_cpu_us_per_step": total / steps, "top": rows}


def time_log_likelihood(train_x: torch.Tensor, test_x: torch.Tensor, epochs: int = 10, num_samples: int = 5000,
                        arch: str = "gated", hidden: Sequence[int] = (300, 300), z_dim: int = 40,
                        batch_size: int = 100) -> dict:
    """Seconds for the importance-sampled log-likelihood (K = ``num_samples``) of every
    row of ``test_x``, on a network trained for ``epochs`` epochs with the compiled step
    (a timing: a few epochs do not make a table entry)."""
    from pyrovae.infer.evaluation import log_likelihood

    device = train_x.device
    torch.manual_seed(0)
    vae = VAE(train_x.shape[1], z_dim, hidden, arch=arch).to(device)
    step = pyrovae_step(vae, "trace", fast=True)
    start = time.perf_counter()
    for _ in range(epochs):
        for idx in torch.randperm(len(train_x), device=device).split(128):
            step(train_x[idx])
    _sync(device)
    train_s = time.perf_counter() - start
    vae.eval()
    start = time.perf_counter()
    log_px = log_likelihood(vae, test_x, num_samples=num_samples, batch_size=batch_size)
    _sync(device)
    seconds = time.perf_counter() - start
    nll = -log_px.double()
    return {"arch": arch, "hidden": list(hidden), "z_dim": z_dim, "train_epochs": epochs, "train_seconds": train_s,
            "num_samples": num_samples, "images": len(test_x), "batch_size": batch_size, "seconds": seconds,
            "nll": float(nll.mean()), "nll_se": float(nll.std() / len(nll) ** 0.5)}


def run_benchmark(args, command: str, log=print) -> dict:
    device = select_device(args.cuda)
    dataset = load_dataset(args.dataset, args.data_dir, download=False, log=log)
    data = dataset.train_x.to(device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "gpu" if device.type == "cuda" else "bench"
    result = {"command": command, "device": device_name(device), "machine": machine(), "versions": versions(device),
              "protocol": {"blocks": args.blocks, "steps_per_block": args.steps_per_block, "order": "interleaved",
                           "optimizer": "Adam lr 1e-3", "z_dim": 50, "dataset": args.dataset},
              "batch_sweep": {}, "width_sweep": {}, "epoch_seconds": None}
    for b in args.batch_sizes:
        log(f"batch {b}, hidden 400")
        result["batch_sweep"][b] = with_ratios(time_configs(data, b, (400,), blocks=args.blocks,
                                                             steps_per_block=args.steps_per_block))
    for w in args.widths:
        log(f"batch 128, hidden {w}")
        if w == 400 and 128 in result["batch_sweep"]:  # the same configuration, measured above
            result["width_sweep"][w] = result["batch_sweep"][128]
            continue
        result["width_sweep"][w] = with_ratios(time_configs(data, 128, (w,), blocks=args.blocks,
                                                             steps_per_block=args.steps_per_block))
    if args.epoch:
        result["epoch_images"] = min(50000, len(data))
        log(f"one epoch of {result['epoch_images']} images at batch 128")
        result["epoch_seconds"] = time_epochs(data[:50000], 128, (400,))
    if args.profile:
        log("profiling the eager step at batch 128")
        result["profile"] = profile_step(data, 128)
    if args.nll_epochs:
        log(f"IS-NLL K={args.nll_samples} over {len(dataset.test_x)} test images (gated MLP, {args.nll_epochs} epochs)")
        result["log_likelihood"] = time_log_likelihood(data, dataset.test_x.to(device), epochs=args.nll_epochs,
                                                       num_samples=args.nll_samples)
    write_json(out / f"{stem}.json", result)
    (out / f"{stem}.md").write_text(markdown(result))
    log((out / f"{stem}.md").read_text())
    return result


def main(argv: Optional[List[str]] = None) -> int:
    """``scripts/bench.py``: pyrovae's SVI step against a hand-written PyTorch step."""
    p = _Parser(description="Time pyrovae's SVI step (Trace_ELBO, TraceMeanField_ELBO) against a hand-written "
                "PyTorch VAE step, interleaved in one process; write <out>/bench.{md,json}.",
                formatter_class=_Help)
    p.add_argument("--cuda", action="store_true", help="time on the GPU (writes gpu.{md,json})")
    p.add_argument("--dataset", default="binarized-mnist", choices=DATASETS, help="the data the steps train on")
    p.add_argument("--data-dir", default="./data", help="where the data set is read from")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128, 512, 4096],
                   help="minibatch sizes swept at hidden width 400")
    p.add_argument("--widths", type=int, nargs="+", default=[200, 400, 1000], help="hidden widths swept at batch 128")
    p.add_argument("--blocks", type=int, default=15, help="timing blocks per configuration")
    p.add_argument("--steps-per-block", type=int, default=20, help="SVI steps timed together in one block")
    p.add_argument("--no-epoch", dest="epoch", action="store_false", help="skip the full-epoch timing")
    p.add_argument("--no-profile", dest="profile", action="store_false",
                   help="skip the profile of the eager step")
    p.add_argument("--nll-epochs", type=int, default=0,
                   help="also time the K-sample IS-NLL over the whole test set, on a gated MLP 300-300 trained "
                        "this many epochs (0: skip)")
    p.add_argument("--nll-samples", type=int, default=5000, help="K for the IS-NLL timing")
    p.add_argument("--out", default="runs/bench", help="folder of bench.{md,json} (gpu.{md,json} with --cuda)")
    args = p.parse_args(argv)
    if min(args.batch_sizes + args.widths + [args.blocks, args.steps_per_block, args.nll_samples]) <= 0:
        p.error("batch sizes, widths, --blocks, --steps-per-block and --nll-samples must be positive")
    if args.nll_epochs < 0:
        p.error("--nll-epochs must be 0 or positive")
    if args.blocks < 4:
        p.error("--blocks must be at least 4 for a median and quartiles")
    return _guarded(lambda: run_benchmark(args, command=_command("scripts/bench.py", argv)), args.out)
