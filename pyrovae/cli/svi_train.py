"""``scripts/svi_train.py``: flags -> :class:`TrainConfig` -> :func:`pyrovae.train` /
:func:`pyrovae.resume`. :func:`build_parser` and :func:`_train_config` also serve the programs of
``benchmarks/`` that train runs of their own."""
import argparse
import sys
from dataclasses import fields
from pathlib import Path
from typing import List, Optional

from ..data.datasets import DATASETS
from ..errors import ConfigError, PyrovaeError
from ..infer.compiled import MATMUL_BACKENDS
from ..model.guides import GUIDES
from ..model.likelihoods import BUILT_IN
from ..model.networks import ACTIVATIONS
from ..model.priors import PRIORS
from ..model.registry import MODELS
from ..training.config import ARCHS, BINARIZE, DEQUANTIZE, ELBOS, LR_SCHEDULES, PLACEMENTS, STANDARDIZE, TrainConfig
from ..training.resume import resume
from ..training.trainer import train
from .common import _command, _guarded, _Help, _Parser, _threads_flag

RESUME_FLAGS = {"epochs", "progress", "cuda", "distributed", "threads"}


def build_parser(description: str = "Train a VAE (Pyro model/guide) with SVI.") -> argparse.ArgumentParser:
    d = TrainConfig()
    p = _Parser(description=description, formatter_class=_Help)
    p.add_argument("--cuda", action="store_true", help="train on the GPU (fails with one line if there is none)")
    p.add_argument("--dataset", default=d.dataset, metavar="NAME_OR_PATH",
                   help=f"a data set name ({', '.join(DATASETS)}) or the path of your own data: a .npy/.npz "
                        "array, a folder of images (class subfolders are labels), a .csv/.parquet table "
                        "(see docs/own-data.md)")
    p.add_argument("--data-dir", default=d.data_dir, help="where named data sets are read from / downloaded to")
    p.add_argument("--no-download", dest="download", action="store_false", help="never try the network")
    p.add_argument("--image-size", type=int, default=None,
                   help="image folders and celeba: resize images to SIZE x SIZE")
    p.add_argument("--test-size", type=_fraction_or_count, default=None, metavar="FRACTION_OR_N",
                   help="data without its own test split: the test rows of the seeded split, a fraction in (0, 1) "
                        "(0.2) or a number of rows (500) (default: 0.1)")
    p.add_argument("--split-seed", type=int, default=d.split_seed,
                   help="seed of that split (its rows are recorded in metrics.json)")
    p.add_argument("--label-column", default=None, metavar="NAME",
                   help="tables (.csv/.parquet): the column of integer class labels (it leaves the features)")
    p.add_argument("--labels-per-class", type=int, default=None, metavar="N",
                   help="keep the labels of N seeded training rows per class (--split-seed) and hide the rest; "
                        "validation and test rows keep theirs for scoring")
    p.add_argument("--label-seed", type=int, default=None, metavar="SEED",
                   help="the seed of the rows whose labels --labels-per-class keeps (default: --split-seed)")
    p.add_argument("--standardize", default=d.standardize, choices=STANDARDIZE,
                   help="columns: (x - mean) / std per column, from the training rows, undone on decode; "
                        "auto: for tables with a real-valued likelihood")
    p.add_argument("--data-placement", default=d.data_placement, choices=PLACEMENTS,
                   help="device: the data moves to the GPU once; host: it stays in pinned host memory and "
                        "minibatches stream with overlapped copies; auto: device when it fits")
    p.add_argument("--model", default=d.model, choices=tuple(MODELS),
                   help="vae = p(z) p(x|z); hvae = two stochastic layers p(z2) p(z1|z2) p(x|z1,z2); cvae = a conditional VAE p(z) p(x|z,y) (every row with its class); "
                        "m2 = the semi-supervised model of Kingma et al. 2014 (hidden labels summed out exactly); "
                        "m1m2 = M2 on the posterior means of a finished vae run (--m1-run), classifying rows as given")
    p.add_argument("--m1-run", default=None, metavar="RUN_DIR",
                   help="m1m2: the folder of a finished vae run (M1) on the same data; M2 learns from its posterior "
                        "means, and its weights are copied into the new run")
    p.add_argument("--alpha", type=float, default=d.alpha,
                   help="m2: the weight of log q(y|x) per labelled row (Kingma et al.'s alpha = 0.1 N on the mean "
                        "over the labelled rows is 0.1 N / N_labelled per row)")
    p.add_argument("--labelled-batch", type=int, default=None, metavar="N",
                   help="m2: labelled rows drawn into every minibatch (default: --batch-size, or every labelled row "
                        "when there are fewer)")
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
                   help="MLP (--activation units), MLP with gated units, or convolutional encoder/decoder")
    p.add_argument("--activation", default=d.activation, choices=("auto", *ACTIVATIONS),
                   help="the hidden units of --arch mlp and gated; auto: relu for mlp (2 nats better than softplus after "
                        "10 epochs: results/activation), none for gated (the gate alone)")
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
    p.add_argument("--beta", type=float, default=d.beta,
                   help="the weight of the KL term after the warm-up (beta-VAE, Higgins et al. 2017): the latent "
                        "sites' log-densities are scaled by beta x min(1, epoch / --kl-warmup); the validation and "
                        "test ELBOs stay the ELBO itself; not with --elbo iwae")
    p.add_argument("--early-stopping", type=int, default=d.early_stopping,
                   help="stop after N epochs without a better validation ELBO (0: never)")
    p.add_argument("--valid-size", type=int, default=d.valid_size,
                   help="hold out the last N training images as the validation set that chooses best.pt, the "
                        "plateau schedule and early stopping (default: the last 10%%; binarized-mnist has its "
                        "own); 0: no validation set, best.pt is the last epoch")
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every,
                   help="also write checkpoint.pt every N steps inside an epoch (0: at epoch ends)")
    p.add_argument("--seed", type=int, default=d.seed, help="seeds torch, numpy and random")
    p.add_argument("--out", default=None, help="run folder (default: runs/<dataset>-<likelihood>-<elbo>, git-ignored): "
                   "a new or empty folder, never one that holds a run")
    p.add_argument("--test-frequency", type=int, default=d.test_frequency, help="evaluate every N epochs")
    p.add_argument("--train-limit", type=int, default=None,
                   help="use only N training rows, evenly spaced over the training set (a quick run)")
    p.add_argument("--test-limit", type=int, default=None,
                   help="use only N test (and validation) rows, evenly spaced over each set, so a quick run's scores "
                        "stay representative")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no tqdm progress bar")
    p.add_argument("--distributed", action="store_true",
                   help="data-parallel training, one process per device, started by torchrun "
                        "(torchrun --nproc_per_node=N scripts/svi_train.py --distributed ...)")
    p.add_argument("--tensorboard", action="store_true", help="write scalars and images to <out>/tensorboard")
    _threads_flag(p)
    p.add_argument("--fast", action="store_true",
                   help="capture the SVI step once and replay it compiled (torch.compile); checked against "
                        "the eager step, falls back to it if the two differ")
    p.add_argument("--fast-matmul", choices=MATMUL_BACKENDS, default=d.fast_matmul,
                   help="--fast on the CPU: run the compiled step's matrix products on oneDNN or torch.mm; auto: "
                        "the faster of the two on this machine, timed on the run's own products once and cached "
                        "in ~/.cache/pyrovae (PYROVAE_CACHE_DIR elsewhere)")
    return p


def _fraction_or_count(text: str):
    """``--test-size``: a fraction in (0, 1) or a whole number of rows (validated with the settings)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1) or a number of rows, got {text!r}") from None
    return int(value) if value.is_integer() else value


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


def main_parser() -> argparse.ArgumentParser:
    """The flags of ``scripts/svi_train.py``: the settings', ``--resume`` and ``--config``."""
    p = build_parser()
    p.add_argument("--resume", metavar="RUN_DIR", default=None,
                   help="continue the run in RUN_DIR from its checkpoint, with its own settings "
                        "(only --epochs, --cuda, --distributed, --threads and --no-progress may change)")
    p.add_argument("--config", metavar="FILE", default=None,
                   help="every setting from a .json/.yaml file of settings or a run's config.json; flags on the "
                        "command line override it (see docs/flags.md)")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    """``scripts/svi_train.py``: a new run, or ``--resume RUN_DIR``."""
    p = main_parser()
    args = vars(p.parse_args(argv))
    command = _command("scripts/svi_train.py", argv)
    run_dir, config_file = args.pop("resume"), args.pop("config")
    if run_dir is None:
        try:
            config = _train_config(p, args) if config_file is None else _file_config(p, args, argv, config_file)
            out = config.out_dir()  # names the likelihood, which a file's object may not hold
        except PyrovaeError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        return _guarded(lambda: train(config, command=command), out)
    present = _flags_given(p, argv) - {"resume"}
    changed = sorted(present - RESUME_FLAGS)
    if changed:
        p.error(f"--resume continues a run with its own settings; drop --{changed[0].replace('_', '-')} "
                "(only --epochs, --cuda, --distributed, --threads and --no-progress may be given with --resume)")
    given = {k: args[k] for k in RESUME_FLAGS & present}
    return _guarded(lambda: resume(run_dir, command=command, **given), run_dir)


def _file_config(p: argparse.ArgumentParser, args: dict, argv: Optional[List[str]], path: str) -> TrainConfig:
    """The settings of a config file, with those of the flags on the command line in their place
    (an option of ``--likelihood-option``, ``--prior-components`` or ``--flow-steps`` replaces that
    one option). A run's config.json keeps its ``out`` unless ``--out`` is given, and is refused
    when that would train into the run it records."""
    from ..training.config_file import config_from_file

    config, record = config_from_file(path)
    flags = _train_config(p, dict(args))  # every flag's value, the defaults included
    given = _flags_given(p, argv) - {"config", "resume"}
    for name in given & {f.name for f in fields(TrainConfig)}:
        setattr(config, name, getattr(flags, name))
    for options, names in (("likelihood_options", {"likelihood_option", "likelihood_scale"}),
                           ("prior_options", {"prior_components"}), ("guide_options", {"flow_steps"})):
        if given & names:
            setattr(config, options, {**getattr(config, options), **getattr(flags, options)})
    if record and "out" not in given and Path(config.out_dir()).resolve() == Path(path).resolve().parent:
        raise ConfigError(f"{path} records the run in {Path(path).parent}; training from it into the same folder "
                          "would replace that run: give --out")
    return config


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
