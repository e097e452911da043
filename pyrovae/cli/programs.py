"""The other programs' command lines: ``evaluate.py``, ``plot_latent.py``, ``encode.py``. Each
imports its application (:mod:`pyrovae.analysis`) only when it runs."""
from typing import List, Optional

from .common import _checkpoint_flag, _command, _guarded, _run_dir_parser, _set_threads

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
    _checkpoint_flag(p)
    args = p.parse_args(argv)
    if min(v for v in (args.num_samples, args.test_limit, args.test_subset, 1) if v is not None) <= 0:
        p.error("--num-samples, --test-limit and --test-subset must be positive integers")
    checkpoint = {"best": "best.pt", "last": "checkpoint.pt", None: None}[args.checkpoint]
    _set_threads(p, args.threads)
    from ..analysis.evaluate import evaluate_run  # the application loads only when its command runs
    return _guarded(lambda: evaluate_run(args.run_dir, args.num_samples, args.cuda, args.test_limit, args.test_subset,
                                         checkpoint=checkpoint, command=_command("scripts/evaluate.py", argv),
                                         progress=args.progress),
                    args.run_dir, ("evaluate.py", "from pyrovae.analysis.evaluate import evaluate_run; "
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
    from ..analysis.plot_latent import plot_latent_run  # the application loads only when its command runs
    return _guarded(lambda: plot_latent_run(args.run_dir, args.out, args.cuda, traversal_dims=args.traversal_dims),
                    args.run_dir, ("plot_latent.py", f"{LOAD}, then plot from its encode and decode"))


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
    _checkpoint_flag(p, ("best", "last", "best.pt", "checkpoint.pt"))
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    args = p.parse_args(argv)
    if args.batch_size <= 0 or args.num_particles <= 0:
        p.error("--batch-size and --num-particles must be positive integers")
    if args.num_samples is not None and args.num_samples < 1:
        p.error(f"--num-samples must be a positive integer (K >= 1), got {args.num_samples}")
    checkpoint = {"best": "best.pt", "last": "checkpoint.pt"}.get(args.checkpoint, args.checkpoint)
    _set_threads(p, args.threads)
    from ..analysis.encode import encode_run  # the application loads only when its command runs
    return _guarded(lambda: encode_run(args.run_dir, args.data, args.out, args.cuda, args.batch_size,
                                       score=args.score or args.num_samples is not None,
                                       num_samples=args.num_samples or 0, num_particles=args.num_particles,
                                       checkpoint=checkpoint, progress=args.progress,
                                       command=_command("scripts/encode.py", argv)),
                    args.run_dir, ("encode.py", f"{LOAD}, then pyrovae.encode_dataset(vae, rows, out_path)"))
