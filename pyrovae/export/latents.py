"""What the explorer page (:mod:`pyrovae.export.explore`) shows of a run's latent space: the
posterior means of test rows (:func:`posterior_means`), the KL per dimension that orders the
sliders (:func:`kl_per_dimension`) and the sliders' ranges (:func:`spread`)."""
from typing import Optional

import torch

from ..errors import PyrovaeError

#: the most test rows the KL per dimension is computed on, where the run's records have none
KL_ROWS = 1000


def labels_given(vae, y):
    """The rows' labels for a model that takes them (conditional, or semi-supervised: given where known)."""
    return y if getattr(vae, "labels", "none") != "none" else None


@torch.no_grad()
def posterior_means(vae, x: torch.Tensor, y) -> dict:
    """The decoder's inputs at the posterior mean of rows ``x`` (T, D) in data units: ``z`` (T, K),
    the guide's loc through a flow guide's transforms (the hvae's top layer z2); ``z1`` (T, K1) for
    the hvae, the loc of q(z1|x,z2) at that z2; ``class`` (T,) for a model that decodes a class:
    the rows' labels ``y`` for a model that requires them (the cvae), else the class its classifier
    q(y|x) finds most probable (m2), the class z is the posterior mean for."""
    hvae = getattr(vae, "kind", None) == "hvae"
    site = vae.latent_sites[0]
    out = {"z": torch.zeros(0, vae.z_dim)}
    if hvae:
        out["z1"] = torch.zeros(0, vae.z1_dim)
    if len(x) == 0:
        return out
    required = getattr(vae, "labels", "none") == "required"
    latents = vae.latents(x, y if required else None)  # m2: q(z|x,y) at the most probable y
    loc = latents["loc"] if "loc" in latents else latents[f"{site}_loc"]
    scale = latents["scale"] if "scale" in latents else latents[f"{site}_scale"]
    family = getattr(vae, "posterior_family", None)  # a labelled model's guide is Normal, without a family
    for transform in getattr(family.distribution(loc, scale), "transforms", ()) if family is not None else ():
        loc = transform(loc)
    out["z"] = loc
    if hvae:
        out["z1"] = latents["z1_loc"]
    if required and y is not None:
        out["class"] = y
    elif "probs" in latents:
        out["class"] = latents["probs"].argmax(-1)
    return out


def kl_per_dimension(run, vae, name: str, epoch, x: torch.Tensor, y, site: Optional[str] = None):
    """(KL per dimension of the latent ``site`` (default: ``z``, else the model's first site), a
    list, or None where it is not defined; where it comes from): ``evaluate.py``'s on the test
    rows where it scored the checkpoint ``name``, else the validation rows' at ``epoch``, else
    computed on the rows ``x``."""
    try:
        metrics = run.metrics()
    except PyrovaeError:
        metrics = {}
    site = site or ("z" if "z" in vae.latent_sites else vae.latent_sites[0])
    k = vae.z1_dim if site == "z1" else vae.z_dim

    def fits(values):
        return isinstance(values, list) and len(values) == k and all(isinstance(v, (int, float)) for v in values)

    evaluation = metrics.get("evaluation") if isinstance(metrics, dict) else None
    if isinstance(evaluation, dict) and evaluation.get("checkpoint") == name:
        values = (evaluation.get("kl_per_dim") or {}).get(site)
        if fits(values):
            return values, f"KL per dimension on the test rows (evaluate.py, metrics.json evaluation, {name})"
    for entry in reversed(metrics.get("history") or [] if isinstance(metrics, dict) else []):
        if isinstance(entry, dict) and entry.get("epoch") == epoch and isinstance(entry.get("kl_per_dim"), dict):
            values = entry["kl_per_dim"].get(site)
            if fits(values):
                return values, f"KL per dimension on the validation rows at epoch {epoch} (metrics.json history)"
    if len(x) == 0:
        return None, "the run records no KL per dimension"
    from ..infer.diagnostics import kl_per_dim

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        sites = kl_per_dim(vae, vae.to_model_space(x), y=labels_given(vae, y))
    values = sites[site].values if site in sites else None
    if values is None:
        return None, sites[site].method if site in sites else f"no latent site {site}"
    return values.tolist(), f"KL per dimension computed on {len(x)} test rows ({sites[site].method})"


@torch.no_grad()
def spread(vae, draws: int = 20000):
    """(mean, standard deviation) of the prior's marginal per dimension of z (the hvae's z2), lists
    of z_dim: exact where the distribution has them, else from ``draws`` prior draws on a forked
    random stream (the sliders' range, as ``traversals.png`` of plot_latent.py takes it)."""
    prior = vae.prior.distribution(1, vae.encoder)
    try:
        mean, std = prior.mean.reshape(-1), prior.variance.reshape(-1).sqrt()
    except NotImplementedError:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            z = vae.prior.distribution(draws, vae.encoder).sample()  # (draws, z_dim)
        mean, std = z.mean(0), z.std(0)
    return mean.tolist(), std.tolist()


@torch.no_grad()
def lower_spread(hvae, draws: int = 20000):
    """(mean, standard deviation) per dimension of the hvae's lower layer z1 under the model,
    z2 ~ p(z2) and z1 ~ p(z1|z2), from ``draws`` draws on a forked random stream: the z1 sliders' range."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        z2 = hvae.prior.distribution(draws, hvae.encoder).sample()  # (draws, z_dim)
        loc, scale = hvae.prior1(z2)
        z1 = loc + scale * torch.randn(loc.shape)  # (draws, z1_dim)
    return z1.mean(0).tolist(), z1.std(0).tolist()
