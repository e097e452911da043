r"""Posterior-collapse diagnostics of a run: once per epoch, on the validation rows, the KL of each
latent dimension and the number of active units (Burda et al. 2016: dimension u is active when
:math:`\mathrm{Cov}_x(\mathbb{E}_{q(z \mid x)}[z_u]) > 10^{-2}`), both from one pass of the guide
(:func:`pyrovae.infer.diagnostics.kl_per_dim`), and the figure ``kl_per_dim.png`` at the end.

Each epoch's record gets

* ``kl_per_dim``: an object with one entry per latent site the guide samples on the validation
  rows, ``{"z": [KL_1, ..., KL_K]}`` in nats per datapoint (a two-level model: ``{"z1": [...],
  "z2": [...]}``), ``null`` for a site whose per-dimension KL is not defined (said once in the log);
* ``active_units``: the active dimensions of all latent sites together, the posterior means read
  off the guide's distributions in that pass (for the VAE and the CVAE the means
  :func:`pyrovae.infer.evaluation.active_units` uses; for M2, those at the guide's draw of the
  label, where ``active_units`` takes the most probable class).

Both are computed on rank 0 with no gradient, in one pass over the validation rows, on a random
stream of their own (seeded 0 every epoch), so they never change what the run trains. Without a
validation set they are not recorded (said once).
"""
from pathlib import Path
from typing import Callable, Dict, Optional

import torch

from ..infer.diagnostics import SiteKL, kl_per_dim
from ..infer.evaluation import ACTIVE_THRESHOLD
from .plots import pyplot, save_figure


class CollapseDiagnostics:
    """``epoch(vae, data)`` -> the record's ``kl_per_dim`` and ``active_units`` (empty on ranks other
    than 0 and without a validation set); what is not recorded is logged once."""

    def __init__(self, log: Callable[[str], None], main: bool, device):
        self.log, self.main, self.device = log, main, device
        self.said = set()

    def _say_once(self, key: str, line: str) -> None:
        if key not in self.said:
            self.said.add(key)
            self.log(line)

    def epoch(self, vae, data) -> dict:
        if not self.main:
            return {}
        if data.valid_x is None:
            self._say_once("valid", "no validation set: kl_per_dim and active_units are not recorded")
            return {}
        given = data.valid_y if vae.labels == "required" else None  # a conditional model's q(z | x, y)
        vae.eval()
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(0)
            sites = kl_per_dim(vae, data.valid_x, y=given)  # one pass, no gradient
        for name, site in sites.items():
            if site.values is None:
                self._say_once(name, f"kl_per_dim of {name} is not recorded (null): {site.method}")
        return {"kl_per_dim": as_json(sites), "active_units": active_count(sites)}


def active_count(sites: Dict[str, SiteKL], threshold: float = ACTIVE_THRESHOLD) -> int:
    """The active dimensions of all sites together: posterior-mean variance above ``threshold``."""
    return int(sum(int((site.mean_variance > threshold).sum()) for site in sites.values()))


def as_json(sites: Dict[str, SiteKL]) -> Dict[str, Optional[list]]:
    """``{site: [KL per dimension] or None}``, read to the host at once."""
    defined = [site.values for site in sites.values() if site.values is not None]
    flat = torch.cat(defined).tolist() if defined else []  # the one host read
    out, start = {}, 0
    for name, site in sites.items():
        if site.values is None:
            out[name] = None
        else:
            out[name], start = flat[start:start + len(site.values)], start + len(site.values)
    return out


def kl_matrices(history: list) -> Dict[str, tuple]:
    """``{site: (epochs, KL (K, E), dimension order)}`` for each site with a per-dimension KL in
    the history: dimensions sorted by their final KL, largest first."""
    out = {}
    recorded = [h for h in history if isinstance(h.get("kl_per_dim"), dict)]
    sites = recorded[-1]["kl_per_dim"] if recorded else {}
    for name, last in sites.items():
        if last is None:
            continue
        rows = [h for h in recorded if isinstance(h["kl_per_dim"].get(name), list)
                and len(h["kl_per_dim"][name]) == len(last)]
        kl = torch.tensor([h["kl_per_dim"][name] for h in rows]).T  # (E, K) -> (K, E)
        order = torch.argsort(torch.tensor(last), descending=True, stable=True)  # (K,)
        out[name] = ([h["epoch"] for h in rows], kl[order], order)
    return out


def plot_kl_per_dim(history: list, path: Path) -> bool:
    """``kl_per_dim.png``: per latent site a heat map of the KL of each dimension (rows, sorted by the
    final epoch's KL, largest on top, labelled by their index) against the epoch (columns); False
    (nothing drawn) when the history holds no per-dimension KL."""
    matrices = kl_matrices(history)
    if not matrices:
        return False
    plt = pyplot()
    heights = [max(2.0, 0.12 * len(order) + 1.0) for _, _, order in matrices.values()]
    fig, axes = plt.subplots(len(matrices), 1, figsize=(7.0, sum(heights)), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for ax, (name, (epochs, kl, order)) in zip(axes[:, 0], matrices.items()):
        image = ax.imshow(kl.numpy(), aspect="auto", interpolation="nearest", cmap="viridis", vmin=0.0,
                          extent=(epochs[0] - 0.5, epochs[-1] + 0.5, len(order) - 0.5, -0.5))
        fig.colorbar(image, ax=ax, label="KL (nats per datapoint)")
        step = max(1, len(order) // 32)  # at most about 32 labels
        ax.set_yticks(range(0, len(order), step))
        ax.set_yticklabels([str(int(order[i])) for i in range(0, len(order), step)], fontsize=6)
        ax.set_ylabel(f"{name} dimension\n(sorted by final KL)")
        ax.set_xlabel("epoch")
        ax.set_title(f"KL per dimension of {name} on the validation rows "
                     f"(final: {kl[:, -1].sum():.2f} nats in all, {int((kl[:, -1] > 0.01).sum())} above 0.01)",
                     fontsize=9)
    save_figure(plt, fig, path, dpi=120)
    return True
