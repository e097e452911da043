"""Experiment tracking in TensorBoard (``--tensorboard``), through ``torch.utils.tensorboard``.

A run writes its event files into ``<run folder>/tensorboard`` (rank 0 only), so
``tensorboard --logdir runs`` lists every run by its folder. Per epoch: the ELBOs
(``elbo/train``, ``elbo/valid``, ``elbo/test``, per datapoint in nats), the test ELBO's
split (``test/expected_log_likelihood``, ``test/kl``), ``time/seconds_per_epoch``,
``train/lr`` and ``train/kl_scale``, the collapse diagnostics ``collapse/active_units`` and
``kl_per_dim/<site>/<k>`` (dimension k's KL, nats per datapoint); at test epochs, the
images ``reconstructions`` (test images above their reconstructions) and ``samples``
(decoded prior draws). A resumed run drops the events after the epoch it resumes from.
"""
from pathlib import Path

import torch

from ..errors import ConfigError

SCALARS = {
    "train_elbo": "elbo/train",
    "valid_elbo": "elbo/valid",
    "test_elbo": "elbo/test",
    "test_expected_log_likelihood": "test/expected_log_likelihood",
    "test_kl": "test/kl",
    "seconds": "time/seconds_per_epoch",
    "lr": "train/lr",
    "kl_scale": "train/kl_scale",
}


class TensorBoardLog:
    """Scalars and images of one run; ``start_epoch`` is the last epoch already logged."""

    def __init__(self, folder: Path, start_epoch: int = 0):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError("--tensorboard needs the tensorboard package: pip install tensorboard") from None
        self.writer = SummaryWriter(str(folder), purge_step=start_epoch + 1)

    def epoch(self, record: dict) -> None:
        for key, tag in SCALARS.items():
            if record.get(key) is not None:
                self.writer.add_scalar(tag, record[key], record["epoch"])
        if record.get("active_units") is not None:
            self.writer.add_scalar("collapse/active_units", record["active_units"], record["epoch"])
        for site, values in (record.get("kl_per_dim") or {}).items():
            for k, value in enumerate(values or ()):
                self.writer.add_scalar(f"kl_per_dim/{site}/{k:03d}", value, record["epoch"])
        self.writer.flush()

    def images(self, epoch: int, reconstructions: torch.Tensor, samples: torch.Tensor) -> None:
        """Two grids in [0, 1], (H, W) or (C, H, W) with C = 1 (grey) or 3 (RGB)
        (see :func:`pyrovae.training.plots.image_grid`)."""
        for tag, grid in (("reconstructions", reconstructions), ("samples", samples)):
            grid = grid.unsqueeze(0) if grid.dim() == 2 else grid
            self.writer.add_image(tag, grid.clamp(0, 1), epoch)  # (C, H, W)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
