r"""A model's networks as plain graphs of tensors, for ``scripts/export.py`` (:mod:`pyrovae.export`).

A model says what to export by :meth:`pyrovae.Model.export_graphs`: named :class:`ExportGraph`
s, each a :class:`torch.nn.Module` whose ``forward`` takes tensors whose first axis is the batch
(``N`` rows) and returns a tuple of such tensors, with a :class:`TensorSpec` (name, shape after
the batch axis, dtype, meaning) for every input and output and an example batch of its inputs.
The exporter traces each module on its example and writes it as an ONNX or TorchScript file; it
imports this module, never the reverse (nothing here needs onnx).

The modules here are the built-in models' pieces (:mod:`pyrovae.model.exported` puts them
together). Each takes and gives data units: a standardized table's rows go in as they are
(:math:`(x - m)/s` inside the graph) and the likelihood's parameters come out in the columns'
units (:class:`Head`). A class label goes in as an integer (``int64``, 0 to K - 1) and is
one-hot inside the graph (a label outside that range gives an all-zero one-hot row). The
distributions are built with argument validation off: a check of the values would be evaluated
once, while tracing, and then frozen into the graph.
"""
from typing import List, NamedTuple, Tuple

import pyro
import torch
import torch.nn as nn

from ..errors import ConfigError


class TensorSpec(NamedTuple):
    """One input or output of a graph: ``shape`` is its shape after the batch axis (``()``: one
    value per row), ``dtype`` ``"float32"`` or ``"int64"``, ``meaning`` what it is, in which units."""

    name: str
    shape: Tuple[int, ...]
    meaning: str
    dtype: str = "float32"


class ExportGraph(NamedTuple):
    """A graph to export: ``module(*example)`` gives the outputs, a tuple in the order of ``outputs``."""

    module: nn.Module
    inputs: Tuple[TensorSpec, ...]
    outputs: Tuple[TensorSpec, ...]
    example: Tuple[torch.Tensor, ...]


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


def decoder_specs(model) -> Tuple[TensorSpec, ...]:
    """The outputs of a decoder graph of ``model`` (its ``likelihood``, ``x_dim``, ``standardizer``)."""
    units = "in data units" if model.standardizer is not None else "per pixel"
    return tuple(TensorSpec(name, (model.x_dim,), f"{meaning}, {units}")
                 for name, _, _, meaning in decoder_outputs(model.likelihood))


class Head(nn.Module):
    r"""A decoder's raw output (N, k D) -> the likelihood's parameters and its mean, (N, D) each
    (:data:`PARAMETERS`). In a standardized run, location parameters and the mean go back to data
    units, :math:`\mu' = \mu \odot s + m`, and scales are multiplied, :math:`\sigma' = \sigma
    \odot s`: the same distribution over :math:`x = x_{model} \odot s + m`."""

    def __init__(self, likelihood, standardizer):
        super().__init__()
        self.outputs = decoder_outputs(likelihood)
        self.likelihood, self.standardizer = likelihood, standardizer

    def forward(self, raw: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        with pyro.validation_enabled(False):
            base = self.likelihood(raw).base_dist  # batch (N, D)
            values = [_mean(base) if attribute is None else getattr(base, attribute)
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


def one_hot(y: torch.Tensor, num_classes: int, like: torch.Tensor) -> torch.Tensor:
    """Labels (N,) int64 -> (N, K) one-hot rows in ``like``'s dtype, as a comparison with 0..K-1
    (ONNX Equal and Cast)."""
    return (y.unsqueeze(-1) == torch.arange(num_classes, device=y.device)).to(like.dtype)


class Standardized(nn.Module):
    """A graph's first step: rows in data units -> model space, ``(x - mean) / std`` (or as they are)."""

    def __init__(self, standardizer):
        super().__init__()
        self.standardizer = standardizer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.standardizer is None else self.standardizer(x)


class EncoderGraph(nn.Module):
    """``x (N, D)`` in data units -> ``network``'s outputs on the model-space rows (e.g. loc, scale (N, K))."""

    def __init__(self, standardizer, network: nn.Module):
        super().__init__()
        self.inputs, self.network = Standardized(standardizer), network

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        return tuple(self.network(self.inputs(x)))


class LabelledEncoderGraph(nn.Module):
    """``(x (N, D), y (N,))`` -> ``network`` on the model-space rows joined with y's one-hot, (N, D + K)."""

    def __init__(self, standardizer, network: nn.Module, num_classes: int):
        super().__init__()
        self.inputs, self.network, self.num_classes = Standardized(standardizer), network, num_classes

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        x = self.inputs(x)
        return tuple(self.network(torch.cat([x, one_hot(y, self.num_classes, x)], dim=-1)))


class LowerEncoderGraph(nn.Module):
    """``(x (N, D), z2 (N, K2))`` -> q(z1 | x, z2)'s (loc, scale): ``network(x, z2)`` for a conditional
    conv network, else ``network`` on x joined with z2."""

    def __init__(self, standardizer, network: nn.Module, conv: bool):
        super().__init__()
        self.inputs, self.network, self.conv = Standardized(standardizer), network, conv

    def forward(self, x: torch.Tensor, z2: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        x = self.inputs(x)
        return tuple(self.network(x, z2) if self.conv else self.network(torch.cat([x, z2], dim=-1)))


class ClassifierGraph(nn.Module):
    """``x (N, D)`` in data units -> ``(probs,)``, (N, K): the softmax of ``network``'s logits."""

    def __init__(self, standardizer, network: nn.Module):
        super().__init__()
        self.inputs, self.network = Standardized(standardizer), network

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor]:
        return (torch.softmax(self.network(self.inputs(x)), dim=-1),)


class DecoderGraph(nn.Module):
    """``z (N, K)``, or several latents joined in order -> the likelihood's parameters and mean
    (:class:`Head`), (N, D) each, in data units."""

    def __init__(self, network: nn.Module, head: Head):
        super().__init__()
        self.network, self.head = network, head

    def forward(self, *z: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        return self.head(self.network(z[0] if len(z) == 1 else torch.cat(z, dim=-1)))


class LabelledDecoderGraph(nn.Module):
    """``(z (N, K), y (N,))`` -> the likelihood's parameters and mean at ``network`` of z joined with
    y's one-hot, (N, D) each, in data units."""

    def __init__(self, network: nn.Module, head: Head, num_classes: int):
        super().__init__()
        self.network, self.head, self.num_classes = network, head, num_classes

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        return self.head(self.network(torch.cat([z, one_hot(y, self.num_classes, z)], dim=-1)))


class FlowGraph(nn.Module):
    r"""``(u, loc, scale)``, each (N, K) -> ``(z, log_det)``: the guide family's transforms applied to
    a draw ``u`` of its base Normal(loc, scale), (N, K), and the sum of their log-determinants, (N,),
    so that :math:`\log q(z) = \log \mathcal{N}(u; \mu, \sigma^2) - \mathrm{log\_det}`."""

    def __init__(self, family):
        super().__init__()
        self.family = family

    def forward(self, u: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        with pyro.validation_enabled(False):
            q = self.family.distribution(loc, scale)  # conditioned on (loc, log scale)
            z, log_det = u, torch.zeros_like(u[..., 0])  # (N, K), (N,)
            for transform in q.transforms:
                step = transform(z)
                log_det = log_det + transform.log_abs_det_jacobian(z, step)  # (N,)
                z = step
        return z, log_det
