"""``scripts/bench_peers.py``: pyrovae against a hand-written PyTorch loop, stock Pyro and
NumPyro on the CPU, per epoch and per step, with the matrix-product floor
(:mod:`pyrovae.experiments.bench_peers`)."""
from typing import List, Optional

from .common import _command, _guarded, _Help, _Parser


def bench_peers_main(argv: Optional[List[str]] = None) -> int:
    p = _Parser(description="Time pyrovae (eager, --fast) against a hand-written PyTorch loop, stock Pyro SVI and "
                "NumPyro on the CPU, per training epoch and per step, at each thread count, interleaved in rounds; "
                "also the time of the step's matrix products alone (the floor). Writes <out>/peers.{md,json}.",
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
    p.add_argument("--out", default="runs/bench", help="folder of peers.{md,json}")
    args = p.parse_args(argv)
    sizes = args.hidden + args.threads + [args.batch_size, args.z_dim, args.rounds, args.steps_per_block]
    if min(sizes + ([] if args.max_steps is None else [args.max_steps])) <= 0:
        p.error("sizes, thread counts, --rounds, --steps-per-block and --max-steps must be positive integers")
    from ..experiments.bench_peers import run_peers  # the application loads only when its command runs
    return _guarded(lambda: run_peers(args, command=_command("scripts/bench_peers.py", argv)), args.out)
