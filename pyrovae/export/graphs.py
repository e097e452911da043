r"""A trained VAE's networks as plain tensor-in, tensor-out modules, the graphs that are exported.

With the run's standardization :math:`x_{model} = (x - m) / s` (tables; identity elsewhere):

* :class:`EncoderGraph`: ``x`` (N, D) in data units :math:`\mapsto` ``loc``, ``scale`` (N, K),
  :math:`(\mu, \sigma) = \mathrm{encoder}((x - m) / s)`, the parameters of
  :math:`q(z \mid x) = \mathcal{N}(\mu, \mathrm{diag}\,\sigma^2)` (with a flow guide, of its base
  Normal): what :meth:`pyrovae.VAE.encode` returns.
* :class:`DecoderGraph`: ``z`` (N, K) :math:`\mapsto` the likelihood's parameters and its mean
  :math:`\mathbb{E}[x \mid z]`, (N, D) each (:data:`PARAMETERS`). In a standardized run, location
  parameters and the mean go back to data units, :math:`\mu' = \mu \odot s + m`, and scales are
  multiplied, :math:`\sigma' = \sigma \odot s`: the same distribution over :math:`x = x_{model}
  \odot s + m`, whose density is the model-space one times :math:`\prod_d 1/s_d`.
* :class:`FlowGraph` (IAF guide): a draw ``u`` (N, K) of the base Normal and the encoder's
  ``loc``, ``scale`` :math:`\mapsto` ``z`` (N, K), the flow's image of ``u``, and ``log_det`` (N,),
  :math:`\sum_t \log|\det \partial z_t / \partial z_{t-1}|`, so that
  :math:`\log q(z \mid x) = \log \mathcal{N}(u; \mu, \sigma^2) - \mathrm{log\_det}`.

Each graph computes with the model's own modules and distributions (built with argument
validation off: a check of the values would be evaluated once, while tracing, and then frozen
into the graph), so an exported file computes what PyTorch computes.
"""
from typing import List, Tuple

import pyro
import torch
import torch.nn as nn

from ..errors import ConfigError

#: per built-in likelihood, the decoder's outputs besides ``mean``: (output name, attribute of the
#: distribution per pixel, how standardization maps it to data units, what it is)
PARAMETERS = {
    "bernoulli": (("logits", "logits", "none", "log-odds of x_d = 1"),
                  ("probs", "probs", "none", "P(x_d = 1) = sigmoid(logits)")),
    "continuous-bernoulli": (("logits", "logits", "none", "logit of the shape parameter lambda_d"),
                             ("probs", "probs", "none",
                              "the shape parameter lambda_d = sigmoid(logits) of ContinuousBernoulli (not its mean)")),
    "gaussian": (("loc", "loc", "loc", "mean mu_d of Normal(mu_d, sigma_d)"),
                 ("scale", "scale", "scale", "standard deviation sigma_d of Normal(mu_d, sigma_d)")),
    "laplace": (("loc", "loc", "loc", "location mu_d of Laplace(mu_d, b_d)"),
                ("scale", "scale", "scale", "scale b_d of Laplace(mu_d, b_d)")),
    "beta": (("alpha", "concentration1", "none", "alpha_d of Beta(alpha_d, beta_d)"),
             ("beta", "concentration0", "none", "beta_d of Beta(alpha_d, beta_d)")),
}
MEAN = ("mean", None, "loc", "E[x_d | z], the likelihood's mean (what pyrovae's reconstructions and samples show)")


def decoder_outputs(likelihood) -> List[Tuple[str, str, str, str]]:
    """The decoder's outputs for ``likelihood``: its :data:`PARAMETERS` then ``mean``; a likelihood
    that is not built in is refused (what its parameters are is not known)."""
    if getattr(likelihood, "fn", None) is not None or likelihood.name not in PARAMETERS:
        raise ConfigError(f"the run's likelihood {likelihood.name!r} is a user's callable, which cannot be exported: "
                          f"export writes the parameters of the built-in likelihoods ({', '.join(PARAMETERS)})")
    return [*PARAMETERS[likelihood.name], MEAN]


class EncoderGraph(nn.Module):
    """``x (N, D)`` in data units -> ``(loc, scale)``, each (N, K), as :meth:`pyrovae.VAE.encode`."""

    def __init__(self, vae):
        super().__init__()
        self.standardizer, self.encoder = vae.standardizer, vae.encoder

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        if self.standardizer is not None:
            x = self.standardizer(x)  # (x - mean) / std, (N, D)
        return self.encoder(x)  # (N, D) -> 2 x (N, K)


class DecoderGraph(nn.Module):
    """``z (N, K)`` -> the likelihood's parameters and mean, each (N, D), in data units."""

    def __init__(self, vae):
        super().__init__()
        self.outputs = decoder_outputs(vae.likelihood)
        self.standardizer, self.decoder, self.likelihood = vae.standardizer, vae.decoder, vae.likelihood

    def forward(self, z: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        with pyro.validation_enabled(False):
            p_x = self.likelihood(self.decoder(z))  # (N, K) -> (N, k D) -> batch (N,), event (D,)
            values = [_mean(p_x.base_dist) if attribute is None else getattr(p_x.base_dist, attribute)
                      for _, attribute, _, _ in self.outputs]  # each (N, D)
        return tuple(self._data_units(value, kind) for value, (_, _, kind, _) in zip(values, self.outputs))

    def _data_units(self, value: torch.Tensor, kind: str) -> torch.Tensor:
        if self.standardizer is None or kind == "none":
            return value
        if kind == "scale":
            return value * self.standardizer.std
        return self.standardizer.inverse(value)  # value * std + mean


def _mean(base) -> torch.Tensor:
    """The mean of a per-pixel distribution, (N, D). ContinuousBernoulli's is torch's formula computed
    in float64: in float32 its exact branch, a difference of two terms of size about
    1 / (1 - 2 lambda), loses up to about 3e-3 just outside the region about lambda = 1/2 where a
    Taylor expansion takes over. The region's test is written as a logical or (torch takes the
    maximum of two bool tensors, which ONNX's Max refuses)."""
    if not isinstance(base, torch.distributions.ContinuousBernoulli):
        return base.mean
    probs, (low, high) = base.probs.double(), base._lims
    outside = (probs <= low) | (probs > high)
    cut = torch.where(outside, probs, low * torch.ones_like(probs))
    exact = cut / (2.0 * cut - 1.0) + 1.0 / (torch.log1p(-cut) - torch.log(cut))
    x = probs - 0.5
    taylor = 0.5 + (1.0 / 3.0 + 16.0 / 45.0 * torch.pow(x, 2)) * x
    return torch.where(outside, exact, taylor).to(base.probs.dtype)


class FlowGraph(nn.Module):
    """``(u, loc, scale)``, each (N, K) -> ``(z, log_det)``: the guide's transforms applied to a
    draw ``u`` of its base Normal(loc, scale), (N, K), and the sum of their log-determinants, (N,)."""

    def __init__(self, vae):
        super().__init__()
        self.family = vae.posterior_family

    def forward(self, u: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        with pyro.validation_enabled(False):
            q = self.family.distribution(loc, scale)  # conditioned on (loc, log scale)
            z, log_det = u, torch.zeros_like(u[..., 0])  # (N, K), (N,)
            for transform in q.transforms:
                step = transform(z)
                log_det = log_det + transform.log_abs_det_jacobian(z, step)  # (N,)
                z = step
        return z, log_det
