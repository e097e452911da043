"""A run's reports outside the loop: TensorBoard after every epoch (``--tensorboard``), the
figures at the end (``elbo_curves.png``, ``reconstructions.png``, ``samples.png``,
``kl_per_dim.png``); rank 0 only.

Figures are in data units (the VAE's ``to_data_space``): image mosaics (grey or RGB) for
images, per-column scatters and histograms (:mod:`~pyrovae.training.table_plots`) for tables."""
import inspect
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch

from ..errors import DataError
from .collapse import plot_kl_per_dim
from .plots import image_grid, plot_elbo_curves, plot_reconstructions, plot_samples, reconstruction_grid
from .table_plots import plot_table_reconstructions, plot_table_samples
from .tracking import TensorBoardLog


class Reporter:
    """``epoch(record, vae, test_x)`` after each epoch, ``finish(history, vae, test_x)`` at the
    end of the run, ``close()`` always. ``start_epoch`` is the last epoch already logged.

    ``test_x`` is in model space (the rows the run trains on, standardized where the VAE holds a
    standardization). ``image_shape`` is (H, W), (C, H, W) or None (a table, whose figures
    name the first 6 of ``columns`` where given)."""

    def __init__(self, out: Path, image_shape, title: str, tensorboard: bool, start_epoch: int = 0,
                 columns: Optional[Sequence[str]] = None):
        self.out, self.image_shape, self.title, self.columns = out, image_shape, title, columns
        self.tensorboard: Optional[TensorBoardLog] = (TensorBoardLog(out / "tensorboard", start_epoch)
                                                      if tensorboard else None)

    def epoch(self, record: dict, vae, test_x: torch.Tensor, test_y: Optional[torch.Tensor] = None) -> None:
        if self.tensorboard is None:
            return
        self.tensorboard.epoch(record)
        if record["test_elbo"] is not None and self.image_shape is not None:
            if not draws(vae):
                return
            originals, reconstructions, samples = figure_data(vae, test_x, test_y)
            self.tensorboard.images(record["epoch"], reconstruction_grid(originals, reconstructions, self.image_shape),
                                    image_grid(samples, self.image_shape, 10))

    def finish(self, history: list, vae, test_x: torch.Tensor, stop: Callable[[], bool] = lambda: False,
               test_y: Optional[torch.Tensor] = None) -> None:
        """Draw the figures; ``stop()`` true (a signal came) skips those not drawn yet."""
        if stop():
            return
        plot_elbo_curves(history, self.out / "elbo_curves.png", self.title)
        if not stop():
            plot_kl_per_dim(history, self.out / "kl_per_dim.png")  # where the history holds a per-dimension KL
        if stop() or not draws(vae):  # a user's model without reconstruct and sample: the curves only
            return
        if self.image_shape is None:
            originals, reconstructions, samples = table_figure_data(vae, test_x, test_y=test_y)
            plot_table_reconstructions(originals, reconstructions, self.out / "reconstructions.png", self.columns)
            if not stop():
                plot_table_samples(originals, samples, self.out / "samples.png", self.columns)
            return
        originals, reconstructions, samples = figure_data(vae, test_x, test_y)
        plot_reconstructions(originals, reconstructions, self.image_shape, self.out / "reconstructions.png")
        if not stop():
            plot_samples(samples, self.image_shape, self.out / "samples.png",
                         per_class=getattr(vae, "labels", "none") != "none")

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()


def epoch_line(record: dict) -> str:
    """The line logged after an epoch: its ELBOs per datapoint (the training objective where the
    KL weight is not 1: KL warm-up, ``--beta``), the active units, the KL weight and seconds."""
    weight = record["kl_scale"]
    objective = weight != 1 or "valid_accuracy" in record or "test_accuracy" in record  # m2 adds alpha log q(y|x)
    return (f"epoch {record['epoch']:3d}  train {'objective' if objective else 'ELBO'} {record['train_elbo']:9.3f}  "
            + (f"valid ELBO {record['valid_elbo']:9.3f}  " if "valid_elbo" in record else "")
            + (f"test ELBO {record['test_elbo']:9.3f}  " if record["test_elbo"] is not None else "")
            + (f"valid accuracy {record['valid_accuracy']:.2%}  " if record.get("valid_accuracy") is not None else "")
            + (f"active units {record['active_units']}  " if record.get("active_units") is not None else "")
            + (f"(KL weight {weight:.3f}) " if weight != 1 else "") + f"({record['seconds']:.1f} s)")


def elbo_estimator(config) -> str:
    """How the validation and test ELBOs are estimated: ``metrics.json``'s ``test_elbo_estimator``,
    which says that they are the ELBO itself where the training objective weighs the KL otherwise."""
    weighted = config.beta != 1 or config.kl_warmup
    return "TraceMeanField_ELBO (analytic KL), 1 particle" + (
        "; the ELBO itself (KL weight 1), not the training objective (KL weight beta x min(1, epoch / kl_warmup))"
        if weighted else "")


def _spread(test_x: torch.Tensor, n: int) -> torch.Tensor:
    """``min(n, N)`` rows spread over the whole (possibly class-sorted) test set."""
    return test_x[torch.linspace(0, len(test_x) - 1, min(n, len(test_x)), device=test_x.device).long()]


def draws(vae) -> bool:
    """Whether a model can draw the figures: it reconstructs rows and samples new ones."""
    return callable(getattr(vae, "reconstruct", None)) and callable(getattr(vae, "sample", None))


def reconstruct(vae, originals: torch.Tensor, test_y: Optional[torch.Tensor], n: int) -> torch.Tensor:
    """``vae.reconstruct`` of ``originals``, the ``n`` rows :func:`_spread` picks from the test set:
    a model whose rows all come with their class (``labels`` "required": a conditional VAE) is given
    those rows' labels; any other model, the rows alone (M2 reconstructs at the most probable class
    of its classifier, q(y | x))."""
    if getattr(vae, "labels", "none") != "required":
        return vae.reconstruct(originals)
    if test_y is None:
        raise DataError(f"the {vae.kind} model reconstructs rows with their class labels, and the test rows have none")
    return vae.reconstruct(originals, _spread(test_y, n).to(originals.device))


def sample(vae, n: int, **options) -> torch.Tensor:
    """``vae.sample(n)`` with those of ``options`` (``mean``, ``generator``) that its ``sample``
    takes: a user's model may take ``n`` alone."""
    try:
        parameters = inspect.signature(vae.sample).parameters
    except (TypeError, ValueError):  # no signature to read: the documented call
        return vae.sample(n)
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return vae.sample(n, **options)
    return vae.sample(n, **{k: v for k, v in options.items() if k in parameters})


def figure_data(vae, test_x: torch.Tensor, test_y: Optional[torch.Tensor] = None):
    """(originals, reconstructions, samples) in data units: 50 test images spread over the
    whole test set (50, D), their reconstructions (50, D; :func:`reconstruct`: a conditional model
    is given their labels), 100 decoded prior draws (100, D; a model of labelled data: 10 per
    class, class by class). ``test_x`` is in model space."""
    vae = vae.eval()
    device = next(vae.parameters()).device  # test_x may be host rows streamed to it (pyrovae.data.placement)
    # on a forked random stream seeded 0: priors and layers that draw from the global stream leave the run's alone
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(0)
        return _figure_data(vae, test_x, test_y, device)


def _figure_data(vae, test_x, test_y, device):
    originals = vae.to_data_space(_spread(test_x, 50).to(device))
    generator = torch.Generator(device=device).manual_seed(0)
    labelled = getattr(vae, "labels", "none") != "none" and getattr(vae, "num_classes", 0) > 0
    return (originals, reconstruct(vae, originals, test_y, 50),
            sample(vae, 10 * vae.num_classes if labelled else 100, generator=generator))


@torch.no_grad()
def table_figure_data(vae, test_x: torch.Tensor, n: int = 500, test_y: Optional[torch.Tensor] = None):
    """(originals, reconstructions, samples) in data units for a table: up to ``n`` test rows
    spread over the test set, their reconstructions (:func:`reconstruct`: a conditional model is
    given their labels ``test_y``), and ``n`` draws z ~ p(z), x ~ p(x|z) (a model of labelled
    data: the classes in turn; on a forked random stream seeded 0, so drawing them leaves the
    run's random state alone)."""
    vae = vae.eval()
    device = next(vae.parameters()).device
    originals = vae.to_data_space(_spread(test_x, n).to(device))
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(0)
        samples = sample(vae, n, mean=False)
    return originals, reconstruct(vae, originals, test_y, n), samples
