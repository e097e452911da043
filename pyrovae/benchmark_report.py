"""The benchmark run behind ``scripts/bench.py``: sweeps, then ``bench.md`` and ``bench.json``."""
import platform
from pathlib import Path

import pyro
import torch

from .bench import REFERENCE, device_description, time_configs, time_epochs
from .checkpoint import write_json
from .data import load_dataset
from .run import select_device


def run_benchmark(args, command: str, log=print) -> dict:
    device = select_device(args.cuda)
    data = load_dataset(args.dataset, args.data_dir, download=False, log=log).train_x.to(device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"command": command, "device": device_description(device),
              "versions": {"torch": torch.__version__, "pyro": pyro.__version__, "python": platform.python_version()},
              "protocol": {"blocks": args.blocks, "steps_per_block": args.steps_per_block, "order": "interleaved",
                           "optimizer": "Adam lr 1e-3", "z_dim": 50, "dataset": args.dataset},
              "batch_sweep": {}, "width_sweep": {}, "epoch_seconds": None}
    for b in args.batch_sizes:
        log(f"batch {b}, hidden 400")
        result["batch_sweep"][b] = _with_ratios(time_configs(data, b, (400,), blocks=args.blocks,
                                                             steps_per_block=args.steps_per_block))
    for w in args.widths:
        log(f"batch 128, hidden {w}")
        if w == 400 and 128 in result["batch_sweep"]:  # the same configuration, measured above
            result["width_sweep"][w] = result["batch_sweep"][128]
            continue
        result["width_sweep"][w] = _with_ratios(time_configs(data, 128, (w,), blocks=args.blocks,
                                                             steps_per_block=args.steps_per_block))
    if args.epoch:
        result["epoch_images"] = min(50000, len(data))
        log(f"one epoch of {result['epoch_images']} images at batch 128")
        result["epoch_seconds"] = time_epochs(data[:50000], 128, (400,))
    write_json(out / "bench.json", result)
    (out / "bench.md").write_text(_markdown(result))
    log((out / "bench.md").read_text())
    return result


def _with_ratios(timings: dict) -> dict:
    ref = timings[REFERENCE]["ms_per_step"]
    for t in timings.values():
        t["ratio_to_reference"] = t["ms_per_step"] / ref
    return timings


def _rows(sweep: dict, label: str) -> list:
    lines = [f"| {label} | configuration | ms / step (median) | IQR (ms) | images / s | ratio to PyTorch by hand | warm-up (s) |",
             "| ---: | --- | ---: | ---: | ---: | ---: | ---: |"]
    for key, timings in sweep.items():
        for name, t in timings.items():
            lines.append(f"| {key} | {name} | {t['ms_per_step']:.2f} | {t['iqr_ms']:.2f} | "
                         f"{t['images_per_s']:,.0f} | {t['ratio_to_reference']:.2f}x | {t['warmup_s']:.1f} |")
    return lines


def _markdown(r: dict) -> str:
    p = r["protocol"]
    lines = [f"# pyrovae step vs hand-written PyTorch step on {r['device']}", "",
             f"torch {r['versions']['torch']}, pyro {r['versions']['pyro']}, Python {r['versions']['python']}. "
             f"784-H-{p['z_dim']} MLP VAE, Bernoulli likelihood, {p['optimizer']}, data on the device "
             f"({p['dataset']}), batches by index. Each configuration trains its own copy of the same initial "
             f"networks; {p['blocks']} blocks of {p['steps_per_block']} steps per configuration, interleaved, "
             "median and inter-quartile range over blocks; warm-up (compilation included) before timing.", "",
             "## Batch size (hidden 400)", "", *_rows(r["batch_sweep"], "batch"), "",
             "## Hidden width (batch 128)", "", *_rows(r["width_sweep"], "hidden"), ""]
    if r["epoch_seconds"]:
        lines += [f"## One epoch of {r['epoch_images']:,} images at batch 128 (hidden 400)", "",
                  "Median of 3 epochs per configuration, interleaved.", "",
                  "| configuration | seconds | warm-up before it (s) |", "| --- | ---: | ---: |",
                  *[f"| {name} | {e['seconds']:.2f} | {e['warmup_s']:.1f} |" for name, e in r["epoch_seconds"].items()], ""]
    lines += [f"Command: `{r['command']}`", ""]
    return "\n".join(lines)
