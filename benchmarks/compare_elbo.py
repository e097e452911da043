r"""The Trace_ELBO vs TraceMeanField_ELBO study (``scripts/compare_elbo.py``).

The same model (architecture, likelihood, data, seeds, optimizer) is trained once with
each ELBO for every seed. For each run it records the test-ELBO curve, wall time per
epoch, the importance-sampled test NLL of the final model, and, at fixed epochs, the
gradient variance of *both* estimators at that run's current parameters on one fixed
minibatch (:func:`benchmarks.grad_variance.gradient_variance`, the two estimators given the
same random draws). :func:`compare_elbos` writes ``table.md``, ``metrics.json``,
``curves.png`` and ``grad_variance.png`` into the study folder; each run keeps its own
folder under ``runs/``.
"""
import statistics
from dataclasses import replace
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pyrovae.cli.common import _command, _guarded  # noqa: E402
from pyrovae.cli.svi_train import _train_config, build_parser  # noqa: E402
from pyrovae.data.datasets import load_dataset  # noqa: E402
from pyrovae.data.prepare import prepare_data, select_data  # noqa: E402
from pyrovae.data.transforms import evenly_spaced  # noqa: E402
from pyrovae.infer.elbos import make_elbo  # noqa: E402
from pyrovae.infer.evaluation import elbo, log_likelihood  # noqa: E402
from pyrovae.training.checkpoint import load, write_json  # noqa: E402
from pyrovae.training.config import TrainConfig  # noqa: E402
from pyrovae.training.trainer import train  # noqa: E402

ELBOS = ("trace", "meanfield")  # the two estimators of the same ELBO that the study compares
from .grad_variance import gradient_variance  # noqa: E402

LABELS = {"trace": "Trace_ELBO (Monte-Carlo KL)", "meanfield": "TraceMeanField_ELBO (analytic KL)"}


def compare_elbos(base: TrainConfig, out_dir, seeds: Sequence[int] = (0, 1, 2), nll_samples: int = 5000,
                  nll_test_limit: int = 2000, grad_epochs: Sequence[int] = (), grad_repeats: int = 100,
                  grad_batch: int = 128, log: Callable[[str], None] = print, command: str = None) -> dict:
    """Train ``base`` with each ELBO and each seed; write and return the comparison."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    base.validate()
    grad_epochs = sorted(set(grad_epochs or (0, max(1, base.epochs // 2), base.epochs)))
    dataset = load_dataset(base.dataset, base.data_dir, base.download, log, image_size=base.image_size,
                           test_size=base.test_size, split_seed=base.split_seed, label_column=base.label_column)
    used = select_data(base, dataset)
    runs: List[dict] = []
    for seed in seeds:
        for kind in ELBOS:  # interleaved: trace, meanfield, trace, ...
            config = replace(base, elbo=kind, seed=seed, out=str(out / "runs" / f"{kind}-seed{seed}"))
            grads: List[dict] = []

            def measure(epoch, vae, data, grads=grads):
                if epoch in grad_epochs:
                    x = data.train_x[:grad_batch].to(next(vae.parameters()).device)  # one fixed minibatch (host rows too)
                    grads.append({"epoch": epoch, **{
                        k: gradient_variance(make_elbo(k), vae, x, {"encoder": vae.encoder, "decoder": vae.decoder},
                                             grad_repeats) for k in ELBOS}})

            log(f"--- {LABELS[kind]}, seed {seed}")
            metrics = train(config, log=log, dataset=dataset, on_epoch_end=[measure], command=command)
            vae = load(Path(config.out) / "checkpoint.pt", map_location="cuda" if base.cuda else "cpu")
            subset = evenly_spaced(_prepared_test_set(config, dataset, vae), nll_test_limit)
            nll = -log_likelihood(vae, subset, num_samples=nll_samples).mean().item()
            subset_elbo = elbo(vae, subset, num_particles=10).elbo.mean().item()
            log(f"test NLL {nll:.3f} nats, -ELBO {-subset_elbo:.3f} (K={nll_samples}, {len(subset)} evenly spaced test images)")
            runs.append({"elbo": kind, "seed": seed, "history": metrics["history"], "test_elbo": metrics["last_test_elbo"],
                         "test_nll": nll, "nll_subset_elbo": subset_elbo,
                         "seconds_per_epoch": statistics.median(h["seconds"] for h in metrics["history"]),
                         "grad_variance": grads})
            write_json(Path(config.out) / "study.json", runs[-1])
    summary = _summarize(runs)
    result = {"command": command, "settings": base.to_dict(), "seeds": list(seeds),
              "nll": {"num_samples": nll_samples, "num_test_images": min(nll_test_limit, len(used.test_x))},
              "grad_variance": {"epochs": grad_epochs, "repeats": grad_repeats, "batch": grad_batch},
              "dataset": used.summary(), "summary": summary, "runs": runs}
    write_json(out / "metrics.json", result)
    (out / "table.md").write_text(_table(result))
    plot_curves(runs, out / "curves.png")
    plot_grad_variance(runs, out / "grad_variance.png")
    return result


def _prepared_test_set(config, dataset, vae):
    data = prepare_data(config, select_data(config, dataset), vae.likelihood)
    return data.test_x.to(next(vae.parameters()).device)


def _mean_sd(values) -> Dict[str, float]:
    values = list(values)
    return {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0, "n": len(values)}


def _summarize(runs) -> dict:
    summary = {}
    for kind in ELBOS:
        mine = [r for r in runs if r["elbo"] == kind]
        entry = {"test_elbo": _mean_sd(r["test_elbo"] for r in mine), "test_nll": _mean_sd(r["test_nll"] for r in mine),
                 "nll_subset_elbo": _mean_sd(r["nll_subset_elbo"] for r in mine),
                 "seconds_per_epoch": _mean_sd(r["seconds_per_epoch"] for r in mine)}
        # gradient variance of this estimator, measured along this estimator's own runs
        for point in mine[0]["grad_variance"]:
            epoch = point["epoch"]
            at = [next(g for g in r["grad_variance"] if g["epoch"] == epoch) for r in mine]
            for group in ("encoder", "decoder"):
                entry[f"grad_var_{group}_epoch{epoch}"] = _mean_sd(g[kind][group]["total_variance"] for g in at)
        summary[kind] = entry
    # the paired ratio: both estimators at the same parameters, pooled over all runs
    ratios = {}
    for epoch in [g["epoch"] for g in runs[0]["grad_variance"]]:
        for group in ("encoder", "decoder"):
            vals = [next(g for g in r["grad_variance"] if g["epoch"] == epoch) for r in runs]
            ratios[f"{group}_epoch{epoch}"] = _mean_sd(v["trace"][group]["total_variance"] / v["meanfield"][group]["total_variance"] for v in vals)
    summary["grad_variance_ratio_trace_over_meanfield"] = ratios
    return summary


def _table(result) -> str:
    s, settings = result["summary"], result["settings"]
    fmt = lambda d, p=2: f"{d['mean']:.{p}f} ± {d['sd']:.{p}f}"  # noqa: E731
    lines = [
        f"# Trace_ELBO vs TraceMeanField_ELBO on {result['dataset']['name']}",
        "",
        f"{result['dataset']['num_train']} training / {result['dataset']['num_test']} test images; "
        f"MLP {settings['hidden']} with z_dim {settings['z_dim']}, {settings['likelihood']} likelihood, "
        f"{settings['epochs']} epochs, batch {settings['batch_size']}, Adam lr {settings['lr']}; "
        f"seeds {result['seeds']} (mean ± sd over seeds).",
        f"Test ELBO: all {result['dataset']['num_test']} test images, analytic KL, one sample. Test NLL: "
        f"importance sampling with K={result['nll']['num_samples']} on {result['nll']['num_test_images']} evenly "
        "spaced test images, beside the ELBO of the same images (analytic KL, 10 samples).",
        "",
        "| ELBO | final test ELBO (nats) | test NLL, subset (nats) | -ELBO, same subset | s / epoch |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for kind in ELBOS:
        e = s[kind]
        neg = {"mean": -e["nll_subset_elbo"]["mean"], "sd": e["nll_subset_elbo"]["sd"]}
        lines.append(f"| {LABELS[kind]} | {fmt(e['test_elbo'])} | {fmt(e['test_nll'])} | {fmt(neg)} "
                     f"| {fmt(e['seconds_per_epoch'])} |")
    lines += ["", f"Gradient variance (trace of the covariance over {result['grad_variance']['repeats']} draws, "
              f"one fixed minibatch of {result['grad_variance']['batch']}, both estimators at the same parameters "
              "and with the same draws), ratio Trace_ELBO / TraceMeanField_ELBO, mean ± sd over all runs:", "",
              "| epoch | encoder | decoder |", "| ---: | ---: | ---: |"]
    ratios = s["grad_variance_ratio_trace_over_meanfield"]
    for epoch in result["grad_variance"]["epochs"]:
        lines.append(f"| {epoch} | {fmt(ratios[f'encoder_epoch{epoch}'])} | {fmt(ratios[f'decoder_epoch{epoch}'])} |")
    lines += ["", f"Command: `{result['command']}`", ""]
    return "\n".join(lines)


def _band(ax, xs, ys, label):
    ys = np.array(ys)
    mean, sd = ys.mean(0), ys.std(0, ddof=1) if len(ys) > 1 else np.zeros(ys.shape[1])
    line, = ax.plot(xs, mean, label=label)
    ax.fill_between(xs, mean - sd, mean + sd, color=line.get_color(), alpha=0.25)


def plot_curves(runs, path) -> None:
    """Test ELBO against epoch and against wall-clock seconds, mean ± sd over seeds."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for kind in ELBOS:
        mine = [r for r in runs if r["elbo"] == kind]
        tested = [[h for h in r["history"] if h["test_elbo"] is not None] for r in mine]
        epochs = [h["epoch"] for h in tested[0]]
        elbos = [[h["test_elbo"] for h in t] for t in tested]
        _band(axes[0], epochs, elbos, LABELS[kind])
        clock = np.mean([np.cumsum([h["seconds"] for h in r["history"]]) for r in mine], axis=0)
        _band(axes[1], [clock[e - 1] for e in epochs], elbos, LABELS[kind])
    for ax, xlabel in zip(axes, ("epoch", "training wall-clock (s)")):
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test ELBO per datapoint (nats)")
        ax.grid(alpha=0.3)
        ax.legend()
        lo = min(min(h["test_elbo"] for h in r["history"][len(r["history"]) // 10:] if h["test_elbo"] is not None) for r in runs)
        ax.set_ylim(bottom=lo - 2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_grad_variance(runs, path) -> None:
    """Per group, each estimator's gradient variance at the measured epochs (log scale)
    and the paired ratio Trace / TraceMeanField."""
    epochs = [g["epoch"] for g in runs[0]["grad_variance"]]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for col, group in enumerate(("encoder", "decoder")):
        ax = axes[col]
        for kind in ELBOS:
            vals = [[next(g for g in r["grad_variance"] if g["epoch"] == e)[kind][group]["total_variance"] for e in epochs]
                    for r in runs if r["elbo"] == kind]
            _band(ax, epochs, vals, LABELS[kind])
        ax.set_yscale("log")
        ax.set_title(f"{group}: gradient variance along each ELBO's own runs", fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("trace of gradient covariance")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for group in ("encoder", "decoder"):
        ratios = [[(lambda g: g["trace"][group]["total_variance"] / g["meanfield"][group]["total_variance"])(
            next(g for g in r["grad_variance"] if g["epoch"] == e)) for e in epochs] for r in runs]
        _band(axes[2], epochs, ratios, group)
    axes[2].axhline(1.0, color="gray", lw=0.8)
    axes[2].set_title("ratio Trace_ELBO / TraceMeanField_ELBO (same parameters, same draws)", fontsize=9)
    axes[2].set_xlabel("epoch")
    axes[2].set_ylabel("variance ratio")
    axes[2].grid(alpha=0.3)
    axes[2].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Optional[List[str]] = None) -> int:
    """``scripts/compare_elbo.py``: the same model trained with each ELBO, several seeds."""
    p = build_parser("Train the same VAE with Trace_ELBO and TraceMeanField_ELBO, several seeds each, "
                     "and compare test ELBO, test NLL, time per epoch and gradient variance.")
    p.set_defaults(dataset="binarized-mnist", out="runs/elbo_comparison", epochs=50, progress=False)
    p.add_argument("--seeds", type=int, default=3, help="number of seeds (0 .. N-1)")
    p.add_argument("--nll-samples", type=int, default=5000, help="importance samples K for the test NLL")
    p.add_argument("--nll-test-limit", type=int, default=2000, help="test images scored for the NLL")
    p.add_argument("--grad-epochs", type=int, nargs="+", default=None,
                   help="epochs after which to measure gradient variance (0 = at initialization)")
    p.add_argument("--grad-repeats", type=int, default=100, help="gradient draws per measurement")
    args = vars(p.parse_args(argv))
    study = {k: args.pop(k) for k in ("seeds", "nll_samples", "nll_test_limit", "grad_epochs", "grad_repeats")}
    out = args.pop("out")
    for name in ("seeds", "nll_samples", "nll_test_limit", "grad_repeats"):
        if study[name] <= 0:
            p.error(f"--{name.replace('_', '-')} must be a positive integer, got {study[name]}")
    if study["seeds"] < 2:
        p.error("--seeds must be at least 2 for a spread over seeds")
    config = _train_config(p, args)
    return _guarded(lambda: compare_elbos(
        config, out, seeds=range(study["seeds"]), nll_samples=study["nll_samples"],
        nll_test_limit=study["nll_test_limit"], grad_epochs=study["grad_epochs"] or (),
        grad_repeats=study["grad_repeats"], command=_command("scripts/compare_elbo.py", argv)), out)
