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
examples train), and pyrovae's eager and compiled (``--fast``) steps with each ELBO.
"""
import copy
import platform
import statistics
import time
from typing import Callable, Dict, List, Sequence

import pyro
import pyro.optim
import torch
import torch.nn.functional as F
from pyro.infer import SVI

from .capture import CompiledSVIStep
from .elbos import make_elbo
from .training import SVIStep, make_optimizer
from .vae import VAE


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
    elbo = {"trace": pyro.infer.Trace_ELBO, "meanfield": pyro.infer.TraceMeanField_ELBO}[kind]
    return SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": lr}), elbo(max_plate_nesting=1)).step


def pyrovae_step(vae: VAE, kind: str, fast: bool, lr: float = 1e-3) -> Callable[[torch.Tensor], torch.Tensor]:
    """pyrovae's training step (:class:`~pyrovae.training.SVIStep`, or with ``fast``
    :class:`~pyrovae.capture.CompiledSVIStep`)."""
    cls = CompiledSVIStep if fast else SVIStep
    return cls(vae, make_elbo(kind), make_optimizer(vae.parameters(), lr))


REFERENCE = "PyTorch by hand (eager, Adam)"
CONFIGS: Dict[str, Callable[[VAE], Callable]] = {
    REFERENCE: lambda vae: reference_step(vae),
    "PyTorch by hand (torch.compile, fused Adam)": lambda vae: reference_step(vae, compiled=True),
    "stock Pyro SVI, Trace_ELBO": lambda vae: stock_pyro_step(vae, "trace"),
    "pyrovae Trace_ELBO": lambda vae: pyrovae_step(vae, "trace", fast=False),
    "pyrovae TraceMeanField_ELBO": lambda vae: pyrovae_step(vae, "meanfield", fast=False),
    "pyrovae Trace_ELBO --fast": lambda vae: pyrovae_step(vae, "trace", fast=True),
    "pyrovae TraceMeanField_ELBO --fast": lambda vae: pyrovae_step(vae, "meanfield", fast=True),
}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_configs(data: torch.Tensor, batch_size: int, hidden: Sequence[int], z_dim: int = 50,
                 blocks: int = 15, steps_per_block: int = 20, warmup: int = 10, configs=None) -> Dict[str, dict]:
    """Interleaved timing of every configuration at one batch size and width."""
    configs = configs or CONFIGS
    device = data.device
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
            out[name]["compiled"] = step.compiled
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
    configs = configs or CONFIGS
    device = data.device
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


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
