r"""The semi-supervised M2 model of Kingma et al. (2014) as a Pyro program.

Generative model and guide, for a row :math:`x` with class :math:`y \in \{0..K-1\}`:

.. math::
    p(y) = \mathrm{Cat}(1/K), \quad p(z) = \mathcal{N}(0, I), \quad p_\theta(x \mid y, z);
    \qquad q_\phi(y \mid x) = \mathrm{Cat}(\pi_\phi(x)), \quad q_\phi(z \mid x, y) = \mathcal{N}(\cdot).

A labelled row contributes :math:`\mathcal{L}(x, y) = \mathbb{E}_{q(z \mid x, y)}[\log p(x \mid y, z)
+ \log p(y) + \log p(z) - \log q(z \mid x, y)]`; a row whose label is hidden contributes

.. math::
    \mathcal{U}(x) = \sum_y q(y \mid x)\, \big(\mathcal{L}(x, y) - \log q(y \mid x)\big) \le \log p(x),

the sum over the K classes computed exactly and in parallel: the guide's ``y`` site is
enumerated (``infer={"enumerate": "parallel"}``) and :class:`~pyrovae.infer.enum_elbo.TraceEnum_ELBO`
sums it out. Labelled rows also add the classification term :math:`\alpha \log q(y \mid x)`
(``alpha`` per labelled row; Kingma et al. use :math:`\alpha = 0.1 N` on the mean over the
labelled rows, i.e. :math:`0.1 N / N_l` per row), so that :math:`q(y \mid x)` learns from the
labels directly, not only through :math:`\mathcal{L}`.

One call of the program scores a minibatch whose first ``split`` rows have hidden labels and
whose other rows are labelled (the training step builds it so: no masks, no wasted passes),
the labelled rows' terms multiplied by ``labelled_scale`` (the step's weight that keeps the
minibatch an unbiased estimate of the full objective when labelled rows are drawn apart).

Evaluation: :meth:`M2.elbo_terms` is :math:`\mathcal{U}(x)`; :meth:`M2.log_weights` estimates
:math:`\log p(x) = \log \sum_y \int p(x, y, z)\, dz` with the sum over :math:`y` inside the
importance sum, :math:`\log \hat p_K(x) = \log \frac{1}{K}\sum_k \sum_y p(x, y, z_{k,y}) /
q(z_{k,y} \mid x, y)`, :math:`z_{k,y} \sim q(z \mid x, y)`; :meth:`M2.classify` is
:math:`q(y \mid x)`.
"""
from typing import Optional, Sequence

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import torch
from torch.distributions import kl_divergence

from ..errors import ConfigError
from .exported import m2_graphs
from .labelled import LabelledModel, join
from .networks import mlp


class M2(LabelledModel):
    """The M2 model (module docstring); ``alpha`` weighs the classification term per labelled row."""

    kind = "m2"
    labels = "optional"
    latent_sites = ("z", "z_labelled")

    def __init__(self, x_dim: int, num_classes: int, z_dim: int = 50, hidden: Sequence[int] = (400,),
                 alpha: float = 50.0, **options):
        super().__init__(x_dim, num_classes, z_dim, hidden, **options)
        if isinstance(alpha, bool) or not (isinstance(alpha, (int, float)) and 0 <= alpha < float("inf")):
            raise ConfigError(f"alpha must be a non-negative number, got {alpha!r}")
        self.alpha = float(alpha)
        self.passes_per_sample = self.num_classes
        self.classifier = mlp([self.x_dim, *self.hidden, self.num_classes], self.activation,
                              gated=self.arch == "gated")  # x -> logits

    def config(self) -> dict:
        return {**super().config(), "alpha": self.alpha}

    # ------------------------------------------------------------- the program
    def model(self, x: torch.Tensor, y: Optional[torch.Tensor] = None, split: Optional[int] = None,
              labelled_scale: float = 1.0):
        """p(y) p(z) p(x | y, z) over rows ``x`` (N, D): rows ``[:split]`` with the label summed
        out (sites ``y``, ``z``, ``x``), rows ``[split:]`` with labels ``y[split:]`` observed
        (sites ``y_labelled``, ``z_labelled``, ``x_labelled``, and ``y_classified``: the
        classification term). ``y=None``: every label hidden."""
        self.register("decoder", self.decoder)
        self.register("classifier", self.classifier)
        split = _split(x, y, split)
        if split > 0:  # hidden labels: y is enumerated by the guide and summed out
            x_u = x[:split]
            with pyro.plate("data", split):
                prior_y = dist.Categorical(logits=x_u.new_zeros(split, self.num_classes))
                y_u = pyro.sample("y", prior_y)  # (N_u,), or (K, 1, 1) enumerated
                z = pyro.sample("z", self.prior.distribution(split))  # (N_u, z_dim) or (K, P, N_u, z_dim)
                pyro.sample("x", self.decode(z, y_u), obs=self.likelihood.prepare(x_u))
        if split < len(x):  # labelled rows
            x_l, y_l = x[split:], y[split:]
            with pyro.plate("labelled", len(x_l)), poutine.scale(scale=labelled_scale):
                pyro.sample("y_labelled", dist.Categorical(logits=x_l.new_zeros(len(x_l), self.num_classes)), obs=y_l)
                z = pyro.sample("z_labelled", self.prior.distribution(len(x_l)))
                pyro.sample("x_labelled", self.decode(z, y_l), obs=self.likelihood.prepare(x_l))
                if self.alpha:  # alpha * log q(y | x): the classifier learns from the labels
                    with poutine.scale(scale=self.alpha):
                        pyro.sample("y_classified", dist.Categorical(logits=self.classifier(x_l)), obs=y_l)

    def guide(self, x: torch.Tensor, y: Optional[torch.Tensor] = None, split: Optional[int] = None,
              labelled_scale: float = 1.0):
        """q(y | x) (enumerated) and q(z | x, y) for the hidden labels; q(z | x, y) at the given ones."""
        self.register("encoder", self.encoder)
        self.register("classifier", self.classifier)
        split = _split(x, y, split)
        if split > 0:
            x_u = x[:split]
            with pyro.plate("data", split):
                y_u = pyro.sample("y", dist.Categorical(logits=self.classifier(x_u)),
                                  infer={"enumerate": "parallel"})  # (N_u,), or (K, 1, 1) enumerated
                loc, scale = self.encoder(join(x_u, self.one_hot(y_u)))  # (..., N_u, z_dim) each
                pyro.sample("z", dist.Normal(loc, scale).to_event(1))
        if split < len(x):
            x_l, y_l = x[split:], y[split:]
            with pyro.plate("labelled", len(x_l)), poutine.scale(scale=labelled_scale):
                loc, scale = self.encoder(join(x_l, self.one_hot(y_l)))
                pyro.sample("z_labelled", dist.Normal(loc, scale).to_event(1))

    # -------------------------------------------------------------- evaluation
    def _per_class(self, x: torch.Tensor, num_samples: int):
        r"""For every class y at once, at ``num_samples`` draws :math:`z \sim q(z \mid x, y)`:
        (log q(y | x) (K, B), log p(x | y, z) (S, K, B), log p(z) - log q(z | x, y) (S, K, B),
        q(z | x, y) with batch (K, B))."""
        k, b = self.num_classes, len(x)
        classes = torch.arange(k, device=x.device).view(k, 1).expand(k, b)  # (K, B)
        loc, scale = self.encoder(join(x, self.one_hot(classes)))  # (K, B, z_dim) each
        q_z = dist.Normal(loc, scale).to_event(1)
        z = q_z.rsample((num_samples,))  # (S, K, B, z_dim)
        log_px = self.decode(z, classes).log_prob(self.likelihood.prepare(x))  # (S, K, B)
        log_ratio = self.prior.distribution(b).log_prob(z) - q_z.log_prob(z)  # (S, K, B)
        log_qy = torch.log_softmax(self.classifier(x), dim=-1).T  # (K, B)
        return log_qy, log_px, log_ratio, q_z

    def elbo_terms(self, x, y, num_samples, analytic_kl):
        r""":math:`\mathcal{U}(x)` per row (labels, if given, are not used: a row's score is its
        bound on :math:`\log p(x)`), split into :math:`\sum_y q(y|x)\, \mathbb{E}_q \log p(x|y,z)`
        and :math:`\mathrm{KL}(q(y, z \mid x) \| p(y)\, p(z)) = \sum_y q(y|x) [\log q(y|x) - \log p(y)
        + \mathrm{KL}(q(z|x,y) \| p(z))]`, (B,) each; the inner KL in closed form with ``analytic_kl``."""
        log_qy, log_px, log_ratio, q_z = self._per_class(x, num_samples)
        q_y, log_py = log_qy.exp(), -torch.log(torch.tensor(float(self.num_classes), device=x.device))
        kl_z = kl_divergence(q_z, self.prior.distribution(len(x))) if analytic_kl else -log_ratio.mean(0)  # (K, B)
        ell = (q_y * log_px.mean(0)).sum(0)  # (B,)
        kl = (q_y * (log_qy - log_py + kl_z)).sum(0)  # (B,)
        return ell, kl

    def log_weights(self, x, y, num_samples):
        """(S, B): ``logsumexp`` over the classes of log p(x, y, z) - log q(z | x, y), whose log-mean-exp
        over the S draws is the estimate of log p(x) with y summed inside the importance sum."""
        _, log_px, log_ratio, _ = self._per_class(x, num_samples)
        log_py = -torch.log(torch.tensor(float(self.num_classes), device=x.device))
        return torch.logsumexp(log_px + log_py + log_ratio, dim=1)

    @torch.no_grad()
    def posterior_params(self, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> dict:
        """``probs`` q(y | x) (N, K), and ``loc``/``scale`` of q(z | x, y) at the given labels, or at the
        most probable class where a label is not given (-1 or None)."""
        probs = torch.softmax(self.classifier(x), dim=-1)
        guess = probs.argmax(-1)
        y = guess if y is None else torch.where(y >= 0, y, guess)
        loc, scale = self.encoder(join(x, self.one_hot(y)))
        return {"loc": loc, "scale": scale, "probs": probs}

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Mean of p(x | z*, y) in data units, at the given labels or else the most probable
        class of q(y | x), z* the posterior mean of q(z | x, y)."""
        x = self._as_input(x)
        given = self._as_labels(y, len(x))
        params = self.posterior_params(self.to_model_space(x), given)
        guess = params["probs"].argmax(-1)
        labels = guess if given is None else torch.where(given >= 0, given, guess)
        return self.to_data_space(self.decode(params["loc"], labels).mean)

    def export_graphs(self, x: torch.Tensor) -> dict:
        """``classifier`` x -> q(y|x), ``encoder`` (x, y), ``decoder`` (z, y):
        :func:`pyrovae.model.exported.m2_graphs`."""
        return m2_graphs(self, x)

    @torch.no_grad()
    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """q(y | x): class probabilities (N, K) of rows ``x`` (N, D) in data units."""
        return torch.softmax(self.classifier(self.to_model_space(self._as_input(x))), dim=-1)


def _split(x: torch.Tensor, y: Optional[torch.Tensor], split: Optional[int]) -> int:
    """How many leading rows of ``x`` have hidden labels: all without ``y``, none with ``y`` and no ``split``."""
    if y is None:
        return len(x)
    if split is None:
        return 0
    if not 0 <= split <= len(x):
        raise ConfigError(f"split must be between 0 and {len(x)}, got {split}")
    return split
