r"""The VAE as a Pyro model/guide pair.

Generative model (``VAE.model``), for each datapoint :math:`n` of a minibatch:

.. math::
    z_n \sim p(z) \;(\mathcal{N}(0, I_K) \text{ by default}), \qquad
    x_n \sim p_\theta(x \mid z_n) = \mathrm{lik}(\mathrm{decoder}_\theta(z_n))

Amortized guide (``VAE.guide``), by default

.. math::
    q_\phi(z_n \mid x_n) = \mathcal{N}\big(\mu_\phi(x_n), \mathrm{diag}\,\sigma^2_\phi(x_n)\big)

The likelihood, the prior (:mod:`pyrovae.model.priors`: mixture of Gaussians, VampPrior)
and the guide family (:mod:`pyrovae.model.guides`: inverse autoregressive flow) are each
pluggable, by name or as a user's callable.

Both run under ``pyro.plate("data", N)`` with the latent site ``"z"`` of event dim 1
and the observed site ``"x"`` of event dim 1, so any Pyro ELBO trains them:
``Trace_ELBO`` estimates :math:`\mathrm{KL}(q \,\|\, p)` by Monte Carlo,
``TraceMeanField_ELBO`` uses its closed form.

Parameters are registered in Pyro's global param store under names prefixed by the
instance's ``name`` (a fresh random one by default), so two VAEs in one process never
share or overwrite each other's parameters. Inside ``with vae.local_params():`` nothing
is registered: the parameters stay the modules' own, for a ``torch.optim`` optimizer
that holds them (pyrovae's training loop) and for capturing a step as a graph.

Standardized data (``standardization={"mean": m, "std": s}``, for tables): the model and
guide work in model space, :math:`x_{model} = (x - m)/s` (the rows a run trains on), so
``model``, ``guide`` and the ELBOs and log-likelihoods computed from their traces are in model
space; :meth:`VAE.encode` and :meth:`VAE.posterior` take data units and :meth:`VAE.reconstruct`
and :meth:`VAE.sample` return data units. Densities on the data's scale are

.. math::
    \log p_{data}(x) = \log p_{model}\big((x - m)/s\big) - \sum_d \log s_d

(:meth:`VAE.log_det_standardization` is :math:`\sum_d \log s_d`, 0 without a standardization).
"""
from typing import Callable, Iterator, Optional, Sequence, Tuple, Union

import pyro
import pyro.distributions as dist
import torch

from ..errors import ConfigError, DataError
from .base import Model
from .exported import vae_graphs
from .guides import get_guide
from .likelihoods import Likelihood, get_likelihood
from .networks import make_networks
from .priors import StandardNormal, get_prior, log_density


class VAE(Model):
    """A VAE with an MLP or convolutional encoder/decoder and a pluggable likelihood.

    :param int x_dim: pixels per datapoint (D).
    :param int z_dim: latent dimensions (K).
    :param hidden: hidden layer widths of the MLP encoder (the decoder mirrors them); for
        ``arch="conv"``, the width of the dense layer beside the latent.
    :param likelihood: a built-in name (``"bernoulli"``, ``"continuous-bernoulli"``,
        ``"gaussian"``, ``"laplace"``, ``"beta"``), a :class:`~pyrovae.model.likelihoods.Likelihood`,
        or a callable ``decoder_output -> Distribution``.
    :param dict likelihood_options: keyword options of a built-in likelihood
        (e.g. ``{"scale": 0.1}``) or ``outputs_per_pixel`` of a callable.
    :param str name: prefix of this VAE's entries in Pyro's param store.
    :param str arch: ``"mlp"``, ``"gated"`` or ``"conv"`` (see :mod:`pyrovae.model.networks`).
    :param image_shape: (H, W) of one grey image or (C, H, W) of one with C channels
        (C * H * W = D), needed by ``arch="conv"``; None for vector data (a table's rows).
    :param channels: feature maps of the two conv stages, for ``arch="conv"``.
    :param prior: ``"normal"`` (default), ``"mog"``, ``"vamp"``, a
        :class:`~pyrovae.model.priors.Prior` or a callable ``n -> Distribution``.
    :param dict prior_options: e.g. ``{"components": 500}``.
    :param guide: ``"normal"`` (default), ``"iaf"``, a
        :class:`~pyrovae.model.guides.GuideFamily` or a callable ``(loc, scale) -> Distribution``.
    :param dict guide_options: e.g. ``{"steps": 2}`` for ``"iaf"``.
    :param dict standardization: ``{"mean": m, "std": s}``, D values each: the model works on
        ``(x - m) / s`` (see the module's docstring); held as buffers of ``vae.standardizer``.
    :param bool standardized: with no ``standardization``, placeholder buffers (mean 0, std 1)
        for ``load_state_dict`` to fill; what :meth:`config` records.
    :param str activation: the hidden units of ``mlp``/``gated`` networks (see
        :data:`pyrovae.model.networks.ACTIVATIONS`); None: softplus for ``mlp``, none (the gate
        alone) for ``gated``.
    """

    kind = "vae"

    def __init__(
        self,
        x_dim: int = 784,
        z_dim: int = 50,
        hidden: Sequence[int] = (400,),
        likelihood: Union[str, Likelihood, Callable] = "bernoulli",
        likelihood_options: Optional[dict] = None,
        name: Optional[str] = None,
        arch: str = "mlp",
        image_shape: Optional[Sequence[int]] = (28, 28),
        channels: Sequence[int] = (32, 64),
        prior: Union[str, dict, Callable] = "normal",
        prior_options: Optional[dict] = None,
        guide: Union[str, dict, Callable] = "normal",
        guide_options: Optional[dict] = None,
        standardization: Optional[dict] = None,
        standardized: bool = False,
        activation: Optional[str] = None,
    ):
        super().__init__(x_dim, image_shape, standardization, standardized, name)
        hidden = tuple(int(h) for h in hidden)
        for label, value in [("z_dim", z_dim)] + [("hidden", h) for h in hidden]:
            if not (isinstance(value, int) and value > 0):
                raise ConfigError(f"{label} must be a positive integer, got {value!r}")
        self.z_dim, self.hidden = int(z_dim), hidden
        self.arch, self.activation = arch, activation
        self.channels = tuple(int(c) for c in channels)
        self.likelihood = get_likelihood(likelihood, **(likelihood_options or {}))
        try:
            self.encoder, self.decoder = make_networks(arch, self.x_dim, self.z_dim, self.likelihood.outputs_per_pixel,
                                                       hidden, self.image_shape, self.channels, activation)
        except ValueError as error:
            raise ConfigError(str(error)) from None
        self.prior = get_prior(prior, self.z_dim, self.x_dim, **(prior_options or {}))
        self.posterior_family = get_guide(guide, self.z_dim, **(guide_options or {}))

    # ----------------------------------------------------------------- Pyro
    def model(self, x: Optional[torch.Tensor] = None, num_samples: Optional[int] = None,
              full_size: Optional[int] = None, subsample: Optional[torch.Tensor] = None, y=None):
        """p(z) p(x|z). ``x`` (N, x_dim) is observed; with ``x=None`` the model draws
        ``num_samples`` images instead. With ``full_size`` and ``subsample`` (the indices
        of x's rows in a data set of ``full_size``), the plate scales the minibatch's
        log-densities by ``full_size / N``: an estimate of the full-data ELBO. (``y``: the
        VAE takes no labels; it is None.)"""
        self.register("decoder", self.decoder)
        self.register("prior", self.prior)
        n = x.shape[0] if x is not None else num_samples
        with _data_plate(n, full_size, subsample):
            prior = self.prior.distribution(n, self.encoder)  # batch (N,), event (z_dim,)
            z = pyro.sample("z", prior)  # (N, z_dim), or (P, N, z_dim) with vectorized particles
            p_x = self.likelihood(self.decoder(z))  # event (x_dim,)
            obs = None if x is None else self.likelihood.prepare(x)
            return pyro.sample("x", p_x, obs=obs)

    def guide(self, x: torch.Tensor, num_samples: Optional[int] = None,
              full_size: Optional[int] = None, subsample: Optional[torch.Tensor] = None, y=None):
        """q(z|x): the guide family at the encoder's (loc(x), scale(x)), by default
        Normal(loc(x), scale(x)), independent over datapoints (the same plate as the model's)."""
        self.register("encoder", self.encoder)
        self.register("guide", self.posterior_family)
        with _data_plate(x.shape[0], full_size, subsample):
            loc, scale = self.encoder(x)  # (N, x_dim) -> 2 x (N, z_dim)
            return pyro.sample("z", self.posterior_family.distribution(loc, scale))

    # ------------------------------------------------------------ inference
    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Amortized posterior parameters ``(loc, scale)``, each (N, z_dim), of rows ``x`` (N, x_dim)
        in data units (with a flow guide: those of its base distribution)."""
        return self.encoder(self.to_model_space(self._as_input(x)))

    @torch.no_grad()
    def posterior_params(self, x: torch.Tensor, y=None) -> dict:
        """``{"loc", "scale"}`` of the encoder at rows ``x`` in model space (those of :meth:`encode`)."""
        loc, scale = self.encoder(x)
        return {"loc": loc, "scale": scale}

    def posterior(self, x: torch.Tensor) -> dist.TorchDistribution:
        """``q(z|x)`` of rows in data units, by default ``dist.Normal(loc, scale).to_event(1)``:
        batch (N,), event (z_dim,)."""
        loc, scale = self.encode(x)
        return self.posterior_family.distribution(loc, scale)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Mean of p(x | z = z*) in data units: (N, x_dim), z* the posterior mean of x (data
        units; with a flow guide, the flow's image of its base mean)."""
        loc, scale = self.encode(x)
        q = self.posterior_family.distribution(loc, scale)
        for t in getattr(q, "transforms", ()):
            loc = t(loc)
        return self.to_data_space(self.likelihood(self.decoder(loc)).mean)

    @torch.no_grad()
    def sample(self, n: int, mean: bool = True, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """``n`` rows from the model in data units, (n, x_dim): the likelihood's mean at
        z ~ p(z) (``mean=False`` draws x from it instead, from the global random stream)."""
        if isinstance(self.prior, StandardNormal):
            z = torch.randn(n, self.z_dim, device=self._device(), generator=generator)
        else:  # drawn from the prior's own distribution (the global random stream)
            z = self.prior.distribution(n, self.encoder).sample()
        p_x = self.likelihood(self.decoder(z))
        return self.to_data_space(p_x.mean if mean else p_x.sample())

    def export_graphs(self, x: torch.Tensor) -> dict:
        """``encoder``, ``decoder`` (and an IAF guide's ``flow``): :func:`pyrovae.model.exported.vae_graphs`."""
        return vae_graphs(self, x)

    def log_weight_blocks(self, x: torch.Tensor, y, sizes: Sequence[int]) -> Iterator[torch.Tensor]:
        r""":meth:`Model.log_weight_blocks` without the traces: the encoder and the prior's parameters
        once for all blocks, then per block :math:`z \sim q(z \mid x)` drawn as the traced guide
        draws it (the same random numbers for the same block sizes) and
        :math:`\log p(x \mid z) + \log p(z) - \log q(z \mid x)`. A subclass that rewrites the
        program is scored from its traces."""
        if not _own_program(self, VAE):
            yield from super().log_weight_blocks(x, y, sizes)
            return
        q = self.posterior_family.distribution(*self.encoder(x))  # batch (B,), event (z_dim,)
        log_prior = log_density(self.prior.distribution(len(x), self.encoder))
        target = self.likelihood.prepare(x)
        for size in sizes:
            z = q.rsample((size,))  # (s, B, z_dim)
            log_q = q.log_prob(z)
            yield self.likelihood.log_prob(self.decoder(z), target) + log_prior(z) - log_q

    # ---------------------------------------------------------------- helpers
    def config(self) -> dict:
        """Plain values that rebuild this VAE's architecture (see :func:`pyrovae.load`)."""
        return {
            "x_dim": self.x_dim,
            "z_dim": self.z_dim,
            "hidden": list(self.hidden),
            "likelihood": self.likelihood.config(),
            "arch": self.arch,
            "image_shape": None if self.image_shape is None else list(self.image_shape),
            **({"channels": list(self.channels)} if self.arch == "conv" else {}),
            **({"prior": self.prior.config()} if self.prior.name != "normal" else {}),
            **({"guide": self.posterior_family.config()} if self.posterior_family.name != "normal" else {}),
            **({"standardized": True} if self.standardizer is not None else {}),
            **({"activation": self.activation} if self.activation is not None else {}),
        }


def _own_program(model: Model, cls: type) -> bool:
    """Whether ``model`` runs ``cls``'s program and :class:`Model`'s traced log-weights (a subclass
    may change its networks, not what the program samples)."""
    own = type(model)
    return (own.model is cls.model and own.guide is cls.guide and own.log_weights is Model.log_weights
            and own.log_terms is Model.log_terms)


def _data_plate(n: int, full_size: Optional[int], subsample: Optional[torch.Tensor]):
    """``pyro.plate("data", n)``, or over ``full_size`` datapoints of which ``subsample``
    (n indices) are at hand."""
    if full_size is None:
        return pyro.plate("data", n)
    if subsample is None or len(subsample) != n:
        raise DataError(f"full_size={full_size} needs the {n} indices of the minibatch's rows as subsample")
    return pyro.plate("data", full_size, subsample=subsample)
