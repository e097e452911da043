"""The checks behind :meth:`pyrovae.training.config.TrainConfig.validate`: each refusal is one
:class:`~pyrovae.errors.ConfigError` (or :class:`~pyrovae.errors.DataError`) line that names the
setting and what it takes."""
from pathlib import Path

from ..errors import ConfigError, DataError
from ..infer.compiled import MATMUL_BACKENDS
from ..model.labelled import LABELLED_ARCHS
from ..model.networks import ACTIVATIONS
from ..model.registry import CUSTOM, MODELS


def check_model(config, new: bool = True) -> None:
    """The model and what it works with (each refusal names what to change); ``new`` (a run about
    to start): ``labels_per_class`` is refused for a model that learns from no labels, or needs all."""
    choice("model", config.model, (*MODELS, CUSTOM))
    if new and config.labels_per_class is not None and config.model in ("vae", "hvae", "cvae"):
        if config.model == "cvae":
            raise ConfigError("the cvae model needs every training row's label; drop --labels-per-class (only "
                              "--model m2 learns from rows whose labels are hidden)")
        raise ConfigError(f"--labels-per-class keeps the labels of a few rows for a model that learns from labels "
                          f"(--model m2); --model {config.model} uses no labels: drop --labels-per-class")
    if config.activation is not None:
        choice("activation", config.activation, ("auto", *ACTIVATIONS))
        if config.arch == "conv" and config.activation != "auto":
            raise ConfigError("the conv networks have ELU units; --activation applies to --arch mlp and gated")
    if not (isinstance(config.alpha, (int, float)) and not isinstance(config.alpha, bool)
            and 0 <= config.alpha < float("inf")):
        raise ConfigError(f"alpha must be a non-negative number, got {config.alpha!r}")
    if config.labelled_batch is not None:
        positive("labelled_batch", config.labelled_batch)
    if config.model == "vae":
        return
    what = f"--model {config.model}"
    if config.fast and config.model != "hvae":
        raise ConfigError(f"--fast compiles the vae and hvae models' step; drop --fast for {what}")
    if config.distributed:
        raise ConfigError(f"--distributed trains the vae model; drop --distributed for {what}")
    if config.model in (CUSTOM, "hvae"):
        return
    if config.arch not in LABELLED_ARCHS:
        raise ConfigError(f"{what} takes --arch {' or '.join(LABELLED_ARCHS)}, not {config.arch}")
    if config.prior != "normal" or config.guide != "normal":
        raise ConfigError(f"{what} has a standard-normal prior and a Gaussian guide; drop --prior and --guide")
    if config.model in ("m2", "m1m2") and config.elbo != "trace":
        raise ConfigError(f"{what} sums the hidden labels out with TraceEnum_ELBO (Monte-Carlo KL of z); "
                          "use --elbo trace")
    if config.model == "cvae" and config.elbo == "iwae":
        raise ConfigError("--model cvae trains with --elbo trace or meanfield")


def check_stacked(config, likelihood, new: bool = True) -> None:
    """``--model m1m2`` and ``--m1-run``: one needs the other; M2 models M1's standardized posterior means
    (real numbers), and the rows enter M1 as given, so the preprocessing settings resolve to ``none``.
    ``new`` (a run about to start): the M1 run's folder must be there (stored absolute)."""
    if config.m1_run is None and config.model != "m1m2":
        return
    if config.model != "m1m2":
        raise ConfigError("--m1-run names the VAE (M1) of --model m1m2; give --model m1m2, or drop --m1-run")
    if not isinstance(config.m1_run, str) or not config.m1_run:
        raise ConfigError("--model m1m2 trains M2 on the posterior means of a finished vae run (M1): give --m1-run "
                          f"RUN_DIR{'' if config.m1_run is None else f', got {config.m1_run!r}'}")
    if new:
        path = Path(config.m1_run).expanduser()
        if not path.is_dir():
            raise ConfigError(f"--m1-run {config.m1_run} is not a run folder ("
                              f"{'a file' if path.exists() else 'it does not exist'}); give the folder of a "
                              "finished vae run")
        config.m1_run = str(path.resolve())
    if likelihood.data != "real":
        raise ConfigError(f"--model m1m2: M2 models M1's standardized posterior means, real numbers, which the "
                          f"{likelihood.name} likelihood cannot score; use --likelihood gaussian or laplace")
    for name in ("binarize", "dequantize", "standardize"):
        if getattr(config, name) not in ("auto", "none"):
            raise ConfigError(f"--model m1m2 gives M1 the rows as given and M2 M1's standardized posterior means; "
                              f"drop --{name} {getattr(config, name)}")
        setattr(config, name, "none")  # of the rows M1 encodes (M2's features are always standardized)


def check_selection(config, has_validation: bool) -> None:
    """Refuse what needs a validation ELBO (the plateau schedule, early stopping) on a run
    without a validation set; the test set never selects anything."""
    if has_validation:
        return
    needs = [what for what, on in (("--lr-schedule plateau", config.lr_schedule == "plateau"),
                                   (f"--early-stopping {config.early_stopping}", config.early_stopping > 0)) if on]
    if needs:
        raise ConfigError(f"{' and '.join(needs)} {'needs' if len(needs) == 1 else 'need'} a validation set, but --valid-size 0 leaves none (the test set "
                          "is never used for selection); leave --valid-size unset (10% of the training set) or give N > 0")


def dataset_spec(spec, names, must_exist: bool = True) -> str:
    """A data set's name, or the absolute path of a file or folder that exists (so a resumed
    or evaluated run finds it from any working directory)."""
    if not isinstance(spec, str) or not spec:
        raise ConfigError(f"dataset must be a name or a path, got {spec!r}")
    if spec in names:
        return spec
    path = Path(spec).expanduser()
    if not must_exist and path.is_absolute():  # a run's recorded path, whether or not its data are there now
        return str(path)
    if not path.exists():
        raise DataError(f"dataset {spec!r} is neither a data set name ({', '.join(names)}) nor an existing "
                        "file or folder; give a name, or the path of a .npy/.npz/.csv/.parquet file or an image folder "
                        "(a run's own data: put it back at that path)")
    return str(path.resolve())


def check_beta(config) -> None:
    """beta: a finite non-negative number; the IWAE bound has no KL term to weight."""
    beta = config.beta
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0 <= beta < float("inf"):
        raise ConfigError(f"beta must be a non-negative finite number (the weight of the KL term), got {beta!r}")
    if config.elbo == "iwae" and beta != 1:
        raise ConfigError(f"--elbo iwae cannot take --beta {beta:g}: the IWAE bound is not a KL-weighted ELBO "
                          "(drop --beta, or use --elbo trace or meanfield)")


def choice(name, value, allowed):
    if value not in allowed:
        raise ConfigError(f"unknown {name} {value!r}; choose one of {', '.join(allowed)}")


def non_negative(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{name} must be a non-negative integer, got {value!r}")


def size(name, value):
    """A share of the rows, a fraction in (0, 1), or a count of rows, a positive integer."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} must be a fraction in (0, 1) or a positive number of rows, got {value!r}")
    if isinstance(value, float) and not value.is_integer() and not 0 < value < 1:
        raise ConfigError(f"{name} must be a fraction in (0, 1) or a positive number of rows, got {value!r}")
    if value <= 0:
        raise ConfigError(f"{name} must be a fraction in (0, 1) or a positive number of rows, got {value!r}")


def positive(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def check_combinations(config, likelihood, new: bool = True) -> None:
    """Settings that exclude each other (``--fast`` with ``--distributed``, ``--fast-matmul`` without
    ``--fast`` on the CPU, ``--elbo iwae`` with a KL warm-up), and preprocessing that makes data the
    ``likelihood`` cannot score; ``new`` as for :meth:`~pyrovae.training.config.TrainConfig.validate`."""
    if config.fast and config.distributed:
        raise ConfigError("--fast does not work with --distributed yet; drop one of them")
    choice("fast_matmul", config.fast_matmul, MATMUL_BACKENDS)
    if new and config.fast_matmul != "auto" and (config.cuda or not config.fast):
        raise ConfigError(f"--fast-matmul {config.fast_matmul} sets how --fast multiplies matrices on the CPU, but "
                          f"{'this run trains on the GPU' if config.cuda else 'this run is not --fast'}; drop "
                          f"--fast-matmul{'' if config.cuda else ' or add --fast'}")
    check_beta(config)
    if config.elbo == "iwae" and (config.kl_warmup or config.distributed):
        raise ConfigError(f"--elbo iwae cannot take {'--kl-warmup' if config.kl_warmup else '--distributed'}: it is "
                          "a bound on log p(x) with unscaled log-densities (drop it, or use --elbo trace)")
    if config.binarize in ("dynamic", "static") and likelihood.data != "binary":
        raise ConfigError(f"binarize={config.binarize} makes binary data, which the {likelihood.name} likelihood "
                          "cannot score; use the bernoulli likelihood")
    if config.dequantize == "uniform" and likelihood.data == "binary":
        raise ConfigError(f"dequantize=uniform makes continuous data, which the {likelihood.name} likelihood "
                          "cannot score")
    if config.standardize == "columns" and likelihood.data != "real":
        raise ConfigError(f"standardize=columns makes real-valued data, which the {likelihood.name} likelihood "
                          "cannot score; use --likelihood gaussian or laplace")
