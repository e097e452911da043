r"""The ELBO choice and the SVI loop.

One SVI step is Pyro's :class:`~pyro.infer.SVI` step written out: the chosen ELBO's
``differentiable_loss(model, guide, x)`` (a single-sample estimate of
:math:`-\mathrm{ELBO}` summed over the minibatch, averaged over particles), backward,
and an optimizer step on the VAE's parameters. Written out, the loop keeps the
running loss on the device (``pyro.infer.SVI.step`` returns a Python float, a host
sync every step) and uses a plain ``torch.optim`` optimizer whose state dict goes
into checkpoints unchanged. ``pyro.infer.SVI`` works on the same model and guide.

:func:`make_elbo`:

* ``"trace"``: :class:`~pyro.infer.Trace_ELBO`,
  :math:`\mathbb{E}_q[\log p(x \mid z)] - \mathbb{E}_q[\log q(z \mid x) - \log p(z)]`
  with the KL term estimated from the same samples;
* ``"meanfield"``: :class:`~pyro.infer.TraceMeanField_ELBO`, the same expectation
  with :math:`\mathrm{KL}(q(z \mid x) \,\|\, p(z))` in closed form. For this model
  (Gaussian guide, standard-normal prior) both are unbiased for the same ELBO.
"""
from typing import Callable, Optional

import pyro
import torch
from pyro.infer import ELBO, Trace_ELBO, TraceMeanField_ELBO
from tqdm.auto import tqdm

from .data import minibatches

ELBO_CLASSES = {"trace": Trace_ELBO, "meanfield": TraceMeanField_ELBO}


def make_elbo(kind: str = "trace", num_particles: int = 1) -> ELBO:
    """``Trace_ELBO`` (``kind="trace"``) or ``TraceMeanField_ELBO`` (``"meanfield"``),
    with ``num_particles`` vectorized particles."""
    return ELBO_CLASSES[kind](num_particles=num_particles, vectorize_particles=num_particles > 1,
                              max_plate_nesting=1)


def train_epoch(
    vae,
    elbo: ELBO,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    batch_size: int,
    transform: Optional[Callable] = None,
    generator: Optional[torch.Generator] = None,
    progress: Optional[tqdm] = None,
    validate_first_step: bool = False,
) -> torch.Tensor:
    """One pass over ``x`` (N, D), already on the training device, in random minibatches.

    Returns the summed loss (:math:`-\\mathrm{ELBO}` over all N datapoints) as a 0-d tensor
    on the device; nothing here reads it back to the host, except the progress bar's
    occasional refresh. Pyro's distribution checks run on the first step when
    ``validate_first_step`` (the data themselves were checked against the likelihood's
    support before training) and are off for the rest."""
    total = torch.zeros((), device=x.device)
    seen = 0
    for step, idx in enumerate(minibatches(len(x), batch_size, x.device, generator)):
        batch = x[idx]  # (B, D), gathered on the device
        if transform is not None:
            batch = transform(batch, generator)
        with pyro.validation_enabled(validate_first_step and step == 0):
            loss = elbo.differentiable_loss(vae.model, vae.guide, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach()
        seen += len(idx)
        if progress is not None and not progress.disable:
            progress.update(len(idx))
            if step % 25 == 0:  # the only host read inside the epoch, for the display
                progress.set_postfix_str(f"-ELBO {total.item() / seen:.2f}", refresh=False)
    return total
