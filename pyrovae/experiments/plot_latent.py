"""Latent-space figures of a finished run (``scripts/plot_latent.py``): posterior means, the
decoder over the prior's quantiles, decoded interpolations. Images may be grey (H, W) or have
channels (C, H, W); for a table (``image_shape`` None) only the posterior means are drawn.
The prepared test rows are in model space; the figures are in data units."""
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from ..data.prepare import prepare_data  # noqa: E402
from ..environment import select_device  # noqa: E402
from ..training.plots import channel_note, image_grid, save_grid  # noqa: E402
from ..training.run import Run  # noqa: E402


@torch.no_grad()
def plot_latent_run(run_dir, out_dir=None, cuda: bool = False, log: Callable[[str], None] = print) -> list:
    """latent.png (posterior means: the 2-d latent itself, or a 2-d PCA), manifold.png
    (images with 2-d latents only: the decoder over a grid of prior quantiles) and
    interpolations.png (images only: decoded straight lines between posterior means)."""
    with Run.open(run_dir) as run:  # a reader: the run's lock, shared
        vae = run.model("last", select_device(cuda))
        dataset = run.dataset(log=log)
        prepared = prepare_data(run.config, dataset, vae.likelihood)
        return _plot(vae, dataset, prepared, Path(out_dir or run_dir), log)


def _plot(vae, dataset, prepared, out: Path, log) -> list:
    out.mkdir(parents=True, exist_ok=True)
    device = next(vae.parameters()).device
    test_x = vae.to_data_space(prepared.test_x.to(device))  # (N, D) in data units
    given = None if vae.labels != "required" else prepared.test_y.to(device)  # a conditional model's q(z | x, y)
    key = "loc" if "z" in vae.latent_sites else f"{vae.latent_sites[0]}_loc"  # the top layer of a hierarchy
    means = torch.cat([vae.latents(c, None if given is None else given[i:i + 1000])[key]
                       for i, c in zip(range(0, len(test_x), 1000), test_x.split(1000))]).cpu()  # (N, z_dim)
    image_shape = dataset.image_shape
    if vae.kind != "vae":  # the decoder of another model needs more than z (a class): the posterior means only
        log(f"the {vae.kind} model: drawing latent.png only (manifold.png and interpolations.png decode z alone)")
        image_shape = None
    elif image_shape is None:
        log("the data are a table (no image shape): drawing latent.png only, not manifold.png or interpolations.png")
    written = [out / "latent.png"] + ([out / "interpolations.png"] if image_shape is not None else [])
    if vae.z_dim == 2:
        coords, axis_names = means, ("z1", "z2")
        if image_shape is not None:
            _plot_manifold(vae, image_shape, out / "manifold.png")
            written.append(out / "manifold.png")
    else:
        centered = means - means.mean(0)
        _, s, v = torch.linalg.svd(centered, full_matrices=False)
        coords = centered @ v[:2].T  # (N, 2): the two leading principal components
        share = (s[:2] ** 2 / (s**2).sum()).tolist()
        axis_names = (f"PC1 ({share[0]:.0%} of variance)", f"PC2 ({share[1]:.0%})")
    _plot_scatter(coords, dataset.test_y, axis_names, out / "latent.png",
                  f"posterior means of {len(coords)} test {'images' if image_shape is not None else 'rows'} "
                  f"({'z' if vae.z_dim == 2 else 'PCA of z'}, z_dim={vae.z_dim})")
    if image_shape is not None:
        _plot_interpolations(vae, test_x, dataset.test_y, image_shape, out / "interpolations.png")
    log(f"wrote {', '.join(str(p) for p in written)}")
    return written


def _plot_scatter(coords, labels, axis_names, path, title):
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    if labels is not None:
        points = ax.scatter(coords[:, 0], coords[:, 1], c=labels.numpy(), cmap="tab10", s=4, alpha=0.7, vmin=-0.5, vmax=9.5)
        fig.colorbar(points, ax=ax, ticks=range(10), label="label")
    else:
        ax.scatter(coords[:, 0], coords[:, 1], s=4, alpha=0.5)
    ax.set_xlabel(axis_names[0])
    ax.set_ylabel(axis_names[1])
    ax.set_title(title, fontsize=9)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def _plot_manifold(vae, image_shape, path, n: int = 20):
    quantiles = torch.linspace(0.5 / n, 1 - 0.5 / n, n)
    values = torch.distributions.Normal(0.0, 1.0).icdf(quantiles)  # (n,)
    # rows go down z2 (high at the top), columns along z1: (n, n, 2) -> (n*n, 2)
    grid = torch.stack(torch.meshgrid(values.flip(0), values, indexing="ij")[::-1], dim=-1).reshape(-1, 2)
    device = next(vae.parameters()).device
    images = vae.to_data_space(vae.likelihood(vae.decoder(grid.to(device))).mean).cpu()  # (n*n, D)
    save_grid(image_grid(images, image_shape, n), path,
              "decoder mean over the prior's quantiles (z1 across, z2 up)" + channel_note(image_shape), image_shape)


def _plot_interpolations(vae, test_x, labels, image_shape, path, pairs: int = 8, steps: int = 10):
    # pairs of test images with different labels where labels exist, else spread indices
    n = len(test_x)
    idx = torch.linspace(0, n - 1, 2 * pairs).long().view(pairs, 2)
    if labels is not None:
        order = torch.argsort(labels, stable=True)
        idx = torch.stack([order[(torch.arange(pairs) * n) // pairs],
                           order[((torch.arange(pairs) * n) // pairs + n // 2) % n]], dim=1)
    loc = vae.encode(test_x[idx.flatten()])[0].view(pairs, 2, -1)  # (pairs, 2, z_dim)
    t = torch.linspace(0, 1, steps, device=loc.device).view(1, steps, 1)
    z = (1 - t) * loc[:, :1] + t * loc[:, 1:]  # (pairs, steps, z_dim)
    images = vae.to_data_space(vae.likelihood(vae.decoder(z)).mean).reshape(pairs * steps, -1).cpu()
    save_grid(image_grid(images, image_shape, steps), path,
              "decoded straight lines between the posterior means of two test images" + channel_note(image_shape),
              image_shape)

