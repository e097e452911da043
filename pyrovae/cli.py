"""The command lines behind ``scripts/``: flags -> settings -> one library call.

* ``svi_train.py`` -> :func:`main` -> :func:`pyrovae.training.trainer.train` (``--resume``: :func:`pyrovae.training.trainer.resume`)
* ``compare_elbo.py`` -> :func:`compare_main` -> :func:`pyrovae.experiments.compare_elbo.compare_elbos`
* ``evaluate.py`` / ``plot_latent.py`` -> :mod:`pyrovae.experiments.evaluate` / :mod:`pyrovae.experiments.plot_latent`
* ``bench.py`` -> :func:`bench_main` -> :mod:`pyrovae.experiments.bench`
* ``bench_ddp.py`` -> :func:`bench_ddp_main` -> :mod:`pyrovae.experiments.bench_ddp`
* ``nll_table.py`` -> :func:`nll_table_main` -> :mod:`pyrovae.experiments.nll_table`

Each command imports its application (:mod:`pyrovae.experiments`) only when it runs.

Bad input ends with one line on stderr, ``error: <what was wrong and what to do>``, and
exit status 2; a finished job exits 0.
"""
import argparse
import os
import re
import shlex
import sys
from pathlib import Path
from typing import Callable, List, Optional

import torch

from .data.datasets import DATASETS
from .errors import Interrupted, PyrovaeError, one_line
from .model.guides import GUIDES
from .model.likelihoods import BUILT_IN
from .model.priors import PRIORS
from .training.config import ARCHS, BINARIZE, DEQUANTIZE, ELBOS, LR_SCHEDULES, TrainConfig
from .training.trainer import resume, train


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's defaults in the help, except where they would read wrong: on-off flags
    (the flag's presence is the setting), None (no value), and help that states its own
    default."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.nargs == 0 or action.default is None or "default" in text:
            return text
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not argparse's usage block
        self.exit(2, f"error: {message} (see --help)\n")


def build_parser(description: str = "Train a VAE (Pyro model/guide) with SVI.") -> argparse.ArgumentParser:
    d = TrainConfig()
    p = _Parser(description=description, formatter_class=_Help)
    p.add_argument("--cuda", action="store_true", help="train on the GPU (fails with one line if there is none)")
    p.add_argument("--dataset", default=d.dataset, choices=DATASETS, help="the images (see the README's Data)")
    p.add_argument("--data-dir", default=d.data_dir, help="where data sets are read from / downloaded to")
    p.add_argument("--no-download", dest="download", action="store_false", help="never try the network")
    p.add_argument("--likelihood", default=d.likelihood, metavar="{" + ",".join(BUILT_IN) + "}",
                   help="p(x|z); a callable of your own goes through the Python API")
    p.add_argument("--likelihood-scale", type=float, default=None,
                   help="fixed scale for gaussian/laplace (default: learned per pixel); "
                        "the same as --likelihood-option scale=S")
    p.add_argument("--likelihood-option", action="append", default=[], metavar="KEY=VALUE",
                   help="a keyword option of the likelihood (repeatable): gaussian/laplace scale, min_scale; "
                        "beta eps, min_concentration")
    p.add_argument("--binarize", default=d.binarize, choices=BINARIZE,
                   help="bernoulli on grey data: dynamic = fresh draw every minibatch, static = one draw")
    p.add_argument("--dequantize", default=d.dequantize, choices=DEQUANTIZE,
                   help="continuous likelihoods on 8-bit data: uniform noise every minibatch")
    p.add_argument("--prior", default=d.prior, choices=tuple(PRIORS),
                   help="p(z): normal = N(0, I), mog = a learned mixture of Gaussians, vamp = VampPrior")
    p.add_argument("--prior-components", type=int, default=None,
                   help="mog/vamp: mixture components (pseudo-inputs for vamp; defaults 10 and 500)")
    p.add_argument("--guide", default=d.guide, choices=tuple(GUIDES),
                   help="q(z|x): normal = diagonal Gaussian, iaf = inverse autoregressive flow on it")
    p.add_argument("--flow-steps", type=int, default=None, help="iaf: flow steps (default 2)")
    p.add_argument("--elbo", default=d.elbo, choices=ELBOS,
                   help="trace = Trace_ELBO (Monte-Carlo KL), meanfield = TraceMeanField_ELBO (analytic KL), "
                        "iwae = the importance-weighted bound with --num-particles K per datapoint")
    p.add_argument("--num-particles", type=int, default=d.num_particles, help="ELBO particles per step (iwae: importance samples K per datapoint)")
    p.add_argument("--z-dim", type=int, default=d.z_dim, help="latent dimensions")
    p.add_argument("--arch", default=d.arch, choices=ARCHS,
                   help="MLP (softplus units), MLP with gated units, or convolutional encoder/decoder")
    p.add_argument("--hidden", type=int, nargs="+", default=list(d.hidden),
                   help="mlp: hidden widths, e.g. --hidden 400 200; conv: the dense layer's width")
    p.add_argument("--channels", type=int, nargs=2, default=list(d.channels),
                   help="conv: feature maps at H/2 and H/4")
    p.add_argument("--epochs", type=int, default=d.epochs, help="passes over the training set")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="images per minibatch")
    p.add_argument("--lr", type=float, default=d.lr, help="Adam's learning rate")
    p.add_argument("--lr-schedule", default=d.lr_schedule, choices=LR_SCHEDULES,
                   help="cosine: anneal to --lr-min over the run; plateau: halve when the validation ELBO "
                        "has not improved for --lr-patience epochs")
    p.add_argument("--lr-min", type=float, default=d.lr_min, help="the lowest rate of cosine and plateau")
    p.add_argument("--lr-patience", type=int, default=d.lr_patience,
                   help="plateau: epochs without a better validation ELBO before halving")
    p.add_argument("--kl-warmup", type=int, default=d.kl_warmup,
                   help="epochs over which the latent site's log-density scale rises linearly to 1 (0: none)")
    p.add_argument("--early-stopping", type=int, default=d.early_stopping,
                   help="stop after N epochs without a better validation ELBO (0: never)")
    p.add_argument("--valid-size", type=int, default=d.valid_size,
                   help="hold out the last N training images as the validation set that chooses best.pt, the "
                        "plateau schedule and early stopping (default: the last 10%%; binarized-mnist has its "
                        "own); 0: no validation set, best.pt is the last epoch")
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every,
                   help="also write checkpoint.pt every N steps inside an epoch (0: at epoch ends)")
    p.add_argument("--seed", type=int, default=d.seed, help="seeds torch, numpy and random")
    p.add_argument("--out", default=None, help="run folder (default: runs/<dataset>-<likelihood>-<elbo>, git-ignored)")
    p.add_argument("--test-frequency", type=int, default=d.test_frequency, help="evaluate every N epochs")
    p.add_argument("--train-limit", type=int, default=None, help="use only the first N training images")
    p.add_argument("--test-limit", type=int, default=None, help="use only the first N test images")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no tqdm progress bar")
    p.add_argument("--distributed", action="store_true",
                   help="data-parallel training, one process per device, started by torchrun "
                        "(torchrun --nproc_per_node=N scripts/svi_train.py --distributed ...)")
    p.add_argument("--tensorboard", action="store_true", help="write scalars and images to <out>/tensorboard")
    _threads_flag(p)
    p.add_argument("--fast", action="store_true",
                   help="capture the SVI step once and replay it compiled (torch.compile); checked against "
                        "the eager step, falls back to it if the two differ")
    return p


def _threads_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads for PyTorch, torch.set_num_threads(N) (default: PyTorch's own choice); on a "
                        "shared, loaded 2-core machine 1 thread was measured 3x faster per epoch than 2")


def _command(script: str, argv: Optional[List[str]]) -> str:
    return shlex.join(["python", script, *map(str, sys.argv[1:] if argv is None else argv)])


def _guarded(job: Callable[[], None], out: str) -> int:
    """Run ``job``; bad input becomes one ``error:`` line and exit status 2, a signal one
    line saying how to resume and 128 + its number."""
    say = (lambda line: print(line, file=sys.stderr)) if os.environ.get("RANK", "0") == "0" else (lambda line: None)
    try:
        job()
    except Interrupted as stop:
        say(str(stop))
        return stop.exit_code
    except PyrovaeError as error:
        say(f"error: {error}")
        return 2
    except (MemoryError, RuntimeError) as error:
        if not _out_of_memory(error):
            raise
        say(f"error: out of memory ({_allocation(error)}); lower --batch-size, --num-particles or the network sizes; "
            + _last_checkpoint(out))
        return 2
    except KeyboardInterrupt:
        print(f"interrupted; {_last_checkpoint(out)}", file=sys.stderr)
        return 130
    return 0


def _allocation(error: BaseException) -> str:
    """What an out-of-memory error tried: the size it names, whole, else its message
    shortened at a word boundary."""
    size = re.search(r"allocate (?:memory: you tried to allocate )?(\d[\d.,]*(?: ?(?:bytes|[KMGTP]i?B))?)", str(error))
    return f"tried to allocate {size.group(1)}" if size else one_line(error, 120)


def _last_checkpoint(out: str) -> str:
    """Where the last checkpoint is, said only where one was written."""
    if (Path(out) / "checkpoint.pt").is_file():
        return f"the last checkpoint written is in {out}"
    return f"no checkpoint was written to {out} yet"


RESUME_FLAGS = {"epochs", "progress", "cuda", "distributed", "threads"}


def _out_of_memory(error: BaseException) -> bool:
    return (isinstance(error, (MemoryError, torch.OutOfMemoryError))
            or "can't allocate memory" in str(error) or "out of memory" in str(error))


def _train_config(p: argparse.ArgumentParser, args: dict) -> TrainConfig:
    """The settings of the parsed flags: ``--likelihood-scale`` and every
    ``--likelihood-option KEY=VALUE`` become ``likelihood_options``."""
    options = {}
    for item in args.pop("likelihood_option"):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            p.error(f"--likelihood-option takes KEY=VALUE, got {item!r}")
        try:
            options[key.strip()] = float(value)
        except ValueError:
            p.error(f"--likelihood-option {key.strip()} needs a number, got {value!r}")
    scale = args.pop("likelihood_scale")
    if scale is not None:
        options["scale"] = scale
    components, steps = args.pop("prior_components"), args.pop("flow_steps")
    return TrainConfig(**args, likelihood_options=options,
                       prior_options={} if components is None else {"components": components},
                       guide_options={} if steps is None else {"steps": steps})


def main(argv: Optional[List[str]] = None) -> int:
    """``scripts/svi_train.py``: a new run, or ``--resume RUN_DIR``."""
    p = build_parser()
    p.add_argument("--resume", metavar="RUN_DIR", default=None,
                   help="continue the run in RUN_DIR from its checkpoint, with its own settings "
                        "(only --epochs, --cuda, --distributed, --threads and --no-progress may change)")
    args = vars(p.parse_args(argv))
    command = _command("scripts/svi_train.py", argv)
    run_dir = args.pop("resume")
    if run_dir is None:
        config = _train_config(p, args)
        return _guarded(lambda: train(config, command=command), config.out_dir())
    present = _flags_given(p, argv) - {"resume"}
    changed = sorted(present - RESUME_FLAGS)
    if changed:
        p.error(f"--resume continues a run with its own settings; drop --{changed[0].replace('_', '-')} "
                "(only --epochs, --cuda, --distributed, --threads and --no-progress may be given with --resume)")
    given = {k: args[k] for k in RESUME_FLAGS & present}
    return _guarded(lambda: resume(run_dir, command=command, **given), run_dir)


def _flags_given(p: argparse.ArgumentParser, argv: Optional[List[str]]) -> set:
    """The settings whose flags are on the command line, whatever their values (a flag given
    with its default value included): ``argv`` parsed once more with no defaults."""
    saved = [(action, action.default) for action in p._actions]
    try:
        for action, _ in saved:
            action.default = argparse.SUPPRESS
        return set(vars(p.parse_args(argv)))
    finally:
        for action, default in saved:
            action.default = default


def compare_main(argv: Optional[List[str]] = None) -> int:
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
    from .experiments.compare_elbo import compare_elbos  # the application loads only when its command runs
    return _guarded(lambda: compare_elbos(
        config, out, seeds=range(study["seeds"]), nll_samples=study["nll_samples"],
        nll_test_limit=study["nll_test_limit"], grad_epochs=study["grad_epochs"] or (),
        grad_repeats=study["grad_repeats"], command=_command("scripts/compare_elbo.py", argv)), out)


def _run_dir_parser(description: str) -> argparse.ArgumentParser:
    p = _Parser(description=description, formatter_class=_Help)
    p.add_argument("run_dir", help="a folder written by scripts/svi_train.py")
    p.add_argument("--cuda", action="store_true", help="compute on the GPU")
    _threads_flag(p)
    return p


def _set_threads(p: argparse.ArgumentParser, threads: Optional[int]) -> None:
    """``torch.set_num_threads(threads)`` unless None; a non-positive count is refused."""
    if threads is not None:
        if threads <= 0:
            p.error(f"--threads must be a positive integer, got {threads}")
        torch.set_num_threads(threads)


def evaluate_main(argv: Optional[List[str]] = None) -> int:
    """``scripts/evaluate.py RUN_DIR``: importance-sampled test NLL and more into metrics.json."""
    p = _run_dir_parser("Score a finished run: importance-sampled test NLL, ELBO and its split, "
                        "active units (and bits/dim for dequantized data), written into RUN_DIR/metrics.json.")
    p.add_argument("--num-samples", type=int, default=5000, help="importance samples K per test image")
    p.add_argument("--test-limit", type=int, default=None, help="score only the first N test images")
    p.add_argument("--test-subset", type=int, default=None,
                   help="score N test images evenly spaced over the test set (a fair subset)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.add_argument("--checkpoint", choices=("best", "last"), default=None,
                   help="best.pt (the best epoch by the validation ELBO) or checkpoint.pt (the last); "
                        "default: best.pt where the run kept one")
    args = p.parse_args(argv)
    if min(v for v in (args.num_samples, args.test_limit, args.test_subset, 1) if v is not None) <= 0:
        p.error("--num-samples, --test-limit and --test-subset must be positive integers")
    checkpoint = {"best": "best.pt", "last": "checkpoint.pt", None: None}[args.checkpoint]
    _set_threads(p, args.threads)
    from .experiments.evaluate import evaluate_run  # the application loads only when its command runs
    return _guarded(lambda: evaluate_run(args.run_dir, args.num_samples, args.cuda, args.test_limit, args.test_subset,
                                         checkpoint=checkpoint, command=_command("scripts/evaluate.py", argv),
                                         progress=args.progress),
                    args.run_dir)


def plot_latent_main(argv: Optional[List[str]] = None) -> int:
    """``scripts/plot_latent.py RUN_DIR``: latent-space figures of a finished run."""
    p = _run_dir_parser("Latent-space figures of a finished run: posterior means of the test set "
                        "(2-d latent or PCA), the decoded manifold (2-d latent), interpolations.")
    p.add_argument("--out", default=None, help="folder for the figures (default: RUN_DIR)")
    args = p.parse_args(argv)
    _set_threads(p, args.threads)
    from .experiments.plot_latent import plot_latent_run  # the application loads only when its command runs
    return _guarded(lambda: plot_latent_run(args.run_dir, args.out, args.cuda), args.run_dir)


def bench_main(argv: Optional[List[str]] = None) -> int:
    """``scripts/bench.py``: pyrovae's SVI step against a hand-written PyTorch step."""
    p = _Parser(description="Time pyrovae's SVI step (Trace_ELBO, TraceMeanField_ELBO) against a hand-written "
                "PyTorch VAE step, interleaved in one process; write <out>/bench.{md,json}.",
                formatter_class=_Help)
    p.add_argument("--cuda", action="store_true")
    p.add_argument("--dataset", default="binarized-mnist", choices=DATASETS)
    p.add_argument("--data-dir", default="./data")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128, 512, 4096])
    p.add_argument("--widths", type=int, nargs="+", default=[200, 400, 1000], help="hidden widths swept at batch 128")
    p.add_argument("--blocks", type=int, default=15, help="timing blocks per configuration")
    p.add_argument("--steps-per-block", type=int, default=20)
    p.add_argument("--no-epoch", dest="epoch", action="store_false", help="skip the full-epoch timing")
    p.add_argument("--no-profile", dest="profile", action="store_false",
                   help="skip the profile of the eager step")
    p.add_argument("--nll-epochs", type=int, default=0,
                   help="also time the K-sample IS-NLL over the whole test set, on a gated MLP 300-300 trained "
                        "this many epochs (0: skip)")
    p.add_argument("--nll-samples", type=int, default=5000, help="K for the IS-NLL timing")
    p.add_argument("--out", default="runs/bench", help="folder of bench.{md,json} (gpu.{md,json} with --cuda)")
    args = p.parse_args(argv)
    if min(args.batch_sizes + args.widths + [args.blocks, args.steps_per_block, args.nll_samples]) <= 0:
        p.error("batch sizes, widths, --blocks, --steps-per-block and --nll-samples must be positive")
    if args.nll_epochs < 0:
        p.error("--nll-epochs must be 0 or positive")
    if args.blocks < 4:
        p.error("--blocks must be at least 4 for a median and quartiles")
    from .experiments.bench import run_benchmark  # the application loads only when its command runs
    return _guarded(lambda: run_benchmark(args, command=_command("scripts/bench.py", argv)), args.out)


def bench_ddp_main(argv: Optional[List[str]] = None) -> int:
    """``scripts/bench_ddp.py``: training throughput with 1 and N processes."""
    p = _Parser(description="Train the same VAE in one process and under torchrun with N processes "
                "(--distributed); write the throughput to <out>/ddp.{md,json}.",
                formatter_class=_Help)
    p.add_argument("--cuda", action="store_true", help="one GPU per process (NCCL)")
    p.add_argument("--dataset", default="binarized-mnist", choices=DATASETS)
    p.add_argument("--data-dir", default="./data")
    p.add_argument("--epochs", type=int, default=4, help="epochs per run (the first is not timed)")
    p.add_argument("--batch-size", type=int, default=128, help="the global minibatch")
    p.add_argument("--hidden", type=int, nargs="+", default=[400])
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
    from .experiments.bench_ddp import run_scaling  # the application loads only when its command runs
    return _guarded(lambda: run_scaling(args, command=_command("scripts/bench_ddp.py", argv)), args.out)


def nll_table_main(argv: Optional[List[str]] = None) -> int:
    """``scripts/nll_table.py RUN_DIR ...``: the test-NLL table of evaluated runs."""
    p = _Parser(description="Collect evaluated runs (scripts/evaluate.py) into a test-NLL table beside the "
                "published anchors: <out>.md and <out>.json.", formatter_class=_Help)
    p.add_argument("run_dirs", nargs="+", help="run folders scored by scripts/evaluate.py")
    p.add_argument("--out", default="runs/nll_table", help="path of the table, without suffix")
    args = p.parse_args(argv)
    from .experiments.nll_table import write_table  # the application loads only when its command runs
    return _guarded(lambda: write_table(args.run_dirs, args.out, command=_command("scripts/nll_table.py", argv)),
                    args.out)

