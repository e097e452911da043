r"""The evaluation of a finished run (``scripts/evaluate.py``).

The run folder is opened for writing through :class:`~pyrovae.training.run.Run` (its lock,
a checkpoint of its own, its data reloaded and checked), and its test set is prepared exactly
as the run scored it (same data, same one-off binarization or dequantization).

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
* ``evaluation``: the test ELBO and its split into expected log-likelihood and KL (the ELBO
  itself, KL weight 1, whatever ``--beta`` or warm-up trained), the number of active latent
  units, and ``kl_per_dim``, the KL of each latent dimension on the test rows
  (:func:`pyrovae.infer.diagnostics.kl_per_dim`; ``{site: [...] or null}``, with
  ``kl_per_dim_estimator`` saying how each site's was computed or why it is not defined);
* ``evaluation.spot_check``: :math:`\log \hat p_K(x_n)` of a few test rows
  (:func:`spot_check`), so that anyone holding the checkpoint and the test set can recompute
  them with the public API and see that the weights are those that were scored.
"""
import math
from typing import Callable, Optional

import torch
from tqdm.auto import tqdm

from ..data.prepare import prepare_data
from ..data.transforms import evenly_spaced, evenly_spaced_rows
from ..environment import select_device
from ..infer.diagnostics import kl_per_dim
from ..infer.evaluation import accuracy, active_units, elbo, log_likelihood
from ..training.collapse import as_json
from ..training.run import Run

#: how many test rows :func:`spot_check` scores, evenly spaced over the whole test set
SPOT_ROWS = 4


def evaluate_run(run_dir, num_samples: int = 5000, cuda: bool = False, test_limit: Optional[int] = None,
                 test_subset: Optional[int] = None,
                 log: Callable[[str], None] = print, checkpoint: Optional[str] = None,
                 command: Optional[str] = None, progress: bool = False, dataset=None, likelihood=None,
                 model=None) -> dict:
    """Importance-sampled test NLL, ELBO split and active units, written into metrics.json: for the
    run's default checkpoint as ``test_nll`` (``test_bpd``, ``test_accuracy``) and ``evaluation``, for
    ``checkpoint.pt`` beside a ``best.pt`` under ``evaluation_last`` alone.

    ``checkpoint`` (``best``, ``last``) defaults to ``best.pt`` where the run kept one, else
    ``checkpoint.pt``; ``test_limit`` (or ``test_subset``, the same) scores that many test rows,
    evenly spaced over the test set; ``dataset``, ``likelihood`` and ``model``: the arrays, the
    callable and the class of a run trained on data given in Python, with a likelihood of its
    user's or on a model of its user's."""
    with Run.open(run_dir, write=True, likelihood=likelihood, model=model) as run:
        device = select_device(cuda)
        state = run.checkpoint(checkpoint, map_location=str(device))
        vae = run.model(checkpoint, device, state=state)
        prepared = prepare_data(run.config, run.dataset(dataset, log), vae.likelihood)
        return _evaluate(run, vae, run.path(checkpoint).name, state.get("epoch"), prepared, num_samples, test_limit,
                         test_subset, log, command, progress)


def _evaluate(run, vae, checkpoint_name, epoch, prepared, num_samples, test_limit, test_subset, log, command,
              progress) -> dict:
    device = next(vae.parameters()).device
    test_x, test_y = prepared.test_x.to(device), prepared.test_y
    if test_limit is not None or test_subset is not None:  # the same rule: N rows evenly spaced over the test set
        n = min(n for n in (test_limit, test_subset) if n is not None)
        test_x, test_y = evenly_spaced(test_x, n), None if test_y is None else evenly_spaced(test_y, n)
    given = test_y if vae.labels == "required" else None  # a conditional model scores log p(x | y)
    torch.manual_seed(0)
    log(f"scoring {len(test_x)} test images with K={num_samples} importance samples on {device}"
        + (" given their labels: log p(x | y)" if given is not None else ""))
    with tqdm(total=len(test_x), desc=f"log p(x), K={num_samples}", unit="img", disable=not progress) as bar:
        log_p = log_likelihood(vae, test_x, num_samples=num_samples, progress=bar.update, y=given)
    split = elbo(vae, test_x, num_particles=10, analytic_kl=True, y=given).means()
    n_active, variances = active_units(vae, test_x, y=given)  # over every latent dimension, all layers
    sites = kl_per_dim(vae, test_x, y=given)  # after every other draw: the scores above are unchanged by it
    kl_dims = as_json(sites)
    nll = -log_p.mean().item()
    result = {
        "test_nll": nll,
        "test_nll_se": log_p.std().item() / math.sqrt(len(log_p)),
        "num_samples": num_samples,
        "num_test_images": len(test_x),
        "test_images": "all" if len(test_x) == len(prepared.test_x) else
        f"{len(test_x)} of {len(prepared.test_x)}, evenly spaced",
        "test_elbo": split["elbo"],
        "expected_log_likelihood": split["expected_log_likelihood"],
        "kl": split["kl"],
        "elbo_estimator": "closed-form KL where one exists (else log q - log p), 10 particles" + (
            f"; the ELBO itself (KL weight 1), not the objective beta = {run.config.beta:g} trained"
            if run.config.beta != 1 else ""),
        "active_units": n_active,
        "kl_per_dim": kl_dims,
        "kl_per_dim_estimator": {name: site.method for name, site in sites.items()},
        "z_dim": getattr(vae, "z_dim", None),
        "latent_dims": len(variances),
        "command": command,
        "checkpoint": checkpoint_name,
        "checkpoint_epoch": epoch,
    }
    if given is not None:
        result["scored"] = "log p(x | y): each test row given its label"
    if len(getattr(vae, "latent_sites", ())) > 1 and vae.labels == "none":  # the ELBO's KL split by layer
        torch.manual_seed(0)
        parts = [vae.kl_by_site(chunk, None, 10) for chunk in vae._as_input(test_x).split(500)]
        result["kl_per_layer"] = {k: torch.cat([p[k] for p in parts]).mean().item() for k in parts[0]}
    if vae.labels == "optional" and "probs" in vae.posterior_params(test_x[:1]) and test_y is not None:
        result["test_accuracy"] = accuracy(vae, test_x, test_y)
    if getattr(vae, "score_units", None):  # a model that scores something else than its rows (m1m2)
        result["units"] = vae.score_units
    log_det = vae.log_det_standardization()
    if prepared.standardization is not None:  # scored on (x - m) / s: log p(x) = log p((x - m) / s) - sum log s
        result["units"] = "standardized columns, (x - mean) / std of the training rows"
        result["test_nll_data_units"] = nll + log_det
    if prepared.dequantize == "uniform":  # the discrete levels' NLL: + D log L (bins of width 1/L)
        d, levels = vae.x_dim, prepared.levels or 256
        result["test_bpd"] = (nll + d * math.log(levels)) / (d * math.log(2))
    result["spot_check"] = spot_check(vae, prepared.test_x, num_samples,
                                      prepared.test_y if vae.labels == "required" else None)
    metrics = run.metrics()
    if checkpoint_name == run.path(None).name:  # the top-level test numbers are those of best.pt, where kept
        metrics["test_nll"] = nll
        if "test_bpd" in result:
            metrics["test_bpd"] = result["test_bpd"]
        if "test_accuracy" in result and result["test_images"] == "all":  # a fraction of all test rows only
            metrics["test_accuracy"] = result["test_accuracy"]
        metrics["evaluation"] = result
    else:  # checkpoint.pt beside a best.pt: under its own name, the top-level numbers left to best.pt
        metrics["evaluation_last"] = result
    run.write_metrics(metrics)
    log(f"test NLL {nll:.3f} ± {result['test_nll_se']:.3f} nats, test ELBO {split['elbo']:.3f} "
        f"(E log p(x|z) {split['expected_log_likelihood']:.3f}, KL {split['kl']:.3f}), "
        f"{n_active}/{len(variances)} active units" + (f", {result['test_bpd']:.3f} bits/dim" if "test_bpd" in result else "")
        + (f", test accuracy {result['test_accuracy']:.2%}" if "test_accuracy" in result else "")
        + ("; KL by layer " + ", ".join(f"{k} {v:.3f}" for k, v in result["kl_per_layer"].items())
           if "kl_per_layer" in result else "")
        + (f"; in the data's own units (+ sum log std = {log_det:.3f}): test NLL {nll + log_det:.3f}"
           if "test_nll_data_units" in result else ""))
    for name, values in kl_dims.items():
        log(f"KL per dimension of {name}, largest first (nats per datapoint): "
            + (" ".join(f"{v:.2f}" for v in sorted(values, reverse=True)) if values is not None
               else f"not defined: {sites[name].method}"))
    return result


def spot_check(vae, test_x, num_samples: int, test_y=None, rows: int = SPOT_ROWS, seed: int = 0) -> dict:
    r""":math:`\log \hat p_K(x_n)` (nats) of ``rows`` test rows evenly spaced over all of ``test_x``
    (:func:`~pyrovae.data.transforms.evenly_spaced_rows`), drawn as
    ``torch.manual_seed(seed); pyrovae.log_likelihood(vae, test_x[test_rows], num_samples)``
    (given ``test_y[test_rows]`` for a model that needs labels) on ``vae``'s device: the same draws
    on any machine's CPU, so a recomputation from the checkpoint agrees up to float32 rounding
    (load the model first: building one draws its initial weights, then seed)."""
    device = next(vae.parameters()).device
    index = evenly_spaced_rows(len(test_x), rows)
    torch.manual_seed(seed)
    log_p = log_likelihood(vae, test_x[index].to(device), num_samples=num_samples,
                           y=None if test_y is None else test_y[index].to(device))
    return {"test_rows": index.tolist(), "num_samples": num_samples, "seed": seed, "device": device.type,
            "log_p": log_p.tolist()}
