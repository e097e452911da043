"""Latent-space figures of a finished run (``scripts/plot_latent.py``): posterior means, the
decoder over the prior's quantiles, decoded interpolations, latent traversals. Images may be
grey (H, W) or have channels (C, H, W); for a table (``image_shape`` None) only the posterior
means are drawn. The prepared test rows are in model space; the figures are in data units.

The run folder is only read (its lock shared), so a run on a read-only file system is drawn as
long as the figures go to a writable ``out_dir``; the figures' folder is checked before the model
loads (writable; no figure name a symbolic link), and each figure is replaced whole, a link never
written through."""
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from ..data.prepare import prepare_data  # noqa: E402
from ..environment import select_device  # noqa: E402
from ..errors import ConfigError, WriteError  # noqa: E402
from ..training.build import probe_writable  # noqa: E402
from ..training.files import check_name, check_own_files  # noqa: E402
from ..training.folder import first_missing, remove_made  # noqa: E402
from ..training.plots import channel_note, image_grid, save_figure, save_grid, tile_inches  # noqa: E402
from ..training.run import Run  # noqa: E402


@torch.no_grad()
def plot_latent_run(run_dir, out_dir=None, cuda: bool = False, log: Callable[[str], None] = print,
                    traversal_dims: int = 8) -> list:
    """latent.png (posterior means: the 2-d latent itself, or a 2-d PCA), manifold.png
    (images with 2-d latents only: the decoder over a grid of prior quantiles),
    interpolations.png (images only: decoded straight lines between posterior means) and
    traversals.png (images only: :func:`_plot_traversals` of the ``traversal_dims`` dimensions
    whose posterior means vary most). ``out_dir`` (default: the run folder) is made if missing,
    and removed again (the folders made for it, where empty) when the run is refused before a
    figure is drawn."""
    with Run.open(run_dir) as run:  # a reader: the run's lock, shared
        out = Path(out_dir or run_dir)
        made = first_missing(out)
        out = _figures_folder(out, out_dir is None)
        try:
            vae = run.model("last", select_device(cuda))
            dataset = run.dataset(log=log)
            prepared = prepare_data(run.config, dataset, vae.likelihood)
        except BaseException:
            remove_made(out, made)
            raise
        return _plot(vae, dataset, prepared, out, log, traversal_dims)


#: the figures :func:`plot_latent_run` may write
FIGURES = ("latent.png", "manifold.png", "interpolations.png", "traversals.png")


def _figures_folder(out: Path, default: bool) -> Path:
    """``out``, made if missing, refused in one line where a figure's name in it is a link or the
    folder cannot be written (``default``: it is the run folder, as no ``--out`` was given)."""
    check_name(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder for the figures")
    check_own_files(out, FIGURES)
    try:
        probe_writable(out)
    except OSError as error:
        where = "the run folder, where the figures go by default," if default else f"--out {out}"
        raise WriteError(f"{where} cannot be written ({(error.strerror or str(error)).lower()}: {out}); give --out "
                         "a writable folder for the figures") from None
    return out


def _plot(vae, dataset, prepared, out: Path, log, traversal_dims: int = 8) -> list:
    out.mkdir(parents=True, exist_ok=True)
    device = next(vae.parameters()).device
    test_x = vae.to_data_space(prepared.test_x.to(device))  # (N, D) in data units
    given = None if vae.labels != "required" else prepared.test_y.to(device)  # a conditional model's q(z | x, y)
    key = "loc" if "z" in vae.latent_sites else f"{vae.latent_sites[0]}_loc"  # the top layer of a hierarchy
    means = torch.cat([vae.latents(c, None if given is None else given[i:i + 1000])[key]
                       for i, c in zip(range(0, len(test_x), 1000), test_x.split(1000))]).cpu()  # (N, z_dim)
    image_shape = dataset.image_shape
    if vae.kind != "vae":  # the decoder of another model needs more than z (a class): the posterior means only
        log(f"the {vae.kind} model: drawing latent.png only (manifold.png, interpolations.png and traversals.png "
            "decode z alone)")
        image_shape = None
    elif image_shape is None:
        log("the data are a table (no image shape): drawing latent.png only, not manifold.png, interpolations.png "
            "or traversals.png")
    written = [out / "latent.png"] + ([out / "interpolations.png", out / "traversals.png"]
                                      if image_shape is not None else [])
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
        _plot_traversals(vae, test_x, image_shape, out / "traversals.png", traversal_dims)
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
    save_figure(plt, fig, path, dpi=120)


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



def prior_spread(vae, draws: int = 20000):
    """(mean, standard deviation) of the prior's marginal in each dimension, (z_dim,) each: exact
    where the distribution has them (the standard normal, a mixture by the law of total variance),
    else from ``draws`` prior draws (on a forked random stream)."""
    prior = vae.prior.distribution(1, vae.encoder)
    try:
        return prior.mean.reshape(-1), prior.variance.reshape(-1).sqrt()
    except NotImplementedError:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            z = vae.prior.distribution(draws, vae.encoder).sample()  # (draws, z_dim)
        return z.mean(0), z.std(0)


def _plot_traversals(vae, test_x, image_shape, path, k: int = 8, steps: int = 11):
    """traversals.png: one row per latent dimension, the ``k`` dimensions whose posterior means
    vary most over the test images (the active-units statistic), largest first; along a row the
    decoder mean at the first test image's posterior mean z* with that one dimension set to
    m_d + t s_d, t from -3 to 3 in ``steps`` steps (m_d, s_d: the prior's marginal mean and standard
    deviation). For a flow guide z* is the flow's image of its base mean, as reconstructions use."""
    def z_star(rows):  # (B, D) in data units -> (B, z_dim), the decoder's input
        loc, scale = vae.encode(rows)
        for t in getattr(vae.posterior_family.distribution(loc, scale), "transforms", ()):
            loc = t(loc)
        return loc

    means = torch.cat([z_star(rows) for rows in test_x.split(1000)])  # (N, z_dim)
    variance = means.var(dim=0) if len(means) > 1 else torch.zeros(vae.z_dim, device=means.device)
    dims = torch.argsort(variance, descending=True, stable=True)[:min(k, vae.z_dim)]  # (k,)
    m, s = (v.to(means.device) for v in prior_spread(vae))
    t = torch.linspace(-3.0, 3.0, steps, device=means.device)  # (steps,)
    z = means[:1].repeat(len(dims) * steps, 1).view(len(dims), steps, -1)  # (k, steps, z_dim)
    rows = torch.arange(len(dims), device=means.device)
    z[rows, :, dims] = m[dims].view(-1, 1) + t.view(1, -1) * s[dims].view(-1, 1)  # row r sweeps dimension dims[r]
    images = vae.to_data_space(vae.likelihood(vae.decoder(z)).mean).reshape(len(dims) * steps, -1).cpu()
    grid = image_grid(images, image_shape, steps)  # (C, rows, cols)
    h = grid.shape[1] / len(dims)  # pixels per row, with its padding
    inches = tile_inches(image_shape) / min(image_shape[-2:])
    fig, ax = plt.subplots(figsize=(grid.shape[2] * inches + 1.2, grid.shape[1] * inches + 0.8))
    if grid.shape[0] == 3:
        ax.imshow(grid.clamp(0, 1).permute(1, 2, 0).numpy(), interpolation="nearest")
    else:
        ax.imshow(grid[0].numpy(), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_yticks([(r + 0.5) * h for r in range(len(dims))])
    ax.set_yticklabels([f"z{int(d)}  var {float(variance[d]):.2f}" for d in dims], fontsize=7)
    ax.set_xticks([(c + 0.5) * grid.shape[2] / steps for c in range(steps)])
    ax.set_xticklabels([f"{round(float(v), 1) + 0.0:+.1f}" for v in t], fontsize=7)  # + 0.0: no "-0.0"
    ax.set_xlabel("prior standard deviations from the prior mean", fontsize=8)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_title("traversals: one dimension swept at a test image's posterior mean" + channel_note(image_shape),
                 fontsize=8)
    save_figure(plt, fig, path, dpi=100)
