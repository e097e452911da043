"""One training run's settings: a dataclass of plain values.

It travels into ``config.json`` and into every checkpoint, so a run can be rebuilt
from it (nanoGPT-style). :meth:`TrainConfig.validate` turns bad values into one
:class:`~pyrovae.errors.ConfigError` that says which setting and what is allowed.
"""
from dataclasses import asdict, dataclass, field, fields
from dataclasses import replace as dataclasses_replace
from pathlib import Path
from typing import Any, Optional, Tuple

from ..data.selection import LIMIT_RULES
from ..errors import ConfigError, DataError, brief, one_line
from ..infer.elbos import ELBO_CLASSES
from ..model.guides import GUIDES, check_guide_options
from ..model.networks import ARCHITECTURES
from ..model.priors import PRIORS, check_prior_options
from .checks import check_combinations, check_model, check_selection, choice, dataset_spec, non_negative, positive, size
from .sizes import check_sizes, machine_memory

ELBOS = tuple(ELBO_CLASSES)  # the registries' own keys: one source for each list of names
ARCHS = ARCHITECTURES
LR_SCHEDULES = ("constant", "cosine", "plateau")
BINARIZE = ("auto", "dynamic", "static", "none")
DEQUANTIZE = ("auto", "uniform", "none")
STANDARDIZE = ("auto", "columns", "none")
PLACEMENTS = ("auto", "device", "host")
#: the units ``activation="auto"`` gives each architecture (results/activation: the measured comparison)
DEFAULT_ACTIVATION = {"mlp": "relu", "gated": "none"}
#: seeds are below this: pyro.set_rng_seed seeds numpy's global state too, which takes 32 bits
SEED_LIMIT = 2**32


@dataclass
class TrainConfig:
    dataset: str = "mnist"  # a name (pyrovae.data.datasets) or the path of a file or folder (stored absolute)
    data_dir: str = "./data"
    download: bool = True
    image_size: Optional[int] = None  # image folders and celeba: resize to this side (square)
    test_size: Optional[float] = None  # sources without a test split: the seeded split's test rows, a fraction in
    # (0, 1) or a count (None: 10%)
    split_seed: int = 0  # the seed of that split, independent of the training seed
    label_column: Optional[str] = None  # tables: the column that holds each row's integer class label
    labels_per_class: Optional[int] = None  # keep the labels of N seeded training rows per class, hide the rest
    label_seed: Optional[int] = None  # the seed of those rows (None: split_seed)
    model: str = "vae"  # vae | cvae (conditional on the class) | m2 (semi-supervised) | custom (a user's Model)
    alpha: float = 50.0  # m2: weight of log q(y|x) per labelled row (Kingma et al.'s alpha = 0.1 N is 0.1 N / N_l)
    m1_run: Optional[str] = None  # m1m2: the folder of a finished vae run (M1) on the same data (stored absolute)
    labelled_batch: Optional[int] = None  # m2: labelled rows added to every minibatch (None: min(labelled, batch))
    likelihood: Any = "bernoulli"  # a built-in name, a Likelihood or a callable (stored as its config() dict)
    likelihood_options: dict = field(default_factory=dict)  # keyword options of the likelihood, e.g. {"scale": 0.1}
    prior: str = "normal"  # normal | mog (learned mixture of Gaussians) | vamp (VampPrior)
    prior_options: dict = field(default_factory=dict)  # e.g. {"components": 500}
    guide: str = "normal"  # normal (diagonal Gaussian) | iaf (inverse autoregressive flow)
    guide_options: dict = field(default_factory=dict)  # e.g. {"steps": 2}
    binarize: str = "auto"  # auto: dynamic for bernoulli on grey data, else none
    dequantize: str = "auto"  # auto: uniform for other likelihoods on grey data with known levels
    standardize: str = "auto"  # auto: columns of vector data (no image shape) for real-valued likelihoods
    elbo: str = "trace"  # trace: Trace_ELBO (Monte-Carlo KL); meanfield: TraceMeanField_ELBO
    num_particles: int = 1
    z_dim: int = 50
    arch: str = "mlp"  # mlp | gated (MLP with gated units) | conv
    activation: Optional[str] = "auto"  # mlp/gated units (networks.ACTIVATIONS); auto: DEFAULT_ACTIVATION of the arch
    hidden: Tuple[int, ...] = (400,)  # mlp: encoder widths (decoder mirrored); conv: dense width
    channels: Tuple[int, ...] = (32, 64)  # conv: feature maps at H/2 and H/4
    epochs: int = 100
    batch_size: int = 128
    lr: float = 1e-3
    lr_schedule: str = "constant"  # constant | cosine (to lr_min over the run) | plateau (halve on no gain)
    lr_min: float = 0.0
    lr_patience: int = 10  # plateau: epochs without a better validation ELBO before halving
    kl_warmup: int = 0  # epochs over which the latent site's scale rises from 1/W to 1
    beta: float = 1.0  # the KL term's weight after the warm-up (beta-VAE); runs recorded before it: 1
    early_stopping: int = 0  # stop after this many epochs without a better validation ELBO (0: never)
    valid_size: Optional[int] = None  # data sets without a validation split: hold out the last N training
    # images (None: the last 10%; 0: no validation set, best.pt is the last epoch)
    checkpoint_every: int = 0  # also checkpoint every N steps inside an epoch (0: at epoch ends only)
    seed: int = 0
    cuda: bool = False
    test_frequency: int = 1
    train_limit: Optional[int] = None  # use only N training rows, evenly spaced over the training set
    test_limit: Optional[int] = None  # use only N test (and validation) rows, evenly spaced
    limit_rule: str = "evenly-spaced"  # which rows the limits keep; runs recorded before the rule existed: "first"
    hold_out_rule: str = "sorted-rows-random"  # a class-sorted named set gives up random validation rows; runs
    # recorded before that rule: "as-recorded" (its last rows)
    out: Optional[str] = None  # default: runs/<dataset>-<likelihood>-<elbo>
    progress: bool = True
    fast: bool = False  # replay a compiled graph of the SVI step (pyrovae.infer.compiled)
    fast_matmul: str = "auto"  # --fast on the CPU: the graph's matrix products on oneDNN, torch.mm, or the faster here
    distributed: bool = False  # one process per device under torchrun (pyrovae.distributed)
    tensorboard: bool = False  # scalars and images into <out>/tensorboard (pyrovae.tracking)
    threads: Optional[int] = None  # torch.set_num_threads(N) for the run; None: PyTorch's default
    data_placement: str = "auto"  # device: all data moved once; host: pinned host memory, streamed minibatches

    def validate(self, paths: bool = True, new: bool = True) -> "TrainConfig":
        """Check every setting (one line for the first wrong one); ``paths`` False leaves alone
        whether the data's file or folder is still there (reading a run's checkpoints needs no data).
        ``new``: the settings of a run about to start, whose sizes are refused where their least memory
        (:mod:`pyrovae.training.sizes`: the networks' parameters with their gradients and Adam's
        moments, one step's latent draws) exceeds this machine's, as is a setting its model does not
        use (``labels_per_class`` without labels to learn from). False: a run's record (read, or
        resumed), which trained with its settings once; only sizes no machine can address are refused."""
        from ..data.datasets import DATASETS, WITH_VALIDATION_SPLIT
        from ..model.likelihoods import BUILT_IN
        from .checks import check_stacked

        self.hidden = tuple(self.hidden)
        self.channels = tuple(self.channels)
        if len(self.channels) != 2:
            raise ConfigError(f"channels takes two numbers (feature maps at H/2 and H/4), got {list(self.channels)}")
        for c in self.channels:
            positive("channels", c)
        self.dataset = dataset_spec(self.dataset, DATASETS, must_exist=paths)
        if isinstance(self.likelihood, str):
            choice("likelihood", self.likelihood, tuple(BUILT_IN))
        if self.image_size is not None:
            positive("image_size", self.image_size)
        if self.test_size is not None:
            size("test_size", self.test_size)
            if isinstance(self.test_size, float) and self.test_size.is_integer():
                self.test_size = int(self.test_size)  # 2.0 rows are 2 rows
        if self.labels_per_class is not None:
            positive("labels_per_class", self.labels_per_class)
        if self.label_column is not None and not (isinstance(self.label_column, str) and self.label_column):
            raise ConfigError(f"label_column must be the name of a column, got {self.label_column!r}")
        choice("limit_rule", self.limit_rule, LIMIT_RULES)
        choice("hold_out_rule", self.hold_out_rule, ("sorted-rows-random", "as-recorded"))
        if self.activation == "auto":  # recorded resolved: a later default never changes a run's units
            self.activation = DEFAULT_ACTIVATION.get(self.arch)
        for name in ("split_seed", "label_seed"):
            value = getattr(self, name)
            if name == "label_seed" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < SEED_LIMIT:
                raise ConfigError(f"{name} must be an integer from 0 to 2**32 - 1, got {value!r}")
        choice("standardize", self.standardize, STANDARDIZE)
        choice("data_placement", self.data_placement, PLACEMENTS)
        choice("elbo", self.elbo, ELBOS)
        choice("prior", self.prior, tuple(PRIORS))
        choice("guide", self.guide, tuple(GUIDES))
        for name in ("prior_options", "guide_options"):
            if not isinstance(getattr(self, name), dict):
                raise ConfigError(f"{name} must be a dict of option names to values, got {brief(getattr(self, name))}")
        check_prior_options(self.prior, self.prior_options)
        check_guide_options(self.guide, self.guide_options)
        if self.elbo == "meanfield" and not GUIDES[self.guide].analytic_kl:
            raise ConfigError(f"--elbo meanfield needs the closed-form KL of the guide, which the {self.guide} guide "
                              "does not have; use --elbo trace or iwae")
        choice("arch", self.arch, ARCHS)
        check_model(self, new)
        choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        for name in ("lr_patience",):
            positive(name, getattr(self, name))
        for name in ("kl_warmup", "early_stopping", "checkpoint_every"):
            non_negative(name, getattr(self, name))
        if self.valid_size is not None:
            non_negative("valid_size", self.valid_size)
        if self.valid_size == 0 and self.dataset not in WITH_VALIDATION_SPLIT:
            check_selection(self, has_validation=False)
        if not (isinstance(self.lr_min, (int, float)) and 0 <= self.lr_min < float("inf")):
            raise ConfigError(f"lr_min must be a non-negative number, got {self.lr_min!r}")
        choice("binarize", self.binarize, BINARIZE)
        choice("dequantize", self.dequantize, DEQUANTIZE)
        for name in ("num_particles", "z_dim", "epochs", "batch_size", "test_frequency"):
            positive(name, getattr(self, name))
        for h in self.hidden:
            positive("hidden", h)
        for name in ("train_limit", "test_limit", "threads"):
            if getattr(self, name) is not None:
                positive(name, getattr(self, name))
        if not (isinstance(self.lr, (int, float)) and self.lr > 0 and self.lr == self.lr and self.lr < float("inf")):
            raise ConfigError(f"lr must be a positive finite number, got {self.lr!r}")
        if self.lr_schedule != "constant" and self.lr_min > self.lr:
            raise ConfigError(f"lr_min {self.lr_min:g} is above lr {self.lr:g}, but the {self.lr_schedule} schedule only "
                              "lowers the rate from lr to lr_min; give --lr-min at most --lr")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < SEED_LIMIT:
            raise ConfigError(f"seed must be an integer from 0 to 2**32 - 1, got {self.seed!r}")
        likelihood = make_likelihood(self)  # refuses unknown or invalid options in one line
        check_stacked(self, likelihood, new)  # m1m2: its M1 run, likelihood and preprocessing
        check_sizes(self, machine_memory(self.cuda) if new else None)
        check_combinations(self, likelihood, new)  # settings that exclude each other, or the likelihood
        return self

    def units(self) -> Optional[str]:
        """The networks' activation: the setting, ``auto`` resolved for the architecture
        (:data:`DEFAULT_ACTIVATION`); None: the architecture's own units (runs recorded before
        the setting existed)."""
        return DEFAULT_ACTIVATION.get(self.arch) if self.activation == "auto" else self.activation

    def out_dir(self) -> str:
        data = self.dataset if self.dataset_is_name() else Path(self.dataset).stem
        model = "" if self.model == "vae" else f"{self.model}-"
        return self.out or f"runs/{model}{data}-{self.likelihood_name()}-{self.elbo}"

    def dataset_is_name(self) -> bool:
        from ..data.datasets import DATASETS

        return self.dataset in DATASETS

    def likelihood_name(self) -> str:
        return self.likelihood if isinstance(self.likelihood, str) else make_likelihood(self).name

    def to_dict(self) -> dict:
        """Plain values (JSON): a likelihood object or callable becomes its ``config()`` dict
        (with the options it was built with), which rebuilds a built-in likelihood (a user's
        callable must be passed again)."""
        likelihood = self.likelihood
        if not isinstance(likelihood, (str, dict)):
            likelihood = make_likelihood(self).config()
        d = asdict(dataclasses_replace(self, likelihood=None))
        d["likelihood"] = likelihood
        if likelihood is not self.likelihood:  # the object's config() holds its options (a callable's outputs_per_pixel)
            d["likelihood_options"] = {}
        d["hidden"] = list(self.hidden)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict, source=None, paths: bool = True) -> "TrainConfig":
        """The settings stored in a run's config.json or checkpoint. A run recorded before
        ``valid_size`` existed had no validation set, and keeps none (``valid_size=0``).
        Settings that are not a dict are a :class:`~pyrovae.errors.ConfigError`; with
        ``source`` (the file, named in errors) the settings are validated too (``paths``: as
        :meth:`validate`)."""
        if not isinstance(d, dict):
            raise ConfigError(f"{source or 'the run'} holds a {type(d).__name__} where the settings belong, not an object; "
                              "the run folder is damaged")
        known = {f.name for f in fields(cls)}
        d = dict(d)
        scale = d.pop("likelihood_scale", None)  # before likelihood_options, the one option had its own key
        if scale is not None:
            d["likelihood_options"] = {"scale": scale, **(d.get("likelihood_options") or {})}
        # settings a run recorded before they existed keep the behaviour it was trained with
        config = cls(**{"valid_size": 0, "limit_rule": "first", "activation": None, "hold_out_rule": "as-recorded",
                        **{k: v for k, v in d.items() if k in known}})
        if source is None:
            return config
        try:
            return config.validate(paths, new=False)
        except DataError as error:  # the run's data moved or were deleted: say so, not "damaged"
            raise DataError(f"{source.parent if hasattr(source, 'parent') else source} was trained on data that is "
                            f"not there now: {error}") from None
        except (TypeError, ValueError, AttributeError) as error:  # a ConfigError is a ValueError
            raise ConfigError(f"{source} holds settings pyrovae cannot use: {one_line(error, 160)}; "
                              "the run folder is damaged") from None


def make_likelihood(config: TrainConfig):
    """The run's likelihood: ``config.likelihood`` (a built-in name or ``config()`` dict with
    ``config.likelihood_options``, or a :class:`~pyrovae.model.likelihoods.Likelihood` or
    callable used as it is)."""
    from ..model.likelihoods import Likelihood, get_likelihood

    if not isinstance(config.likelihood_options, dict):
        raise ConfigError(f"likelihood_options must be a dict of option names to values, got "
                          f"{brief(config.likelihood_options)}")
    spec = config.likelihood
    if isinstance(spec, dict) and spec.get("custom"):
        raise ConfigError(f"the run was trained with the likelihood {brief(spec.get('name'))}, a callable of its user's "
                          "that settings cannot hold; continue it from Python: pyrovae.resume(run_dir, "
                          "likelihood=<that callable>)")
    if isinstance(spec, Likelihood):
        if config.likelihood_options:
            raise ConfigError("likelihood_options apply to a built-in likelihood named by a string or to a callable "
                              "(outputs_per_pixel, name); configure your Likelihood object itself")
        return spec
    if not isinstance(spec, (str, dict)):  # a callable, as VAE(likelihood=fn, likelihood_options=...) takes it
        try:
            return get_likelihood(spec, **config.likelihood_options)
        except TypeError:
            raise ConfigError(f"a callable likelihood takes the options outputs_per_pixel and name, not "
                              f"{', '.join(map(repr, config.likelihood_options))}") from None
    return get_likelihood(spec, **config.likelihood_options)  # names and values checked there, in one line


def same_likelihood(likelihood, recorded):
    """A user's likelihood given again on resume, wrapped like the recorded one (its
    ``outputs_per_pixel`` and name)."""
    from ..model.likelihoods import CallableLikelihood, Likelihood

    if isinstance(likelihood, Likelihood) or not isinstance(recorded, dict):
        return likelihood
    return CallableLikelihood(likelihood, recorded.get("outputs_per_pixel", 1), recorded.get("name"))
