r"""Posterior-collapse diagnostics of any :class:`~pyrovae.model.base.Model`: the KL divergence
of each latent dimension, read off traces of the same guide and model that train.

For a latent site with guide distribution :math:`q(z \mid x)` and prior :math:`p(z)` (the
model's distribution at that site, replayed against the guide's draws, so a conditional prior
such as :math:`p(z_1 \mid z_2)` is taken at the guide's :math:`z_2`), the KL of dimension
:math:`k` is the KL between the one-dimensional marginals, averaged over the rows:

.. math::
    \mathrm{KL}_k = \frac{1}{N} \sum_n \mathrm{KL}\big(q_k(z_k \mid x_n) \,\|\, p_k(z_k)\big)
    \quad \text{nats per datapoint.}

* **Closed form** for a factorized guide against a factorized prior whose one-dimensional
  families have one; for Gaussians

  .. math::
      \mathrm{KL}\big(\mathcal{N}(\mu, \sigma^2) \,\|\, \mathcal{N}(m, s^2)\big)
      = \log\frac{s}{\sigma} + \frac{\sigma^2 + (\mu - m)^2}{2 s^2} - \frac12,

  which is :math:`\frac12(\sigma^2 + \mu^2 - 1 - \log\sigma^2)` against the standard normal.
  Both factorized, the KL of the whole site is the sum over its dimensions.
* **Monte Carlo** where the guide is factorized but the pair has no closed form, e.g. a
  mixture prior (``mog``, ``vamp``) whose components are factorized: its marginal in
  dimension k is the one-dimensional mixture :math:`p_k(z_k) = \sum_c \pi_c\, p_{c,k}(z_k)`.
  With :math:`z^{(s)} \sim q` (S draws per row),
  :math:`\widehat{\mathrm{KL}}_k = \frac{1}{NS}\sum_{n,s} \log q_k(z^{(s)}_k) - \log p_k(z^{(s)}_k)`,
  with standard error :math:`\frac1N \big(\sum_n \hat v_{n,k} / S\big)^{1/2}`, :math:`\hat v_{n,k}`
  the sample variance of row n's S terms (the error of the draws, for these rows). Against a
  prior that is not factorized, the marginals' KLs need not sum to the site's KL.
* **Not defined** (``values`` None, with the reason): a guide whose marginals have no density
  in closed form (a flow such as the ``iaf`` guide, whose transforms mix the dimensions) or a
  prior that is neither factorized nor a mixture of factorized components.

The guide may sample other sites before a latent site (M2's label): the KL is then that of
the site given the guide's draws, averaged over them.

The same pass gives the statistic of the active units (Burda et al. 2016): the variance over the
rows of each dimension's posterior mean, the mean of the guide's distribution at the site (of its
base distribution for a flow, as :meth:`~pyrovae.model.base.Model.posterior_params` reads it);
dimension k is active when it exceeds :data:`~pyrovae.infer.evaluation.ACTIVE_THRESHOLD`.
"""
import math
from dataclasses import dataclass
from typing import Dict, Optional

import pyro
import pyro.poutine as poutine
import torch
from pyro.poutine.messenger import Messenger
from torch.distributions import Distribution, Independent, MixtureSameFamily, Normal, kl_divergence

from .evaluation import Rows, _chunks

CLOSED_FORM = "closed form"


@dataclass
class SiteKL:
    """One latent site's KL per dimension: ``values`` (K,) in nats per datapoint, or None where it is
    not defined; ``standard_error`` (K,) of a Monte-Carlo estimate (zeros for the closed form);
    ``method``: ``"closed form"``, ``"Monte Carlo, S draws per row"`` or why it is not defined;
    ``mean_variance`` (K,): the variance over the rows of each dimension's posterior mean."""

    values: Optional[torch.Tensor]
    standard_error: Optional[torch.Tensor]
    method: str
    mean_variance: Optional[torch.Tensor] = None


class _Reached(Exception):
    """Every latent site of the model has been seen: the rest of the program (the decoder) is skipped."""


class _Priors(Messenger):
    """Records the model's distribution at each of ``names`` and stops the program after the last."""

    def __init__(self, names):
        super().__init__()
        self.left, self.fns = set(names), {}

    def _postprocess_message(self, msg):
        if msg["type"] == "sample" and msg["name"] in self.left:
            self.fns[msg["name"]] = msg["fn"]
            self.left.discard(msg["name"])
            if not self.left:
                raise _Reached


def site_distributions(model, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> Dict[str, tuple]:
    """``{site: (q, p)}`` for the latent sites the guide samples at rows ``x`` (B, D) in model space:
    the guide's distribution and the model's, replayed against the guide's draws. The model runs
    only up to its last latent site (its likelihood is never computed)."""
    labels = {} if y is None else {"y": y}
    with model.local_params():
        guide = poutine.trace(model.guide).get_trace(x, **labels)
        names = [name for name in model.latent_sites if name in guide.nodes]
        priors = _Priors(names)
        try:
            with priors:
                poutine.replay(model.model, trace=guide)(x, **labels)
        except _Reached:
            pass
    return {name: (guide.nodes[name]["fn"], priors.fns[name]) for name in names if name in priors.fns}


def marginals(fn: Distribution) -> Optional[Distribution]:
    """A univariate distribution with batch (..., K) whose entry [..., k] is ``fn``'s marginal in
    dimension k, for ``fn`` factorized over its one event dimension (``Independent`` of a
    univariate family); None otherwise."""
    if isinstance(fn, Independent) and fn.reinterpreted_batch_ndims == 1 and fn.base_dist.event_shape == ():
        return fn.base_dist
    return None


def _mixture(fn: Distribution):
    """(log mixing weights (..., C), univariate components with batch (..., C, K)) of a mixture of
    factorized components, else None."""
    if isinstance(fn, MixtureSameFamily):
        components = marginals(fn.component_distribution)
        if components is not None:
            return fn.mixture_distribution.logits, components  # torch normalizes the logits
    return None


def closed_form_kl(q: Distribution, p: Distribution) -> Optional[torch.Tensor]:
    """KL(q || p) of univariate families, elementwise (batch broadcast): the Gaussian formula of the
    module docstring, else torch's registered closed form; None where there is none."""
    if isinstance(q, Normal) and isinstance(p, Normal):
        ratio = q.scale / p.scale
        return -torch.log(ratio) + (ratio**2 + ((q.loc - p.loc) / p.scale) ** 2) / 2 - 0.5
    try:
        return kl_divergence(q, p)
    except NotImplementedError:
        return None


def _compact(t: torch.Tensor) -> torch.Tensor:
    """``t`` with each broadcast dimension (stride 0: the same values along it, as ``expand`` makes) cut to
    size 1, so arithmetic on it does not repeat them."""
    for dim in range(t.dim()):
        if t.shape[dim] > 1 and t.stride(dim) == 0:
            t = t.narrow(dim, 0, 1)
    return t


def _log_density(p: Distribution, mixture, z: torch.Tensor) -> torch.Tensor:
    """log p_k(z_k) per dimension, (..., B, K), of univariate ``p`` or a ``mixture`` (log weights, components)."""
    if mixture is None:
        return p.log_prob(z)
    log_weights, components = mixture
    log_weights = _compact(log_weights).unsqueeze(-1)  # (B or 1, C) -> (B or 1, C, 1)
    z = z.unsqueeze(-2)  # (..., B, K) -> (..., B, 1, K) against components (B, C, K)
    if isinstance(components, Normal):  # written out: one tensor of (..., B, C, K), none of the parameters
        loc, scale = _compact(components.loc), _compact(components.scale)  # (B or 1, C or 1, K)
        terms = ((z - loc) / scale).square_().mul_(-0.5)  # (..., B, C, K), the one tensor of that size
        terms += log_weights - scale.log() - 0.5 * math.log(2 * math.pi)
        return torch.logsumexp(terms, dim=-2)
    return torch.logsumexp(components.log_prob(z) + log_weights, dim=-2)


class _Sums:
    """Running sums over rows of one site: the per-row KL terms (K,) and, for Monte Carlo, their
    within-row variance over the draws divided by S (K,)."""

    def __init__(self):
        self.total, self.variance, self.rows, self.method, self.draws = 0.0, 0.0, 0, None, 0
        self.means, self.squares, self.seen = 0.0, 0.0, 0  # of the posterior means, in float64

    def add_means(self, fn: Distribution) -> None:
        while hasattr(fn, "base_dist"):  # Independent, a flow's TransformedDistribution
            fn = fn.base_dist
        mean = fn.mean.double().reshape(-1, fn.mean.shape[-1])  # (B, K)
        self.means, self.squares, self.seen = self.means + mean.sum(0), self.squares + (mean**2).sum(0), \
            self.seen + len(mean)

    def mean_variance(self) -> torch.Tensor:
        """The unbiased variance over the rows of each dimension's posterior mean, (K,)."""
        n = max(self.seen - 1, 1)
        return ((self.squares - self.means**2 / self.seen) / n).clamp(min=0).float()


def kl_per_dim(model, x: Rows, y: Optional[torch.Tensor] = None, num_samples: int = 16, batch_size: int = 500,
               max_elements: int = 2**24, component_draws: int = 64) -> Dict[str, SiteKL]:
    """``{site: SiteKL}``: the KL of each dimension of each latent site the guide samples at rows
    ``x`` (N, D) in model space (``y``: the rows' labels for a model that takes them), nats per
    datapoint (see the module docstring). Monte Carlo draws ``num_samples`` per row from the global
    random stream, against a mixture of C components only as many as keep S C within
    ``component_draws`` (at least one: 6 for 10 components, 1 for a VampPrior's 500), as many at a
    time as keep (S, B, C, K) under ``max_elements`` numbers."""
    sums: Dict[str, _Sums] = {}
    reasons: Dict[str, str] = {}
    with torch.no_grad(), pyro.validation_enabled(False):
        for chunk, labels in _chunks(model, x, batch_size, check=False, y=y):
            for name, (q_fn, p_fn) in site_distributions(model, chunk, labels).items():
                site = sums.setdefault(name, _Sums())
                site.add_means(q_fn)
                if name in reasons:
                    continue
                q, p, mixture = marginals(q_fn), marginals(p_fn), _mixture(p_fn)
                if q is None:
                    reasons[name] = (f"q({name}|x) is not factorized over its dimensions (a flow, or a full "
                                     "covariance): its one-dimensional marginals have no density in closed form")
                    continue
                if p is None and mixture is None:
                    reasons[name] = (f"p({name}) is neither factorized over its dimensions nor a mixture of "
                                     "factorized components")
                    continue
                exact = closed_form_kl(q, p) if p is not None else None  # (B, K)
                if exact is not None:
                    site.total, site.method = site.total + exact.sum(0), CLOSED_FORM
                    site.rows += len(chunk)
                    continue
                draws = num_samples if mixture is None else \
                    max(1, min(num_samples, component_draws // mixture[0].shape[-1]))
                total, sq = _monte_carlo(q, p, mixture, draws, max_elements)  # (B, K) each
                site.total = site.total + total.sum(0) / draws
                if draws > 1:  # within-row sample variance of the S terms, over S
                    variance = (sq - total**2 / draws) / (draws - 1)
                    site.variance = site.variance + variance.clamp(min=0).sum(0) / draws
                site.rows += len(chunk)
                site.method, site.draws = f"Monte Carlo, {draws} draw{'s' if draws > 1 else ''} per row", draws
    out = {}
    for name, site in sums.items():
        if name in reasons:
            out[name] = SiteKL(None, None, reasons[name], site.mean_variance())
            continue
        values = site.total / site.rows  # (K,)
        if site.method == CLOSED_FORM:
            se = torch.zeros_like(values)
        elif site.draws > 1:
            se = (torch.zeros_like(values) + site.variance).sqrt() / site.rows
        else:  # one draw per row: no within-row variance to estimate it from
            se = torch.full_like(values, float("nan"))
        out[name] = SiteKL(values, se, site.method, site.mean_variance())
    return out


def _monte_carlo(q: Distribution, p: Optional[Distribution], mixture, num_samples: int, max_elements: int):
    """(sum over draws, sum of squares over draws) of log q_k(z_k) - log p_k(z_k), z ~ q: (B, K) each."""
    batch, dims = q.batch_shape[-2:] if len(q.batch_shape) >= 2 else (1, q.batch_shape[-1])
    per_draw = batch * dims * (1 if mixture is None else mixture[0].shape[-1])
    group = max(1, min(num_samples, max_elements // max(per_draw, 1)))
    total = sq = 0.0
    for start in range(0, num_samples, group):
        z = q.sample((min(group, num_samples - start),))  # (s, B, K)
        terms = q.log_prob(z) - _log_density(p, mixture, z)  # (s, B, K)
        total, sq = total + terms.sum(0), sq + (terms**2).sum(0)
    return total, sq
