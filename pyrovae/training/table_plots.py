"""Figures of a run on vector data (a table: ``image_shape`` None), all in data units.

* ``reconstructions.png``: for up to 6 columns, each test row's value against its
  reconstruction (the mean of p(x | z = posterior mean)), with the diagonal y = x;
* ``samples.png``: for up to 6 columns, histograms of the test rows and of draws from the
  model (z ~ p(z), x ~ p(x|z)) on shared bins.
"""
from pathlib import Path
from typing import Optional, Sequence

import torch

from .plots import pyplot, save_figure

MAX_COLUMNS = 6


def _column_names(columns: Optional[Sequence[str]], d: int) -> list:
    if columns is not None and len(columns) == d:
        return [str(c) for c in columns]
    return [f"column {j}" for j in range(d)]


def _panels(plt, d: int):
    """(fig, axes) for the first min(d, 6) columns, three to a row."""
    shown = min(d, MAX_COLUMNS)
    ncols = min(shown, 3)
    nrows = -(-shown // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.0 * ncols, 2.7 * nrows + 0.4), squeeze=False)
    for ax in axes.flat[shown:]:
        ax.axis("off")
    return fig, list(axes.flat[:shown])


def _of_columns(d: int) -> str:
    return f"the first {MAX_COLUMNS} of {d} columns" if d > MAX_COLUMNS else f"all {d} columns"


def plot_table_reconstructions(originals: torch.Tensor, reconstructions: torch.Tensor, path: Path,
                               columns: Optional[Sequence[str]] = None) -> None:
    """Scatter of original against reconstructed value, one panel per column: (N, D) each."""
    plt = pyplot()
    x, y = originals.detach().float().cpu(), reconstructions.detach().float().cpu()
    names = _column_names(columns, x.shape[1])
    fig, axes = _panels(plt, x.shape[1])
    for j, ax in enumerate(axes):
        ax.scatter(x[:, j].numpy(), y[:, j].numpy(), s=5, alpha=0.6)
        low, high = float(min(x[:, j].min(), y[:, j].min())), float(max(x[:, j].max(), y[:, j].max()))
        ax.plot([low, high], [low, high], color="grey", lw=0.8, ls="--")
        ax.set_title(names[j], fontsize=8)
        ax.set_xlabel("test value", fontsize=7)
        ax.set_ylabel("reconstruction", fontsize=7)
        ax.tick_params(labelsize=6)
    fig.suptitle(f"{len(x)} test rows against their reconstructions ({_of_columns(x.shape[1])})", fontsize=9)
    fig.tight_layout()
    save_figure(plt, fig, path, dpi=110)


def plot_table_samples(data: torch.Tensor, samples: torch.Tensor, path: Path,
                       columns: Optional[Sequence[str]] = None) -> None:
    """Histograms (densities, shared bins) of the test rows and the model's draws, one panel per column."""
    plt = pyplot()
    x, s = data.detach().float().cpu(), samples.detach().float().cpu()
    names = _column_names(columns, x.shape[1])
    fig, axes = _panels(plt, x.shape[1])
    for j, ax in enumerate(axes):
        low, high = float(min(x[:, j].min(), s[:, j].min())), float(max(x[:, j].max(), s[:, j].max()))
        bins = torch.linspace(low, high if high > low else low + 1.0, 31).numpy()
        ax.hist(x[:, j].numpy(), bins=bins, density=True, alpha=0.5, label="test data")
        ax.hist(s[:, j].numpy(), bins=bins, density=True, alpha=0.5, label="model samples")
        ax.set_title(names[j], fontsize=8)
        ax.tick_params(labelsize=6)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{len(x)} test rows and {len(s)} draws z ~ p(z), x ~ p(x|z) ({_of_columns(x.shape[1])})",
                 fontsize=9)
    fig.tight_layout()
    save_figure(plt, fig, path, dpi=110)
