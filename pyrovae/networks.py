r"""The two networks of an amortized VAE, as plain :class:`torch.nn.Module` s.

* :class:`Encoder`: :math:`x \mapsto (\mu_\phi(x), \sigma_\phi(x))`, the parameters of
  the diagonal Gaussian guide :math:`q_\phi(z \mid x)`.
* :class:`Decoder`: :math:`z \mapsto o_\theta(z)`, the raw outputs a likelihood turns
  into :math:`p_\theta(x \mid z)`.

Both are MLPs with softplus hidden units and accept any leading batch dimensions
(``(..., in) -> (..., out)``), so vectorized ELBO particles pass through unchanged.
They import nothing from the rest of the package.
"""
from typing import Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F


def mlp(sizes: Sequence[int], activation=nn.Softplus) -> nn.Sequential:
    """Linear layers ``sizes[0] -> ... -> sizes[-1]`` with ``activation`` between them."""
    layers = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(fan_in, fan_out))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    r"""``x (..., x_dim) -> (loc, scale)``, each ``(..., z_dim)``, with
    :math:`\sigma = \mathrm{softplus}(h) + \sigma_{min}` so the guide never degenerates."""

    def __init__(self, x_dim: int, z_dim: int, hidden: Sequence[int] = (400,), min_scale: float = 1e-4):
        super().__init__()
        self.net = mlp([x_dim, *hidden, 2 * z_dim])
        self.min_scale = min_scale

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        loc, raw_scale = self.net(x).chunk(2, dim=-1)  # (..., 2 z_dim) -> 2 x (..., z_dim)
        return loc, F.softplus(raw_scale) + self.min_scale


class Decoder(nn.Module):
    """``z (..., z_dim) -> o (..., out_dim)``: unconstrained outputs for a likelihood
    (``out_dim = outputs_per_pixel * x_dim``)."""

    def __init__(self, z_dim: int, out_dim: int, hidden: Sequence[int] = (400,)):
        super().__init__()
        self.net = mlp([z_dim, *reversed(tuple(hidden)), out_dim])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)
