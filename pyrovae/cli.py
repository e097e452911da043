"""Command line of ``scripts/svi_train.py``: flags -> :class:`TrainConfig` -> :func:`train`.

Bad input ends with one line on stderr, ``error: <what was wrong and what to do>``, and
exit status 2; a finished run exits 0.
"""
import argparse
import shlex
import sys
from typing import List, Optional

from .config import BINARIZE, DEQUANTIZE, ELBOS, TrainConfig
from .data import DATASETS
from .errors import PyrovaeError
from .likelihoods import BUILT_IN


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not argparse's usage block
        self.exit(2, f"error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    d = TrainConfig()
    p = _Parser(description="Train a VAE (Pyro model/guide) with SVI.",
                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--cuda", action="store_true", help="train on the GPU (fails with one line if there is none)")
    p.add_argument("--dataset", default=d.dataset, choices=DATASETS)
    p.add_argument("--data-dir", default=d.data_dir, help="where data sets are read from / downloaded to")
    p.add_argument("--no-download", dest="download", action="store_false", help="never try the network")
    p.add_argument("--likelihood", default=d.likelihood, metavar="{" + ",".join(BUILT_IN) + "}",
                   help="p(x|z); a callable of your own goes through the Python API")
    p.add_argument("--likelihood-scale", type=float, default=d.likelihood_scale,
                   help="fixed scale for gaussian/laplace (default: learned per pixel)")
    p.add_argument("--binarize", default=d.binarize, choices=BINARIZE,
                   help="bernoulli on grey data: dynamic = fresh draw every minibatch, static = one draw")
    p.add_argument("--dequantize", default=d.dequantize, choices=DEQUANTIZE,
                   help="continuous likelihoods on 8-bit data: uniform noise every minibatch")
    p.add_argument("--elbo", default=d.elbo, choices=ELBOS,
                   help="trace = Trace_ELBO (Monte-Carlo KL), meanfield = TraceMeanField_ELBO (analytic KL)")
    p.add_argument("--num-particles", type=int, default=d.num_particles)
    p.add_argument("--z-dim", type=int, default=d.z_dim)
    p.add_argument("--hidden", type=int, nargs="+", default=list(d.hidden), help="hidden widths, e.g. --hidden 400 200")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--out", default=None, help="run folder (default: results/<dataset>-<likelihood>-<elbo>)")
    p.add_argument("--test-frequency", type=int, default=d.test_frequency, help="evaluate every N epochs")
    p.add_argument("--train-limit", type=int, default=None, help="use only the first N training images")
    p.add_argument("--test-limit", type=int, default=None, help="use only the first N test images")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no tqdm progress bar")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    config = TrainConfig(**{k: v for k, v in vars(args).items()})
    try:
        from .run import train  # torch/pyro import after the flags are known to parse

        argv = sys.argv[1:] if argv is None else argv
        train(config, command=shlex.join(["python", "scripts/svi_train.py", *map(str, argv)]))
    except PyrovaeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted; the last finished epoch's checkpoint is in {config.out_dir()}", file=sys.stderr)
        return 130
    return 0
