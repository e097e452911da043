r"""Evaluation of a trained VAE from traces of the same model and guide that train.

Everything here reads log-densities off Pyro traces of ``vae.guide`` and of ``vae.model``
replayed against it, inside a ``pyro.plate("particles", S, dim=-2)``, so no likelihood is
ever written a second time. With :math:`z^{(s)} \sim q(z \mid x)`:

* :func:`elbo`: :math:`\mathrm{ELBO}(x) = \mathbb{E}_q[\log p(x \mid z)] - \mathrm{KL}(q(z \mid x) \,\|\, p(z))`
  per datapoint, split into its two terms; the KL in closed form (``analytic_kl=True``,
  as ``TraceMeanField_ELBO``) or as the Monte-Carlo mean of
  :math:`\log q(z^{(s)} \mid x) - \log p(z^{(s)})` (as ``Trace_ELBO``).
* :func:`log_likelihood`: the importance-sampled estimate (Burda et al. 2016)

  .. math::
      \log \hat p_K(x) = \log \frac{1}{K} \sum_{s=1}^{K} \frac{p(x, z^{(s)})}{q(z^{(s)} \mid x)},

  one value per datapoint, a stochastic lower bound whose expectation rises with K
  towards :math:`\log p(x)` (:math:`K = 1` is the ELBO). Computed in chunks of
  datapoints and of samples, with a running ``logsumexp``, so K = 5000 over 10,000
  images fits in a few hundred MB. (Pyro's ``vectorized_importance_weights`` sums over
  the batch; here each datapoint keeps its own weights.)
* :func:`active_units`: latent dimension u is active when
  :math:`\mathrm{Cov}_x(\mathbb{E}_{q(z \mid x)}[z_u]) > 10^{-2}` (Burda et al. 2016).
"""
import contextlib
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, Optional, Tuple, Union

import pyro
import pyro.poutine as poutine
import torch
from pyro.poutine.util import site_is_subsample
from torch.distributions import kl_divergence

from ..data.placement import HostRows
from ..errors import DataError

Rows = Union[torch.Tensor, HostRows]  # (N, D): on any device, or kept in host memory


@dataclass
class ELBOSplit:
    """Per-datapoint tensors (N,), in nats: ``elbo = expected_log_likelihood - kl``."""

    elbo: torch.Tensor
    expected_log_likelihood: torch.Tensor
    kl: torch.Tensor

    def means(self) -> Dict[str, float]:
        return {"elbo": self.elbo.mean().item(), "expected_log_likelihood": self.expected_log_likelihood.mean().item(),
                "kl": self.kl.mean().item()}


def _sample_sites(trace):
    return {name: site for name, site in trace.nodes.items()
            if site["type"] == "sample" and not site_is_subsample(site)}


def _traces(vae, x: torch.Tensor, num_samples: int):
    """Guide trace and replayed model trace with ``num_samples`` particles on dim -2;
    every site's ``log_prob`` is (S, B)."""
    with pyro.plate("particles", num_samples, dim=-2):
        guide_trace = poutine.trace(vae.guide).get_trace(x)
        model_trace = poutine.trace(poutine.replay(vae.model, trace=guide_trace)).get_trace(x)
    guide_trace.compute_log_prob()
    model_trace.compute_log_prob()
    return model_trace, guide_trace


def _terms(vae, x: torch.Tensor, num_samples: int, analytic_kl: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    """(log p(x|z) summed over observed sites, KL or its per-sample estimate), each (S, B)."""
    model_trace, guide_trace = _traces(vae, x, num_samples)
    guide_sites = _sample_sites(guide_trace)
    log_lik, kl = 0.0, 0.0
    for name, site in _sample_sites(model_trace).items():
        if site["is_observed"]:
            log_lik = log_lik + site["log_prob"]
        else:
            kl = kl + _kl(guide_sites[name], site, analytic_kl)
    return log_lik, kl


def _kl(guide_site, model_site, analytic: bool) -> torch.Tensor:
    """KL(q || p) of one latent site, (S, B): in closed form where asked and one exists,
    else the Monte-Carlo term log q(z) - log p(z) (a flow guide, a mixture prior)."""
    if analytic:
        try:
            return kl_divergence(guide_site["fn"], model_site["fn"])
        except NotImplementedError:
            pass
    return guide_site["log_prob"] - model_site["log_prob"]


def _checked(vae, x: torch.Tensor) -> torch.Tensor:
    x = vae._as_input(x)
    if len(x) == 0:
        raise DataError("x has no rows: there is nothing to score")
    vae.likelihood.check(x, "the evaluation data")  # once, here, instead of in every chunk
    return x


def _chunks(vae, x: Rows, size: int, check: bool = True) -> Iterator[torch.Tensor]:
    """``x``'s rows in order, ``size`` at a time (B, D), on the VAE's device and checked:
    a tensor moves and is checked whole; :class:`HostRows` (data kept in host memory)
    are copied chunk by chunk, each checked as it arrives."""
    if not isinstance(x, HostRows):
        yield from (_checked(vae, x) if check else vae._as_input(x)).split(size)
        return
    if len(x) == 0:
        raise DataError("x has no rows: there is nothing to score")
    with contextlib.closing(x.chunks(size, vae._device())) as chunks:
        for chunk in chunks:
            yield _checked(vae, chunk) if check else vae._as_input(chunk)


@torch.no_grad()
def elbo(vae, x: Rows, num_particles: int = 1, analytic_kl: bool = True, batch_size: int = 1000) -> ELBOSplit:
    """The ELBO of each datapoint of ``x`` (N, D) and its split, averaged over
    ``num_particles`` draws from the guide."""
    parts = []
    with pyro.validation_enabled(False):
        for chunk in _chunks(vae, x, batch_size):
            log_lik, kl = _terms(vae, chunk, num_particles, analytic_kl)  # (S, B) each
            parts.append((log_lik.mean(0), torch.as_tensor(kl).expand_as(log_lik).mean(0)))
    ell = torch.cat([p[0] for p in parts])
    kl = torch.cat([p[1] for p in parts])
    return ELBOSplit(ell - kl, ell, kl)


@torch.no_grad()
def log_likelihood(vae, x: Rows, num_samples: int = 5000, batch_size: int = 100,
                   max_elements: int = 2**24, progress: Optional[Callable[[int], None]] = None) -> torch.Tensor:
    """Importance-sampled :math:`\\log \\hat p_K(x)` of each datapoint of ``x`` (N, D): (N,).

    ``batch_size`` datapoints at a time, and as many samples per pass as keep the decoder
    output under ``max_elements`` numbers; ``progress(n)`` is called after each chunk of
    ``n`` datapoints."""
    out_dim, per_pass = vae.x_dim * vae.likelihood.outputs_per_pixel, None
    log_k = torch.log(torch.tensor(float(num_samples), dtype=torch.float64))
    results = []
    with pyro.validation_enabled(False):
        for chunk in _chunks(vae, x, batch_size):
            if per_pass is None:  # the first chunk is the largest
                per_pass = max(1, min(num_samples, max_elements // (len(chunk) * out_dim)))
            acc = torch.full((len(chunk),), -float("inf"), dtype=torch.float64, device=chunk.device)
            for start in range(0, num_samples, per_pass):
                s = min(per_pass, num_samples - start)
                log_lik, log_ratio = _terms(vae, chunk, s, analytic_kl=False)
                log_w = (log_lik - log_ratio).double()  # log p(x, z) - log q(z | x): (s, B)
                acc = torch.logaddexp(acc, torch.logsumexp(log_w, dim=0))
            results.append(acc - log_k.to(chunk.device))
            if progress is not None:
                progress(len(chunk))
    return torch.cat(results).float()


@torch.no_grad()
def active_units(vae, x: Rows, threshold: float = 1e-2, batch_size: int = 1000) -> Tuple[int, torch.Tensor]:
    """(number of active latent dimensions, per-dimension variance over ``x`` of the
    posterior mean)."""
    means = torch.cat([vae.encoder(chunk)[0] for chunk in _chunks(vae, x, batch_size, check=False)])  # (N, z_dim)
    variance = means.var(dim=0)
    return int((variance > threshold).sum().item()), variance


def evaluate_elbo(vae, x: Rows, batch_size: int = 1000) -> float:
    """Mean ELBO per datapoint of ``x``, analytic KL, one sample: the per-epoch test metric."""
    return elbo(vae, x, num_particles=1, analytic_kl=True, batch_size=batch_size).elbo.mean().item()
