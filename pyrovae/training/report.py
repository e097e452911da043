"""A run's reports outside the loop: TensorBoard after every epoch (``--tensorboard``), the
figures at the end (``elbo_curves.png``, ``reconstructions.png``, ``samples.png``); rank 0 only."""
from pathlib import Path
from typing import Callable, Optional

import torch

from .plots import image_grid, plot_elbo_curves, plot_reconstructions, plot_samples, reconstruction_grid
from .tracking import TensorBoardLog


class Reporter:
    """``epoch(record, vae, test_x)`` after each epoch, ``finish(history, vae, test_x)`` at the
    end of the run, ``close()`` always. ``start_epoch`` is the last epoch already logged."""

    def __init__(self, out: Path, image_shape, title: str, tensorboard: bool, start_epoch: int = 0):
        self.out, self.image_shape, self.title = out, image_shape, title
        self.tensorboard: Optional[TensorBoardLog] = (TensorBoardLog(out / "tensorboard", start_epoch)
                                                      if tensorboard else None)

    def epoch(self, record: dict, vae, test_x: torch.Tensor) -> None:
        if self.tensorboard is None:
            return
        self.tensorboard.epoch(record)
        if record["test_elbo"] is not None:
            originals, reconstructions, samples = figure_data(vae, test_x)
            self.tensorboard.images(record["epoch"], reconstruction_grid(originals, reconstructions, self.image_shape),
                                    image_grid(samples, self.image_shape, 10))

    def finish(self, history: list, vae, test_x: torch.Tensor, stop: Callable[[], bool] = lambda: False) -> None:
        """Draw the three figures; ``stop()`` true (a signal came) skips those not drawn yet."""
        if stop():
            return
        plot_elbo_curves(history, self.out / "elbo_curves.png", self.title)
        if stop():
            return
        originals, reconstructions, samples = figure_data(vae, test_x)
        plot_reconstructions(originals, reconstructions, self.image_shape, self.out / "reconstructions.png")
        if not stop():
            plot_samples(samples, self.image_shape, self.out / "samples.png")

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()


def epoch_line(record: dict) -> str:
    """The line logged after an epoch: its ELBOs per datapoint (the training objective
    during KL warm-up), beta and seconds."""
    beta = record["kl_scale"]
    return (f"epoch {record['epoch']:3d}  train {'objective' if beta < 1 else 'ELBO'} {record['train_elbo']:9.3f}  "
            + (f"valid ELBO {record['valid_elbo']:9.3f}  " if "valid_elbo" in record else "")
            + (f"test ELBO {record['test_elbo']:9.3f}  " if record["test_elbo"] is not None else "")
            + (f"(beta {beta:.3f}) " if beta < 1 else "") + f"({record['seconds']:.1f} s)")


def figure_data(vae, test_x: torch.Tensor):
    """(originals, reconstructions, samples): 50 test images spread over the whole
    (possibly class-sorted) test set (50, D), their reconstructions (50, D), 100 decoded
    prior draws (100, D)."""
    vae = vae.eval()
    originals = test_x[torch.linspace(0, len(test_x) - 1, min(50, len(test_x)), device=test_x.device).long()]
    generator = torch.Generator(device=test_x.device).manual_seed(0)
    return originals, vae.reconstruct(originals), vae.sample(100, generator=generator)
