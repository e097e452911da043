"""The benchmark run behind ``scripts/bench.py``: sweeps, then ``bench.md`` and ``bench.json``
(``gpu.md`` and ``gpu.json`` for a run with ``--cuda``)."""
import platform
from pathlib import Path

import pyro
import torch

from .bench import REFERENCE, device_description, profile_step, time_configs, time_epochs, time_log_likelihood
from .checkpoint import write_json
from .data import load_dataset
from .run import select_device


def run_benchmark(args, command: str, log=print) -> dict:
    device = select_device(args.cuda)
    dataset = load_dataset(args.dataset, args.data_dir, download=False, log=log)
    data = dataset.train_x.to(device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "gpu" if device.type == "cuda" else "bench"
    versions = {"torch": torch.__version__, "pyro": pyro.__version__, "python": platform.python_version()}
    if device.type == "cuda":
        versions.update(cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(),
                        driver=_nvidia_driver())
    result = {"command": command, "device": device_description(device), "versions": versions,
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
    if args.profile:
        log("profiling the eager step at batch 128")
        result["profile"] = profile_step(data, 128)
    if args.nll_epochs:
        log(f"IS-NLL K={args.nll_samples} over {len(dataset.test_x)} test images (gated MLP, {args.nll_epochs} epochs)")
        result["log_likelihood"] = time_log_likelihood(data, dataset.test_x.to(device), epochs=args.nll_epochs,
                                                       num_samples=args.nll_samples)
    write_json(out / f"{stem}.json", result)
    (out / f"{stem}.md").write_text(_markdown(result))
    log((out / f"{stem}.md").read_text())
    return result


def _nvidia_driver() -> str:
    import subprocess

    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=30).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


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
    v = r["versions"]
    cuda = f", CUDA {v['cuda']}, cuDNN {v['cudnn']}, driver {v['driver']}" if "cuda" in v else ""
    lines = [f"# pyrovae step vs hand-written PyTorch step on {r['device']}", "",
             f"torch {v['torch']}, pyro {v['pyro']}, Python {v['python']}{cuda}. "
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
    if r.get("profile"):
        prof = r["profile"]
        lines += ["## Where the eager pyrovae step's time goes (Trace_ELBO, batch 128, hidden 400)", "",
                  f"{prof['wall_us_per_step']:.0f} us per step (timed without the profiler); "
                  f"{prof['operator_cpu_us_per_step']:.0f} us of host time inside PyTorch operators (launches "
                  "included, measured under the profiler, which inflates it); the rest is Python: Pyro's effect "
                  "handlers and traces. torch.profiler over 50 steps, the top operators by self CPU time, per step:",
                  "",
                  "| operator | calls / step | self CPU (us / step) | share of CPU time | self device (us / step) |",
                  "| --- | ---: | ---: | ---: | ---: |",
                  *[f"| `{e['name']}` | {e['calls_per_step']:.0f} | {e['self_cpu_us_per_step']:.0f} | "
                    f"{e['self_cpu_share']:.1%} | {e['self_device_us_per_step']:.0f} |" for e in prof["top"]], ""]
    if r.get("log_likelihood"):
        n = r["log_likelihood"]
        lines += [f"## Importance-sampled NLL, K={n['num_samples']}, all {n['images']:,} test images", "",
                  f"{n['arch']} MLP {'-'.join(map(str, n['hidden']))}, z {n['z_dim']}, trained {n['train_epochs']} "
                  f"epochs with `--fast` ({n['train_seconds']:.1f} s) for the timing only; "
                  f"{n['batch_size']} images per chunk.", "",
                  "| seconds | test NLL (nats) |", "| ---: | ---: |",
                  f"| {n['seconds']:.1f} | {n['nll']:.2f} ± {n['nll_se']:.2f} |", ""]
    lines += [f"Command: `{r['command']}`", ""]
    return "\n".join(lines)
