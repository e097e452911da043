"""Figures of a run: ELBO curves, reconstructions beside originals, prior samples.

matplotlib (with the file-only Agg backend) loads on the first figure drawn, not with the package."""
from pathlib import Path
from typing import Sequence

import torch

from .files import atomic_write


def pyplot():
    """matplotlib.pyplot on the Agg backend, imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(plt, fig, path: Path, dpi: int) -> None:
    """``fig`` as a PNG at ``path``, written through :func:`~pyrovae.training.files.atomic_write`; closed."""
    try:
        atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=dpi, bbox_inches="tight"))
    finally:
        plt.close(fig)


def image_grid(images: torch.Tensor, image_shape: Sequence[int], ncols: int) -> torch.Tensor:
    """(N, H*W) -> one (rows*H, ncols*W) mosaic, row-major."""
    h, w = image_shape
    n = len(images)
    nrows = -(-n // ncols)
    padded = torch.zeros(nrows * ncols, h * w)
    padded[:n] = images.detach().float().cpu()
    # (rows*cols, H*W) -> (rows, cols, H, W) -> (rows, H, cols, W) -> (rows*H, cols*W)
    return padded.view(nrows, ncols, h, w).permute(0, 2, 1, 3).reshape(nrows * h, ncols * w)


def save_grid(grid: torch.Tensor, path: Path, title: str) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(grid.shape[1] / 28 * 0.6 + 0.4, grid.shape[0] / 28 * 0.6 + 0.6))
    ax.imshow(grid.numpy(), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    save_figure(plt, fig, path, dpi=100)


def plot_elbo_curves(history: list, path: Path, title: str = "") -> None:
    """Train, validation (where there is a validation set) and test ELBO per datapoint
    (nats) against epoch."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.plot([h["epoch"] for h in history], [h["train_elbo"] for h in history], label="train ELBO")
    validated = [h for h in history if h.get("valid_elbo") is not None]
    if validated:
        ax.plot([h["epoch"] for h in validated], [h["valid_elbo"] for h in validated], label="validation ELBO")
    tested = [h for h in history if h.get("test_elbo") is not None]
    ax.plot([h["epoch"] for h in tested], [h["test_elbo"] for h in tested], "o-", ms=3, label="test ELBO")
    ax.set_xlabel("epoch")
    ax.set_ylabel("ELBO per datapoint (nats)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(plt, fig, path, dpi=120)


def reconstruction_grid(originals: torch.Tensor, reconstructions: torch.Tensor, image_shape,
                        ncols: int = 10) -> torch.Tensor:
    """One mosaic: rows of originals, each with the row of their reconstructions underneath."""
    d = originals.shape[1]
    n = len(originals) // ncols * ncols
    pairs = torch.stack([originals[:n].reshape(-1, ncols, d), reconstructions[:n].reshape(-1, ncols, d)], dim=1)
    # (rows, 2, cols, D) -> (rows*2*cols, D): an original row, then its reconstruction row
    return image_grid(pairs.reshape(-1, d), image_shape, ncols)


def plot_reconstructions(originals: torch.Tensor, reconstructions: torch.Tensor, image_shape, path: Path, ncols: int = 10) -> None:
    """Rows of originals with the row of their reconstructions underneath."""
    save_grid(reconstruction_grid(originals, reconstructions, image_shape, ncols), path,
              "test images (odd rows) and reconstructions (even rows)")


def plot_samples(samples: torch.Tensor, image_shape, path: Path, ncols: int = 10) -> None:
    save_grid(image_grid(samples, image_shape, ncols), path, "samples: mean of p(x|z), z ~ N(0, I)")
