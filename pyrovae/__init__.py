"""pyrovae: a variational autoencoder as a Pyro model/guide pair.

Public API::

    vae = pyrovae.VAE(x_dim=784, z_dim=50, hidden=(400,), likelihood="bernoulli")
    vae.model(x); vae.guide(x)
    vae = pyrovae.load("results/<run>/checkpoint.pt", map_location="cpu")
    loc, scale = vae.encode(x); q = vae.posterior(x)
    x_mean = vae.reconstruct(x); xs = vae.sample(n)
    metrics = pyrovae.train(pyrovae.TrainConfig(epochs=10))
"""
__version__ = "0.1.0"

from .checkpoint import load  # noqa: E402
from .config import TrainConfig  # noqa: E402
from .data import Dataset, load_dataset  # noqa: E402
from .errors import CheckpointError, ConfigError, DataError, PyrovaeError  # noqa: E402
from .evaluation import evaluate_elbo  # noqa: E402
from .likelihoods import Likelihood, get_likelihood  # noqa: E402
from .run import train  # noqa: E402
from .training import make_elbo  # noqa: E402
from .vae import VAE  # noqa: E402

__all__ = [
    "VAE", "load", "train", "TrainConfig", "Likelihood", "get_likelihood", "make_elbo",
    "evaluate_elbo", "load_dataset", "Dataset",
    "PyrovaeError", "ConfigError", "DataError", "CheckpointError",
]
