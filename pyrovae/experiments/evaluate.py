r"""What happens to a finished run folder: its evaluation (``scripts/evaluate.py``).

:func:`load_run` rebuilds a run from its folder: the VAE from ``checkpoint.pt``, the
settings from ``config.json``, and the test set exactly as the run scored it (same data,
same one-off binarization or dequantization), refusing to go on if the data that loads
now is not the data the run was trained on.

:func:`evaluate_run` adds to ``metrics.json``:

* ``test_nll``: :math:`-\frac{1}{N}\sum_n \log \hat p_K(x_n)`, importance-sampled
  (:func:`pyrovae.log_likelihood`), nats per datapoint, with its standard error over
  datapoints;
* ``test_bpd`` for dequantized data of :math:`L` grey levels (256 for 8-bit): the NLL of
  the discrete pixels in bits per dimension, :math:`(\mathrm{NLL} + D \log L) / (D \log 2)`
  (the density lives on [0, 1], the discrete levels on bins of width 1/L);
* for standardized columns (tables), ``test_nll`` is the NLL of the standardized rows the
  model scores, and ``evaluation.test_nll_data_units`` that of the rows in their own units,
  :math:`\mathrm{NLL} + \sum_d \log s_d` (the change of variables :math:`x = m + s x'`);
* ``evaluation``: the test ELBO and its split into expected log-likelihood and KL, and the
  number of active latent units.
"""
import math
from pathlib import Path
from typing import Callable, Optional

import torch
from tqdm.auto import tqdm

from ..data.prepare import prepare_data
from ..data.transforms import evenly_spaced
from ..environment import select_device
from ..errors import ConfigError
from ..infer.evaluation import active_units, elbo, log_likelihood
from ..training.checkpoint import load, read_checkpoint, write_json
from ..training.config import TrainConfig
from ..training.files import read_json
from ..training.rundata import run_dataset


def load_run(run_dir, cuda: bool = False, log: Callable[[str], None] = print, checkpoint: str = "checkpoint.pt",
             dataset=None, likelihood=None):
    """(vae, config, dataset, prepared) of the run in ``run_dir``, on the chosen device,
    with the weights of ``checkpoint`` (``checkpoint.pt``: the last epoch; ``best.pt``:
    the best by the validation ELBO, or the last epoch without a validation set).
    ``dataset`` and ``likelihood`` are needed again where the run was trained on arrays
    given in Python or with a callable likelihood."""
    run_dir = Path(run_dir)
    for name in ("config.json", "metrics.json", checkpoint):
        if not (run_dir / name).is_file():
            raise ConfigError(f"{run_dir} is not a finished run folder: {name} is missing")
    device = select_device(cuda)
    vae = load(run_dir / checkpoint, map_location=str(device), likelihood=likelihood)
    settings = read_json(run_dir / "config.json", ("settings",))["settings"]
    if likelihood is not None:
        settings = {**settings, "likelihood": vae.likelihood}  # the callable, wrapped as the run recorded it
    config = TrainConfig.from_dict(settings, source=run_dir / "config.json")
    trained_on = read_json(run_dir / "metrics.json", ("dataset",))["dataset"]
    dataset = run_dataset(config, dataset, log, recorded=trained_on, download=False)
    prepared = prepare_data(config, dataset, vae.likelihood)
    return vae, config, dataset, prepared


def evaluate_run(run_dir, num_samples: int = 5000, cuda: bool = False, test_limit: Optional[int] = None,
                 test_subset: Optional[int] = None,
                 log: Callable[[str], None] = print, checkpoint: Optional[str] = None,
                 command: Optional[str] = None, progress: bool = False, dataset=None, likelihood=None) -> dict:
    """Importance-sampled test NLL, ELBO split and active units, written into metrics.json.

    ``checkpoint`` defaults to ``best.pt`` where the run kept one, else ``checkpoint.pt``;
    ``dataset`` and ``likelihood`` as for :func:`load_run`."""
    if checkpoint is None:
        checkpoint = "best.pt" if (Path(run_dir) / "best.pt").is_file() else "checkpoint.pt"
    vae, config, dataset, prepared = load_run(run_dir, cuda, log, checkpoint, dataset, likelihood)
    device = next(vae.parameters()).device
    test_x = prepared.test_x[:test_limit].to(device)
    if test_subset is not None:
        test_x = evenly_spaced(test_x, test_subset)
    torch.manual_seed(0)
    log(f"scoring {len(test_x)} test images with K={num_samples} importance samples on {device}")
    with tqdm(total=len(test_x), desc=f"log p(x), K={num_samples}", unit="img", disable=not progress) as bar:
        log_p = log_likelihood(vae, test_x, num_samples=num_samples, progress=bar.update)
    split = elbo(vae, test_x, num_particles=10, analytic_kl=True).means()
    n_active, _ = active_units(vae, test_x)
    nll = -log_p.mean().item()
    result = {
        "test_nll": nll,
        "test_nll_se": log_p.std().item() / math.sqrt(len(log_p)),
        "num_samples": num_samples,
        "num_test_images": len(test_x),
        "test_images": "all" if len(test_x) == len(prepared.test_x) else
        f"{len(test_x)} of {len(prepared.test_x)}, " + ("evenly spaced" if test_subset else "the first"),
        "test_elbo": split["elbo"],
        "expected_log_likelihood": split["expected_log_likelihood"],
        "kl": split["kl"],
        "elbo_estimator": "analytic KL, 10 particles",
        "active_units": n_active,
        "z_dim": vae.z_dim,
        "command": command,
        "checkpoint": checkpoint,
        "checkpoint_epoch": read_checkpoint(Path(run_dir) / checkpoint)["epoch"],
    }
    log_det = vae.log_det_standardization()
    if prepared.standardization is not None:  # scored on (x - m) / s: log p(x) = log p((x - m) / s) - sum log s
        result["units"] = "standardized columns, (x - mean) / std of the training rows"
        result["test_nll_data_units"] = nll + log_det
    if prepared.dequantize == "uniform":  # the discrete levels' NLL: + D log L (bins of width 1/L)
        d, levels = vae.x_dim, prepared.levels or 256
        result["test_bpd"] = (nll + d * math.log(levels)) / (d * math.log(2))
    metrics_path = Path(run_dir) / "metrics.json"
    metrics = read_json(metrics_path)
    metrics["test_nll"] = nll
    if "test_bpd" in result:
        metrics["test_bpd"] = result["test_bpd"]
    metrics["evaluation"] = result
    write_json(metrics_path, metrics)
    log(f"test NLL {nll:.3f} ± {result['test_nll_se']:.3f} nats, test ELBO {split['elbo']:.3f} "
        f"(E log p(x|z) {split['expected_log_likelihood']:.3f}, KL {split['kl']:.3f}), "
        f"{n_active}/{vae.z_dim} active units" + (f", {result['test_bpd']:.3f} bits/dim" if "test_bpd" in result else "")
        + (f"; in the data's own units (+ sum log std = {log_det:.3f}): test NLL {nll + log_det:.3f}"
           if "test_nll_data_units" in result else ""))
    return result
