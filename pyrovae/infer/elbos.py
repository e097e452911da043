r"""The ELBO choice: Pyro's ``Trace_ELBO`` and ``TraceMeanField_ELBO``, with the loss kept
on the device.

For a minibatch :math:`x_{1:B}` and :math:`z_n \sim q_\phi(z \mid x_n)`, both estimate

.. math::
    \mathrm{ELBO} = \sum_n \mathbb{E}_q\big[\log p_\theta(x_n \mid z_n)\big]
                    - \mathrm{KL}\big(q_\phi(z \mid x_n) \,\|\, p(z)\big)

* :class:`Trace_ELBO` (``kind="trace"``) estimates the KL term from the same samples,
  :math:`\log q_\phi(z_n \mid x_n) - \log p(z_n)` (Monte-Carlo KL);
* :class:`TraceMeanField_ELBO` (``kind="meanfield"``) uses its closed form. With a
  Gaussian guide and a standard-normal prior both are unbiased for the same ELBO.

The two classes *are* Pyro's (subclasses; traces, score parts, plates, particles and
validation are Pyro's own code). They change one thing. Pyro's ``differentiable_loss``
returns :math:`\ell + (s - \mathrm{item}(s))`, where :math:`\ell` is the ELBO estimate
and :math:`s` the surrogate whose gradient is the estimator's, and it reads every sample
site's log-density to the host with ``.item()`` on the way: three or four host
synchronizations per SVI step, which stall a GPU. Here the same quantities are kept as
detached tensors, :math:`\ell + (s - \mathrm{sg}(s))`: the same value and the same
gradient, no host read (``tests/infer/test_elbos.py`` checks both against Pyro's classes,
including a model with a non-reparameterized latent, where :math:`s \ne \ell`).

:class:`TraceMeanField_ELBO` also computes only the log-densities its loss reads: Pyro's
traces score every sample site, model and guide (``compute_log_prob``,
``compute_score_parts``), and the closed-form KL then leaves :math:`\log p(z)` and
:math:`\log q(z \mid x)` unused, so the analytic-KL step did the Monte-Carlo step's work
and the KL on top. Here the observed sites' log-densities are computed, and a latent
site's only where no closed-form KL is registered (with validation on, Pyro's traces and
checks run as they are). The loss is computed by the same operations as before.
"""
import pyro.infer
import torch
from pyro import poutine
from pyro.distributions.util import is_identically_zero, scale_and_mask
from pyro.infer import ELBO
from pyro.infer.util import check_fully_reparametrized, is_validation_enabled, torch_item
from pyro.poutine.messenger import Messenger
from pyro.poutine.util import prune_subsample_sites
from torch.distributions import kl_divergence

from ._pyro_internals import compute_log_r, get_traces
from .iwae import IWAE_ELBO


class _DeviceLoss:
    """``differentiable_loss`` without host reads; subclasses give each particle's
    ``(loss, surrogate_loss)`` as tensors (the loss detached)."""

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        loss, surrogate = 0.0, 0.0
        for model_trace, guide_trace in get_traces(self, model, guide, args, kwargs):
            particle_loss, particle_surrogate = self._device_loss_particle(model_trace, guide_trace)
            loss = loss + particle_loss / self.num_particles
            surrogate = surrogate + particle_surrogate / self.num_particles
        # value: the ELBO estimate; gradient: the surrogate's (they differ only for
        # non-reparameterized sites, whose score-function terms enter the surrogate)
        return loss + (surrogate - surrogate.detach())


class Trace_ELBO(_DeviceLoss, pyro.infer.Trace_ELBO):
    """:class:`pyro.infer.Trace_ELBO` (Monte-Carlo KL) whose ``differentiable_loss``
    stays on the device. ``loss`` and ``loss_and_grads`` are Pyro's."""

    pyro_class = pyro.infer.Trace_ELBO  # the Pyro class this is, for comparisons with stock Pyro

    def _device_loss_particle(self, model_trace, guide_trace):
        # pyro.infer.Trace_ELBO._differentiable_loss_particle, with detached tensors in
        # place of torch_item(...)
        elbo = surrogate = 0.0
        log_r = None
        for site in model_trace.nodes.values():
            if site["type"] == "sample":
                elbo = elbo + site["log_prob_sum"].detach()
                surrogate = surrogate + site["log_prob_sum"]
        for site in guide_trace.nodes.values():
            if site["type"] == "sample":
                _, score_function_term, entropy_term = site["score_parts"]
                elbo = elbo - site["log_prob_sum"].detach()
                if not is_identically_zero(entropy_term):
                    surrogate = surrogate - entropy_term.sum()
                if not is_identically_zero(score_function_term):
                    if log_r is None:
                        log_r = compute_log_r(model_trace, guide_trace)
                    surrogate = surrogate + (log_r.sum_to(site["cond_indep_stack"]) * score_function_term).sum()
        return -elbo, -surrogate


class TraceMeanField_ELBO(_DeviceLoss, pyro.infer.TraceMeanField_ELBO):
    """:class:`pyro.infer.TraceMeanField_ELBO` (closed-form KL where one is registered,
    else Monte Carlo) whose ``differentiable_loss`` stays on the device and whose traces
    compute only the log-densities the loss reads."""

    pyro_class = pyro.infer.TraceMeanField_ELBO

    def _get_trace(self, model, guide, args, kwargs):
        if is_validation_enabled() or isinstance(poutine.unwrap(guide), Messenger):
            return super()._get_trace(model, guide, args, kwargs)  # Pyro's, every site scored, every check
        # pyro.infer.enum.get_importance_trace without compute_log_prob / compute_score_parts
        guide_trace = poutine.trace(guide, graph_type="flat").get_trace(*args, **kwargs)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace), graph_type="flat").get_trace(*args,
                                                                                                           **kwargs)
        return prune_subsample_sites(model_trace), prune_subsample_sites(guide_trace)

    def _differentiable_loss_particle(self, model_trace, guide_trace):
        """Pyro's ``loss`` reads this: ``(loss as a float, loss)``, from the traces above."""
        loss, surrogate = self._device_loss_particle(model_trace, guide_trace)
        return torch_item(loss), surrogate

    def _device_loss_particle(self, model_trace, guide_trace):
        # pyro.infer.TraceMeanField_ELBO._differentiable_loss_particle, without torch_item,
        # each log-density computed where it is read (Pyro's trace methods, one site at a time)
        elbo = 0.0
        for name, model_site in model_trace.nodes.items():
            if model_site["type"] != "sample":
                continue
            if model_site["is_observed"]:
                elbo = elbo + _log_prob_sum(model_trace, name)
                continue
            guide_site = guide_trace.nodes[name]
            if is_validation_enabled():
                check_fully_reparametrized(guide_site)
            try:
                kl_qp = kl_divergence(guide_site["fn"], model_site["fn"])
            except NotImplementedError:
                elbo = elbo + _log_prob_sum(model_trace, name) - _score_parts(guide_trace, name).entropy_term.sum()
                continue
            kl_qp = scale_and_mask(kl_qp, scale=guide_site["scale"], mask=guide_site["mask"])
            if torch.is_tensor(kl_qp):
                elbo = elbo - kl_qp.sum()
            else:
                elbo = elbo - kl_qp * torch.Size(guide_site["fn"].batch_shape).numel()
        for name, guide_site in guide_trace.nodes.items():  # auxiliary guide sites
            if guide_site["type"] == "sample" and name not in model_trace.nodes:
                if is_validation_enabled():
                    check_fully_reparametrized(guide_site)
                elbo = elbo - _score_parts(guide_trace, name).entropy_term.sum()
        return -elbo.detach(), -elbo


def _log_prob_sum(trace, name: str) -> torch.Tensor:
    """``trace.nodes[name]["log_prob_sum"]``, computed (by Pyro) for that site alone if not yet."""
    trace.compute_log_prob(site_filter=lambda site_name, site: site_name == name)
    return trace.nodes[name]["log_prob_sum"]


def _score_parts(trace, name: str):
    """``trace.nodes[name]["score_parts"]``, computed as ``Trace.compute_score_parts`` does, for that site alone."""
    site = trace.nodes[name]
    if "score_parts" not in site:
        parts = site["fn"].score_parts(site["value"], *site["args"], **site["kwargs"])
        site["unscaled_log_prob"] = parts.log_prob
        parts = parts.scale_and_mask(site["scale"], site["mask"])
        site["score_parts"], site["log_prob"], site["log_prob_sum"] = parts, parts.log_prob, parts.log_prob.sum()
    return site["score_parts"]


#: the objective registry: ``--elbo`` choices, the config's check and the benchmark read it
#: (``iwae``: the importance-weighted bound of :mod:`pyrovae.infer.iwae`, K = ``num_particles``)
ELBO_CLASSES = {"trace": Trace_ELBO, "meanfield": TraceMeanField_ELBO, "iwae": IWAE_ELBO}


def make_elbo(kind: str = "trace", num_particles: int = 1) -> ELBO:
    """:class:`Trace_ELBO` (``kind="trace"``), :class:`TraceMeanField_ELBO`
    (``"meanfield"``) or :class:`~pyrovae.infer.iwae.IWAE_ELBO` (``"iwae"``, K =
    ``num_particles``) with ``num_particles`` vectorized particles, for a model whose
    plates nest one deep (``pyro.plate("data")``)."""
    return ELBO_CLASSES[kind](num_particles=num_particles, vectorize_particles=num_particles > 1,
                              max_plate_nesting=1)
