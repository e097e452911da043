"""A plain ``torch.distributions`` object as a Pyro distribution, for users' likelihoods."""
import pyro.distributions as dist
import torch


class PyroWrapped(dist.TorchDistribution):
    """A plain ``torch.distributions`` object given Pyro's interface (score parts,
    ``to_event``, ``expand``) by delegation."""

    arg_constraints: dict = {}  # the wrapped distribution validated its own arguments

    def __init__(self, base: torch.distributions.Distribution):
        self.base = base
        super().__init__(base.batch_shape, base.event_shape)
        self.has_rsample = base.has_rsample

    @property
    def support(self):
        return self.base.support

    @property
    def mean(self):
        return self.base.mean

    def expand(self, batch_shape, _instance=None):
        return PyroWrapped(self.base.expand(batch_shape))

    def sample(self, sample_shape=torch.Size()):
        return self.base.sample(sample_shape)

    def rsample(self, sample_shape=torch.Size()):
        return self.base.rsample(sample_shape)

    def log_prob(self, value):
        return self.base.log_prob(value)
