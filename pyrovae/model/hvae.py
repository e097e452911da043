r"""The two-level VAE of Tomczak & Welling (2018) as a Pyro program (``--model hvae``).

Generative model and guide, per datapoint:

.. math::
    p(z_2)\, p_\theta(z_1 \mid z_2)\, p_\theta(x \mid z_1, z_2), \qquad
    q_\phi(z_2 \mid x)\, q_\phi(z_1 \mid x, z_2),

with :math:`p(z_1 \mid z_2)` and :math:`q(z_1 \mid x, z_2)` diagonal Gaussians whose parameters
networks compute, :math:`p(z_2)` any prior of :mod:`pyrovae.model.priors` (the VampPrior: the
mixture of :math:`q(z_2 \mid u_k)` at learned pseudo-inputs), and :math:`q(z_2 \mid x)` any guide
family of :mod:`pyrovae.model.guides` (an IAF on the top layer). The ELBO

.. math::
    \mathbb{E}_q[\log p(x \mid z_1, z_2)] - \mathrm{KL}(q(z_2 \mid x) \,\|\, p(z_2))
    - \mathbb{E}_{q(z_2 \mid x)} \mathrm{KL}(q(z_1 \mid x, z_2) \,\|\, p(z_1 \mid z_2))

comes from traces of the program: each layer's KL in closed form where one exists (the lower
layer's, given the guide's draw of :math:`z_2`), else by Monte Carlo; the importance-sampled
:math:`\log p(x)` uses the joint guide :math:`q(z_1, z_2 \mid x)` as proposal.

Networks: ``mlp``/``gated`` MLPs on the joined inputs (:math:`(x, z_2)` for
:math:`q(z_1 \mid x, z_2)`, :math:`(z_1, z_2)` for the decoder), or ``conv``: convolutional
:math:`q(z_2 \mid x)`, :math:`q(z_1 \mid x, z_2)` (x's feature maps joined to :math:`z_2`) and
decoder, an MLP for :math:`p(z_1 \mid z_2)`.
"""
from typing import Iterator, Optional, Sequence

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .base import Model
from .exported import hvae_graphs
from .guides import get_guide
from .labelled import join
from .likelihoods import get_likelihood
from .networks import ConditionalConvEncoder, ConvDecoder, ConvEncoder, Decoder, Encoder, GatedLinear
from .priors import StandardNormal, get_prior, log_density
from .vae import _own_program


class HVAE(Model):
    """The two-level VAE (module docstring): ``z_dim`` is the size of each layer (``z1_dim`` the
    lower one's, when it differs); ``prior`` and ``guide`` act on the top layer :math:`z_2`."""

    kind = "hvae"
    latent_sites = ("z2", "z1")

    def __init__(self, x_dim: int = 784, z_dim: int = 40, hidden: Sequence[int] = (300, 300),
                 likelihood="bernoulli", likelihood_options: Optional[dict] = None, arch: str = "gated",
                 image_shape: Optional[Sequence[int]] = (28, 28), channels: Sequence[int] = (32, 64),
                 prior="normal", prior_options: Optional[dict] = None, guide="normal",
                 guide_options: Optional[dict] = None, z1_dim: Optional[int] = None,
                 standardization: Optional[dict] = None, standardized: bool = False, name: Optional[str] = None,
                 activation: Optional[str] = None):
        super().__init__(x_dim, image_shape, standardization, standardized, name)
        hidden = tuple(int(h) for h in hidden)
        z1_dim = z_dim if z1_dim is None else z1_dim
        for label, value in [("z_dim", z_dim), ("z1_dim", z1_dim)] + [("hidden", h) for h in hidden]:
            if isinstance(value, bool) or not (isinstance(value, int) and value > 0):
                raise ConfigError(f"{label} must be a positive integer, got {value!r}")
        self.z_dim, self.z1_dim, self.hidden, self.arch = int(z_dim), int(z1_dim), hidden, arch
        self.channels, self.activation = tuple(int(c) for c in channels), activation
        self.likelihood = get_likelihood(likelihood, **(likelihood_options or {}))
        out = self.likelihood.outputs_per_pixel * self.x_dim
        units = {"gated": arch == "gated", "activation": activation}
        if arch in ("mlp", "gated"):
            self.encoder = Encoder(self.x_dim, self.z_dim, hidden, **units)  # q(z2 | x)
            self.encoder1 = Encoder(self.x_dim + self.z_dim, self.z1_dim, hidden, **units)  # q(z1 | x, z2)
            self.decoder = Decoder(self.z1_dim + self.z_dim, out, hidden, **units)  # p(x | z1, z2)
        elif arch == "conv":
            if activation is not None or image_shape is None:
                raise ConfigError("the conv hvae takes images and has ELU units; drop --activation, or use --arch "
                                  "mlp or gated")
            width = hidden[0] if hidden else 256
            self.encoder = ConvEncoder(image_shape, self.z_dim, self.channels, width)
            self.encoder1 = ConditionalConvEncoder(image_shape, self.z1_dim, self.z_dim, self.channels, width)
            self.decoder = ConvDecoder(self.z1_dim + self.z_dim, image_shape, self.likelihood.outputs_per_pixel,
                                       self.channels, width)
        else:
            raise ConfigError(f"the hvae model takes --arch mlp, gated or conv, not {arch!r}")
        self.prior1 = Encoder(self.z_dim, self.z1_dim, hidden, **units) if arch != "conv" else \
            Encoder(self.z_dim, self.z1_dim, (hidden[0] if hidden else 256,))  # p(z1 | z2)
        self.prior = get_prior(prior, self.z_dim, self.x_dim, **(prior_options or {}))  # p(z2)
        self.posterior_family = get_guide(guide, self.z_dim, **(guide_options or {}))  # q(z2 | x)

    def config(self) -> dict:
        return {"x_dim": self.x_dim, "z_dim": self.z_dim, "hidden": list(self.hidden),
                "likelihood": self.likelihood.config(), "arch": self.arch,
                "image_shape": None if self.image_shape is None else list(self.image_shape),
                **({"channels": list(self.channels)} if self.arch == "conv" else {}),
                **({"z1_dim": self.z1_dim} if self.z1_dim != self.z_dim else {}),
                **({"prior": self.prior.config()} if self.prior.name != "normal" else {}),
                **({"guide": self.posterior_family.config()} if self.posterior_family.name != "normal" else {}),
                **({"standardized": True} if self.standardizer is not None else {}),
                **({"activation": self.activation} if self.activation is not None else {})}

    # ------------------------------------------------------------- the program
    def _lower(self, x: torch.Tensor, z2: torch.Tensor):
        """q(z1 | x, z2) at ``z2`` (..., N, z_dim) for rows ``x`` (N, D): (loc, scale) (..., N, z1_dim)."""
        if self.arch == "conv":
            return self.encoder1(x, z2)
        return self.encoder1(join(x, z2))

    def model(self, x: Optional[torch.Tensor] = None, y=None, num_samples: Optional[int] = None):
        """p(z2) p(z1 | z2) p(x | z1, z2); ``x=None`` draws ``num_samples`` rows."""
        self.register("decoder", self.decoder)
        self.register("prior1", self.prior1)
        self.register("prior", self.prior)
        n = len(x) if x is not None else num_samples
        with pyro.plate("data", n):
            z2 = pyro.sample("z2", self.prior.distribution(n, self.encoder))  # (N, z_dim), or (P, N, z_dim)
            loc, scale = self.prior1(z2)
            z1 = pyro.sample("z1", dist.Normal(loc, scale).to_event(1))  # (..., N, z1_dim)
            obs = None if x is None else self.likelihood.prepare(x)
            return pyro.sample("x", self.likelihood(self.decoder(torch.cat([z1, z2], dim=-1))), obs=obs)

    def guide(self, x: torch.Tensor, y=None, num_samples: Optional[int] = None):
        """q(z2 | x) (the guide family at the encoder's loc and scale), then q(z1 | x, z2)."""
        self.register("encoder", self.encoder)
        self.register("encoder1", self.encoder1)
        self.register("guide", self.posterior_family)
        with pyro.plate("data", len(x)):
            loc, scale = self.encoder(x)  # (N, z_dim) each
            z2 = pyro.sample("z2", self.posterior_family.distribution(loc, scale))
            loc1, scale1 = self._lower(x, z2)
            pyro.sample("z1", dist.Normal(loc1, scale1).to_event(1))

    def log_weight_blocks(self, x: torch.Tensor, y, sizes: Sequence[int]) -> Iterator[torch.Tensor]:
        r""":meth:`Model.log_weight_blocks` without the traces: the top encoder, the prior's parameters
        and the part of :math:`q(z_1 \mid x, z_2)` that sees only x (its first layer's product with x, or
        x's feature maps, when ``encoder1`` is the built-in network) once for all blocks; per block :math:`z_2, z_1` drawn as the traced guide draws
        them (the same random numbers for the same block sizes) and :math:`\log p(x, z_1, z_2) - \log
        q(z_1, z_2 \mid x)`. A subclass that rewrites the program is scored from its traces."""
        if not _own_program(self, HVAE):
            yield from super().log_weight_blocks(x, y, sizes)
            return
        q2 = self.posterior_family.distribution(*self.encoder(x))  # batch (B,), event (z_dim,)
        log_prior = log_density(self.prior.distribution(len(x), self.encoder))
        lower = self._lower_of(x)
        target = self.likelihood.prepare(x)
        for size in sizes:
            z2 = q2.rsample((size,))  # (s, B, z_dim)
            log_q = q2.log_prob(z2)
            q1 = dist.Normal(*lower(z2)).to_event(1)
            z1 = q1.rsample()
            log_q = log_q + q1.log_prob(z1)
            log_p = log_prior(z2) + dist.Normal(*self.prior1(z2)).to_event(1).log_prob(z1)
            yield self.likelihood.log_prob(self.decoder(torch.cat([z1, z2], dim=-1)), target) + log_p - log_q

    def _lower_of(self, x: torch.Tensor):
        """``z2 (..., B, z_dim) -> (loc, scale)`` of q(z1 | x, z2) for the rows ``x`` (B, D), as
        :meth:`_lower` computes them, with what depends on x alone computed here once: the conv
        encoder's feature maps, or the first layer's product with x (for the built-in networks; any
        other ``encoder1`` or ``_lower`` is called as it is)."""
        if type(self)._lower is not HVAE._lower or type(self.encoder1) is not (
                ConditionalConvEncoder if self.arch == "conv" else Encoder):
            return lambda z2: self._lower(x, z2)
        if self.arch == "conv":
            net, x_part = self.encoder1, self.encoder1.features(_padded_images(self.encoder1, x))  # (B, flat)
            layers = net.head
        else:
            net, x_part, layers = self.encoder1, x, self.encoder1.net
        first, rest = layers[0], layers[1:]
        parts = [first.value, first.gate] if isinstance(first, GatedLinear) else [first]
        split = x_part.shape[-1]
        fixed = [F.linear(x_part, p.weight[:, :split], p.bias) for p in parts]  # (B, H) each

        def lower(z2: torch.Tensor):
            pre = [torch.matmul(z2, p.weight[:, split:].T) + f for p, f in zip(parts, fixed)]  # (..., B, H)
            h = first.activation(pre[0]) * torch.sigmoid(pre[1]) if len(pre) == 2 else pre[0]
            loc, raw_scale = rest(h).chunk(2, dim=-1)
            return loc, F.softplus(raw_scale) + net.min_scale
        return lower

    # ------------------------------------------------------- figures, inference
    def _top_mean(self, x_model: torch.Tensor) -> torch.Tensor:
        """z2 at the guide's base mean, pushed through a flow guide's transforms."""
        loc, scale = self.encoder(x_model)
        for t in getattr(self.posterior_family.distribution(loc, scale), "transforms", ()):
            loc = t(loc)
        return loc

    def export_graphs(self, x: torch.Tensor) -> dict:
        """``encoder_z2``, ``encoder_z1``, ``prior_z1``, ``decoder`` (and an IAF guide's ``flow`` of z2):
        :func:`pyrovae.model.exported.hvae_graphs`."""
        return hvae_graphs(self, x)

    @torch.no_grad()
    def posterior_params(self, x: torch.Tensor, y=None) -> dict:
        """q(z2 | x)'s loc and scale (its base distribution's, for a flow) and q(z1 | x, z2*)'s at z2* the
        top layer's posterior mean: a deterministic function of the rows ``x`` (model space)."""
        loc2, scale2 = self.encoder(x)
        loc1, scale1 = self._lower(x, self._top_mean(x))
        return {"z2_loc": loc2, "z2_scale": scale2, "z1_loc": loc1, "z1_scale": scale1}

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, y=None) -> torch.Tensor:
        """Mean of p(x | z1*, z2*) in data units: z2* the top layer's posterior mean, z1* that of q(z1 | x, z2*)."""
        x_model = self.to_model_space(self._as_input(x))
        z2 = self._top_mean(x_model)
        z1 = self._lower(x_model, z2)[0]
        return self.to_data_space(self.likelihood(self.decoder(torch.cat([z1, z2], dim=-1))).mean)

    @torch.no_grad()
    def sample(self, n: int, mean: bool = True, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """``n`` rows in data units: z2 ~ p(z2), z1 ~ p(z1 | z2), the mean of p(x | z1, z2) (``mean=False``: a
        draw of x). A standard-normal top layer draws from ``generator``, other priors from the global stream."""
        if isinstance(self.prior, StandardNormal):
            z2 = torch.randn(n, self.z_dim, device=self._device(), generator=generator)
        else:
            z2 = self.prior.distribution(n, self.encoder).sample()
        loc, scale = self.prior1(z2)
        noise = torch.randn(loc.shape, device=loc.device, generator=generator) if isinstance(
            self.prior, StandardNormal) else torch.randn_like(loc)
        p_x = self.likelihood(self.decoder(torch.cat([loc + scale * noise, z2], dim=-1)))
        return self.to_data_space(p_x.mean if mean else p_x.sample())


def _padded_images(encoder: ConvEncoder, x: torch.Tensor) -> torch.Tensor:
    """Rows ``x`` (B, C*H*W) as the conv encoder's padded images (B, C, H', W')."""
    images = x.reshape(-1, encoder.c, encoder.h, encoder.w)
    return F.pad(images, encoder.pad) if any(encoder.pad) else images
