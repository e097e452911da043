r"""The ELBO of programs that sum a discrete latent out exactly: Pyro's ``TraceEnum_ELBO`` with
the loss kept on the device.

For a guide whose discrete site is enumerated (``infer={"enumerate": "parallel"}``), e.g. the
class :math:`y` of :class:`~pyrovae.model.m2.M2`, ``TraceEnum_ELBO`` computes

.. math::
    \mathbb{E}_{q(z \mid x, y)} \sum_y q(y \mid x) \big[\log p(x, y, z) - \log q(y \mid x) - \log q(z \mid x, y)\big]

with all K values of :math:`y` in one vectorized pass (a tensor dimension left of the plates),
not a Python loop, and the sum over :math:`y` exact. Pyro's ``differentiable_loss`` ends with
``warn_if_nan(loss)``, which reads the loss back to the host (and hooks a second read on its
gradient): a synchronization per SVI step that stalls a GPU. :class:`TraceEnum_ELBO` returns
the same tensor without it (non-finite losses are caught by the training loop, which records
the first bad step on the device).
"""
import warnings

import pyro.infer
import torch
from pyro.distributions.util import is_identically_zero

from ._pyro_internals import compute_dice_elbo, get_traces


class TraceEnum_ELBO(pyro.infer.TraceEnum_ELBO):
    """:class:`pyro.infer.TraceEnum_ELBO` whose ``differentiable_loss`` stays on the device;
    ``loss`` and ``loss_and_grads`` are Pyro's."""

    pyro_class = pyro.infer.TraceEnum_ELBO

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        elbo = 0.0
        with warnings.catch_warnings():  # a minibatch of labelled rows only has nothing to enumerate: no news
            warnings.filterwarnings("ignore", message="TraceEnum_ELBO found no sample sites configured")
            for model_trace, guide_trace in get_traces(self, model, guide, args, kwargs):
                particle = compute_dice_elbo(model_trace, guide_trace)
                if not is_identically_zero(particle):
                    elbo = elbo + particle
        elbo = elbo / self.num_particles
        if not torch.is_tensor(elbo) or not elbo.requires_grad:
            raise ValueError(f"the ELBO cannot be differentiated: {elbo}")
        return -elbo


def make_enum_elbo(num_particles: int = 1) -> TraceEnum_ELBO:
    """The ELBO of a program with one data plate (dim -1) whose guide enumerates a discrete site:
    particles vectorized on dim -2, enumeration to their left."""
    return TraceEnum_ELBO(num_particles=num_particles, vectorize_particles=num_particles > 1, max_plate_nesting=1)
