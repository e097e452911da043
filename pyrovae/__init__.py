"""pyrovae: a variational autoencoder as a Pyro model/guide pair.

Public API::

    vae = pyrovae.VAE(x_dim=784, z_dim=50, hidden=(400,), likelihood="bernoulli")
    vae.model(x); vae.guide(x)
    vae = pyrovae.load("runs/<run>/checkpoint.pt", map_location="cpu")
    loc, scale = vae.encode(x); q = vae.posterior(x)
    x_mean = vae.reconstruct(x); xs = vae.sample(n)
    metrics = pyrovae.train(pyrovae.TrainConfig(epochs=10))
    metrics = pyrovae.resume("runs/<run>")          # continue an interrupted run exactly
    pyrovae.log_likelihood(vae, x, num_samples=5000)   # importance-sampled log p(x), (N,)
    pyrovae.elbo(vae, x, num_particles=1, analytic_kl=True)  # ELBO = E_q log p(x|z) - KL, (N,) each

    data = pyrovae.load_dataset("photos/")                   # a name, .npy/.npz, image folder, .csv/.parquet
    data = pyrovae.Dataset.from_arrays(x_train, x_test)      # NumPy or torch: (N, D), (N, H, W), (N, H, W, C), ...
    metrics = pyrovae.train(pyrovae.TrainConfig(likelihood="gaussian"), dataset=data)
    pyrovae.encode_dataset(vae, rows, "latents.npz", score=True)  # the guide over a data set, in chunks

    metrics = pyrovae.train(pyrovae.TrainConfig(model="m2", labels_per_class=10))   # cvae, m2: labelled data
    m2 = pyrovae.load("runs/<run>/best.pt"); m2.classify(x)                       # q(y|x), (N, K)
    metrics = pyrovae.train(pyrovae.TrainConfig(model="m1m2", m1_run="runs/<vae run>", likelihood="gaussian",
                                                labels_per_class=10))   # M2 on a VAE's posterior means
    metrics = pyrovae.train(config, model=MyModel(...))   # a pyrovae.Model subclass of your own
    mine = pyrovae.load("runs/<run>/best.pt", model=MyModel)
"""
from ._version import __version__  # noqa: F401 (public here: pyrovae.__version__)
from .data.datasets import Dataset, load_dataset
from .errors import CheckpointError, ConfigError, DataError, PyrovaeError
from .infer.elbos import make_elbo
from .infer.encoding import encode_dataset
from .infer.evaluation import ELBOSplit, active_units, elbo, evaluate_elbo, log_likelihood
from .model.base import Model
from .model.hvae import HVAE
from .model.labelled import CVAE
from .model.likelihoods import Likelihood, get_likelihood
from .model.m1m2 import M1M2
from .model.m2 import M2
from .model.vae import VAE
from .training.checkpoint import load
from .training.config import TrainConfig
from .training.resume import resume
from .training.trainer import train

__all__ = [
    "VAE", "HVAE", "CVAE", "M2", "M1M2", "Model", "load", "train", "resume", "TrainConfig", "Likelihood", "get_likelihood", "make_elbo",
    "elbo", "log_likelihood", "active_units", "evaluate_elbo", "ELBOSplit", "load_dataset", "Dataset", "encode_dataset",
    "PyrovaeError", "ConfigError", "DataError", "CheckpointError",
]
