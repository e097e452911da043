"""Figures of a run: ELBO curves, reconstructions beside originals, prior samples (images:
mosaics of tiles, grey or RGB; tables: see :mod:`pyrovae.training.table_plots`).

matplotlib (with the file-only Agg backend) loads on the first figure drawn, not with the package."""
from pathlib import Path
from typing import Sequence, Tuple

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


def image_dims(image_shape: Sequence[int]) -> Tuple[int, int, int]:
    """``(H, W)`` -> ``(1, H, W)``; ``(C, H, W)`` as is."""
    dims = tuple(int(s) for s in image_shape)
    return dims if len(dims) == 3 else (1, *dims)


def channel_note(image_shape: Sequence[int]) -> str:
    """What a title adds when images are not shown whole: images of C channels other than 1
    (grey) or 3 (RGB) are shown by their first channel."""
    c = image_dims(image_shape)[0]
    return "" if c in (1, 3) else f" (channel 1 of {c} shown)"


def image_grid(images: torch.Tensor, image_shape: Sequence[int], ncols: int, pad: int = 1,
               pad_value: float = 1.0) -> torch.Tensor:
    """(N, C*H*W) rows (channel-first images) -> one (C', rows*(H+pad)-pad, ncols*(W+pad)-pad)
    mosaic, row-major, tiles ``pad`` pixels of ``pad_value`` apart (white). C' = C for grey (1)
    and RGB (3), else 1: the first channel (see :func:`channel_note`)."""
    c, h, w = image_dims(image_shape)
    shown = c if c in (1, 3) else 1
    n = len(images)
    nrows = -(-n // ncols)
    tiles = torch.full((nrows * ncols, shown, h + pad, w + pad), float(pad_value))
    tiles[:n, :, :h, :w] = images.detach().float().cpu().reshape(n, c, h, w)[:, :shown]
    # (rows*cols, C', H+p, W+p) -> (rows, cols, C', H+p, W+p) -> (C', rows, H+p, cols, W+p)
    grid = tiles.view(nrows, ncols, shown, h + pad, w + pad).permute(2, 0, 3, 1, 4)
    grid = grid.reshape(shown, nrows * (h + pad), ncols * (w + pad))
    return grid[:, :grid.shape[1] - pad, :grid.shape[2] - pad]  # no padding after the last row and column


def tile_inches(image_shape: Sequence[int]) -> float:
    """Printed size of a tile's shorter side: 0.6 inch for 28 pixels, proportionally more
    for larger images up to 1 inch, never under 0.4 inch (8x8 digits stay readable)."""
    side = min(image_dims(image_shape)[1:])
    return min(max(side * 0.6 / 28, 0.4), 1.0)


def save_grid(grid: torch.Tensor, path: Path, title: str, image_shape: Sequence[int] = (28, 28)) -> None:
    """A mosaic of :func:`image_grid` (or an (H, W) one) as a PNG, each tile of ``image_shape``
    :func:`tile_inches` across; grey in [0, 1] as grey levels, RGB as color (clamped to [0, 1])."""
    plt = pyplot()
    grid = grid.unsqueeze(0) if grid.dim() == 2 else grid
    inches = tile_inches(image_shape) / min(image_dims(image_shape)[1:])  # per pixel
    fig, ax = plt.subplots(figsize=(grid.shape[2] * inches + 0.4, grid.shape[1] * inches + 0.6))
    if grid.shape[0] == 3:
        ax.imshow(grid.clamp(0, 1).permute(1, 2, 0).numpy(), interpolation="nearest")  # (H, W, 3)
    else:
        ax.imshow(grid[0].numpy(), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
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
    ncols = max(1, min(ncols, len(originals)))  # fewer test images than columns: one shorter row, not an empty mosaic
    n = len(originals) // ncols * ncols
    pairs = torch.stack([originals[:n].reshape(-1, ncols, d), reconstructions[:n].reshape(-1, ncols, d)], dim=1)
    # (rows, 2, cols, D) -> (rows*2*cols, D): an original row, then its reconstruction row
    return image_grid(pairs.reshape(-1, d), image_shape, ncols)


def plot_reconstructions(originals: torch.Tensor, reconstructions: torch.Tensor, image_shape, path: Path,
                         ncols: int = 10) -> None:
    """Rows of originals with the row of their reconstructions underneath."""
    save_grid(reconstruction_grid(originals, reconstructions, image_shape, ncols), path,
              "test images (odd rows) and reconstructions (even rows)" + channel_note(image_shape), image_shape)


def plot_samples(samples: torch.Tensor, image_shape, path: Path, ncols: int = 10, per_class: bool = False) -> None:
    """Decoded prior draws, ``ncols`` to a row; ``per_class``: a row per class (a model of labelled data)."""
    title = ("samples, a row per class y: mean of p(x|z,y), z ~ p(z)" if per_class else
             "samples: mean of p(x|z), z ~ p(z)")
    save_grid(image_grid(samples, image_shape, ncols), path, title + channel_note(image_shape), image_shape)
