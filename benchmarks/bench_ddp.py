"""Throughput of data-parallel training, behind ``scripts/bench_ddp.py``.

Real training runs of ``scripts/svi_train.py``, one after the other on the same data
and settings: one process without ``--distributed`` (the reference), then
``torchrun --nproc_per_node=W ... --distributed`` for each W asked for. Each run's
seconds per epoch come from its own ``metrics.json`` (the median over its epochs after
the first, which pays start-up costs); images per second are training images over that.
Writes ``ddp.md`` and ``ddp.json``.
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import List, Optional, Sequence

import torch

from pyrovae.cli.common import _command, _guarded, _Help, _Parser
from pyrovae.data.datasets import DATASETS
from pyrovae.environment import versions
from pyrovae.errors import TrainingError
from pyrovae.training.checkpoint import write_json

from .host import describe, machine

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "svi_train.py"  # benchmarks/ -> the repository


def _run(command: List[str], threads: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        tail = " ".join(result.stderr.strip().splitlines()[-3:])
        raise TrainingError(f"{' '.join(command[:6])} ... failed: {tail}")
    return result


def measure(train_args: Sequence[str], processes: Sequence[int], threads: int, reference_threads: Sequence[int],
            cuda: bool, log=print) -> List[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        setups = ([(f"1 process, no --distributed, {t} thread{'s' * (t > 1)}", None, t) for t in reference_threads]
                  + [(f"torchrun --distributed, {w} process{'es' * (w > 1)}", w, threads) for w in processes])
        for i, (label, world, n_threads) in enumerate(setups):
            out = Path(tmp) / f"run-{i}"
            args = [*train_args, "--out", str(out), "--no-progress"] + (["--cuda"] if cuda else [])
            if world is None:
                command = [sys.executable, str(SCRIPT), *args]
            else:
                command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                           f"--nproc_per_node={world}", str(SCRIPT), *args, "--distributed"]
            log(f"{label}: {' '.join(command[1:])}")
            _run(command, n_threads)
            metrics = json.loads((out / "metrics.json").read_text())
            seconds = [h["seconds"] for h in metrics["history"]][1:] or [metrics["history"][0]["seconds"]]
            per_epoch = statistics.median(seconds)
            rows.append({"setup": label, "processes": world or 1, "threads_per_process": n_threads,
                         "seconds_per_epoch": per_epoch, "epochs_timed": len(seconds),
                         "images_per_s": metrics["dataset"]["num_train"] / per_epoch,
                         "final_train_elbo": metrics["history"][-1]["train_elbo"], "device": metrics["device"]})
    base = rows[0]["images_per_s"]
    for row in rows:
        row["speedup"] = row["images_per_s"] / base
    return rows


def run_scaling(args, command: str, log=print) -> dict:
    train_args = ["--dataset", args.dataset, "--data-dir", args.data_dir, "--no-download", "--epochs", str(args.epochs),
                  "--batch-size", str(args.batch_size), "--hidden", *map(str, args.hidden), "--test-frequency",
                  str(args.epochs)]
    rows = measure(train_args, args.processes, args.threads, args.reference_threads, args.cuda, log)
    result = {"command": command, "train_args": train_args, "rows": rows, "cpus": os.cpu_count(),
              "gpus": torch.cuda.device_count() if args.cuda else 0,
              "versions": versions(), "machine": machine()}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "ddp.json", result)
    (out / "ddp.md").write_text(_markdown(result))
    log((out / "ddp.md").read_text())
    return result


def _markdown(r: dict) -> str:
    lines = [f"# Data-parallel training throughput ({r['rows'][0]['device']}, {r['cpus']} CPUs, {r['gpus']} GPUs)", "",
             f"Ran on: {describe(r['machine'], r['versions'], 'as in the table')}. Training arguments: "
             f"`{' '.join(r['train_args'])}`; seconds per epoch are the median over the epochs after the first.", "",
             "| setup | processes | threads each | s / epoch | images / s | speed-up | final train ELBO |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in r["rows"]:
        lines.append(f"| {row['setup']} | {row['processes']} | {row['threads_per_process']} | "
                     f"{row['seconds_per_epoch']:.2f} | {row['images_per_s']:,.0f} | {row['speedup']:.2f}x | "
                     f"{row['final_train_elbo']:.2f} |")
    lines += ["", f"Command: `{r['command']}`", ""]
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    """``scripts/bench_ddp.py``: training throughput with 1 and N processes."""
    p = _Parser(description="Train the same VAE in one process and under torchrun with N processes "
                "(--distributed); write the throughput to <out>/ddp.{md,json}.",
                formatter_class=_Help)
    p.add_argument("--cuda", action="store_true", help="one GPU per process (NCCL)")
    p.add_argument("--dataset", default="binarized-mnist", choices=DATASETS, help="the data the runs train on")
    p.add_argument("--data-dir", default="./data", help="where the data set is read from")
    p.add_argument("--epochs", type=int, default=4, help="epochs per run (the first is not timed)")
    p.add_argument("--batch-size", type=int, default=128, help="the global minibatch")
    p.add_argument("--hidden", type=int, nargs="+", default=[400], help="hidden widths of the MLP")
    p.add_argument("--processes", type=int, nargs="+", default=[1, 2], help="torchrun --nproc_per_node values")
    p.add_argument("--threads", type=int, default=1, help="torch threads per torchrun process")
    p.add_argument("--reference-threads", type=int, nargs="+", default=[1, 2],
                   help="torch threads of the plain one-process runs")
    p.add_argument("--out", default="runs/bench", help="folder of ddp.{md,json}")
    args = p.parse_args(argv)
    if min(args.processes + args.hidden + args.reference_threads + [args.epochs, args.batch_size, args.threads]) <= 0:
        p.error("all sizes and counts must be positive")
    if args.epochs < 2:
        p.error("--epochs must be at least 2 (the first epoch is not timed)")
    return _guarded(lambda: run_scaling(args, command=_command("scripts/bench_ddp.py", argv)), args.out)
