r"""The SVI loop: one step, one epoch.

One SVI step is Pyro's :class:`~pyro.infer.SVI` step written out: the ELBO's
``differentiable_loss(model, guide, x)`` (an estimate of :math:`-\mathrm{ELBO}` summed
over the minibatch, averaged over particles; see :mod:`pyrovae.infer.elbos`), backward, and a
``torch.optim`` step on the VAE's parameters. Written out, the loop keeps the running
loss on the device (``pyro.infer.SVI.step`` returns a Python float, a host read every
step), runs model and guide with the VAE's parameters local to its modules rather than
looked up in Pyro's global param store, and uses a plain optimizer whose state dict goes
into checkpoints unchanged. ``pyro.infer.SVI`` trains the same model and guide.

:class:`SVIStep` runs the step eagerly; :class:`pyrovae.infer.compiled.CompiledSVIStep`
(``--fast``) replays a compiled graph of it.

KL warm-up (Bowman et al. 2016; Sønderby et al. 2016) trains on

.. math::
    \mathcal{L}_\beta = \mathbb{E}_q[\log p(x \mid z)] - \beta\, \mathrm{KL}(q(z \mid x) \,\|\, p(z)),
    \qquad \beta_e = \min(1, e / W) \text{ in epoch } e = 1, 2, \dots

by scaling the log-densities of the model's latent sites (``latent_sites``: the VAE's ``"z"``) in model and guide by
:math:`\beta` (:class:`ScaleLatent`), so both ELBO estimators see it (the Monte-Carlo
KL through the scaled log-densities, the closed form through the guide site's scale).
The model itself is never changed: evaluation always scores the true ELBO.
"""
import contextlib
from dataclasses import dataclass
from typing import Callable, Optional, Union

import pyro
import torch
from pyro.infer import ELBO
from pyro.poutine.messenger import Messenger
from tqdm.auto import tqdm

from ..data.placement import HostRows


def make_optimizer(parameters, lr: float) -> torch.optim.Adam:
    """Adam, with PyTorch's fused single-kernel implementation where this torch build
    has one for the parameters' device (the same update as the default, fewer launches)."""
    parameters = list(parameters)
    try:
        return torch.optim.Adam(parameters, lr=lr, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(parameters, lr=lr)


def kl_warmup_scale(epoch: int, warmup_epochs: int) -> float:
    r""":math:`\beta_e = \min(1, e / W)` for epoch ``e`` (1-based); 1 without warm-up."""
    return 1.0 if warmup_epochs <= 0 else min(1.0, epoch / warmup_epochs)


class ScaleLatent(Messenger):
    """Multiplies the log-density scale of the sample sites named ``names`` by ``scale``
    (a number or a 0-d tensor), leaving every other site alone."""

    def __init__(self, scale, names=("z",)):
        super().__init__()
        self.scale, self.names = scale, frozenset(names)

    def _process_message(self, msg):
        if msg["type"] == "sample" and msg["name"] in self.names:
            msg["scale"] = self.scale * msg["scale"]


class SVIStep:
    """``step(x) -> loss``: one SVI step on the minibatch ``x`` (B, D); returns the
    :math:`-\\mathrm{ELBO}` estimate as a detached 0-d tensor on ``x``'s device (no host
    read). With ``validate=True`` Pyro's distribution and trace checks run for this step;
    ``kl_scale`` (a 0-d tensor) is the warm-up's :math:`\beta`, ``None`` for 1;
    ``indices``, the rows' places in the training set, matter to distributed steps only."""

    def __init__(self, vae, elbo: ELBO, optimizer: torch.optim.Optimizer):
        self.vae, self.elbo, self.optimizer = vae, elbo, optimizer

    def loss(self, x: torch.Tensor, kl_scale: Optional[torch.Tensor] = None) -> torch.Tensor:
        model, guide = self.vae.model, self.vae.guide
        if kl_scale is not None:  # every continuous latent site of the program (the VAE's: "z")
            sites = getattr(self.vae, "latent_sites", ("z",))
            model, guide = ScaleLatent(kl_scale, sites)(model), ScaleLatent(kl_scale, sites)(guide)
        with self.vae.local_params():
            return self.elbo.differentiable_loss(model, guide, x)

    def __call__(self, x: torch.Tensor, validate: bool = False, kl_scale: Optional[torch.Tensor] = None,
                 indices: Optional[torch.Tensor] = None) -> torch.Tensor:
        with pyro.validation_enabled(validate):
            loss = self.loss(x, kl_scale)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()


@dataclass
class EpochState:
    """Where an epoch stands: its minibatch order, how far it got, its running sums.
    Everything stays on the training device; checkpoints carry it for an exact resume."""

    order: torch.Tensor  # (N,) this epoch's permutation of the training set
    position: int = 0  # minibatches done
    total: Optional[torch.Tensor] = None  # 0-d: summed loss (-ELBO, or the warm-up objective) so far
    first_bad: Optional[torch.Tensor] = None  # 0-d long: first minibatch with a non-finite loss, -1 if none

    @classmethod
    def start(cls, num: int, device, generator: Optional[torch.Generator] = None) -> "EpochState":
        return cls(torch.randperm(num, device=device, generator=generator), 0,
                   torch.zeros((), device=device), torch.full((), -1, dtype=torch.long, device=device))

    def num_batches(self, batch_size: int) -> int:
        return -(-len(self.order) // batch_size)

    def state_dict(self) -> dict:
        return {"order": self.order, "position": self.position, "total": self.total, "first_bad": self.first_bad}

    @classmethod
    def from_state_dict(cls, d: dict, device) -> "EpochState":
        return cls(d["order"].to(device), int(d["position"]), d["total"].to(device), d["first_bad"].to(device))


def run_epoch(
    step: Callable[..., torch.Tensor],
    x: Union[torch.Tensor, HostRows],
    state: EpochState,
    batch_size: int,
    transform: Optional[Callable] = None,
    kl_scale: Optional[torch.Tensor] = None,
    validate_first_step: bool = False,
    progress: Optional[tqdm] = None,
    after_step: Optional[Callable[[EpochState], bool]] = None,
) -> bool:
    """Go on with the epoch ``state`` over ``x`` (N, D), minibatch by minibatch; return
    True when it is done, False when ``after_step`` (called after every step) asked to
    stop early.

    ``x`` is a tensor already on the training device, where each minibatch is gathered,
    or :class:`~pyrovae.data.placement.HostRows` in host memory: then the epoch's order
    is copied to the host once, each minibatch is gathered there and copied to the device
    while the step before it computes (:meth:`HostRows.batches`), and the steps see the
    same rows in the same order.

    Nothing here reads the device back to the host, except the progress bar's refresh
    every 25 steps (and, for ``HostRows``, the order once per call): the loss, and the index
    of the first non-finite one, accumulate on the device. Pyro's checks run on the first
    step when ``validate_first_step`` (the data themselves were checked against the
    likelihood's support before training)."""
    batches = state.order.split(batch_size)
    if isinstance(x, HostRows):
        on_host = state.order.cpu().split(batch_size)  # the one device-to-host copy of the call
        rows = x.batches(on_host[state.position:], state.order.device)
    else:
        # (B, D), gathered on the device; index_select copies whole rows (x[b], advanced
        # indexing, computes an offset per element: 3x slower for a 256-row minibatch on a CPU)
        rows = (x.index_select(0, b) for b in batches[state.position:])
    with contextlib.closing(rows):
        for i, batch in zip(range(state.position, len(batches)), rows):
            if transform is not None:
                batch = transform(batch)
            loss = step(batch, validate=validate_first_step and i == 0, kl_scale=kl_scale, indices=batches[i])
            state.total += loss
            bad = (~torch.isfinite(loss)) & (state.first_bad < 0)
            state.first_bad = torch.where(bad, torch.full_like(state.first_bad, i), state.first_bad)
            state.position = i + 1
            if progress is not None and not progress.disable:
                progress.update(len(batches[i]))
                if i % 25 == 0:  # the only host read inside the epoch, for the display
                    seen = min(len(state.order), (i + 1) * batch_size)  # all but the last batch are full
                    progress.set_postfix_str(f"-ELBO {state.total.item() / seen:.2f}", refresh=False)
            if after_step is not None and after_step(state) and state.position < len(batches):
                return False
    return True
