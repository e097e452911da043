"""The other programs' command lines: ``evaluate.py``, ``plot_latent.py``, ``bench.py``,
``bench_ddp.py``, ``nll_table.py``, ``encode.py``. Each imports its application
(:mod:`pyrovae.experiments`) only when it runs."""
from typing import List, Optional

from ..data.datasets import DATASETS
from .common import _command, _guarded, _Help, _Parser, _run_dir_parser, _set_threads

#: what a run of a user's own model class needs in Python (the checkpoint a program read, its class again)
LOAD = "vae = pyrovae.load({checkpoint}, model=<that class>)"


def evaluate_main(argv: Optional[List[str]] = None) -> int:
    """``scripts/evaluate.py RUN_DIR``: importance-sampled test NLL and more into metrics.json."""
    p = _run_dir_parser("Score a finished run: importance-sampled test NLL, ELBO and its split, "
                        "active units (and bits/dim for dequantized data), written into RUN_DIR/metrics.json.")
    p.add_argument("--num-samples", type=int, default=5000, help="importance samples K per test image")
    p.add_argument("--test-limit", type=int, default=None,
                   help="score only N test images, evenly spaced over the test set (a fair subset)")
    p.add_argument("--test-subset", type=int, default=None, help="the same as --test-limit")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.add_argument("--checkpoint", choices=("best", "last"), default=None,
                   help="best.pt (the best epoch by the validation ELBO) or checkpoint.pt (the last); "
                        "default: best.pt where the run kept one")
    args = p.parse_args(argv)
    if min(v for v in (args.num_samples, args.test_limit, args.test_subset, 1) if v is not None) <= 0:
        p.error("--num-samples, --test-limit and --test-subset must be positive integers")
    checkpoint = {"best": "best.pt", "last": "checkpoint.pt", None: None}[args.checkpoint]
    _set_threads(p, args.threads)
    from ..experiments.evaluate import evaluate_run  # the application loads only when its command runs
    return _guarded(lambda: evaluate_run(args.run_dir, args.num_samples, args.cuda, args.test_limit, args.test_subset,
                                         checkpoint=checkpoint, command=_command("scripts/evaluate.py", argv),
                                         progress=args.progress),
                    args.run_dir, ("evaluate.py", "from pyrovae.experiments.evaluate import evaluate_run; "
                                   f"evaluate_run({args.run_dir!r}, model=<that class>)"))


def plot_latent_main(argv: Optional[List[str]] = None) -> int:
    """``scripts/plot_latent.py RUN_DIR``: latent-space figures of a finished run."""
    p = _run_dir_parser("Latent-space figures of a finished run: posterior means of the test set "
                        "(2-d latent or PCA), the decoded manifold (2-d latent), interpolations, traversals.")
    p.add_argument("--out", default=None, help="folder for the figures, made if missing (default: RUN_DIR; give one "
                                                "for a run on a read-only file system)")
    p.add_argument("--traversal-dims", type=int, default=8, metavar="K",
                   help="traversals.png: the K latent dimensions whose posterior means vary most, one row each")
    args = p.parse_args(argv)
    if args.traversal_dims <= 0:
        p.error(f"--traversal-dims must be a positive integer, got {args.traversal_dims}")
    _set_threads(p, args.threads)
    from ..experiments.plot_latent import plot_latent_run  # the application loads only when its command runs
    return _guarded(lambda: plot_latent_run(args.run_dir, args.out, args.cuda, traversal_dims=args.traversal_dims),
                    args.run_dir, ("plot_latent.py", f"{LOAD}, then plot from its encode and decode"))


def bench_main(argv: Optional[List[str]] = None) -> int:
    """``scripts/bench.py``: pyrovae's SVI step against a hand-written PyTorch step."""
    p = _Parser(description="Time pyrovae's SVI step (Trace_ELBO, TraceMeanField_ELBO) against a hand-written "
                "PyTorch VAE step, interleaved in one process; write <out>/bench.{md,json}.",
                formatter_class=_Help)
    p.add_argument("--cuda", action="store_true", help="time on the GPU (writes gpu.{md,json})")
    p.add_argument("--dataset", default="binarized-mnist", choices=DATASETS, help="the data the steps train on")
    p.add_argument("--data-dir", default="./data", help="where the data set is read from")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128, 512, 4096],
                   help="minibatch sizes swept at hidden width 400")
    p.add_argument("--widths", type=int, nargs="+", default=[200, 400, 1000], help="hidden widths swept at batch 128")
    p.add_argument("--blocks", type=int, default=15, help="timing blocks per configuration")
    p.add_argument("--steps-per-block", type=int, default=20, help="SVI steps timed together in one block")
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
    from ..experiments.bench import run_benchmark  # the application loads only when its command runs
    return _guarded(lambda: run_benchmark(args, command=_command("scripts/bench.py", argv)), args.out)


def bench_ddp_main(argv: Optional[List[str]] = None) -> int:
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
    from ..experiments.bench_ddp import run_scaling  # the application loads only when its command runs
    return _guarded(lambda: run_scaling(args, command=_command("scripts/bench_ddp.py", argv)), args.out)


def nll_table_main(argv: Optional[List[str]] = None) -> int:
    """``scripts/nll_table.py RUN_DIR ...``: the test-NLL table of evaluated runs."""
    p = _Parser(description="Collect evaluated runs (scripts/evaluate.py) into a test-NLL table beside the "
                "published anchors: <out>.md and <out>.json.", formatter_class=_Help)
    p.add_argument("run_dirs", nargs="+", help="run folders scored by scripts/evaluate.py")
    p.add_argument("--out", default="runs/nll_table", help="path of the table, without suffix")
    args = p.parse_args(argv)
    from ..experiments.nll_table import write_table  # the application loads only when its command runs
    return _guarded(lambda: write_table(args.run_dirs, args.out, command=_command("scripts/nll_table.py", argv)),
                    args.out)



def encode_main(argv: Optional[List[str]] = None) -> int:
    """``scripts/encode.py RUN_DIR DATA --out latents.npz``: the run's guide over a data set."""
    p = _run_dir_parser("Run the trained guide of a run over a data set and write per row loc and scale of "
                        "q(z|x) (and with --score the ELBO, with --num-samples K the importance-sampled log p(x), "
                        "an outlier score: lower = more unusual) into one .npz, streamed in chunks.")
    p.add_argument("data", help="what to encode: a .npy file ((N, D) or image-shaped; uint8, bool or float; read "
                                "chunk by chunk), any data set svi_train.py reads (a name, a .npz, a folder of images, a "
                                ".csv/.parquet table; every row of it), or test / train / all: the run's own data")
    p.add_argument("--out", required=True, help="the .npz to write (its folder must exist)")
    p.add_argument("--batch-size", type=int, default=1024, help="rows read and scored at a time")
    p.add_argument("--score", action="store_true", help="also write the per-row ELBO and its split, in nats")
    p.add_argument("--num-samples", type=int, default=None, metavar="K",
                   help="also write log_px, log p(x) importance-sampled with K samples (implies --score)")
    p.add_argument("--num-particles", type=int, default=10, help="draws from q averaged in each row's ELBO")
    p.add_argument("--checkpoint", choices=("best", "last", "best.pt", "checkpoint.pt"), default=None,
                   help="best.pt (the best epoch by the validation ELBO) or checkpoint.pt (the last); "
                        "default: best.pt where the run kept one")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    args = p.parse_args(argv)
    if args.batch_size <= 0 or args.num_particles <= 0:
        p.error("--batch-size and --num-particles must be positive integers")
    if args.num_samples is not None and args.num_samples < 1:
        p.error(f"--num-samples must be a positive integer (K >= 1), got {args.num_samples}")
    checkpoint = {"best": "best.pt", "last": "checkpoint.pt"}.get(args.checkpoint, args.checkpoint)
    _set_threads(p, args.threads)
    from ..experiments.encode import encode_run  # the application loads only when its command runs
    return _guarded(lambda: encode_run(args.run_dir, args.data, args.out, args.cuda, args.batch_size,
                                       score=args.score or args.num_samples is not None,
                                       num_samples=args.num_samples or 0, num_particles=args.num_particles,
                                       checkpoint=checkpoint, progress=args.progress,
                                       command=_command("scripts/encode.py", argv)),
                    args.run_dir, ("encode.py", f"{LOAD}, then pyrovae.encode_dataset(vae, rows, out_path)"))
