r"""Gradient noise of an ELBO estimator.

For fixed parameters :math:`\theta` and a fixed minibatch, each call of an ELBO's
``differentiable_loss`` draws fresh :math:`z \sim q` and so a fresh gradient estimate
:math:`g_r`. :func:`gradient_variance` repeats that R times and reports, per parameter
group, the total variance :math:`\sum_i \widehat{\mathrm{Var}}_r(g_{r,i})` (the trace
of the gradient's covariance), the squared norm of the mean gradient, and their ratio
(a signal-to-noise figure). The random-number state is restored afterwards, so a
measurement inside a training run does not change that run.
"""
from typing import Dict, Mapping

import pyro
import torch
import torch.nn as nn


@torch.enable_grad()
def gradient_variance(elbo, vae, x: torch.Tensor, groups: Mapping[str, nn.Module], repeats: int = 100) -> Dict[str, dict]:
    """Per group: ``{"total_variance", "mean_grad_sq_norm", "snr"}`` over ``repeats`` draws."""
    params = {name: [p for p in module.parameters() if p.requires_grad] for name, module in groups.items()}
    sums = {name: [torch.zeros_like(p, dtype=torch.float64) for p in ps] for name, ps in params.items()}
    squares = {name: [torch.zeros_like(p, dtype=torch.float64) for p in ps] for name, ps in params.items()}
    devices = [x.device.index] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), pyro.validation_enabled(False):
        for _ in range(repeats):
            vae.zero_grad(set_to_none=True)
            elbo.differentiable_loss(vae.model, vae.guide, x).backward()
            for name, ps in params.items():
                for p, s, q in zip(ps, sums[name], squares[name]):
                    g = p.grad.double()
                    s += g
                    q += g * g
    vae.zero_grad(set_to_none=True)
    out = {}
    for name in params:
        mean_sq = sum(float((s / repeats).pow(2).sum()) for s in sums[name])
        # unbiased per-element variance: (sum g^2 - R mean^2) / (R - 1)
        variance = sum(float(((q - s * s / repeats) / (repeats - 1)).sum()) for s, q in zip(sums[name], squares[name]))
        out[name] = {"total_variance": variance, "mean_grad_sq_norm": mean_sq,
                     "snr": mean_sq / variance if variance > 0 else float("inf")}
    return out
