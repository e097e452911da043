"""Seconds per epoch with the training data on the device and streamed from host memory
(``scripts/bench_data.py``).

Each placement trains its own copy of the same initial VAE with the same step (eager, or
``--fast``) over the same minibatches: every epoch's order comes from one seed and its
random draws from another, so the placements compute the same losses (the JSON records
whether the epoch sums agree bit for bit). Placements are timed interleaved, one epoch
each in turn, each epoch between two device synchronizations; the first epoch of each is
a warm-up (compilation, allocations) and is not timed. The result is the median over the
timed epochs, with images per second.

* ``device``: the rows moved to the device once, each minibatch gathered there;
* ``host, streamed``: :class:`~pyrovae.data.placement.HostRows`, pinned, each minibatch
  gathered on the host and copied on a side stream while the step before it computes;
* ``host, naive``: pageable rows, each minibatch gathered and copied with a blocking
  ``.to(device)`` just before its step: what streaming costs without the pipeline.

On a CPU the data are in host memory already (``place_data`` never streams there); the
host rows then time only the extra gather and copy.
"""
import copy
import statistics
import tempfile
import time
from pathlib import Path
from typing import List, Optional

import torch

from pyrovae.cli.common import _command, _guarded, _Help, _Parser
from pyrovae.data.datasets import load_dataset
from pyrovae.data.placement import DEVICE_FRACTION, HostRows, choose_placement
from pyrovae.data.transforms import binarize
from pyrovae.environment import device_name, select_device, versions
from pyrovae.infer.compiled import CompiledSVIStep
from pyrovae.infer.elbos import make_elbo
from pyrovae.infer.svi import EpochState, SVIStep, make_optimizer, run_epoch
from pyrovae.model.vae import VAE
from pyrovae.training.files import write_report

from .host import describe, machine


class _NaiveRows(HostRows):
    """Pageable rows, each minibatch gathered and copied with a blocking ``.to(device)``."""

    def batches(self, index_batches, device, slots: int = 2):
        for index in index_batches:
            yield self.rows[index.cpu()].to(device)


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(x: torch.Tensor, device, batch_size: int = 128, epochs: int = 4, hidden=(400,), fast: bool = False,
            log=print) -> dict:
    """Time ``epochs`` epochs (the first untimed) of each placement of ``x`` (N, D) in [0, 1],
    binarized per minibatch unless binary already."""
    device = torch.device(device)
    binary = bool(((x == 0) | (x == 1)).all())
    torch.manual_seed(0)
    initial = VAE(x.shape[1], 50, tuple(hidden), "bernoulli").to(device)
    setups = {"device": x.to(device), "host, streamed": HostRows(x, log=log),
              "host, naive": _NaiveRows(x, pin=False)}
    steps, seconds, totals = {}, {name: [] for name in setups}, {name: [] for name in setups}
    for name in setups:
        vae = copy.deepcopy(initial)
        step_class = CompiledSVIStep if fast else SVIStep
        steps[name] = step_class(vae, make_elbo("meanfield"), make_optimizer(vae.parameters(), 1e-3))
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(epoch)).to(device)
        for name, data in setups.items():
            state = EpochState(order.clone(), 0, torch.zeros((), device=device),
                               torch.full((), -1, dtype=torch.long, device=device))
            torch.manual_seed(1000 + epoch)
            _sync(device)
            start = time.perf_counter()
            run_epoch(steps[name], data, state, batch_size, None if binary else binarize)
            _sync(device)
            if epoch > 0:
                seconds[name].append(time.perf_counter() - start)
            totals[name].append(state.total.clone())
        log(f"epoch {epoch + 1}/{epochs}" + ("" if epoch else " (warm-up)") + ": "
            + ", ".join(f"{n} {seconds[n][-1]:.3f} s" for n in setups if epoch > 0))
    rows = []
    for name, data in setups.items():
        median = statistics.median(seconds[name])
        rows.append({"placement": name, "seconds_per_epoch": median, "images_per_s": len(x) / median,
                     "epochs_timed": len(seconds[name]), "seconds": seconds[name],
                     "pinned": bool(getattr(data, "pinned", False)),
                     "same_losses_as_device": all(torch.equal(a, b) for a, b in zip(totals[name], totals["device"]))})
    for row in rows:
        row["relative_to_device"] = row["seconds_per_epoch"] / rows[0]["seconds_per_epoch"]
    return {"rows": rows, "binarized_per_minibatch": not binary,
            "mode": getattr(steps["device"], "mode", "eager")}


def run(args, command: str, log=print) -> dict:
    device = select_device(args.cuda)
    dataset = load_dataset(args.dataset, args.data_dir, download=False, log=log)
    x = dataset.train_x.float()
    if args.repeat > 1:
        x = x.repeat(args.repeat, 1)  # (repeat * N, D): a larger data set of the same rows
    need = 4 * x.numel()
    free = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else None
    log(f"{len(x)} rows of {x.shape[1]} ({need / 2**20:.0f} MiB as float32) on {device_name(device)}")
    result = {"command": command, "device": device_name(device), "dataset": dataset.name, "num_rows": len(x),
              "x_dim": x.shape[1], "batch_size": args.batch_size, "epochs": args.epochs, "hidden": args.hidden,
              "fast": args.fast, "data_bytes": need, "free_device_bytes": free, "device_fraction": DEVICE_FRACTION,
              "auto_placement": choose_placement(need, free) if free is not None else "device",
              "versions": versions(device), "machine": machine(),
              **measure(x, device, args.batch_size, args.epochs, args.hidden, args.fast, log)}
    if device.type != "cuda":
        result["note"] = ("streaming is moot on the CPU: the data are in host memory already and place_data keeps "
                          "them there as they are; the host rows time only an extra gather and copy per minibatch")
    log(write_report(args.out, "data_placement", result, markdown(result)).read_text())
    return result


def markdown(r: dict) -> str:
    free = "" if r["free_device_bytes"] is None else f", {r['free_device_bytes'] / 2**30:.1f} GiB free on the device"
    lines = [f"# An epoch with the data on the device and streamed from host memory ({r['device']})", "",
             f"Ran on: {describe(r['machine'], r['versions'])}.", "",
             f"{r['dataset']}: {r['num_rows']} rows of {r['x_dim']} ({r['data_bytes'] / 2**20:.0f} MiB as float32{free}); "
             f"batch {r['batch_size']}, MLP {r['hidden']}, {r['mode']} step; median over {r['epochs'] - 1} epochs "
             f"after a warm-up. `placement=auto` would choose **{r['auto_placement']}** (data up to "
             f"{r['device_fraction']:.0%} of the free device memory go to the device).", "",
             "| placement | pinned | s / epoch | images / s | vs device | same losses |",
             "| --- | --- | ---: | ---: | ---: | --- |"]
    for row in r["rows"]:
        lines.append(f"| {row['placement']} | {'yes' if row['pinned'] else 'no'} | {row['seconds_per_epoch']:.3f} | "
                     f"{row['images_per_s']:,.0f} | {row['relative_to_device']:.2f}x | "
                     f"{'yes' if row['same_losses_as_device'] else 'no'} |")
    if "note" in r:
        lines += ["", f"Note: {r['note']}."]
    lines += ["", f"Command: `{r['command']}`", ""]
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    p = _Parser(description="Time an epoch with the training data on the device and streamed from pinned host "
                "memory; write <out>/data_placement.{md,json}.", formatter_class=_Help)
    p.add_argument("--cuda", action="store_true", help="train on the GPU (without it: the CPU, where streaming is moot)")
    p.add_argument("--dataset", default="binarized-mnist", help="the data the epochs train on")
    p.add_argument("--data-dir", default="./data", help="where the data set is read from")
    p.add_argument("--batch-size", type=int, default=128, help="images per minibatch")
    p.add_argument("--epochs", type=int, default=4, help="epochs per placement (the first is not timed)")
    p.add_argument("--hidden", type=int, nargs="+", default=[400], help="hidden widths of the MLP")
    p.add_argument("--repeat", type=int, default=1, help="tile the training rows this many times")
    p.add_argument("--fast", action="store_true", help="the compiled step (on CUDA, CUDA-graph replay)")
    p.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "pyrovae-bench"),
                   help="folder of data_placement.{md,json} (give results/bench to record a result)")
    args = p.parse_args(argv)
    if min(args.hidden + [args.batch_size, args.repeat]) <= 0 or args.epochs < 2:
        p.error("sizes must be positive and --epochs at least 2 (the first is not timed)")
    return _guarded(lambda: run(args, _command("scripts/bench_data.py", argv)), args.out)
