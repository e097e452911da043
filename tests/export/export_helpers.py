"""What the export tests share besides fixtures: the model of a run folder, its encodings, the tolerance."""
import numpy as np
import torch

from pyrovae.training.run import Run

#: the largest difference allowed between an exported file and PyTorch, relative to 1 + |PyTorch's value|:
#: absolute for values of order 1 (pixels, latents); for a table's columns of order 1e3 float32 itself
#: rounds at about 1e-4, so the tolerance scales with the value there
TOLERANCE = 1e-5
TINY = dict(epochs=1, train_limit=300, test_limit=50, valid_size=50, z_dim=4, hidden=(32,), progress=False)
ROWS = 64  # real rows each comparison uses

#: name -> (data, settings): each run covers a likelihood, and between them an architecture and the flow guide
RUNS = {
    "bernoulli-mlp": ("mnist", {}),
    "bernoulli-conv": ("mnist", dict(arch="conv", channels=(4, 8), hidden=(16,))),
    "cb-iaf-vamp": ("mnist", dict(likelihood="continuous-bernoulli", guide="iaf", prior="vamp",
                                  prior_options={"components": 5})),
    "gaussian-table": ("cancer", dict(likelihood="gaussian")),
    "laplace-fixed-table": ("cancer", dict(likelihood="laplace", likelihood_options={"scale": 0.5})),
    "beta-digits": ("digits", dict(likelihood="beta")),
}


def model_of(folder, which=None):
    """The trained VAE of a run folder, as the exporter reads it."""
    with Run.open(folder) as run:
        return run.model(which)


def encode(vae, x: np.ndarray):
    """``vae.encode`` of rows in data units, as numpy arrays."""
    return [t.numpy() for t in vae.encode(torch.from_numpy(x))]


def largest_difference(got, want) -> float:
    """max |got - want| / (1 + |want|), after checking the shapes agree."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    return float(np.max(np.abs(got - want) / (1 + np.abs(want)), initial=0.0))
