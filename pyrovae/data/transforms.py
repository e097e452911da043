"""The per-minibatch transforms of data, and an evenly spaced subset."""
from typing import Optional

import torch


def binarize(x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """One Bernoulli draw per pixel with the grey level as probability (dynamic binarization)."""
    return torch.bernoulli(x, generator=generator)


def dequantize(x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    r"""Uniform dequantization of 8-bit data: :math:`(255 x + u) / 256`, :math:`u \sim U[0, 1)`.

    A continuous density on dequantized data lower-bounds the probability of the discrete
    pixels (Theis et al. 2016), so its log-likelihoods are comparable in bits per dimension."""
    noise = torch.rand(x.shape, device=x.device, generator=generator)
    return (x * 255.0 + noise) / 256.0


TRANSFORMS = {"none": None, "binarize": binarize, "dequantize": dequantize}


def evenly_spaced(x: torch.Tensor, n: int) -> torch.Tensor:
    """``n`` rows of ``x`` evenly spaced over all of it (a fair subset where the order is
    not random: the first 1,000 images of binarized MNIST's test set score about 11 nats
    worse than the whole)."""
    return x[torch.linspace(0, len(x) - 1, min(n, len(x)), device=x.device).round().long()]

