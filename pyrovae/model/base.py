r"""What every model pyrovae trains is: :class:`Model`, a :class:`torch.nn.Module` holding a Pyro
program pair ``model(x, y=None)`` / ``guide(x, y=None)`` and what the machinery around it
(training, checkpoints, evaluation, encoding, figures) needs to know.

A subclass writes its program and says:

* ``latent_sites``: the names of its continuous latent sample sites (KL warm-up scales
  their log-densities; :meth:`encode` reads the guide's distributions at them);
* ``labels``: ``"none"`` (unsupervised), ``"required"`` (every row comes with its class,
  e.g. a conditional VAE) or ``"optional"`` (rows with a hidden label, ``y = -1``, are
  summed over their classes, e.g. the semi-supervised M2);
* :meth:`config`: plain values that rebuild the same architecture (``cls(**config)``),
  stored in every checkpoint; loading takes the class again, never pickled code.

Evaluation reads log-densities off traces of the same program that trains
(:meth:`log_terms`): a model whose latent sites are all sampled by its guide is scored by
the defaults here; a model that sums a latent out exactly (enumeration) overrides
:meth:`elbo_terms` and :meth:`log_weights`.

Parameters go into Pyro's global param store under the instance's ``name`` (a fresh random
one), so two models in one process never share parameters; inside
``with model.local_params():`` nothing is registered (pyrovae's training loop holds the
parameters in a ``torch.optim`` optimizer). Standardized data (tables): the program works on
:math:`(x - m)/s` (:meth:`to_model_space`); :meth:`encode` takes data units.
"""
import copy
import uuid
from contextlib import contextmanager
from typing import Dict, Iterator, Optional, Sequence, Tuple

import pyro
import pyro.distributions
import pyro.poutine as poutine
import torch
import torch.nn as nn
from pyro.poutine.util import site_is_subsample
from torch.distributions import kl_divergence

from ..errors import ConfigError, DataError
from .standardize import Standardize

LABELS = ("none", "required", "optional")


class Model(nn.Module):
    """Base class of the models pyrovae trains (see the module docstring).

    :param int x_dim: values per datapoint (D).
    :param image_shape: (H, W) or (C, H, W) with C * H * W = D, or None for a table's rows.
    :param dict standardization: ``{"mean": m, "std": s}`` (D values each) of a table's columns,
        or None; with ``standardized`` and no values, placeholders for ``load_state_dict``.
    :param str name: prefix of the model's entries in Pyro's param store.
    """

    #: the registry name of the model (:mod:`pyrovae.model.registry`); a user's model keeps "custom"
    kind = "custom"
    #: the continuous latent sample sites of the program
    latent_sites: Tuple[str, ...] = ("z",)
    #: whether rows come with class labels: "none", "required" or "optional" (hidden labels are -1)
    labels = "none"
    #: the number of classes of a labelled model (0: none)
    num_classes = 0
    #: decoder passes per importance sample (a model that sums a label out: its number of classes)
    passes_per_sample = 1

    def __init__(self, x_dim: int, image_shape: Optional[Sequence[int]] = None,
                 standardization: Optional[dict] = None, standardized: bool = False, name: Optional[str] = None):
        super().__init__()
        if not (isinstance(x_dim, int) and x_dim > 0):
            raise ConfigError(f"x_dim must be a positive integer, got {x_dim!r}")
        self.x_dim = int(x_dim)
        self.image_shape = None if image_shape is None else tuple(int(s) for s in image_shape)
        self.standardizer = _standardizer(standardization, standardized, self.x_dim)
        self.name = name or f"{self.kind}-{uuid.uuid4().hex[:12]}"
        self._register_params = True

    # ------------------------------------------------------------ the program
    def model(self, x: Optional[torch.Tensor] = None, y: Optional[torch.Tensor] = None):
        raise NotImplementedError(f"{type(self).__name__} has no model program")

    def guide(self, x: torch.Tensor, y: Optional[torch.Tensor] = None):
        raise NotImplementedError(f"{type(self).__name__} has no guide program")

    def config(self) -> dict:
        """Plain values that rebuild this model: ``type(self)(**self.config())``."""
        raise NotImplementedError(f"{type(self).__name__} does not say how to rebuild it (config)")

    def register(self, part: str, module: nn.Module) -> None:
        """``pyro.module`` of a part under this model's name, unless the parameters are held locally."""
        if self._register_params and any(True for _ in module.parameters()):
            pyro.module(f"{self.name}.{part}", module)

    @contextmanager
    def local_params(self):
        """Run ``model``/``guide`` without registering the networks in Pyro's param store."""
        previous, self._register_params = self._register_params, False
        try:
            yield self
        finally:
            self._register_params = previous

    def __deepcopy__(self, memo):
        """A copy with its own parameters and its own name in Pyro's param store."""
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        new.__dict__.update({k: copy.deepcopy(v, memo) for k, v in self.__dict__.items()})
        new.name = f"{self.kind}-{uuid.uuid4().hex[:12]}"
        return new

    # ------------------------------------------------------------- evaluation
    def log_terms(self, x: torch.Tensor, y: Optional[torch.Tensor], num_samples: int, analytic_kl: bool):
        r"""(log-likelihood, KL), each (S, B): the observed sites' log-densities, summed, and per
        latent site :math:`\mathrm{KL}(q \| p)` (closed form where asked and one exists, else
        :math:`\log q(z) - \log p(z)`), summed, at ``num_samples`` draws of the guide (particles
        on dim -2) with the model replayed against them."""
        labels = {} if y is None else {"y": y}
        with pyro.plate("particles", num_samples, dim=-2):
            guide_trace = poutine.trace(self.guide).get_trace(x, **labels)
            model_trace = poutine.trace(poutine.replay(self.model, trace=guide_trace)).get_trace(x, **labels)
        guide_trace.compute_log_prob()
        model_trace.compute_log_prob()
        guide_sites = _sample_sites(guide_trace)
        log_lik, kl = 0.0, {}
        for name, site in _sample_sites(model_trace).items():
            if site["is_observed"]:
                log_lik = log_lik + site["log_prob"]
            elif name in guide_sites:
                kl[name] = _kl(guide_sites[name], site, analytic_kl)
            else:
                raise ConfigError(f"{type(self).__name__}'s guide does not sample the model's latent site {name!r}; "
                                  "a model that sums a latent out overrides elbo_terms and log_weights")
        self._kl_by_site = kl  # each latent site's KL term, (S, B), of the last call (for kl_by_site)
        return log_lik, sum(kl.values()) if kl else 0.0

    @torch.no_grad()
    def kl_by_site(self, x: torch.Tensor, y: Optional[torch.Tensor], num_samples: int,
                   analytic_kl: bool = True) -> Dict[str, torch.Tensor]:
        """Each latent site's KL term per datapoint, (B,), averaged over ``num_samples`` draws (a
        lower layer's given the guide's draws of the layers above it); their sum is the KL of
        :meth:`elbo_terms`."""
        log_lik, _ = self.log_terms(x, y, num_samples, analytic_kl)
        return {name: torch.as_tensor(v).expand_as(log_lik).mean(0) for name, v in self._kl_by_site.items()}

    def elbo_terms(self, x: torch.Tensor, y: Optional[torch.Tensor], num_samples: int,
                   analytic_kl: bool) -> Tuple[torch.Tensor, torch.Tensor]:
        """(expected log-likelihood, KL) per datapoint, (B,) each, averaged over ``num_samples`` draws."""
        log_lik, kl = self.log_terms(x, y, num_samples, analytic_kl)
        return log_lik.mean(0), torch.as_tensor(kl).expand_as(log_lik).mean(0)

    def log_weights(self, x: torch.Tensor, y: Optional[torch.Tensor], num_samples: int) -> torch.Tensor:
        r"""(S, B): importance log-weights :math:`\log p(x, z_s) - \log q(z_s \mid x)` of
        ``num_samples`` draws of the guide; their log-mean-exp estimates :math:`\log p(x)`
        (or :math:`\log p(x \mid y)` of a model conditioned on ``y``)."""
        log_lik, log_ratio = self.log_terms(x, y, num_samples, analytic_kl=False)
        return log_lik - log_ratio

    def log_weight_blocks(self, x: torch.Tensor, y: Optional[torch.Tensor],
                          sizes: Sequence[int]) -> Iterator[torch.Tensor]:
        r"""The log-weights of :meth:`log_weights` for ``sum(sizes)`` draws of the guide, one (s, B)
        block for each entry s of ``sizes`` in turn (what :func:`pyrovae.log_likelihood` sums): by
        default a call of :meth:`log_weights` per block; a model whose blocks can share work (the
        encoder's output, the prior's parameters) overrides it with the same densities at the same draws."""
        for size in sizes:
            yield self.log_weights(x, y, size)

    @torch.no_grad()
    def latents(self, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """What :func:`pyrovae.encode_dataset` writes per row of ``x`` (N, D) in data units: for each
        latent site, the location and scale (N, dims) of the guide's distribution there (the base
        distribution of a flow), named ``loc``/``scale`` for the site ``z`` and ``<site>_loc``/
        ``<site>_scale`` for others; a model with a classifier adds ``probs`` (N, K)."""
        x = self._as_input(x)
        return self.posterior_params(self.to_model_space(x), self._as_labels(y, len(x)))

    @torch.no_grad()
    def posterior_params(self, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """:meth:`latents` of rows already in model space (the rows a run trains on)."""
        trace = poutine.trace(self.guide).get_trace(x, **({} if y is None else {"y": y}))
        out = {}
        for name in self.latent_sites:
            fn = trace.nodes[name]["fn"]
            while hasattr(fn, "base_dist"):
                fn = fn.base_dist
            prefix = "" if name == "z" else f"{name}_"
            out[f"{prefix}loc"], out[f"{prefix}scale"] = fn.mean, fn.stddev
        return out

    def export_graphs(self, x: torch.Tensor) -> dict:
        """What ``scripts/export.py`` (:func:`pyrovae.export.export_run`) writes of this model:
        ``{file name: pyrovae.model.graphs.ExportGraph}``, each a module that takes and gives
        tensors whose first axis is the batch, the name, shape, dtype and meaning of every input
        and output, and example inputs for ``x`` (N, D), rows in data units (the exporter traces
        each module on them, runs the written file on others, and gives every file any batch
        size). The built-in models give their networks (:mod:`pyrovae.model.exported`); a
        model of a user's own class implements this method to be exported."""
        raise ConfigError(f"{type(self).__name__} does not say which of its networks to export; give the class an "
                          "export_graphs(x) method that returns them (see docs/export.md, \"Your own model\")")

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities (N, K) of rows ``x`` in data units: for models with a classifier."""
        raise NotImplementedError(f"{type(self).__name__} has no classifier")

    # --------------------------------------------------------- standardization
    def to_model_space(self, x: torch.Tensor) -> torch.Tensor:
        """Data units -> what the program sees: ``(x - mean) / std`` (identity without a standardization)."""
        return x if self.standardizer is None else self.standardizer(x)

    def to_data_space(self, y: torch.Tensor) -> torch.Tensor:
        """Model space -> data units: ``y * std + mean`` (identity without a standardization)."""
        return y if self.standardizer is None else self.standardizer.inverse(y)

    def log_det_standardization(self) -> float:
        r""":math:`\sum_d \log s_d` (0 without a standardization): log p_data(x) = log p_model(x_model) minus this."""
        return 0.0 if self.standardizer is None else self.standardizer.log_det()

    # ---------------------------------------------------------------- helpers
    def _device(self) -> torch.device:
        return next(self.parameters()).device

    def _as_input(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise DataError(f"x must be a torch.Tensor of shape (N, {self.x_dim}), got {type(x).__name__}")
        if x.dim() != 2 or x.shape[1] != self.x_dim:
            raise DataError(f"x must have shape (N, {self.x_dim}), got {tuple(x.shape)}")
        if not torch.is_floating_point(x):
            raise DataError(f"x must be a floating-point tensor, got dtype {x.dtype}; use x.float()")
        if not bool(torch.isfinite(x).all()):
            raise DataError("x contains NaN or infinite values; clean or drop those rows")
        weight = next(self.parameters())
        return x.to(weight.device, weight.dtype)

    def _as_labels(self, y, n: int) -> Optional[torch.Tensor]:
        """Labels ``y`` (n,) as int64 on the model's device, checked against its classes (-1: hidden)."""
        if y is None:
            if self.labels == "required":
                raise DataError(f"the {self.kind} model needs the rows' class labels: give y")
            return None
        y = torch.as_tensor(y)
        if y.shape != (n,) or y.dtype.is_floating_point:
            raise DataError(f"y must hold one integer label per row, shape ({n},), got {tuple(y.shape)} {y.dtype}")
        low = -1 if self.labels == "optional" else 0
        if len(y) and (int(y.min()) < low or int(y.max()) >= self.num_classes):
            raise DataError(f"labels must be integers from {low} to {self.num_classes - 1}, got values from "
                            f"{int(y.min())} to {int(y.max())}")
        return y.to(self._device(), torch.long)


def _sample_sites(trace) -> dict:
    return {name: site for name, site in trace.nodes.items()
            if site["type"] == "sample" and not site_is_subsample(site)}


def _kl(guide_site, model_site, analytic: bool) -> torch.Tensor:
    """KL(q || p) of one latent site, (S, B): in closed form where asked and one exists,
    else the Monte-Carlo term log q(z) - log p(z) (a flow guide, a mixture prior)."""
    if analytic:
        try:
            return kl_divergence(guide_site["fn"], model_site["fn"])
        except NotImplementedError:
            pass
    return guide_site["log_prob"] - model_site["log_prob"]


def _standardizer(standardization: Optional[dict], standardized: bool, x_dim: int) -> Optional[Standardize]:
    """The :class:`Standardize` module of ``standardization``, placeholders (mean 0, std 1) when only
    ``standardized``, or None."""
    if standardization is None:
        return Standardize(torch.zeros(x_dim), torch.ones(x_dim), x_dim) if standardized else None
    if not (isinstance(standardization, dict) and set(standardization) == {"mean", "std"}):
        raise ConfigError(f'standardization must be a dict {{"mean": [...], "std": [...]}} of x_dim values each, '
                          f"got {standardization!r:.80}")
    try:
        return Standardize(standardization["mean"], standardization["std"], x_dim)
    except (TypeError, ValueError, RuntimeError) as error:
        raise ConfigError(str(error).splitlines()[0]) from None
