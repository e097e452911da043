r"""Side-by-side step timing: pyrovae's SVI step against a hand-written PyTorch VAE step.

Every configuration trains its own copy of the same initial networks on the same
device-resident data with the same batch size and the same optimizer (Adam, lr 1e-3);
they are timed interleaved (A B C A B C ...) in one process, so drifts of the machine hit
all alike. Each timing block runs ``steps_per_block`` steps and ends with a device
synchronization; the ms per step of a configuration is the median over blocks, with the
inter-quartile range as its spread.

The reference is the step a PyTorch user would write by hand, with the analytic KL:

.. math::
    \mathcal{L} = \sum_n \Big[\mathrm{BCE}(\mathrm{dec}(\mu_n + \sigma_n \epsilon_n), x_n)
    + \tfrac12 \sum_k (\sigma_{nk}^2 + \mu_{nk}^2 - 1 - 2\log\sigma_{nk})\Big]
"""
import copy
import platform
import statistics
import time
from typing import Callable, Dict, List, Sequence

import pyro
import torch
import torch.nn.functional as F

from .training import make_elbo
from .vae import VAE


def reference_loss(vae: VAE, x: torch.Tensor) -> torch.Tensor:
    """Hand-written -ELBO of a Bernoulli VAE, summed over the batch (analytic KL)."""
    loc, scale = vae.encoder(x)  # (B, z_dim) each
    z = loc + scale * torch.randn_like(loc)
    logits = vae.decoder(z)  # (B, x_dim)
    reconstruction = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
    kl = 0.5 * (scale.pow(2) + loc.pow(2) - 1.0 - 2.0 * scale.log()).sum()
    return reconstruction + kl


def pyro_loss(kind: str) -> Callable[[VAE, torch.Tensor], torch.Tensor]:
    elbo = make_elbo(kind)

    def loss(vae, x):
        with pyro.validation_enabled(False):
            return elbo.differentiable_loss(vae.model, vae.guide, x)

    return loss


def make_step(loss_fn, vae: VAE, lr: float = 1e-3):
    optimizer = torch.optim.Adam(vae.parameters(), lr=lr)

    def step(x):
        loss = loss_fn(vae, x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step


CONFIGS: Dict[str, Callable] = {
    "pytorch (hand-written, analytic KL)": lambda: reference_loss,
    "pyrovae Trace_ELBO": lambda: pyro_loss("trace"),
    "pyrovae TraceMeanField_ELBO": lambda: pyro_loss("meanfield"),
}
REFERENCE = "pytorch (hand-written, analytic KL)"


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
    steps = {name: make_step(factory(), copy.deepcopy(base)) for name, factory in configs.items()}
    g = torch.Generator(device=device).manual_seed(0)
    batches = [data[torch.randint(0, len(data), (batch_size,), device=device, generator=g)] for _ in range(8)]
    for step in steps.values():
        for i in range(warmup):
            step(batches[i % len(batches)])
    _sync(device)
    times: Dict[str, List[float]] = {name: [] for name in steps}
    for block in range(blocks):
        for name, step in steps.items():
            start = time.perf_counter()
            for i in range(steps_per_block):
                step(batches[i % len(batches)])
            _sync(device)
            times[name].append((time.perf_counter() - start) / steps_per_block * 1e3)
    return {name: _summary(ms, batch_size) for name, ms in times.items()}


def _summary(ms: List[float], batch_size: int) -> dict:
    q = statistics.quantiles(ms, n=4)
    median = statistics.median(ms)
    return {"ms_per_step": median, "iqr_ms": q[2] - q[0], "images_per_s": batch_size / median * 1e3, "blocks": len(ms)}


def time_epochs(data: torch.Tensor, batch_size: int, hidden: Sequence[int], z_dim: int = 50, configs=None) -> Dict[str, float]:
    """Seconds for one pass over ``data`` in shuffled minibatches, per configuration."""
    configs = configs or CONFIGS
    device = data.device
    torch.manual_seed(0)
    base = VAE(data.shape[1], z_dim, hidden).to(device)
    out = {}
    for name, factory in configs.items():
        step = make_step(factory(), copy.deepcopy(base))
        step(data[:batch_size])  # warm-up
        _sync(device)
        start = time.perf_counter()
        for idx in torch.randperm(len(data), device=device).split(batch_size):
            step(data[idx])
        _sync(device)
        out[name] = time.perf_counter() - start
    return out


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
