"""Setting a run up: processes and device, the output folder, the SVI step, ``config.json``,
and the per-epoch scores that every rank shares."""
import os
import tempfile
from pathlib import Path

import torch

from ..data.placement import HostRows
from ..environment import select_device, versions
from ..errors import ConfigError, DataError
from ..infer import distributed as ddp
from ..infer.compiled import CompiledSVIStep
from ..infer.elbos import make_elbo
from ..infer.enum_elbo import make_enum_elbo
from ..infer.evaluation import accuracy, elbo, evaluate_elbo
from ..infer.labelled_step import LabelledSVIStep
from ..infer.svi import SVIStep
from ..model.base import Model
from ..model.registry import CUSTOM, MODELS
from ..model.registry import describe as describe_model


def place(config):
    """(rank, world size, device): one process on the chosen device, or this process's
    place under torchrun with ``distributed``."""
    if config.distributed:
        return ddp.setup(config.cuda)
    return 0, 1, select_device(config.cuda)


def ensure_writable(out: Path) -> None:
    """Make ``out`` (and its missing parents) and prove it writable with a probe file, created
    with ``O_EXCL`` (never through a link) and removed; else one line."""
    try:
        probe_writable(out)
    except OSError as error:
        raise ConfigError(f"cannot write to the output folder {out} ({error.strerror}); "
                          "choose another with --out") from None


def probe_writable(out: Path) -> None:
    """Make ``out`` (and its missing parents) and write and remove a probe file in it, created
    with ``O_EXCL`` (never through a link); an ``OSError`` says it cannot be written."""
    out.mkdir(parents=True, exist_ok=True)
    fd, probe = tempfile.mkstemp(dir=out, prefix=".write-test-")
    os.close(fd)
    os.unlink(probe)


def build_model(config, dataset, likelihood, standardization, given=None):
    """The model a run trains: a user's own (``given``, a :class:`~pyrovae.model.base.Model`), or the
    registry's ``config.model`` built for the data (its size, image shape, classes; ``m1m2``: its M2, for
    ``dataset`` the features of :mod:`pyrovae.training.stacked`)."""
    if given is not None:
        if not isinstance(given, Model):
            raise ConfigError(f"model= takes an instance of a pyrovae.Model subclass, got {type(given).__name__}")
        if given.x_dim != dataset.x_dim:
            raise ConfigError(f"the model takes rows of {given.x_dim} values, but {dataset.name} has {dataset.x_dim}")
        return given
    if config.model == CUSTOM:
        raise ConfigError("the run trained a model of a user's own class; continue it from Python with "
                          "pyrovae.resume(run_dir, model=<that class>)")
    if config.model in ("vae", "hvae"):
        return MODELS[config.model](dataset.x_dim, config.z_dim, config.hidden, likelihood, arch=config.arch,
                                    image_shape=dataset.image_shape, channels=config.channels, prior=config.prior,
                                    prior_options=config.prior_options, guide=config.guide,
                                    guide_options=config.guide_options, standardization=standardization,
                                    activation=config.units())
    classes = dataset.summary().get("num_classes")
    if not classes:
        raise DataError(f"--model {config.model} needs class labels, and {dataset.name} has none; give a labelled "
                        "source (class folders, an .npz with train_y/y, a table's --label-column, a labelled named set)")
    options = {"alpha": config.alpha} if config.model in ("m2", "m1m2") else {}
    if config.units() is not None:
        options["activation"] = config.units()
    kind = "m2" if config.model == "m1m2" else config.model  # m1m2: the M2 that learns, on M1's features
    return MODELS[kind](dataset.x_dim, classes, config.z_dim, config.hidden, likelihood=likelihood,
                                arch=config.arch, image_shape=dataset.image_shape, standardization=standardization,
                                **options)


def build_elbo(config, model):
    """The ELBO: the one its model needs (a program that sums a label out: TraceEnum_ELBO), else the setting."""
    if model.labels == "optional":
        return make_enum_elbo(config.num_particles)
    return make_elbo(config.elbo, config.num_particles)


def epoch_rows(model, data, log, labels_per_class=None):
    """(the rows an epoch runs over, their labels, the labelled rows added to every step) of a run:
    all training rows, except for a model that sums hidden labels out, whose epoch runs over the rows
    with hidden labels when there are any (:mod:`pyrovae.infer.labelled_step`). A model that needs
    every label refuses hidden ones, naming what hid them: ``labels_per_class`` (the setting), else
    the data's own negative labels."""
    if model.labels == "none":
        return data.train_x, None, None
    if data.train_y is None:
        raise DataError(f"the {model.kind} model needs the training rows' labels, and the data have none")
    if model.labels == "required":
        hidden = int((data.train_y < 0).sum())
        if hidden and labels_per_class is not None:
            raise DataError(f"the {model.kind} model needs every training row's label; drop --labels-per-class "
                            "(only --model m2 learns from rows whose labels are hidden)")
        if hidden:
            raise DataError(f"the {model.kind} model needs every training row's label, but {hidden} of the data's "
                            "training rows have a negative label, which marks a hidden one; give those rows their "
                            "class, or use --model m2, which learns from rows whose labels are hidden")
        return data.train_x, data.train_y, None
    hidden = data.train_y < 0  # (N,) on the device: split once, at the start
    if not bool(hidden.any()):
        return data.train_x, data.train_y, None
    if not bool((~hidden).any()):
        raise DataError("--model m2 needs some labelled training rows, but every label is hidden")
    if not isinstance(data.train_x, torch.Tensor):
        raise ConfigError("--model m2 keeps its training rows on the device; use --data-placement device")
    labelled = (data.train_x[~hidden], data.train_y[~hidden])
    log(f"m2: {int(hidden.sum())} rows with hidden labels, {len(labelled[1])} labelled rows joining every minibatch")
    return data.train_x[hidden], data.train_y[hidden], labelled


def build_step(config, vae, elbo_loss, optimizer, num_train: int, rank: int, world: int, log, labels=None,
               labelled=None, transform=None):
    """The SVI step: of a labelled model (its rows' ``labels``; ``labelled``: rows that join every
    minibatch), sharded over the ranks (``distributed``, parameters broadcast from rank 0),
    compiled (``fast``) or eager."""
    if vae.labels != "none":
        extra = 0 if labelled is None else min(len(labelled[1]), config.labelled_batch or config.batch_size)
        return LabelledSVIStep(vae, elbo_loss, optimizer, labels, labelled, extra, transform)
    if config.distributed:
        step = ddp.DistributedSVIStep(vae, elbo_loss, optimizer, num_train, rank, world)
        ddp.broadcast_parameters(vae)
        return step
    if config.fast:
        return CompiledSVIStep(vae, elbo_loss, optimizer, log=log, matmul=config.fast_matmul, note=log)
    return SVIStep(vae, elbo_loss, optimizer)


def config_record(config, command, data, elbo_loss, optimizer, rule: str, out: Path, shown: str, world: int,
                  device, run_id: str) -> dict:
    """The contents of ``config.json``: the run's id (its checkpoints carry it too), the settings,
    what they resolved to, device, versions."""
    return {
        "run_id": run_id,
        "command": command,
        "settings": config.to_dict(),
        "resolved": {**data.record(),
                     "data_placement": "host" if isinstance(data.train_x, HostRows) else "device",
                     "elbo_class": f"{type(elbo_loss).__module__}.{type(elbo_loss).__name__}",
                     "optimizer": f"Adam{' (fused)' if optimizer.defaults.get('fused') else ''}",
                     "selection": rule, "out": str(out)},
        "device": shown,
        "world_size": world,
        "versions": versions(device),
    }


def describe(config, name: str, source: str, data, vae, elbo_loss, shown: str) -> str:
    """The line a new run starts with: the data's sizes, the model (likelihood, prior, guide,
    networks), the ELBO, the preprocessing and the device."""
    arch = vae.config()
    widths = f"channels {list(config.channels)}, dense {list(config.hidden)}" if config.arch == "conv" else \
        f"hidden {list(config.hidden)}"
    preprocessing = [f"minibatch transform {data.transform}"]
    if data.standardization is not None:
        preprocessing.append("columns standardized")
    units = f" ({config.units()} units)" if config.units() not in (None, "none") and config.arch != "conv" else ""
    if vae.kind == "vae":
        model = (f"p(x|z) {vae.likelihood!r}, p(z) {_part(arch.get('prior'))}, q(z|x) {_part(arch.get('guide'))}, "
                 f"{config.arch} {widths}{units}, z {config.z_dim}")
    elif vae.kind == "hvae":
        model = (f"model hvae: p(x|z1,z2) {vae.likelihood!r}, p(z2) {_part(arch.get('prior'))}, p(z1|z2) normal, "
                 f"q(z2|x) {_part(arch.get('guide'))}, q(z1|x,z2) normal, {config.arch} {widths}{units}, "
                 f"z1 {vae.z1_dim}, z2 {config.z_dim}")
    elif config.model == CUSTOM:
        model = f"model {describe_model(vae)}, p(x|...) {vae.likelihood!r}"
    else:
        model = (f"model {config.model} ({vae.num_classes} classes{f', alpha {vae.alpha:g}' if vae.kind == 'm2' else ''})"
                 f", p(x|z,y) {vae.likelihood!r}, {config.arch} {widths}, z {config.z_dim}")
    return (f"{name} ({source}): {len(data.train_x)} train / "
            + (f"{len(data.valid_x)} valid / " if data.valid_x is not None else "")
            + f"{len(data.test_x)} test; {model}; "
            f"{type(elbo_loss).__name__} x{config.num_particles}; {', '.join(preprocessing)}; device {shown}")


def _part(recorded) -> str:
    """A prior or guide as its ``config()`` records it: ``vamp (components 500)``."""
    if not isinstance(recorded, dict):
        return "normal"
    options = ", ".join(f"{k} {v}" for k, v in recorded.items() if k not in ("name", "custom"))
    return recorded.get("name", "?") + (f" ({options})" if options else "")


def score(vae, data, test: bool, valid: bool, main: bool, world: int, device) -> dict:
    """The validation ELBO (``valid_elbo``), and with ``test`` the test ELBO and its split
    (``test_elbo``, ``test_expected_log_likelihood``, ``test_kl``), per datapoint in nats,
    computed on rank 0 (which in a distributed run leaves the ranks' common random stream
    alone) and broadcast; no ``valid_elbo`` key without a validation set. A conditional model is
    scored given the rows' labels (log p(x | y)); a model with a classifier also reports the
    fraction of rows it classifies right (``valid_accuracy``, ``test_accuracy``), never used to choose."""
    keys = ["valid_elbo", "test_elbo", "test_expected_log_likelihood", "test_kl"]
    values = dict.fromkeys(keys)
    given = vae.labels == "required"  # the labels condition the score
    classifies = vae.labels == "optional" and type(vae).classify is not Model.classify  # a model with a classifier
    if main:
        vae.eval()
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else [], enabled=world > 1):
            if data.valid_x is not None and valid:
                values["valid_elbo"] = evaluate_elbo(vae, data.valid_x, y=data.valid_y if given else None)
                if classifies and data.valid_y is not None:
                    values["valid_accuracy"] = accuracy(vae, data.valid_x, data.valid_y)
            if test:
                split = elbo(vae, data.test_x, num_particles=1, analytic_kl=True,
                             y=data.test_y if given else None).means()
                values.update(test_elbo=split["elbo"], test_expected_log_likelihood=split["expected_log_likelihood"],
                              test_kl=split["kl"])
                if classifies and data.test_y is not None:
                    values["test_accuracy"] = accuracy(vae, data.test_x, data.test_y)
    if world > 1:
        values = dict(zip(keys, ddp.broadcast_values([values[k] for k in keys], device)))
    if data.valid_x is None:
        del values["valid_elbo"]
    return values
