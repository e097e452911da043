r"""pyrovae against its peers on the CPU (``scripts/bench_peers.py``): seconds per training
epoch and per step, at each thread count, as ratios to a hand-written PyTorch loop and as
multiples of this machine's matrix-product floor.

The systems train the same VAE (784-400-(50+50) encoder with softplus hidden units, 50-400-784
decoder, Bernoulli logits, N(0, I) prior, Adam lr 1e-3) on the same binary rows in the same
minibatch order (epoch ``e`` visits ``numpy.random.RandomState(e).permutation(N)``, ``N // B``
full minibatches of ``B``, as NumPyro's example does):

* ``PyTorch by hand``: the reference, :func:`benchmarks.bench.reference_step` (analytic
  KL, ``torch.optim.Adam`` as it comes) in a plain loop, ``total += step(x[idx])``;
* ``stock Pyro``: ``pyro.infer.SVI`` with ``pyro.optim.Adam`` and ``Trace_ELBO``, as Pyro's
  VAE example trains, on the same networks;
* pyrovae's eager step with each ELBO and ``--fast`` (the compiled step), each in pyrovae's own
  epoch loop (:func:`pyrovae.infer.svi.run_epoch`);
* ``NumPyro``: the same model with ``stax`` networks, the epoch one ``jit``-ted
  ``lax.fori_loop`` over ``svi.update`` (NumPyro's ``examples/vae.py``), in a process of its
  own (:mod:`.bench_peers_numpyro`), skipped with the reason when NumPyro or JAX is not
  importable there;
* "before" rows: pyrovae's steps without a speed change, measured in the same rounds;
* ``--fast`` with its products on oneDNN whatever it would choose (where this torch has oneDNN):
  beside the ``torch.mm`` "before" row, the epoch-long check of the GEMM ``--fast`` chose from
  its short timing of the products (the report says whether every round agrees with the choice).

**Protocol.** One warm-up epoch per system and thread count (compilation, allocation), then
``rounds`` rounds; in each, at each thread count, every system trains one epoch and one
block of steps on 8 fixed minibatches, in an order rotated by one each round. Wall and
process CPU seconds are taken per epoch and per block. A system's ratio to the reference
is taken within each round and the median over rounds is reported with its spread (min,
max). Each row's CPU seconds (its process's, all threads, user and system) are reported beside
its wall seconds, and their ratio, the threads it effectively used. At one thread every row is
held to one core, the same one (``--no-pin``: not held): the PyTorch rows' thread by
``os.sched_setaffinity`` while they run, NumPyro's process from its start (``taskset``'s way, so
each thread XLA starts is held too), which also runs with ``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false
intra_op_parallelism_threads=1``; XLA has no flag that bounds all its threads, so pinning is what
makes the one-thread rows like for like. At more threads no row is held, XLA's pool as it comes.
The environment's OpenMP settings (``OMP_WAIT_POLICY``) are recorded.

**The floor.** One step's matrix products are, per linear layer (in -> out, batch B), the
forward :math:`B \times in \times out`, the weight gradient :math:`out \times B \times in`
and the input gradient :math:`B \times out \times in`, except the first layer's input
gradient, which nothing needs. At :math:`2mnk` FLOPs each, the forward is
:math:`F = \sum 2 B \cdot in \cdot out` and the backward :math:`2F` (less that one product).
The floor of an epoch is the time of exactly those products, ``N // B`` times, with
``torch.mm`` on contiguous operands (the BLAS torch uses) and with oneDNN
(``pyrovae::onednn_mm``), timed as rows of the same rounds. The report's floor is the faster of
the two on the machine (the lower median epoch), named; ``--fast`` is measured against it.

The report is written as ``peers-<cpu>.{md,json}``, ``<cpu>`` the slug of the CPU model
(:func:`benchmarks.host.cpu_slug`), so records of different CPUs sit side by side.
"""
import copy
import os
import shlex
import statistics
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import pyro
import torch

from pyrovae.cli.common import _command, _guarded, _Help, _Parser
from pyrovae.data.datasets import load_dataset
from pyrovae.environment import versions
from pyrovae.errors import DataError
from pyrovae.infer.compiled import CompiledSVIStep, onednn_available
from pyrovae.infer.elbos import TraceMeanField_ELBO, make_elbo
from pyrovae.infer.svi import EpochState, SVIStep, make_optimizer, run_epoch
from pyrovae.model.vae import VAE
from pyrovae.training.files import write_report

from .bench import reference_step, stock_pyro_step
from .bench_peers_floor import floor_step, flops, matmul_shapes
from .bench_peers_report import (
    FAST,
    FAST_BEFORE,
    FAST_HOST_BEFORE,
    FAST_ONEDNN,
    FAST_ORIGINAL,
    FLOOR_MM,
    FLOOR_ONEDNN,
    MEANFIELD,
    MEANFIELD_BEFORE,
    REFERENCE,
    STOCK,
    TRACE,
    markdown,
    summarize,
)
from .bench_peers_worker import NumPyroWorkers
from .host import ENVIRONMENT, cpu_slug, held_to, machine, one_core


class _PyroTracesMeanField(TraceMeanField_ELBO):
    """pyrovae's TraceMeanField_ELBO scoring every site, as Pyro's traces do (the "before" row)."""

    _get_trace = pyro.infer.TraceMeanField_ELBO._get_trace


class _DynamoGuardedStep(CompiledSVIStep):
    """The compiled step called through ``torch.compile`` (TorchDynamo's guards) and stepped
    by ``optimizer.step()`` every time (the "before" rows)."""

    def _compile_graph(self, traced, example):
        return torch.compile(traced, dynamic=False, options={"fallback_random": True})

    def _optimizer_step(self, grads):
        self.optimizer.step()


def _pyrovae(kind, fast=False, host_before=False, **options):
    def factory(vae):
        elbo = _PyroTracesMeanField(max_plate_nesting=1) if kind == "meanfield-before" else make_elbo(kind)
        optimizer = make_optimizer(vae.parameters(), 1e-3)
        if not fast:
            return SVIStep(vae, elbo, optimizer)
        return (_DynamoGuardedStep if host_before else CompiledSVIStep)(vae, elbo, optimizer, **options)
    return factory


#: name -> (factory(vae) -> step, loop): "plain" (total += step(x[idx])) or "pyrovae" (run_epoch)
TORCH_SYSTEMS: Dict[str, tuple] = {
    REFERENCE: (reference_step, "plain"),
    STOCK: (lambda vae: stock_pyro_step(vae, "trace"), "plain"),
    TRACE: (_pyrovae("trace"), "pyrovae"),
    MEANFIELD: (_pyrovae("meanfield"), "pyrovae"),
    MEANFIELD_BEFORE: (_pyrovae("meanfield-before"), "pyrovae"),
    FAST: (_pyrovae("trace", fast=True), "pyrovae"),
    FAST_BEFORE: (_pyrovae("trace", fast=True, onednn=False), "pyrovae"),
    FAST_ONEDNN: (_pyrovae("trace", fast=True, onednn=True), "pyrovae"),  # where oneDNN is available
    FAST_HOST_BEFORE: (_pyrovae("trace", fast=True, host_before=True), "pyrovae"),
    FAST_ORIGINAL: (_pyrovae("trace", fast=True, host_before=True, onednn=False), "pyrovae"),
}


class _Timed:
    """One system at one thread count: its step, how its epoch runs, its timings."""

    def __init__(self, name, step, loop):
        self.name, self.step, self.loop = name, step, loop

    def epoch(self, x, seed, order, batch) -> dict:
        wall, cpu = time.perf_counter(), time.process_time()
        if self.loop == "pyrovae":
            state = EpochState(order.clone(), 0, torch.zeros(()), torch.full((), -1, dtype=torch.long))
            run_epoch(self.step, x, state, batch)
            total = float(state.total)
        elif self.loop == "floor":
            for _ in range(len(order) // batch):
                self.step()
            total = None
        else:
            total = 0.0
            for idx in order.split(batch):
                total = total + self.step(x[idx])
            total = float(total)
        return {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu, "loss_sum": total}

    def steps(self, batches, n) -> dict:
        wall, cpu = time.perf_counter(), time.process_time()
        for i in range(n):
            self.step(batches[i % len(batches)])
        return {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu, "steps": n}


def binary_rows(x: torch.Tensor) -> torch.Tensor:
    """``x`` as float32, grey levels binarized once by a fixed generator (every process draws the same), contiguous."""
    x = x.float()
    if not bool(((x == 0) | (x == 1)).all()):
        x = torch.bernoulli(x, generator=torch.Generator().manual_seed(0))
    return x.contiguous()


def epoch_order(num: int, seed: int, steps: int, batch: int) -> torch.Tensor:
    return torch.from_numpy(np.random.RandomState(seed).permutation(num)[:steps * batch].astype(np.int64))


def run_peers(args, command: str, log=print) -> dict:
    dataset = load_dataset(args.dataset, args.data_dir, download=False, log=log)
    x = binary_rows(dataset.train_x)
    num, x_dim = x.shape
    steps = num // args.batch_size if args.max_steps is None else min(num // args.batch_size, args.max_steps)
    if steps < 1:
        raise DataError(f"{num} rows make no minibatch of {args.batch_size}; lower --batch-size")
    shapes = matmul_shapes(x_dim, args.hidden, args.z_dim, args.batch_size)
    g = np.random.RandomState(12345)
    fixed = [x[torch.from_numpy(np.sort(g.choice(num, args.batch_size, replace=False)))] for _ in range(8)]
    torch.manual_seed(0)
    initial = VAE(x_dim, args.z_dim, tuple(args.hidden))
    workdir = tempfile.TemporaryDirectory(prefix="pyrovae-peers-")
    core = one_core() if args.pin else None
    workers = NumPyroWorkers(args.numpyro, args.numpyro_path, x, Path(workdir.name), args, steps, log, core)
    host = machine(ENVIRONMENT)
    settings = host["environment"]
    command = " ".join([*(f"{k}={shlex.quote(v)}" for k, v in settings.items()), command])
    result = {"command": command, "machine": host, "versions": {**versions(), **workers.versions},
              "protocol": {"dataset": dataset.name, "rows": num, "batch_size": args.batch_size, "hidden": args.hidden,
                           "z_dim": args.z_dim, "steps_per_epoch": steps, "images_per_epoch": steps * args.batch_size,
                           "rounds": args.rounds, "threads": args.threads, "steps_per_block": args.steps_per_block,
                           "order": "rotated by one each round", "optimizer": "Adam lr 1e-3",
                           "one_thread_core": core},
              "flops": flops(x_dim, args.hidden, args.z_dim, args.batch_size), "matmul_shapes": shapes,
              "numpyro": workers.status, "load_average_start": os.getloadavg(), "warmup": {}, "rounds": []}
    systems: Dict[int, List[_Timed]] = {}
    try:
        for t in args.threads:
            torch.set_num_threads(t)
            systems[t] = [_Timed(name, factory(copy.deepcopy(initial)), loop)
                          for name, (factory, loop) in TORCH_SYSTEMS.items()
                          if name != FAST_ONEDNN or onednn_available()]
            systems[t] += [_Timed(FLOOR_MM, floor_step(shapes, False), "floor")]
            if onednn_available():
                systems[t] += [_Timed(FLOOR_ONEDNN, floor_step(shapes, True), "floor")]
            if workers.running:
                systems[t].append(workers.system(t))
            log(f"{t} thread(s): warm-up epoch of {len(systems[t])} systems")
            order = epoch_order(num, 0, steps, args.batch_size)
            with held_to(core if t == 1 else None):
                result["warmup"][t] = {s.name: {**s.epoch(x, 0, order, args.batch_size),
                                                **_mode(s)} for s in systems[t]}
                for s in systems[t]:
                    s.steps(fixed, 2)
        for r in range(args.rounds):
            order = epoch_order(num, r + 1, steps, args.batch_size)
            record = {"round": r + 1, "epochs": {}, "steps": {}}
            for t in args.threads:
                torch.set_num_threads(t)
                turn = systems[t][r % len(systems[t]):] + systems[t][:r % len(systems[t])]
                with held_to(core if t == 1 else None):
                    record["epochs"][t] = {s.name: s.epoch(x, r + 1, order, args.batch_size) for s in turn}
                    record["steps"][t] = {s.name: s.steps(fixed, args.steps_per_block) for s in turn}
                log(f"round {r + 1}/{args.rounds}, {t} thread(s): " + ", ".join(
                    f"{s.name} {record['epochs'][t][s.name]['wall_s']:.2f} s" for s in systems[t]))
            result["rounds"].append(record)
    finally:
        workers.close()
        workdir.cleanup()
    result["load_average_end"] = os.getloadavg()
    result["gather_us"] = _gather_timing(x, args.batch_size)
    result["summary"] = summarize(result)
    log(write_report(args.out, f"peers-{cpu_slug(host['cpu'])}", result, markdown(result)).read_text())
    return result


def _mode(system: _Timed) -> dict:
    step = getattr(system, "step", None)
    if isinstance(step, CompiledSVIStep):
        return {"mode": step.mode, "onednn_matmuls": step.onednn_matmuls, "fast_step": step.fast_step}
    return {}


def _gather_timing(x: torch.Tensor, batch: int, repeats: int = 200) -> dict:
    """Microseconds per minibatch gather: advanced indexing against ``index_select``."""
    idx = torch.from_numpy(np.random.RandomState(7).permutation(len(x))[:batch])
    out = {}
    for name, fn in (("x[idx]", lambda: x[idx]), ("index_select", lambda: x.index_select(0, idx))):
        best = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(repeats):
                fn()
            best.append((time.perf_counter() - start) / repeats * 1e6)
        out[name] = statistics.median(best)
    return out


def main(argv: Optional[List[str]] = None) -> int:
    """``scripts/bench_peers.py``: pyrovae against a hand-written PyTorch loop, stock Pyro and NumPyro."""
    p = _Parser(description="Time pyrovae (eager, --fast) against a hand-written PyTorch loop, stock Pyro SVI and "
                "NumPyro on the CPU, per training epoch and per step, at each thread count, interleaved in rounds; "
                "also the time of the step's matrix products alone (the floor). Writes <out>/peers-<cpu>.{md,json}, "
                "<cpu> the CPU model.",
                formatter_class=_Help)
    p.add_argument("--dataset", default="binarized-mnist",
                   help="the rows every system trains on: a data set name or a file (grey levels are binarized once)")
    p.add_argument("--data-dir", default="./data", help="where the data set is read from")
    p.add_argument("--batch-size", type=int, default=256, help="images per minibatch")
    p.add_argument("--hidden", type=int, nargs="+", default=[400], help="hidden widths of the MLPs")
    p.add_argument("--z-dim", type=int, default=50, help="latent dimensions")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                   help="thread counts to time at (torch.set_num_threads; NumPyro: XLA's intra-op threads)")
    p.add_argument("--rounds", type=int, default=3,
                   help="timed rounds after the warm-up epoch; each trains every system one epoch and one block")
    p.add_argument("--steps-per-block", type=int, default=20, help="steps of the per-step timing in each round")
    p.add_argument("--max-steps", type=int, default=None,
                   help="at most this many minibatches per epoch (default: all full minibatches)")
    p.add_argument("--numpyro-path", default=None, metavar="DIR",
                   help="PYTHONPATH of the NumPyro process (default: this environment's; pip install 'pyrovae[bench]')")
    p.add_argument("--no-numpyro", dest="numpyro", action="store_false", help="leave the NumPyro row out")
    p.add_argument("--no-pin", dest="pin", action="store_false",
                   help="leave the 1-thread rows free to run on any core (default: all held to the same one)")
    p.add_argument("--out", default="runs/bench", help="folder of peers-<cpu>.{md,json} (<cpu>: the CPU model)")
    args = p.parse_args(argv)
    sizes = args.hidden + args.threads + [args.batch_size, args.z_dim, args.rounds, args.steps_per_block]
    if min(sizes + ([] if args.max_steps is None else [args.max_steps])) <= 0:
        p.error("sizes, thread counts, --rounds, --steps-per-block and --max-steps must be positive integers")
    return _guarded(lambda: run_peers(args, command=_command("scripts/bench_peers.py", argv)), args.out)
