"""A whole training run: data -> VAE -> SVI epochs -> evaluation -> files in ``out``.

:func:`train` writes into ``config.out_dir()``:

* ``config.json``: every setting, the resolved preprocessing, library versions, device;
* ``metrics.json``: the data set actually used, device, per-epoch ``history`` of
  ``{"epoch", "train_elbo", "test_elbo", "seconds"}`` and the final ``test_elbo`` (ELBO
  per datapoint in nats), rewritten after every epoch;
* ``checkpoint.pt``: weights, optimizer state, config, epoch and history, atomically
  replaced after every epoch (see :mod:`pyrovae.checkpoint`);
* ``elbo_curves.png``, ``reconstructions.png``, ``samples.png``.
"""
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import pyro
import torch
from tqdm.auto import tqdm

from . import __version__
from .checkpoint import save_checkpoint, write_json
from .config import TrainConfig
from .data import TRANSFORMS, Dataset, binarize, dequantize, load_dataset
from .errors import ConfigError, PyrovaeError
from .evaluation import evaluate_elbo
from .likelihoods import get_likelihood
from .plots import plot_elbo_curves, plot_reconstructions, plot_samples
from .capture import CompiledSVIStep
from .elbos import make_elbo
from .training import SVIStep, make_optimizer, train_epoch
from .vae import VAE

#: seed of the one-off draws that fix the test set (binarization or dequantization
#: noise), the same for every run so test ELBOs of different runs are comparable
TEST_SET_SEED = 2024


class TrainingError(PyrovaeError):
    """Training cannot go on (for example the loss stopped being finite)."""


@dataclass
class PreparedData:
    train_x: torch.Tensor  # (N_train, D), as stored; `transform` is applied per minibatch
    test_x: torch.Tensor  # (N_test, D), transformed once, as the likelihood scores it
    transform: str  # "none" | "binarize" | "dequantize"
    binarize: str
    dequantize: str


def select_device(cuda: bool) -> torch.device:
    if not cuda:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError("--cuda was given but no CUDA GPU is available to PyTorch; "
                          "drop --cuda to train on the CPU")
    return torch.device("cuda")


def prepare_data(config: TrainConfig, dataset: Dataset, likelihood) -> PreparedData:
    """Resolve ``binarize``/``dequantize`` for this data and likelihood, apply the one-off
    transforms, and check the data against the likelihood's support (once, here)."""
    binary = dataset.is_binary
    bern = likelihood.name == "bernoulli"
    mode_b = config.binarize
    if mode_b == "auto":
        mode_b = "dynamic" if bern and not binary else "none"
    mode_d = config.dequantize
    if mode_d == "auto":
        mode_d = "uniform" if not bern and not binary else "none"
    if binary and mode_d == "uniform":
        raise ConfigError(f"{dataset.name} is already binary; dequantize=uniform applies to 8-bit grey data")

    fixed = torch.Generator().manual_seed(TEST_SET_SEED)
    train_x, test_x, transform = dataset.train_x, dataset.test_x, "none"
    if mode_b == "static":  # one draw for the whole run, from the run's seed
        train_x = binarize(train_x, torch.Generator().manual_seed(config.seed))
    elif mode_b == "dynamic":
        transform = "binarize"
    elif mode_d == "uniform":
        transform = "dequantize"
    if mode_b in ("static", "dynamic"):
        test_x = binarize(test_x, fixed)
    elif mode_d == "uniform":
        test_x = dequantize(test_x, fixed)

    step = TRANSFORMS[transform]
    seen_train = train_x if step is None else step(train_x, fixed)
    likelihood.check(seen_train, f"the {dataset.name} training data")
    likelihood.check(test_x, f"the {dataset.name} test data")
    return PreparedData(train_x, test_x, transform, mode_b, mode_d)


def train(config: TrainConfig, log: Callable[[str], None] = print, dataset: Optional[Dataset] = None,
          command: Optional[str] = None, on_epoch_end: Sequence[Callable] = ()) -> dict:
    """Run the training that ``config`` describes and return its metrics.

    ``dataset`` replaces loading ``config.dataset``; ``command`` (the command line that
    started the run) is recorded in ``config.json`` and ``metrics.json``. Each callable
    in ``on_epoch_end`` is called as ``f(epoch, vae, data)`` with the device-resident
    :class:`PreparedData` before the first epoch (``epoch=0``) and after every epoch;
    it must not change the VAE."""
    config.validate()
    device = select_device(config.cuda)
    out = Path(config.out_dir())
    _ensure_writable(out)
    pyro.set_rng_seed(config.seed)  # torch (CPU and CUDA), numpy and random

    if dataset is None:
        dataset = load_dataset(config.dataset, config.data_dir, config.download, log)
    dataset = dataset.limit(config.train_limit, config.test_limit)
    if len(dataset.train_x) == 0 or len(dataset.test_x) == 0:
        raise ConfigError(f"{dataset.name} has no training or no test examples after the limits")
    options = {"scale": config.likelihood_scale} if config.likelihood_scale is not None else {}
    likelihood = get_likelihood(config.likelihood, **options)
    data = prepare_data(config, dataset, likelihood)
    train_x, test_x = data.train_x.to(device), data.test_x.to(device)  # the one host-to-device copy

    vae = VAE(dataset.x_dim, config.z_dim, config.hidden, likelihood).to(device)
    elbo = make_elbo(config.elbo, config.num_particles)
    optimizer = make_optimizer(vae.parameters(), config.lr)
    step = CompiledSVIStep(vae, elbo, optimizer, log=log) if config.fast else SVIStep(vae, elbo, optimizer)
    transform = TRANSFORMS[data.transform]

    run_info = {
        "command": command,
        "settings": config.to_dict(),
        "resolved": {"binarize": data.binarize, "dequantize": data.dequantize,
                     "minibatch_transform": data.transform, "elbo_class": f"{type(elbo).__module__}.{type(elbo).__name__}",
                     "optimizer": f"Adam{' (fused)' if optimizer.defaults.get('fused') else ''}",
                     "out": str(out)},
        "device": _device_name(device),
        "versions": _versions(),
    }
    write_json(out / "config.json", run_info)
    log(f"{dataset.name} ({dataset.source}): {len(train_x)} train / {len(test_x)} test; "
        f"{likelihood!r}, {type(elbo).__name__} x{config.num_particles}, "
        f"minibatch transform: {data.transform}; device {run_info['device']}")

    metrics = {"command": command, "dataset": dataset.summary(), "device": run_info["device"], "elbo": config.elbo,
               "likelihood": likelihood.config(), "history": [], "test_elbo": None,
               "test_elbo_estimator": "TraceMeanField_ELBO (analytic KL), 1 particle"}
    on_device = PreparedData(train_x, test_x, data.transform, data.binarize, data.dequantize)
    for callback in on_epoch_end:
        callback(0, vae, on_device)
    for epoch in range(1, config.epochs + 1):
        start = time.perf_counter()
        with tqdm(total=len(train_x), desc=f"epoch {epoch}/{config.epochs}", unit="img",
                  disable=not config.progress, leave=False) as bar:
            vae.train()
            total = train_epoch(step, train_x, config.batch_size, transform,
                                progress=bar, validate_first_step=(epoch == 1))
        train_elbo = -total.item() / len(train_x)  # one host read per epoch
        if not np.isfinite(train_elbo):
            raise TrainingError(f"the loss is not finite in epoch {epoch}; lower --lr (now {config.lr}) "
                                f"or check the data; the last good checkpoint is in {out}")
        seconds = time.perf_counter() - start
        test_elbo = None
        if epoch % config.test_frequency == 0 or epoch == config.epochs:
            vae.eval()
            test_elbo = evaluate_elbo(vae, test_x)
        metrics["history"].append({"epoch": epoch, "train_elbo": train_elbo, "test_elbo": test_elbo,
                                   "seconds": seconds})
        metrics["test_elbo"] = test_elbo if test_elbo is not None else metrics["test_elbo"]
        metrics["svi_step"] = "compiled" if getattr(step, "compiled", False) else "eager"
        log(f"epoch {epoch:3d}  train ELBO {train_elbo:9.3f}  "
            + (f"test ELBO {test_elbo:9.3f}  " if test_elbo is not None else "")
            + f"({seconds:.1f} s)")
        save_checkpoint(out / "checkpoint.pt", vae, optimizer, config=config.to_dict(),
                        epoch=epoch, history=metrics["history"])
        write_json(out / "metrics.json", metrics)
        for callback in on_epoch_end:
            callback(epoch, vae, on_device)

    _write_figures(vae, test_x, dataset, metrics["history"], out, f"{dataset.name}, {likelihood.name}, {config.elbo}")
    log(f"final test ELBO {metrics['test_elbo']:.3f} nats per datapoint; wrote {out}/")
    return metrics


def _write_figures(vae: VAE, test_x: torch.Tensor, dataset: Dataset, history: list, out: Path, title: str) -> None:
    vae.eval()
    plot_elbo_curves(history, out / "elbo_curves.png", title)
    # 50 test images spread over the whole (possibly class-sorted) test set
    originals = test_x[torch.linspace(0, len(test_x) - 1, min(50, len(test_x)), device=test_x.device).long()]
    plot_reconstructions(originals, vae.reconstruct(originals), dataset.image_shape, out / "reconstructions.png")
    generator = torch.Generator(device=test_x.device).manual_seed(0)
    plot_samples(vae.sample(100, generator=generator), dataset.image_shape, out / "samples.png")


def _ensure_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise ConfigError(f"cannot write to the output folder {out} ({error.strerror}); "
                          "choose another with --out") from None


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def _versions() -> dict:
    import torchvision

    return {"pyrovae": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "pyro": pyro.__version__, "torchvision": torchvision.__version__, "numpy": np.__version__}
