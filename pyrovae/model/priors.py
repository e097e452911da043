r"""The prior :math:`p(z)`, pluggable like the likelihood (``VAE(prior=...)``).

A prior is a module whose ``distribution(n, encoder)`` is a distribution over one latent
vector per datapoint: batch shape ``(n,)``, event shape ``(K,)`` for ``K = z_dim``.

* ``"normal"`` (:class:`StandardNormal`): :math:`\mathcal{N}(0, I_K)`, no parameters.
* ``"mog"`` (:class:`MixturePrior`): a learned mixture of C diagonal Gaussians,
  :math:`p(z) = \sum_c \pi_c \, \mathcal{N}(z; m_c, \mathrm{diag}\, s_c^2)`, with
  :math:`\pi = \mathrm{softmax}(a)` and :math:`s_c = \mathrm{softplus}(r_c) + 10^{-3}`.
* ``"vamp"`` (:class:`VampPrior`; Tomczak & Welling 2018): the guide's mixture at C learned
  pseudo-inputs :math:`u_c`, :math:`p(z) = \frac1C \sum_c q_\phi(z \mid u_c)`, with
  :math:`u_c = \mathrm{sigmoid}(v_c)` kept in the data's range [0, 1]. It shares the
  encoder with the guide, so it is written here as model code that calls the encoder.

A callable ``f(n) -> Distribution`` of a user's own is wrapped as :class:`CallablePrior`.
The mixtures have no closed-form KL to the guide: ``TraceMeanField_ELBO`` and the
per-epoch test ELBO then use the Monte-Carlo estimate for that site.
"""
import math
from typing import Callable, Dict, Optional, Tuple, Type, Union

import pyro.distributions as dist
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.distributions import Independent, MixtureSameFamily, Normal

from ..errors import ConfigError, brief, check_names, count


class Prior(nn.Module):
    name = "prior"

    def __init__(self, z_dim: int):
        super().__init__()
        self.z_dim = int(z_dim)

    def distribution(self, n: int, encoder: nn.Module) -> dist.TorchDistribution:
        raise NotImplementedError

    def config(self) -> dict:
        return {"name": self.name}


class StandardNormal(Prior):
    """:math:`\\mathcal{N}(0, I_K)`."""

    name = "normal"

    def __init__(self, z_dim: int):
        super().__init__(z_dim)
        self.register_buffer("_zero", torch.zeros(()), persistent=False)  # follows the module's device

    def distribution(self, n, encoder=None):
        loc = self._zero.expand(n, self.z_dim).clone()  # (n, K)
        # the scale as a device tensor: a Python 1.0 would become one by a blocking host-to-device copy per step
        return dist.Normal(loc, torch.ones_like(loc)).to_event(1)


class MixturePrior(Prior):
    """A learned mixture of ``components`` diagonal Gaussians."""

    name = "mog"

    def __init__(self, z_dim: int, components: int = 10):
        super().__init__(z_dim)
        components = count("mog components", components)
        self.components = components
        self.locs = nn.Parameter(torch.randn(components, z_dim))  # (C, K)
        self.raw_scales = nn.Parameter(torch.full((components, z_dim), 0.5413))  # softplus(0.5413) + 1e-3 = 1
        self.logits = nn.Parameter(torch.zeros(components))  # (C,)

    def distribution(self, n, encoder=None):
        scales = F.softplus(self.raw_scales) + 1e-3
        mix = dist.MixtureSameFamily(dist.Categorical(logits=self.logits), dist.Normal(self.locs, scales).to_event(1))
        return mix.expand([n])

    def config(self):
        return {"name": self.name, "components": self.components}


class VampPrior(Prior):
    """The guide's mixture at ``components`` learned pseudo-inputs of ``x_dim`` pixels."""

    name = "vamp"

    def __init__(self, z_dim: int, x_dim: int, components: int = 500):
        super().__init__(z_dim)
        components = count("vamp components", components)
        self.components, self.x_dim = components, int(x_dim)
        self.pseudo_inputs = nn.Parameter(0.1 * torch.randn(components, x_dim))  # (C, D), sigmoid -> about 0.5

    def distribution(self, n, encoder):
        loc, scale = encoder(torch.sigmoid(self.pseudo_inputs))  # (C, K) each
        uniform = dist.Categorical(logits=torch.zeros_like(loc[:, 0]))
        return dist.MixtureSameFamily(uniform, dist.Normal(loc, scale).to_event(1)).expand([n])

    def config(self):
        return {"name": self.name, "components": self.components}


class CallablePrior(Prior):
    """A user's ``f(n) -> Distribution`` (batch ``(n,)``, event ``(z_dim,)``)."""

    def __init__(self, z_dim: int, fn: Callable, name: str = None):
        super().__init__(z_dim)
        self.fn = fn
        self.name = name or getattr(fn, "__name__", type(fn).__name__)

    def distribution(self, n, encoder=None):
        return self.fn(n)

    def config(self):
        return {"name": self.name, "custom": True}


PRIORS: Dict[str, Type[Prior]] = {"normal": StandardNormal, "mog": MixturePrior, "vamp": VampPrior}


def get_prior(spec: Union[str, dict, Prior, Callable], z_dim: int, x_dim: int, **options) -> Prior:
    """A :class:`Prior` from a name (with ``options``, e.g. ``components``), a config dict,
    a :class:`Prior`, or a callable ``f(n) -> Distribution``."""
    if isinstance(spec, Prior):
        return spec
    if isinstance(spec, dict):
        if not isinstance(spec.get("name"), str):
            raise ConfigError(f"a prior given as an object needs its \"name\", one of {', '.join(PRIORS)}, "
                              f"got {brief(spec, 80)}")
        spec, options = spec["name"], {**{k: v for k, v in spec.items() if k not in ("name", "custom")}, **options}
    if callable(spec):
        return CallablePrior(z_dim, spec)
    check_prior_options(spec, options)
    return VampPrior(z_dim, x_dim, **options) if spec == "vamp" else PRIORS[spec](z_dim, **options)


def check_prior_options(spec, options: dict) -> None:
    """Refuse an unknown built-in prior ``spec``, an option it does not take, or a value that is
    not a positive whole number of components, each in one line (nothing is built)."""
    if spec not in PRIORS:
        raise ConfigError(f"unknown prior {spec!r}; choose one of {', '.join(PRIORS)} or pass a callable")
    check_names(f"the {spec} prior", PRIORS[spec], options, fixed=("z_dim", "x_dim"))
    if "components" in options:
        count(f"{spec} components", options["components"])


def log_density(d: torch.distributions.Distribution) -> Callable[[torch.Tensor], torch.Tensor]:
    r"""``z -> d.log_prob(z)``; for a mixture of diagonal Gaussians that every datapoint shares (the
    mixture and VampPrior priors), the same density from one matrix product instead of a (..., C, K)
    temporary: with :math:`a_c = 1/s_c^2`,

    .. math::
        \log \mathcal{N}(z; m_c, s_c^2) = -\tfrac12 \big(z^2 \cdot a_c - 2 z \cdot (m_c a_c)
        + m_c^2 \cdot a_c\big) - \textstyle\sum_k \log s_{ck} - \tfrac{K}{2} \log 2\pi,

    in float64 (the three terms cancel where z is near a narrow component), then ``logsumexp``
    over the components with the mixture's log-weights."""
    mixture = _shared_gaussian_mixture(d)
    if mixture is None:
        return d.log_prob
    loc, scale, log_pi = (t.double() for t in mixture)  # (C, K), (C, K), (C,)
    a = scale.pow(-2)
    weight = torch.cat([a, -2 * loc * a], dim=-1).T  # (2K, C)
    const = log_pi - 0.5 * (loc.pow(2) * a).sum(-1) - scale.log().sum(-1) - 0.5 * loc.shape[-1] * math.log(2 * math.pi)

    def log_prob(z: torch.Tensor) -> torch.Tensor:
        zz = z.double()
        per_component = torch.addmm(const, torch.cat([zz * zz, zz], dim=-1).reshape(-1, weight.shape[0]), weight,
                                    alpha=-0.5)  # (M, C)
        return torch.logsumexp(per_component, dim=-1).reshape(z.shape[:-1]).to(z.dtype)
    return log_prob


def _shared_gaussian_mixture(d) -> Optional[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(loc (C, K), scale (C, K), log-weights (C,)) of a ``MixtureSameFamily`` of ``Normal(...).to_event(1)``
    components whose batch dimensions are expanded (the same mixture for every datapoint); else None."""
    if not isinstance(d, MixtureSameFamily):
        return None
    comp = d.component_distribution
    if not (isinstance(comp, Independent) and comp.reinterpreted_batch_ndims == 1 and type(comp.base_dist) in (
            Normal, dist.Normal)):
        return None
    loc, scale = comp.base_dist.loc, comp.base_dist.scale
    shared = []
    for t, trailing in ((loc, 2), (scale, 2), (d.mixture_distribution.logits, 1)):
        lead = t.dim() - trailing
        if any(t.stride(i) != 0 for i in range(lead) if t.shape[i] > 1):
            return None
        shared.append(t[(0,) * lead] if lead else t)
    loc, scale, logits = shared
    return loc, scale, logits - logits.logsumexp(-1, keepdim=True)
