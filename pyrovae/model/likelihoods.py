r"""Observation models p(x | z): decoder output -> a distribution over one image.

A likelihood is a callable ``decoder_output -> Distribution`` whose event shape is
``(x_dim,)``: the D pixels of one datapoint form one event, so ``log_prob`` returns
:math:`\log p(x \mid z) = \sum_{d=1}^{D} \log p(x_d \mid z)` with one value per datapoint.
It declares how many decoder outputs it needs per pixel (``outputs_per_pixel``,
``k``); the decoder then emits ``k * D`` numbers laid out as ``k`` blocks of ``D``.

Each likelihood also knows the data it can score. :meth:`Likelihood.check` tests a
whole data set against the support once, before training, and raises
:class:`~pyrovae.errors.DataError` with a message that says what to do. No distribution
here is built with its checks turned off: the data are made valid (binarized,
dequantized, clamped) and checked, never silenced.

Built in (``get_likelihood(name)``):

==========================  ====  ===========================  =============================
name                        k     p(x_d | z)                   data
==========================  ====  ===========================  =============================
``bernoulli``               1     Bernoulli(sigmoid(o))        {0, 1}
``continuous-bernoulli``    1     ContinuousBernoulli(logit o) [0, 1]
``gaussian``                2/1   Normal(o1, softplus(o2)+m)   real (``scale=s``: k=1, fixed)
``laplace``                 2/1   Laplace(o1, softplus(o2)+m)  real (``scale=s``: k=1, fixed)
``beta``                    2     Beta(softplus(o1)+c, ...)    [0, 1], clamped to [eps, 1-eps]
==========================  ====  ===========================  =============================
"""
from typing import Callable, Dict, Optional, Type, Union

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.distributions.torch_distribution import TorchDistributionMixin

from ..errors import ConfigError, DataError, brief, check_names, is_number
from ._pyro_wrapped import PyroWrapped


class Likelihood:
    """Base class. Subclasses set ``name`` and ``outputs_per_pixel`` and implement
    :meth:`distribution`; :meth:`prepare` may map data into the support (Beta clamps)."""

    name: str = "likelihood"
    outputs_per_pixel: int = 1
    #: the kind of data the message of a failed check asks for
    support_text: str = "data in the distribution's support"
    #: the data this likelihood scores: ``"binary"`` ({0, 1}), ``"unit"`` ([0, 1]) or
    #: ``"real"``; data preparation asks this (binarize for binary, dequantize 8-bit grey
    #: levels for the others) instead of comparing names
    data: str = "real"

    def distribution(self, out: torch.Tensor) -> dist.TorchDistribution:
        raise NotImplementedError

    def __call__(self, out: torch.Tensor) -> dist.TorchDistribution:
        # out: (..., k * D) -> distribution with batch shape (...), event shape (D,)
        return self.distribution(out)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Data as the likelihood scores it (identity unless a subclass says otherwise)."""
        return x

    def log_prob(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """:math:`\\log p(x \\mid z)` per datapoint, (...): ``self(out).log_prob(x)`` for decoder
        outputs ``out`` (..., k * D) and data ``x`` (..., D) already :meth:`prepare` d; a subclass
        may compute the same value with fewer passes over ``out``."""
        return self(out).log_prob(x)

    def check(self, x: torch.Tensor, what: str = "data") -> None:
        """Raise :class:`DataError` unless every row of ``x`` (N, D) lies in the support."""
        _check_finite(x, what)
        d = self(x.new_zeros(1, x.shape[-1] * self.outputs_per_pixel))
        inside = d.support.check(self.prepare(x))
        if not bool(inside.all()):
            raise DataError(
                f"the {self.name} likelihood needs {self.support_text}, but {what} has "
                f"values outside it ({_describe_range(x)}); {self.remedy()}"
            )

    def remedy(self) -> str:
        return "choose a likelihood whose support fits the data"

    def config(self) -> dict:
        """Plain values that rebuild this likelihood with :func:`get_likelihood`."""
        return {"name": self.name}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "name")
        return f"{type(self).__name__}({args})"


class Bernoulli(Likelihood):
    r""":math:`x_d \sim \mathrm{Bernoulli}(\sigma(o_d))` for binary pixels."""

    name = "bernoulli"
    support_text = "binary data in {0, 1}"
    data = "binary"

    def distribution(self, out):
        return dist.Bernoulli(logits=out).to_event(1)

    def log_prob(self, out, x):
        r""":math:`\sum_d x_d o_d - \mathrm{softplus}(o_d)`, the Bernoulli log-density at logits
        :math:`o` (``binary_cross_entropy_with_logits``'s value, negated and summed) in two passes
        over ``out`` (softplus returns :math:`o` for :math:`o > 20`, where the two differ by less than
        :math:`e^{-20}`)."""
        return (out * x).sum(-1) - F.softplus(out).sum(-1)

    def remedy(self):
        return (
            "binarize grey images (--binarize dynamic) or use a likelihood for [0, 1] "
            "data (continuous-bernoulli, beta)"
        )


class ContinuousBernoulli(Likelihood):
    r""":math:`x_d \sim \mathcal{CB}(\lambda_d = \sigma(o_d))` on [0, 1] (Loaiza-Ganem &
    Cunningham 2019): the Bernoulli's density made proper by its normaliser
    :math:`C(\lambda)`, so grey pixels are scored without binarizing."""

    name = "continuous-bernoulli"
    support_text = "data in [0, 1]"
    data = "unit"

    def distribution(self, out):
        return dist.ContinuousBernoulli(logits=out).to_event(1)

    def remedy(self):
        return "rescale the data to [0, 1]"


class _LocScale(Likelihood):
    """Shared by Gaussian and Laplace: ``scale=None`` learns a per-pixel scale from a
    second decoder block, ``softplus(o2) + min_scale``; a number fixes it."""

    family: Type[dist.TorchDistribution]
    support_text = "finite real data"

    def __init__(self, scale: Optional[float] = None, min_scale: float = 1e-3):
        if scale is not None and not (is_number(scale) and 0 < scale < float("inf")):
            raise ConfigError(f"{self.name} scale must be a positive finite number, got {brief(scale)}")
        if not (is_number(min_scale) and 0 < min_scale < float("inf")):
            raise ConfigError(f"{self.name} min_scale must be a positive finite number, got {brief(min_scale)}")
        self.scale = None if scale is None else float(scale)
        self.min_scale = float(min_scale)
        self.outputs_per_pixel = 2 if scale is None else 1

    def distribution(self, out):
        if self.scale is None:
            loc, raw = out.chunk(2, dim=-1)  # (..., 2D) -> 2 x (..., D)
            scale = F.softplus(raw) + self.min_scale
        else:
            loc, scale = out, torch.full_like(out, self.scale)
        return self.family(loc, scale).to_event(1)

    def config(self):
        return {"name": self.name, "scale": self.scale, "min_scale": self.min_scale}


class Gaussian(_LocScale):
    r""":math:`x_d \sim \mathcal{N}(\mu_d, \sigma_d^2)`; learned or fixed :math:`\sigma`."""

    name = "gaussian"
    family = dist.Normal


class Laplace(_LocScale):
    r""":math:`x_d \sim \mathrm{Laplace}(\mu_d, b_d)`; learned or fixed :math:`b`."""

    name = "laplace"
    family = dist.Laplace


class Beta(Likelihood):
    r""":math:`x_d \sim \mathrm{Beta}(\alpha_d, \beta_d)` with
    :math:`\alpha = \mathrm{softplus}(o_1) + c`, :math:`\beta = \mathrm{softplus}(o_2) + c`.

    The Beta density lives on the open interval (0, 1). Data in [0, 1] is clamped to
    ``[eps, 1 - eps]`` (``eps = 1e-5`` by default: far below the 1/256 width of an 8-bit
    grey level, so it only moves values that sit exactly on 0 or 1)."""

    name = "beta"
    outputs_per_pixel = 2
    support_text = "data in [0, 1]"
    data = "unit"

    def __init__(self, eps: float = 1e-5, min_concentration: float = 1e-3):
        if not (is_number(eps) and 0 < eps < 0.5):
            raise ConfigError(f"beta eps must lie in (0, 0.5), got {brief(eps)}")
        if not (is_number(min_concentration) and 0 < min_concentration < float("inf")):
            raise ConfigError(f"beta min_concentration must be a positive finite number, got {brief(min_concentration)}")
        self.eps = float(eps)
        self.min_concentration = float(min_concentration)

    def distribution(self, out):
        a, b = out.chunk(2, dim=-1)  # (..., 2D) -> 2 x (..., D)
        c = self.min_concentration
        return dist.Beta(F.softplus(a) + c, F.softplus(b) + c).to_event(1)

    def prepare(self, x):
        return x.clamp(self.eps, 1 - self.eps)

    def check(self, x, what="data"):
        _check_finite(x, what)
        if not bool(((x >= 0) & (x <= 1)).all()):
            raise DataError(
                f"the beta likelihood needs data in [0, 1], but {what} has values outside "
                f"it ({_describe_range(x)}); {self.remedy()}"
            )

    def remedy(self):
        return "rescale the data to [0, 1]"

    def config(self):
        return {"name": self.name, "eps": self.eps, "min_concentration": self.min_concentration}


class CallableLikelihood(Likelihood):
    """Wraps a user's ``decoder_output -> Distribution`` callable.

    The callable may return a Pyro or a ``torch.distributions`` distribution. One with an
    empty event shape (one value per pixel) is made an event of dim 1 with
    :class:`~pyro.distributions.Independent`; a plain torch distribution is wrapped so
    Pyro can score it (a Pyro distribution is used as it is)."""

    def __init__(self, fn: Callable, outputs_per_pixel: int = 1, name: Optional[str] = None):
        if not callable(fn):
            raise ConfigError(f"a likelihood must be a name or a callable, got {fn!r}")
        if not (isinstance(outputs_per_pixel, int) and outputs_per_pixel >= 1):
            raise ConfigError(f"outputs_per_pixel must be a positive integer, got {outputs_per_pixel!r}")
        self.fn = fn
        self.outputs_per_pixel = outputs_per_pixel
        self.name = name or getattr(fn, "__name__", type(fn).__name__)

    def distribution(self, out):
        d = self.fn(out)
        if not isinstance(d, torch.distributions.Distribution):
            raise ConfigError(
                f"likelihood {self.name!r} returned {type(d).__name__}, not a distribution"
            )
        if not isinstance(d, TorchDistributionMixin):
            d = PyroWrapped(d)
        if d.event_dim == 0:
            d = d.to_event(1)
        if d.event_dim != 1:
            raise ConfigError(
                f"likelihood {self.name!r} must give one event per datapoint (event dim 1), "
                f"got event shape {tuple(d.event_shape)}"
            )
        return d

    def config(self):
        return {"name": self.name, "outputs_per_pixel": self.outputs_per_pixel, "custom": True}


BUILT_IN: Dict[str, Type[Likelihood]] = {
    cls.name: cls for cls in (Bernoulli, ContinuousBernoulli, Gaussian, Laplace, Beta)
}


def get_likelihood(spec: Union[str, Likelihood, Callable, dict], **kwargs) -> Likelihood:
    """A :class:`Likelihood` from a built-in name (with keyword options such as
    ``scale=0.1``), a ``config()`` dict, a Likelihood, or a user callable."""
    if isinstance(spec, Likelihood):
        return spec
    if isinstance(spec, dict):
        if not isinstance(spec.get("name"), str):
            raise ConfigError(f"a likelihood given as an object needs its \"name\", one of {', '.join(BUILT_IN)}, "
                              f"got {brief(spec, 80)}")
        options = {k: v for k, v in spec.items() if k not in ("name", "custom")}
        return get_likelihood(spec["name"], **options, **kwargs)
    if isinstance(spec, str):
        if spec not in BUILT_IN:
            raise ConfigError(
                f"unknown likelihood {spec!r}; choose one of {', '.join(BUILT_IN)} "
                "or pass a callable"
            )
        check_names(f"the {spec} likelihood", BUILT_IN[spec], kwargs)
        return BUILT_IN[spec](**kwargs)
    return CallableLikelihood(spec, **kwargs)


def _check_finite(x: torch.Tensor, what: str) -> None:
    if not torch.is_floating_point(x):
        raise DataError(f"{what} must be a floating-point tensor, got dtype {x.dtype}")
    if not bool(torch.isfinite(x).all()):
        raise DataError(f"{what} contains NaN or infinite values; clean or drop those rows")


def _describe_range(x: torch.Tensor) -> str:
    distinct = torch.unique(x.flatten()[:100_000])
    example = distinct[(distinct != 0) & (distinct != 1)][:1].tolist()
    shown = f", e.g. {example[0]:.4g}" if example else ""
    return f"min {x.min().item():.4g}, max {x.max().item():.4g}{shown}"
