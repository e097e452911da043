r"""Data-parallel SVI on PyTorch's own distributed engine (``torchrun``).

``torchrun --nproc_per_node=W scripts/svi_train.py --distributed [--cuda] ...`` starts W
processes (NCCL between GPUs, gloo between CPU processes); :func:`setup` joins the group
that torchrun describes in the environment. Every rank holds the data set on its device
and walks the same global minibatches (the same seed, the same permutation); each global
minibatch of B images is cut into W contiguous shards (:func:`shard_bounds`), and rank r
scores only its own: different ranks never see the same examples in one epoch, and
together they cover the data.

Each rank's loss is an estimate of the full-data ELBO: its model and guide run under
``pyro.plate("data", N, subsample=<the rank's global indices>)``, which scales the
shard's :math:`b_r` log-densities by :math:`N / b_r`. :class:`DistributedSVIStep` averages
the W ranks' gradients, weighted by shard size (:math:`b_r / B`; :math:`1/W` when the
shards are equal), with one ``all_reduce`` per step (the same buffer carries the loss,
summed, and the ranks' stop requests), so every rank applies the same Adam update to
the same parameters, which start equal (:func:`broadcast_parameters`).

The latent noise is shared too (:class:`SharedNoise`): every rank draws the
:math:`\epsilon` of the whole global minibatch from the common random stream and uses its
shard's rows, :math:`z = \mu + \sigma \epsilon`. So W ranks compute what one process
computes on the whole global minibatch, up to the order of the floating-point sums in the
``all_reduce``: the world size does not change the run (``tests/infer/test_distributed.py``).
"""
import contextlib
import os
import signal
import threading
from typing import Iterator, Optional, Tuple

import pyro
import torch
import torch.distributed as dist
from pyro.poutine.messenger import Messenger

from ..environment import require_cuda
from ..errors import ConfigError
from .svi import ScaleLatent, SVIStep


def setup(cuda: bool) -> Tuple[int, int, torch.device]:
    """(rank, world size, device) after joining the process group torchrun set up. While a rank
    other than 0 (which writes nothing) waits for the others to join, SIGINT and SIGTERM end it at
    once: a rank whose rank 0 refused the run and never joins is stopped by torchrun without delay."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise ConfigError("--distributed needs the environment torchrun provides; start it with "
                          "torchrun --nproc_per_node=N scripts/svi_train.py --distributed ...")
    if cuda:
        require_cuda()
    if not dist.is_initialized():
        with _signals_end_the_process(os.environ["RANK"] != "0"):
            dist.init_process_group(backend="nccl" if cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", rank))
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local)
    return rank, world, torch.device("cpu")


@contextlib.contextmanager
def _signals_end_the_process(active: bool = True) -> Iterator[None]:
    """Within the context (if ``active``), SIGINT and SIGTERM have their default action (the process
    ends): the join blocks in C++, where no Python handler runs, so torchrun's SIGTERM to a rank that
    waits for a peer which never comes would otherwise go unanswered until torchrun kills it (30 s later)."""
    if not active or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, signal.SIG_DFL) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def teardown(wait: bool = True) -> None:
    """Leave the group; with ``wait``, after every rank got here (so that no rank leaves
    while rank 0 still writes its files)."""
    if dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()


def shard_bounds(batch: int, rank: int, world: int) -> Tuple[int, int]:
    """Rows ``[lo, hi)`` of a global minibatch of ``batch`` rows that rank ``rank`` of
    ``world`` scores: contiguous, disjoint, together all rows, sizes differing by one at
    most (a rank may get none of a last, small minibatch)."""
    base, extra = divmod(batch, world)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)


def broadcast_parameters(module: torch.nn.Module) -> None:
    """Every rank gets rank 0's parameters and buffers."""
    for tensor in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(tensor.data, src=0)


def broadcast_values(values, device) -> list:
    """Rank 0's list of floats (``None`` as NaN) on every rank."""
    buffer = torch.tensor([float("nan") if v is None else float(v) for v in values], dtype=torch.float64,
                          device=device)
    dist.broadcast(buffer, src=0)
    return [None if v != v else v for v in buffer.tolist()]


class SharedNoise(Messenger):
    """Draws the guide's latent ``"z"`` as :math:`\\mu + \\sigma \\epsilon` with the
    :math:`\\epsilon` of the whole global minibatch (``global_batch`` rows, from the common
    random stream) cut to this rank's rows ``[lo, hi)``: a reparameterized sample, as
    ``rsample`` would give, that does not depend on how the batch is sharded."""

    def __init__(self, global_batch: int, lo: int, hi: int, name: str = "z"):
        super().__init__()
        self.global_batch, self.lo, self.hi, self.name = global_batch, lo, hi, name

    def _process_message(self, msg):
        if msg["type"] != "sample" or msg["name"] != self.name or msg["is_observed"]:
            return
        fn = msg["fn"]
        normal, transforms = _normal_base(fn)
        shape = fn.shape()  # (..., b, z_dim): particles first, the data dim at -2
        full = shape[:-2] + (self.global_batch,) + shape[-1:]
        eps = torch.randn(full, device=normal.loc.device, dtype=normal.loc.dtype)[..., self.lo:self.hi, :]
        value = normal.loc.expand(shape) + normal.scale.expand(shape) * eps
        for transform in transforms:  # a flow guide: its transforms, row by row (each caches its inverse)
            value = transform(value)
        msg["value"] = value
        msg["done"] = True


def _normal_base(fn):
    """(Normal, transforms) of a guide distribution that is a Normal, possibly made an event
    and pushed through transforms (a flow): ``value = t_n(... t_1(base))``."""
    transforms = []
    while True:
        if isinstance(fn, pyro.distributions.Independent):
            fn = fn.base_dist
        elif isinstance(fn, torch.distributions.TransformedDistribution):
            transforms = list(fn.transforms) + transforms
            fn = fn.base_dist
        else:
            break
    if not isinstance(fn, torch.distributions.Normal):
        raise ConfigError(f"--distributed shares the guide's noise across ranks for Normal-based guides (normal, iaf); "
                          f"this guide draws from {type(fn).__name__}: train it without --distributed")
    return fn, transforms


class DistributedSVIStep(SVIStep):
    """This rank's share of an SVI step on a global minibatch ``x`` (B, D) whose rows are
    the training examples ``indices`` (B,): the loss of rows ``shard_bounds(B, ...)``
    scaled to the ``full_size`` examples, gradients averaged over the ranks (weighted by
    shard size) with one ``all_reduce``, then the optimizer step. Returns the global minibatch's summed
    :math:`-\\mathrm{ELBO}` (the same on every rank); ``stop_votes`` is the number of
    ranks that asked to stop (``request_stop``), as a tensor on the device."""

    def __init__(self, vae, elbo, optimizer, full_size: int, rank: int, world: int):
        super().__init__(vae, elbo, optimizer)
        self.full_size, self.rank, self.world = full_size, rank, world
        self.params = [p for p in vae.parameters() if p.requires_grad]
        self.stop_votes: Optional[torch.Tensor] = None
        self.stop_requested = False

    def __call__(self, x: torch.Tensor, validate: bool = False, kl_scale: Optional[torch.Tensor] = None,
                 indices: Optional[torch.Tensor] = None) -> torch.Tensor:
        if indices is None:
            raise ValueError("a distributed step needs the global indices of its minibatch")
        lo, hi = shard_bounds(len(x), self.rank, self.world)
        shard, local_indices = x[lo:hi], indices[lo:hi]  # (b, D), (b,)
        for p in self.params:
            p.grad = torch.zeros_like(p) if p.grad is None else p.grad.zero_()
        if hi > lo:
            model, guide = self.vae.model, SharedNoise(len(x), lo, hi)(self.vae.guide)
            if kl_scale is not None:
                model, guide = ScaleLatent(kl_scale)(model), ScaleLatent(kl_scale)(guide)
            with pyro.validation_enabled(validate), self.vae.local_params():
                loss = self.elbo.differentiable_loss(model, guide, shard, full_size=self.full_size,
                                                     subsample=local_indices)
            loss.backward()
            data_sum = loss.detach() * ((hi - lo) / self.full_size)  # back to the shard's plain sum
        else:  # no rows for this rank in a last, small minibatch: it only joins the all_reduce,
            # after drawing the noise the others draw, to keep the common stream in step
            particles = (self.elbo.num_particles,) if self.elbo.vectorize_particles else ()
            torch.randn(particles + (len(x), self.vae.z_dim), device=x.device)
            data_sum = torch.zeros((), device=x.device)
        # each rank's gradient estimates the full-data ELBO's from its shard; their average,
        # weighted by shard size (b_r / B: 1 / W for equal shards, 0 for an empty one), is
        # the estimate from the whole global minibatch
        weight = (hi - lo) / len(x)
        vote = torch.tensor([float(self.stop_requested)], device=x.device)
        flat = torch.cat([p.grad.reshape(-1) * weight for p in self.params] + [data_sum.reshape(1), vote])
        dist.all_reduce(flat)  # sum over ranks
        offset = 0
        for p in self.params:
            p.grad.copy_(flat[offset:offset + p.numel()].view_as(p))
            offset += p.numel()
        self.stop_votes = flat[-1]
        self.optimizer.step()
        return flat[-2]  # the global minibatch's summed -ELBO
