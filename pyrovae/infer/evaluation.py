r"""Evaluation of a trained VAE from the same model and guide that train.

The ELBO reads log-densities off Pyro traces of ``vae.guide`` and of ``vae.model`` replayed
against it, inside a ``pyro.plate("particles", S, dim=-2)``, so no likelihood is ever written a
second time; the importance weights come from the model's ``log_weight_blocks``: the same traces
by default, while the built-in VAE and hvae compute the same densities at the same draws without
them (the encoder and the prior's parameters once per chunk of datapoints, not once per block of
samples). With :math:`z^{(s)} \sim q(z \mid x)`:

* :func:`elbo`: :math:`\mathrm{ELBO}(x) = \mathbb{E}_q[\log p(x \mid z)] - \mathrm{KL}(q(z \mid x) \,\|\, p(z))`
  per datapoint, split into its two terms; the KL in closed form (``analytic_kl=True``,
  as ``TraceMeanField_ELBO``) or as the Monte-Carlo mean of
  :math:`\log q(z^{(s)} \mid x) - \log p(z^{(s)})` (as ``Trace_ELBO``).
* :func:`log_likelihood`: the importance-sampled estimate (Burda et al. 2016)

  .. math::
      \log \hat p_K(x) = \log \frac{1}{K} \sum_{s=1}^{K} \frac{p(x, z^{(s)})}{q(z^{(s)} \mid x)},

  one value per datapoint, a stochastic lower bound whose expectation rises with K
  towards :math:`\log p(x)` (:math:`K = 1` is the ELBO). Computed in chunks of
  datapoints and of samples, with a running ``logsumexp``: a block of samples holds about
  2**20 decoder outputs (4 MB), small enough for the processor's cache and the allocator to
  reuse, so K = 5000 over 10,000 images runs in tens of MB (a conv decoder's feature maps
  are some tens of times its output). (Pyro's ``vectorized_importance_weights`` sums over
  the batch; here each datapoint keeps its own weights.)
* :func:`active_units`: latent dimension u is active when
  :math:`\mathrm{Cov}_x(\mathbb{E}_{q(z \mid x)}[z_u]) > 10^{-2}` (Burda et al. 2016).
"""
import contextlib
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, Optional, Tuple, Union

import pyro
import torch

from ..data.placement import HostRows
from ..errors import DataError

Rows = Union[torch.Tensor, HostRows]  # (N, D): on any device, or kept in host memory
#: a latent dimension whose posterior mean varies over the data by more than this is active (Burda et al. 2016)
ACTIVE_THRESHOLD = 1e-2


@dataclass
class ELBOSplit:
    """Per-datapoint tensors (N,), in nats: ``elbo = expected_log_likelihood - kl``."""

    elbo: torch.Tensor
    expected_log_likelihood: torch.Tensor
    kl: torch.Tensor

    def means(self) -> Dict[str, float]:
        return {"elbo": self.elbo.mean().item(), "expected_log_likelihood": self.expected_log_likelihood.mean().item(),
                "kl": self.kl.mean().item()}


def _checked(model, x: torch.Tensor) -> torch.Tensor:
    x = model._as_input(x)
    if len(x) == 0:
        raise DataError("x has no rows: there is nothing to score")
    model.likelihood.check(x, "the evaluation data")  # once, here, instead of in every chunk
    return x


def _chunks(model, x: Rows, size: int, check: bool = True,
            y: Optional[torch.Tensor] = None) -> Iterator[Tuple[torch.Tensor, Optional[torch.Tensor]]]:
    """``x``'s rows in order, ``size`` at a time (B, D), on the model's device and checked,
    each with its labels (B,) from ``y`` (None without): a tensor moves and is checked whole;
    :class:`HostRows` (data kept in host memory) are copied chunk by chunk, each checked as it
    arrives."""
    labels = model._as_labels(y, len(x))
    parts = [None] * -(-len(x) // size) if labels is None else labels.split(size)
    if not isinstance(x, HostRows):
        yield from zip((_checked(model, x) if check else model._as_input(x)).split(size), parts)
        return
    if len(x) == 0:
        raise DataError("x has no rows: there is nothing to score")
    with contextlib.closing(x.chunks(size, model._device())) as chunks:
        for chunk, part in zip(chunks, parts):
            yield (_checked(model, chunk) if check else model._as_input(chunk)), part


@torch.no_grad()
def elbo(model, x: Rows, num_particles: int = 1, analytic_kl: bool = True, batch_size: int = 1000,
         y: Optional[torch.Tensor] = None) -> ELBOSplit:
    """The ELBO of each datapoint of ``x`` (N, D) in model space and its split, averaged over
    ``num_particles`` draws from the guide; ``y`` (N,): the rows' labels, for a model that
    takes them (a conditional model scores log p(x | y); -1 marks a label to sum out)."""
    parts = []
    with pyro.validation_enabled(False):
        for chunk, labels in _chunks(model, x, batch_size, y=y):
            parts.append(model.elbo_terms(chunk, labels, num_particles, analytic_kl))  # (B,) each
    ell = torch.cat([p[0] for p in parts])
    kl = torch.cat([p[1] for p in parts])
    return ELBOSplit(ell - kl, ell, kl)


@torch.no_grad()
def log_likelihood(model, x: Rows, num_samples: int = 5000, batch_size: int = 100,
                   max_elements: int = 2**20, progress: Optional[Callable[[int], None]] = None,
                   y: Optional[torch.Tensor] = None) -> torch.Tensor:
    r"""Importance-sampled :math:`\log \hat p_K(x)` of each datapoint of ``x`` (N, D): (N,)
    (:math:`\log \hat p_K(x \mid y)` for a conditional model given ``y``).

    ``batch_size`` datapoints at a time, and as many samples per block as keep the decoder
    output under ``max_elements`` numbers (the blocks' log-weights from
    ``model.log_weight_blocks``; the draws depend on the block size, the estimate's
    expectation does not); ``progress(n)`` is called after each chunk of ``n`` datapoints."""
    out_dim = model.x_dim * model.likelihood.outputs_per_pixel * model.passes_per_sample
    log_k, per_pass = torch.log(torch.tensor(float(num_samples), dtype=torch.float64)), None
    results = []
    with pyro.validation_enabled(False):
        for chunk, labels in _chunks(model, x, batch_size, y=y):
            if per_pass is None:  # the first chunk is the largest
                per_pass = max(1, min(num_samples, max_elements // (len(chunk) * out_dim)))
            acc = torch.full((len(chunk),), -float("inf"), dtype=torch.float64, device=chunk.device)
            sizes = [min(per_pass, num_samples - start) for start in range(0, num_samples, per_pass)]
            for log_w in model.log_weight_blocks(chunk, labels, sizes):  # (s, B) each
                acc = torch.logaddexp(acc, torch.logsumexp(log_w.double(), dim=0))
            results.append(acc - log_k.to(chunk.device))
            if progress is not None:
                progress(len(chunk))
    return torch.cat(results).float()


@torch.no_grad()
def active_units(model, x: Rows, threshold: float = ACTIVE_THRESHOLD, batch_size: int = 1000,
                 y: Optional[torch.Tensor] = None) -> Tuple[int, torch.Tensor]:
    """(number of active latent dimensions, per-dimension variance over ``x`` of the
    posterior mean); a model with several latent sites: their dimensions one after another."""
    means = []
    for chunk, labels in _chunks(model, x, batch_size, check=False, y=y):
        params = model.posterior_params(chunk, labels)
        means.append(torch.cat([v for k, v in params.items() if k == "loc" or k.endswith("_loc")], dim=-1))
    variance = torch.cat(means).var(dim=0)  # (total latent dims,)
    return int((variance > threshold).sum().item()), variance


def evaluate_elbo(model, x: Rows, batch_size: int = 1000, y: Optional[torch.Tensor] = None) -> float:
    """Mean ELBO per datapoint of ``x``, analytic KL, one sample: the per-epoch test metric."""
    return elbo(model, x, num_particles=1, analytic_kl=True, batch_size=batch_size, y=y).elbo.mean().item()


@torch.no_grad()
def accuracy(model, x: Rows, y: torch.Tensor, batch_size: int = 1000) -> float:
    """The fraction of rows of ``x`` (N, D) in model space whose most probable class under the
    model's classifier (``posterior_params(x)["probs"]``) is their label ``y`` (N,)."""
    right, total = 0, 0
    for chunk, labels in _chunks(model, x, batch_size, check=False, y=y):
        right = right + (model.posterior_params(chunk)["probs"].argmax(-1) == labels).sum()
        total += len(chunk)
    return float(right) / total  # one host read per call
