"""The report of ``scripts/bench.py``: each configuration's ratio to the hand-written
reference, and ``bench.md`` (``gpu.md``) from the timings of :mod:`benchmarks.bench`."""

from .host import describe

REFERENCE = "PyTorch by hand (eager, Adam)"


def with_ratios(timings: dict) -> dict:
    """Each configuration's ms per step over the reference's (``ratio_to_reference``)."""
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


def markdown(r: dict) -> str:
    """``bench.md``: the protocol, the sweeps, and the epoch, profile and NLL timings where run."""
    p = r["protocol"]
    v = r["versions"]
    cuda = f", CUDA {v['cuda']}, cuDNN {v['cudnn']}, driver {v['driver']}" if "cuda" in v else ""
    lines = [f"# pyrovae step vs hand-written PyTorch step on {r['device']}", "",
             f"Ran on: {describe(r['machine'], v)}{cuda}. "
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
