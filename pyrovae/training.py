r"""The SVI loop: one step, one epoch.

One SVI step is Pyro's :class:`~pyro.infer.SVI` step written out: the ELBO's
``differentiable_loss(model, guide, x)`` (an estimate of :math:`-\mathrm{ELBO}` summed
over the minibatch, averaged over particles; see :mod:`pyrovae.elbos`), backward, and a
``torch.optim`` step on the VAE's parameters. Written out, the loop keeps the running
loss on the device (``pyro.infer.SVI.step`` returns a Python float, a host read every
step), runs model and guide with the VAE's parameters local to its modules rather than
looked up in Pyro's global param store, and uses a plain optimizer whose state dict goes
into checkpoints unchanged. ``pyro.infer.SVI`` trains the same model and guide.

:class:`SVIStep` runs the step eagerly; :class:`pyrovae.capture.CompiledSVIStep`
(``--fast``) replays a compiled graph of it.
"""
from typing import Callable, Optional

import pyro
import torch
from pyro.infer import ELBO
from tqdm.auto import tqdm

from .data import minibatches


def make_optimizer(parameters, lr: float) -> torch.optim.Adam:
    """Adam, with PyTorch's fused single-kernel implementation where this torch build
    has one for the parameters' device (the same update as the default, fewer launches)."""
    parameters = list(parameters)
    try:
        return torch.optim.Adam(parameters, lr=lr, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(parameters, lr=lr)


class SVIStep:
    """``step(x) -> loss``: one SVI step on the minibatch ``x`` (B, D); returns the
    :math:`-\\mathrm{ELBO}` estimate as a detached 0-d tensor on ``x``'s device (no host
    read). With ``validate=True`` Pyro's distribution and trace checks run for this step."""

    def __init__(self, vae, elbo: ELBO, optimizer: torch.optim.Optimizer):
        self.vae, self.elbo, self.optimizer = vae, elbo, optimizer

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        with self.vae.local_params():
            return self.elbo.differentiable_loss(self.vae.model, self.vae.guide, x)

    def __call__(self, x: torch.Tensor, validate: bool = False) -> torch.Tensor:
        with pyro.validation_enabled(validate):
            loss = self.loss(x)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()


def train_epoch(
    step: Callable[..., torch.Tensor],
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
    for i, idx in enumerate(minibatches(len(x), batch_size, x.device, generator)):
        batch = x[idx]  # (B, D), gathered on the device
        if transform is not None:
            batch = transform(batch, generator)
        total += step(batch, validate=validate_first_step and i == 0)
        seen += len(idx)
        if progress is not None and not progress.disable:
            progress.update(len(idx))
            if i % 25 == 0:  # the only host read inside the epoch, for the display
                progress.set_postfix_str(f"-ELBO {total.item() / seen:.2f}", refresh=False)
    return total
