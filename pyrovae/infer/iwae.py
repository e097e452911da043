r"""The importance-weighted bound (IWAE; Burda et al. 2016), one per datapoint.

With :math:`z_{n,1:K} \sim q_\phi(z \mid x_n)` independently and
:math:`w_{nk} = p_\theta(x_n, z_{nk}) / q_\phi(z_{nk} \mid x_n)`,

.. math::
    \mathcal{L}_K(x_{1:B}) = \sum_{n=1}^{B} \mathbb{E}\Big[\log \frac{1}{K} \sum_{k=1}^{K} w_{nk}\Big]
    \;\le\; \sum_n \log p_\theta(x_n),

:math:`\mathcal{L}_1` is the ELBO, and :math:`\mathcal{L}_K` rises with :math:`K` towards
:math:`\log p_\theta(x)`. :class:`IWAE_ELBO` returns one sample of :math:`-\mathcal{L}_K`
(summed over the minibatch) whose gradient is the reparameterized IWAE gradient: each
particle's gradient weighted by its normalized weight
:math:`\tilde w_{nk} = w_{nk} / \sum_j w_{nj}`. It is unbiased for
:math:`\nabla \mathcal{L}_K`, not for the ELBO's gradient; for the encoder its
signal-to-noise ratio falls like :math:`1/\sqrt{K}` as K grows (Rainforth et al. 2018),
while the decoder's rises, so a larger K buys a tighter bound for the decoder at the
encoder's expense.

Pyro's ``RenyiELBO(alpha=0)`` computes the same bound for this model: it sums log-weights
only over plates that not every site shares, so with all sites in the data plate each
datapoint keeps its own K weights (``tests/infer/test_iwae.py`` checks value and gradients for
the same draws). It has no ``differentiable_loss``, though, and reads the loss to the
host in every ``loss_and_grads``; :class:`IWAE_ELBO` gives the bound as a device tensor,
so the eager step, ``--fast`` and the CUDA graph take it like the other ELBOs. The
particles live on a plate of their own (dim -2) beside the model's data plate (dim -1),
and the log-mean-exp runs over that dim only.

Sites must be reparameterizable (``has_rsample``); the log-densities are read unscaled
from the traces, so the KL warm-up and data-parallel subsampling, which scale a site's
log-density, do not apply to this bound (the configuration refuses them).
"""
import math

import pyro
import pyro.poutine as poutine
import torch
from pyro.infer import ELBO
from pyro.poutine.util import site_is_subsample

from ..errors import ConfigError


class IWAE_ELBO(ELBO):
    """``differentiable_loss(model, guide, x)``: :math:`-\\mathcal{L}_K` of the minibatch
    with ``num_particles`` = K importance samples per datapoint."""

    def __init__(self, num_particles: int = 5, max_plate_nesting: int = 1, vectorize_particles: bool = True,
                 **kwargs):
        if max_plate_nesting != 1:
            raise ConfigError("the IWAE bound here is for models with one data plate (max_plate_nesting=1)")
        super().__init__(num_particles=num_particles, max_plate_nesting=1, vectorize_particles=True, **kwargs)

    def _get_trace(self, model, guide, args, kwargs):
        """Pyro's per-particle hook, unused: all K particles are drawn in one vectorized pass."""
        raise NotImplementedError("IWAE_ELBO draws its particles in one vectorized pass (log_weights)")

    def log_weights(self, model, guide, *args, **kwargs) -> torch.Tensor:
        """:math:`\\log w_{nk}`: (K, B), the model's and guide's sample sites summed."""
        with pyro.plate("iwae_particles", self.num_particles, dim=-2):
            guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
            model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)
        log_w = 0.0
        for trace, sign in ((model_trace, 1.0), (guide_trace, -1.0)):
            for name, site in trace.nodes.items():
                if site["type"] != "sample" or site_is_subsample(site):
                    continue
                if sign < 0 and not site["fn"].has_rsample:
                    raise ConfigError(f"the IWAE bound needs a reparameterizable guide, but site {name!r} is not")
                log_p = site["fn"].log_prob(site["value"])  # (K, B): batch dims (particles, data)
                log_w = log_w + sign * log_p.expand(self.num_particles, -1)
        return log_w

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        log_w = self.log_weights(model, guide, *args, **kwargs)  # (K, B)
        bound = torch.logsumexp(log_w, dim=0) - math.log(self.num_particles)  # (B,)
        return -bound.sum()

    def loss(self, model, guide, *args, **kwargs) -> float:
        with torch.no_grad():
            return self.differentiable_loss(model, guide, *args, **kwargs).item()

    def loss_and_grads(self, model, guide, *args, **kwargs) -> float:
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        loss.backward()
        return loss.item()
