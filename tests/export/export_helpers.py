"""What the export tests share besides fixtures: the runs, the model of a run folder, its encodings, running
an exported file, PyTorch's decoder outputs, the tolerance."""
import json

import numpy as np
import onnxruntime
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
    "hvae-gated-table": ("cancer", dict(model="hvae", arch="gated", likelihood="gaussian")),
    "hvae-conv-iaf": ("mnist", dict(model="hvae", arch="conv", channels=(4, 8), hidden=(16,), guide="iaf")),
    "cvae-mlp": ("mnist", dict(model="cvae")),
    "m2-mnist": ("mnist", dict(model="m2", labels_per_class=10, test_limit=None)),  # all test rows: encode.py's row
    "m2-gated-table": ("cancer-labelled", dict(model="m2", arch="gated", likelihood="laplace", labels_per_class=20)),
}
#: the distribution's attribute behind each decoder output, per likelihood (mean: the distribution's mean)
ATTRIBUTES = {"bernoulli": {"logits": "logits", "probs": "probs"},
              "continuous-bernoulli": {"logits": "logits", "probs": "probs"},
              "gaussian": {"loc": "loc", "scale": "scale"}, "laplace": {"loc": "loc", "scale": "scale"},
              "beta": {"alpha": "concentration1", "beta": "concentration0"}}


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


def run_file(folder, name: str, inputs: dict) -> dict:
    """The outputs of ``folder/name.{onnx,pt}`` on ``inputs`` (numpy arrays), by the names model.json gives."""
    spec = json.loads((folder / "model.json").read_text())
    suffix = ".onnx" if spec["format"] == "onnx" else ".pt"
    names = [t["name"] for t in spec["files"][name + suffix]["outputs"]]
    if suffix == ".onnx":
        session = onnxruntime.InferenceSession(str(folder / (name + suffix)), providers=["CPUExecutionProvider"])
        values = session.run(names, inputs)
    else:
        module = torch.jit.load(str(folder / (name + suffix)))
        with torch.no_grad():
            values = [t.numpy() for t in module(*(torch.from_numpy(v) for v in inputs.values()))]
    return dict(zip(names, values))


def reference_decoder(model, z: np.ndarray, p_x=None) -> dict:
    """The likelihood's parameters and mean at ``model.decoder(z)`` (or of the distribution ``p_x``) in
    PyTorch, in data units: loc and mean through ``model.to_data_space``, scale times the standardization's
    std. The continuous Bernoulli's mean is taken in float64 (torch's float32 formula loses about 3e-3 near
    lambda = 1/2)."""
    with torch.no_grad():
        base = (p_x if p_x is not None else model.likelihood(model.decoder(torch.from_numpy(z)))).base_dist
        values = {out: getattr(base, attribute) for out, attribute in ATTRIBUTES[model.likelihood.name].items()}
        values["mean"] = (torch.distributions.ContinuousBernoulli(probs=base.probs.double()).mean.float()
                          if isinstance(base, torch.distributions.ContinuousBernoulli) else base.mean)
        for name in ("loc", "mean"):
            if name in values:
                values[name] = model.to_data_space(values[name])
        if "scale" in values and model.standardizer is not None:
            values["scale"] = values["scale"] * model.standardizer.std
    return {name: value.numpy() for name, value in values.items()}
