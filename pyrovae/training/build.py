"""Setting a run up: processes and device, the output folder, the SVI step, ``config.json``,
and the per-epoch scores that every rank shares."""
import os
from pathlib import Path

import torch

from ..data.placement import HostRows
from ..environment import select_device, versions
from ..errors import ConfigError
from ..infer import distributed as ddp
from ..infer.compiled import CompiledSVIStep
from ..infer.evaluation import elbo, evaluate_elbo
from ..infer.svi import SVIStep


def place(config):
    """(rank, world size, device): one process on the chosen device, or this process's
    place under torchrun with ``distributed``."""
    if config.distributed:
        return ddp.setup(config.cuda)
    return 0, 1, select_device(config.cuda)


def ensure_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise ConfigError(f"cannot write to the output folder {out} ({error.strerror}); "
                          "choose another with --out") from None


def build_step(config, vae, elbo_loss, optimizer, num_train: int, rank: int, world: int, log):
    """The SVI step: sharded over the ranks (``distributed``, parameters broadcast from
    rank 0), compiled (``fast``) or eager."""
    if config.distributed:
        step = ddp.DistributedSVIStep(vae, elbo_loss, optimizer, num_train, rank, world)
        ddp.broadcast_parameters(vae)
        return step
    if config.fast:
        return CompiledSVIStep(vae, elbo_loss, optimizer, log=log)
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
    return (f"{name} ({source}): {len(data.train_x)} train / "
            + (f"{len(data.valid_x)} valid / " if data.valid_x is not None else "")
            + f"{len(data.test_x)} test; p(x|z) {vae.likelihood!r}, p(z) {_part(arch.get('prior'))}, "
            f"q(z|x) {_part(arch.get('guide'))}, {config.arch} {widths}, z {config.z_dim}; "
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
    alone) and broadcast; no ``valid_elbo`` key without a validation set."""
    keys = ["valid_elbo", "test_elbo", "test_expected_log_likelihood", "test_kl"]
    values = dict.fromkeys(keys)
    if main:
        vae.eval()
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else [], enabled=world > 1):
            if data.valid_x is not None and valid:
                values["valid_elbo"] = evaluate_elbo(vae, data.valid_x)
            if test:
                split = elbo(vae, data.test_x, num_particles=1, analytic_kl=True).means()
                values.update(test_elbo=split["elbo"], test_expected_log_likelihood=split["expected_log_likelihood"],
                              test_kl=split["kl"])
    if world > 1:
        values = dict(zip(keys, ddp.broadcast_values([values[k] for k in keys], device)))
    if data.valid_x is None:
        del values["valid_elbo"]
    return values
