r"""Models of labelled data: the conditional VAE and the semi-supervised M2, as Pyro programs.

:class:`CVAE` (Sohn et al. 2015), for rows with their class :math:`y` (one-hot
:math:`e_y`):

.. math::
    p(z)\, p_\theta(x \mid z, y), \qquad q_\phi(z \mid x, y) = \mathcal{N}(\mu_\phi(x, e_y),
    \mathrm{diag}\, \sigma^2_\phi(x, e_y)), \qquad p(z) = \mathcal{N}(0, I),

trained on :math:`\mathrm{ELBO}(x \mid y) \le \log p(x \mid y)`, its test score.

:class:`M2` (Kingma et al. 2014) is in :mod:`pyrovae.model.m2`. Both take the networks of
:mod:`pyrovae.model.networks` (``mlp`` or ``gated``) on the row joined with the one-hot label.
"""
from typing import Optional, Sequence, Union

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F

from ..errors import ConfigError, DataError
from .base import Model
from .exported import cvae_graphs
from .likelihoods import get_likelihood
from .networks import Decoder, Encoder
from .priors import StandardNormal

#: the architectures of the labelled models (the label joins the row before the first layer)
LABELLED_ARCHS = ("mlp", "gated")


def join(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a`` (..., A) and ``b`` (..., B) broadcast over their leading dimensions and joined: (..., A + B)."""
    batch = torch.broadcast_shapes(a.shape[:-1], b.shape[:-1])
    return torch.cat([a.expand(*batch, a.shape[-1]), b.expand(*batch, b.shape[-1])], dim=-1)


class LabelledModel(Model):
    """What the conditional VAE and M2 share: the sizes, the likelihood, a standard-normal
    prior, and the one-hot labels."""

    def __init__(self, x_dim: int, num_classes: int, z_dim: int = 50, hidden: Sequence[int] = (400,),
                 likelihood="bernoulli", likelihood_options: Optional[dict] = None, arch: str = "mlp",
                 image_shape: Optional[Sequence[int]] = (28, 28), standardization: Optional[dict] = None,
                 standardized: bool = False, name: Optional[str] = None, activation: Optional[str] = None):
        super().__init__(x_dim, image_shape, standardization, standardized, name)
        hidden = tuple(int(h) for h in hidden)
        for label, value in [("num_classes", num_classes), ("z_dim", z_dim)] + [("hidden", h) for h in hidden]:
            if isinstance(value, bool) or not (isinstance(value, int) and value > 0):
                raise ConfigError(f"{label} must be a positive integer, got {value!r}")
        if num_classes < 2:
            raise ConfigError(f"a labelled model needs at least 2 classes, got {num_classes}")
        if arch not in LABELLED_ARCHS:
            raise ConfigError(f"the {self.kind} model takes --arch {' or '.join(LABELLED_ARCHS)}, not {arch!r}")
        self.num_classes, self.z_dim, self.hidden, self.arch = int(num_classes), int(z_dim), hidden, arch
        self.likelihood = get_likelihood(likelihood, **(likelihood_options or {}))
        gated, self.activation = arch == "gated", activation
        self.encoder = Encoder(self.x_dim + self.num_classes, self.z_dim, hidden, gated=gated,
                               activation=activation)  # (x, e_y) -> q(z)
        self.decoder = Decoder(self.z_dim + self.num_classes, self.likelihood.outputs_per_pixel * self.x_dim, hidden,
                               gated=gated, activation=activation)  # (z, e_y) -> p(x)
        self.prior = StandardNormal(self.z_dim)

    def one_hot(self, y: torch.Tensor) -> torch.Tensor:
        """(..., ) labels -> (..., K) one-hot rows in the networks' dtype."""
        return F.one_hot(y, self.num_classes).to(next(self.decoder.parameters()).dtype)

    def decode(self, z: torch.Tensor, y: torch.Tensor) -> dist.TorchDistribution:
        """p(x | z, y): z (..., z_dim), y (...) labels broadcast against z's leading dimensions."""
        return self.likelihood(self.decoder(join(z, self.one_hot(y))))

    def config(self) -> dict:
        return {"x_dim": self.x_dim, "num_classes": self.num_classes, "z_dim": self.z_dim, "hidden": list(self.hidden),
                "likelihood": self.likelihood.config(), "arch": self.arch,
                "image_shape": None if self.image_shape is None else list(self.image_shape),
                **({"standardized": True} if self.standardizer is not None else {}),
                **({"activation": self.activation} if self.activation is not None else {})}

    @torch.no_grad()
    def sample(self, n: int, y: Union[int, torch.Tensor, None] = None, mean: bool = True,
               generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """``n`` rows in data units, (n, x_dim), of class ``y`` (an int, or n labels; None: every
        class in turn, n / K rows each): the likelihood's mean at z ~ p(z) (``mean=False`` draws x
        from it)."""
        device = self._device()
        if y is None:  # the classes in turn, each a block of rows (a row of a 10-column grid per class)
            y = torch.arange(n, device=device) * self.num_classes // max(n, 1)
        y = torch.as_tensor(y, device=device).long().expand(n) if torch.as_tensor(y).dim() == 0 else \
            self._as_labels(torch.as_tensor(y), n)
        if int(y.min()) < 0 or int(y.max()) >= self.num_classes:
            raise DataError(f"classes run from 0 to {self.num_classes - 1}, got {y.tolist()[:5]}")
        z = torch.randn(n, self.z_dim, device=device, generator=generator)
        p_x = self.decode(z, y)
        return self.to_data_space(p_x.mean if mean else p_x.sample())


class CVAE(LabelledModel):
    """The conditional VAE (module docstring): every row comes with its class."""

    kind = "cvae"
    labels = "required"

    def model(self, x: Optional[torch.Tensor] = None, y: Optional[torch.Tensor] = None):
        """p(z) p(x | z, y) for rows ``x`` (N, D) of classes ``y`` (N,); ``x=None`` draws rows."""
        self.register("decoder", self.decoder)
        if y is None:
            raise DataError("the cvae model needs the rows' class labels y")
        with pyro.plate("data", len(y)):
            z = pyro.sample("z", self.prior.distribution(len(y)))  # (N, z_dim), or (P, N, z_dim)
            obs = None if x is None else self.likelihood.prepare(x)
            return pyro.sample("x", self.decode(z, y), obs=obs)

    def guide(self, x: torch.Tensor, y: Optional[torch.Tensor] = None):
        """q(z | x, y) = Normal(encoder(x, e_y))."""
        self.register("encoder", self.encoder)
        if y is None:
            raise DataError("the cvae guide needs the rows' class labels y")
        with pyro.plate("data", len(x)):
            loc, scale = self.encoder(join(x, self.one_hot(y)))  # (N, D + K) -> 2 x (N, z_dim)
            return pyro.sample("z", dist.Normal(loc, scale).to_event(1))

    def export_graphs(self, x: torch.Tensor) -> dict:
        """``encoder`` (x, y) and ``decoder`` (z, y): :func:`pyrovae.model.exported.cvae_graphs`."""
        return cvae_graphs(self, x)

    @torch.no_grad()
    def posterior_params(self, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> dict:
        if y is None:
            raise DataError("the cvae model encodes rows with their class labels: give y")
        loc, scale = self.encoder(join(x, self.one_hot(y)))
        return {"loc": loc, "scale": scale}

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean of p(x | z*, y) in data units, z* the posterior mean of (x, y)."""
        x = self._as_input(x)
        y = self._as_labels(y, len(x))
        loc = self.posterior_params(self.to_model_space(x), y)["loc"]
        return self.to_data_space(self.decode(loc, y).mean)
