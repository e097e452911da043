r"""Per-column standardization of vector data, held by the VAE so a checkpoint carries it.

With column means :math:`m` and standard deviations :math:`s` (from the run's training rows),
the model sees

.. math::
    x_{model} = (x - m) / s, \qquad x = x_{model} \odot s + m,

and, the map being affine with Jacobian :math:`\mathrm{diag}(1/s)`, densities change by

.. math::
    \log p_{data}(x) = \log p_{model}\big((x - m)/s\big) - \sum_d \log s_d .

So an ELBO or log-likelihood computed on standardized rows is one on the data's own scale
plus :math:`\sum_d \log s_d` (:meth:`Standardize.log_det`).
"""
from typing import Sequence, Union

import torch
import torch.nn as nn


class Standardize(nn.Module):
    """Buffers ``mean`` and ``std``, each (D,), in its own ``state_dict``.

    :param mean: D column means (a sequence or tensor).
    :param std: D positive, finite column standard deviations.
    """

    def __init__(self, mean: Union[Sequence[float], torch.Tensor], std: Union[Sequence[float], torch.Tensor],
                 x_dim: int):
        super().__init__()
        mean = torch.as_tensor(mean, dtype=torch.float32).reshape(-1)
        std = torch.as_tensor(std, dtype=torch.float32).reshape(-1)
        for label, value in (("mean", mean), ("std", std)):
            if value.shape != (x_dim,):
                raise ValueError(f"standardization {label} must hold x_dim={x_dim} values, got {tuple(value.shape)}")
        if mean.device.type != "meta" and not (bool(torch.isfinite(mean).all()) and bool(torch.isfinite(std).all())
                                               and bool((std > 0).all())):
            raise ValueError("standardization mean must be finite and std positive and finite "
                             "(a constant column has std 0: give it std 1)")
        self.register_buffer("mean", mean)  # (D,)
        self.register_buffer("std", std)  # (D,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Data units -> model space: ``(x - mean) / std``, (..., D) -> (..., D)."""
        return (x - self.mean) / self.std

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """Model space -> data units: ``y * std + mean``, (..., D) -> (..., D)."""
        return y * self.std + self.mean

    def log_det(self) -> float:
        r""":math:`\sum_d \log s_d`: subtract it from a model-space log-density to get the
        data-space one."""
        return float(self.std.double().log().sum())

    def config(self) -> dict:
        """The plain values ``VAE(standardization=...)`` takes."""
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}
