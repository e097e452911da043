r"""The SVI step of a model whose rows carry class labels (:class:`~pyrovae.model.labelled.CVAE`,
:class:`~pyrovae.model.m2.M2`).

The epoch's minibatches come from :func:`~pyrovae.infer.svi.run_epoch` as for any model; the
step gathers their labels on the device from the rows' indices (no host read), and hands them
to the program: ``model(x, y=...)``.

Semi-supervised training (M2) with few labels: the epoch runs over the :math:`N_u` rows whose
labels are hidden, and every step adds :math:`b_l` labelled rows drawn uniformly (with
replacement, from the run's random stream) from the :math:`N_l` labelled ones, so that the
classifier sees labels at every step however rare they are. For a minibatch of :math:`B_u`
hidden-label rows the labelled rows' terms are weighted

.. math::
    s_l = \frac{B_u}{N_u} \cdot \frac{N_l}{b_l},

so that the summed losses of one epoch estimate, without bias, the full objective
:math:`\sum_{u} -\mathcal{U}(x_u) + \sum_{l} -[\mathcal{L}(x_l, y_l) + \alpha \log q(y_l \mid x_l)]`
(each hidden-label row once, each labelled row :math:`N_l` times its expected share). Where no
label is hidden the epoch runs over the labelled rows and nothing is added.
"""
from typing import Callable, Optional

import pyro
import torch

from .svi import ScaleLatent, SVIStep


class LabelledSVIStep(SVIStep):
    """``step(x, indices=...) -> loss`` for a labelled model: ``labels`` (N,) are the labels of the
    rows the epoch runs over (on the device; -1 where hidden). With ``labelled`` = (x_l, y_l), the
    labelled rows (on the device), ``extra`` of them join every minibatch (module docstring), through
    ``transform`` (the run's per-minibatch binarization or dequantization)."""

    def __init__(self, model, elbo, optimizer, labels: torch.Tensor, labelled: Optional[tuple] = None,
                 extra: int = 0, transform: Optional[Callable] = None):
        super().__init__(model, elbo, optimizer)
        self.labels, self.transform = labels, transform
        self.labelled_x, self.labelled_y = labelled if labelled is not None else (None, None)
        self.extra = extra if labelled is not None else 0

    def loss(self, x: torch.Tensor, kl_scale: Optional[torch.Tensor] = None, **program) -> torch.Tensor:
        model, guide = self.vae.model, self.vae.guide
        if kl_scale is not None:  # warm-up scales every continuous latent site of the program
            model, guide = (ScaleLatent(kl_scale, self.vae.latent_sites)(model),
                            ScaleLatent(kl_scale, self.vae.latent_sites)(guide))
        with self.vae.local_params():
            return self.elbo.differentiable_loss(model, guide, x, **program)

    def program(self, x: torch.Tensor, indices: torch.Tensor):
        """(rows, keyword arguments of the program) of the minibatch ``x`` of rows ``indices``."""
        y = self.labels[indices]  # (B,), gathered on the device
        if not self.extra:
            return x, {"y": y} if self.vae.labels == "required" else {"y": y, "split": 0}
        n, total_labelled = len(x), len(self.labelled_x)
        pick = torch.randint(total_labelled, (self.extra,), device=x.device)  # (b_l,), the run's random stream
        x_l = self.labelled_x[pick]
        if self.transform is not None:
            x_l = self.transform(x_l)
        scale = n * total_labelled / (len(self.labels) * self.extra)  # s_l = (B_u / N_u) (N_l / b_l)
        return torch.cat([x, x_l]), {"y": torch.cat([y, self.labelled_y[pick]]), "split": n, "labelled_scale": scale}

    def __call__(self, x: torch.Tensor, validate: bool = False, kl_scale: Optional[torch.Tensor] = None,
                 indices: Optional[torch.Tensor] = None) -> torch.Tensor:
        x, program = self.program(x, indices)
        with pyro.validation_enabled(validate):
            loss = self.loss(x, kl_scale, **program)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()
