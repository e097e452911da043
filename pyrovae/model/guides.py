r"""The amortized posterior family :math:`q_\phi(z \mid x)`, pluggable (``VAE(guide=...)``).

The encoder maps :math:`x` to :math:`(\mu, \sigma)`; a guide family turns them into a
distribution with batch shape ``(N,)`` and event shape ``(K,)``:

* ``"normal"`` (:class:`NormalGuide`): :math:`\mathcal{N}(\mu, \mathrm{diag}\,\sigma^2)`.
* ``"iaf"`` (:class:`IAFGuide`; Kingma et al. 2016): :math:`z_0 \sim \mathcal{N}(\mu,
  \mathrm{diag}\,\sigma^2)`, then T inverse autoregressive steps
  :math:`z_t = \mu_t(z_{t-1}, h) + \sigma_t(z_{t-1}, h) \odot z_{t-1}` (Pyro's
  ``ConditionalAffineAutoregressive``, a MADE network whose outputs for dimension i see
  only :math:`z_{<i}`), each conditioned on the context :math:`h = (\mu, \log\sigma)`, with
  the order of the dimensions reversed between steps. By the change of variables,

  .. math::
      \log q(z_T \mid x) = \log \mathcal{N}(z_0; \mu, \sigma^2) - \sum_{t=1}^{T} \sum_i \log \sigma_{t,i},

  which Pyro's ``TransformedDistribution`` computes. No closed-form KL exists, so
  ``TraceMeanField_ELBO`` does not apply (the configuration says so).

A callable ``f(loc, scale) -> Distribution`` of a user's own is wrapped as
:class:`CallableGuide`.
"""
from typing import Callable, Dict, Sequence, Type, Union

import pyro.distributions as dist
import torch
import torch.nn as nn
from pyro.distributions.transforms import Permute, conditional_affine_autoregressive

from ..errors import ConfigError, brief, check_names, count


class GuideFamily(nn.Module):
    name = "guide"
    #: whether ``kl_divergence(q, N(0, I))`` has a closed form (``TraceMeanField_ELBO``)
    analytic_kl = False

    def distribution(self, loc: torch.Tensor, scale: torch.Tensor) -> dist.TorchDistribution:
        raise NotImplementedError

    def config(self) -> dict:
        return {"name": self.name}


class NormalGuide(GuideFamily):
    name = "normal"
    analytic_kl = True

    def distribution(self, loc, scale):
        return dist.Normal(loc, scale).to_event(1)


class IAFGuide(GuideFamily):
    """``steps`` conditional IAF steps of MADE networks with ``hidden`` units."""

    name = "iaf"

    def __init__(self, z_dim: int, steps: int = 2, hidden: Sequence[int] = None):
        super().__init__()
        self.z_dim, self.steps = int(z_dim), count("iaf steps", steps)
        self.hidden = _widths(hidden) or [4 * self.z_dim, 4 * self.z_dim]
        self.flows = nn.ModuleList(conditional_affine_autoregressive(self.z_dim, 2 * self.z_dim, self.hidden)
                                   for _ in range(self.steps))
        self.register_buffer("reverse", torch.arange(self.z_dim - 1, -1, -1), persistent=False)

    def distribution(self, loc, scale):
        context = torch.cat([loc, scale.log()], dim=-1)  # (N, 2K)
        transforms = []
        for i, flow in enumerate(self.flows):
            if i:
                transforms.append(Permute(self.reverse))
            transforms.append(flow.condition(context))
        return dist.TransformedDistribution(dist.Normal(loc, scale).to_event(1), transforms)

    def config(self):
        return {"name": self.name, "steps": self.steps, "hidden": list(self.hidden)}


class CallableGuide(GuideFamily):
    def __init__(self, fn: Callable, name: str = None):
        super().__init__()
        self.fn = fn
        self.name = name or getattr(fn, "__name__", type(fn).__name__)

    def distribution(self, loc, scale):
        return self.fn(loc, scale)

    def config(self):
        return {"name": self.name, "custom": True}


GUIDES: Dict[str, Type[GuideFamily]] = {"normal": NormalGuide, "iaf": IAFGuide}


def get_guide(spec: Union[str, dict, GuideFamily, Callable], z_dim: int, **options) -> GuideFamily:
    """A :class:`GuideFamily` from a name (with ``options``: ``steps``, ``hidden`` for iaf),
    a config dict, a :class:`GuideFamily`, or a callable ``f(loc, scale) -> Distribution``."""
    if isinstance(spec, GuideFamily):
        return spec
    if isinstance(spec, dict):
        if not isinstance(spec.get("name"), str):
            raise ConfigError(f"a guide given as an object needs its \"name\", one of {', '.join(GUIDES)}, "
                              f"got {brief(spec, 80)}")
        spec, options = spec["name"], {**{k: v for k, v in spec.items() if k not in ("name", "custom")}, **options}
    if callable(spec):
        return CallableGuide(spec)
    check_guide_options(spec, options)
    return IAFGuide(z_dim, **options) if spec == "iaf" else GUIDES[spec](**options)


def check_guide_options(spec, options: dict) -> None:
    """Refuse an unknown built-in guide ``spec``, an option it does not take, or a value of the
    wrong kind (``steps``: a positive whole number, ``hidden``: a list of them), each in one line
    (nothing is built)."""
    if spec not in GUIDES:
        raise ConfigError(f"unknown guide {spec!r}; choose one of {', '.join(GUIDES)} or pass a callable")
    check_names(f"the {spec} guide", GUIDES[spec], options, fixed=("z_dim",))
    if "steps" in options:
        count(f"{spec} steps", options["steps"])
    if "hidden" in options:
        _widths(options["hidden"])


def _widths(hidden) -> list:
    """The MADE networks' hidden widths: a list of positive whole numbers (None or empty: [])."""
    if hidden is None:
        return []
    if not isinstance(hidden, (list, tuple)):
        raise ConfigError(f"iaf hidden must be a list of positive integers, got {brief(hidden)}")
    return [count("iaf hidden", h) for h in hidden]
