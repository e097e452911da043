r"""M1+M2 (Kingma et al. 2014): the semi-supervised M2 on the posterior means of a VAE (M1) trained
first, as one model that takes rows in the data's own units (pixels).

With M1's encoder mean :math:`\mu_1(x)` (the ``loc`` of :math:`q_1(z_1 \mid x)`, M1 frozen) and the
column means :math:`m` and standard deviations :math:`s` of :math:`\mu_1` over the run's training
rows, M2 sees the features

.. math::
    f(x) = (\mu_1(x) - m) / s

and models them as :class:`~pyrovae.model.m2.M2` models rows: :math:`p(y)\, p(z)\, p(f \mid y, z)`,
:math:`q(y \mid f)\, q(z \mid f, y)`. :meth:`M1M2.classify` is :math:`q(y \mid f(x))`, exactly
``m2.classify(m1.encode(x)[0])``. The ELBO, ``log_weights`` and the latents are M2's, of the
features: a score of this model is a density of :math:`f(x)` (standardized M1 means, ``m1.z_dim``
columns), not of the pixels. :meth:`M1M2.reconstruct` and :meth:`M1M2.sample` decode M2's features
through M1's decoder into pixels.

The training (``--model m1m2 --m1-run RUN``, :mod:`pyrovae.training.stacked`) computes the features
once and trains ``m2`` on them; a checkpoint holds both parts (``m1.*``, ``m2.*``), so a run folder
of this model stands alone. :meth:`M1M2.pixel_classifier` is the whole classifier, pixels to
logits, as one plain :class:`torch.nn.Module`.
"""
from contextlib import contextmanager
from typing import Optional, Union

import torch
import torch.nn as nn

from ..errors import ConfigError
from .base import Model
from .exported import m1m2_graphs
from .m2 import M2
from .vae import VAE


class PixelClassifier(nn.Module):
    """Rows in data units (N, D) -> class logits (N, K): M1's standardization and encoder mean, M2's
    standardization of the features and its classifier network; softmax of the logits is
    :meth:`M1M2.classify`."""

    def __init__(self, m1: VAE, m2: M2):
        super().__init__()
        self.m1_standardizer, self.m1_encoder = m1.standardizer, m1.encoder
        self.m2_standardizer, self.classifier = m2.standardizer, m2.classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.m1_standardizer is not None:
            x = self.m1_standardizer(x)
        f = self.m1_encoder(x)[0]  # (N, m1.z_dim): M1's posterior means
        if self.m2_standardizer is not None:
            f = self.m2_standardizer(f)
        return self.classifier(f)


class M1M2(Model):
    """M2 on M1's posterior means (module docstring). ``m1``: a :class:`~pyrovae.model.vae.VAE`'s
    ``config()``, ``m2``: an :class:`~pyrovae.model.m2.M2`'s ``config()`` without its likelihood,
    ``likelihood``: M2's (of the features); :meth:`join` wraps two built models instead."""

    kind = "m1m2"
    labels = "optional"
    latent_sites = M2.latent_sites

    def __init__(self, m1: dict, m2: dict, likelihood="gaussian", name: Optional[str] = None):
        if not (isinstance(m1, dict) and isinstance(m2, dict)):
            raise ConfigError("M1M2 takes the config() dicts of its VAE (m1) and its M2 (m2); M1M2.join wraps "
                              "built models")
        self._setup(VAE(**m1), M2(**m2, likelihood=likelihood), name)

    @classmethod
    def join(cls, m1: VAE, m2: M2, name: Optional[str] = None) -> "M1M2":
        """The model of the trained ``m1`` and ``m2`` (the modules themselves, not copies)."""
        model = cls.__new__(cls)
        model._setup(m1, m2, name)
        return model

    def _setup(self, m1, m2, name) -> None:
        if not isinstance(m1, VAE) or type(m2) is not M2:
            raise ConfigError("M1+M2 takes a VAE as M1 and an M2 as M2")
        if m2.x_dim != m1.z_dim:
            raise ConfigError(f"M2 takes rows of {m2.x_dim} values, but M1's posterior means have {m1.z_dim}")
        Model.__init__(self, m1.x_dim, m1.image_shape, name=name)
        self.m1, self.m2 = m1, m2
        self.m1.requires_grad_(False)  # M1 is frozen: only M2 learns
        self.m1.eval()
        self.num_classes, self.z_dim, self.passes_per_sample = m2.num_classes, m2.z_dim, m2.passes_per_sample
        self.likelihood = m2.likelihood  # of the features

    @property
    def score_units(self) -> str:
        """What this model's ELBOs and log-likelihoods are densities of (``evaluate.py``, ``encode.py`` say it)."""
        return (f"M2's density of the features: M1's posterior means ({self.m1.z_dim} columns), standardized by the "
                "run's training rows; not of the rows themselves (accuracy: classify of the rows as given)")

    def config(self) -> dict:
        m2 = self.m2.config()
        return {"m1": self.m1.config(), "m2": {k: v for k, v in m2.items() if k != "likelihood"},
                "likelihood": m2["likelihood"]}

    def train(self, mode: bool = True) -> "M1M2":
        super().train(mode)
        self.m1.eval()  # frozen, whatever the mode
        return self

    @contextmanager
    def local_params(self):
        with super().local_params(), self.m2.local_params():
            yield self

    # ------------------------------------------------------------- the parts
    @torch.no_grad()
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """What M2 sees of rows ``x`` (N, D) in data units: M1's posterior means, standardized as the
        run's training rows' were, (N, m1.z_dim)."""
        return self.m2.to_model_space(self.m1.encode(x)[0])

    def pixel_classifier(self) -> PixelClassifier:
        """Rows in data units -> class logits, one :class:`torch.nn.Module` (for export)."""
        return PixelClassifier(self.m1, self.m2)

    def export_graphs(self, x: torch.Tensor) -> dict:
        """``classifier`` x -> q(y|f(x)), ``m2_decoder`` (z, y) -> p(z1|z,y), ``m1_decoder`` z1 -> p(x|z1):
        :func:`pyrovae.model.exported.m1m2_graphs`."""
        return m1m2_graphs(self, x)

    # ------------------------------------------------------------- the program
    def model(self, x: torch.Tensor, y: Optional[torch.Tensor] = None, split: Optional[int] = None,
              labelled_scale: float = 1.0):
        """M2's model at the features of rows ``x`` in data units (:meth:`M2.model`)."""
        return self.m2.model(self.features(x), y, split, labelled_scale)

    def guide(self, x: torch.Tensor, y: Optional[torch.Tensor] = None, split: Optional[int] = None,
              labelled_scale: float = 1.0):
        """M2's guide at the features of rows ``x`` in data units (:meth:`M2.guide`)."""
        return self.m2.guide(self.features(x), y, split, labelled_scale)

    # -------------------------------------------------------------- evaluation
    def elbo_terms(self, x, y, num_samples, analytic_kl):
        """M2's bound on log p(f(x)) per row, split (:meth:`M2.elbo_terms`)."""
        return self.m2.elbo_terms(self.features(x), y, num_samples, analytic_kl)

    def log_weights(self, x, y, num_samples):
        """M2's importance log-weights of f(x), (S, B) (:meth:`M2.log_weights`)."""
        return self.m2.log_weights(self.features(x), y, num_samples)

    @torch.no_grad()
    def posterior_params(self, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> dict:
        """M2's ``loc``, ``scale`` and ``probs`` at the features of rows ``x`` in data units."""
        return self.m2.posterior_params(self.features(x), y)

    @torch.no_grad()
    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """q(y | f(x)): class probabilities (N, K) of rows ``x`` (N, D) in data units, exactly
        ``m2.classify(m1.encode(x)[0])``."""
        return self.m2.classify(self.m1.encode(self._as_input(x))[0])

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        """M2's reconstruction of the features of ``x`` (at the labels ``y``, else the most probable
        class), decoded by M1 into data units: (N, D)."""
        x = self._as_input(x)
        return self._decode(self.m2.reconstruct(self.m1.encode(x)[0], y))

    @torch.no_grad()
    def sample(self, n: int, y: Union[int, torch.Tensor, None] = None, mean: bool = True,
               generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """``n`` rows in data units of class ``y`` (:meth:`M2.sample`'s features, decoded by M1: its
        likelihood's mean, or a draw with ``mean=False``)."""
        return self._decode(self.m2.sample(n, y, mean=True, generator=generator), mean)

    def _decode(self, f: torch.Tensor, mean: bool = True) -> torch.Tensor:
        """M1's p(x | z1 = f) in data units: its mean (``mean``) or a draw."""
        p_x = self.m1.likelihood(self.m1.decoder(f))
        return self.m1.to_data_space(p_x.mean if mean else p_x.sample())
