"""``model.json`` of an export: what each file takes and gives, and what the encoder expects of its rows."""
from typing import Dict, Optional

from .._version import __version__
from .graphs import decoder_outputs
from .writers import BATCH, CHECK_ROWS, FORMATS, OPSET, version

FLOAT = "float32"


def tensor(name: str, width: Optional[int], meaning: str) -> dict:
    """One input or output: its name, its shape (``N`` the batch size, any number of rows), dtype, meaning."""
    return {"name": name, "shape": [BATCH] if width is None else [BATCH, width], "dtype": FLOAT, "meaning": meaning}


def file_specs(vae) -> Dict[str, dict]:
    """Per graph (encoder, decoder, and flow for a flow guide): its inputs and outputs."""
    d, k = vae.x_dim, vae.z_dim
    units = "in data units" if vae.standardizer is not None else "per pixel"
    base = "of its base Normal" if vae.posterior_family.name == "iaf" else ""
    specs = {
        "encoder": {"inputs": [tensor("x", d, "rows in data units (see preprocessing)")],
                    "outputs": [tensor("loc", k, f"mean of q(z|x) {base}".strip()),
                                tensor("scale", k, f"standard deviation of q(z|x) {base}".strip())]},
        "decoder": {"inputs": [tensor("z", k, "latent codes")],
                    "outputs": [tensor(name, d, f"{meaning}, {units}")
                                for name, _, _, meaning in decoder_outputs(vae.likelihood)]},
    }
    if vae.posterior_family.name == "iaf":
        specs["flow"] = {"inputs": [tensor("u", k, "a draw of the base Normal: loc + scale * eps, eps ~ N(0, I)"),
                                    tensor("loc", k, "the encoder's loc for the same rows"),
                                    tensor("scale", k, "the encoder's scale for the same rows")],
                         "outputs": [tensor("z", k, "a draw of q(z|x): the flow's image of u"),
                                     tensor("log_det", None, "sum over the flow's steps of log|det dz_t/dz_(t-1)|: "
                                                             "log q(z|x) = log Normal(u; loc, scale) - log_det")]}
    return specs


def preprocessing(vae, resolved: dict) -> dict:
    """What the encoder expects of its rows, and what the run did to them in training only."""
    binarize, dequantize = resolved.get("binarize", "none"), resolved.get("dequantize", "none")
    levels = resolved.get("levels")
    noise = binarize != "none" or dequantize != "none"
    if vae.standardizer is not None:
        rows = ("rows in the table's own units, the columns as the run was trained on them; the encoder standardizes "
                "them itself, (x - mean) / std with the mean and std of the run's training rows (inside encoder's graph)")
    elif noise:
        rows = (f"grey values in [0, 1] as given ({levels} levels: pixel / {levels - 1})" if levels else
                "grey values in [0, 1] as given")
        rows += ("; the run's binarization or dequantization is noise drawn in training only: the encoder takes the "
                 "grey values themselves, as pyrovae's encode.py does")
    else:
        rows = "rows in the units the run was trained on, as given"
        if vae.image_shape is not None:
            rows += " (pixels in [0, 1])"
    if vae.image_shape is not None:
        rows += f"; an image is flattened channel-first, row-major, to {vae.x_dim} values"
    standardization = None
    if vae.standardizer is not None:
        standardization = {"in_graph": "encoder (x - mean) / std; decoder loc * std + mean, scale * std",
                           "mean": vae.standardizer.mean.tolist(), "std": vae.standardizer.std.tolist()}
    return {"rows": rows, "levels": levels, "binarize_in_training": binarize, "dequantize_in_training": dequantize,
            "binarize_or_dequantize_in_graph": False, "standardization": standardization}


def describe(vae, run, fmt: str, checkpoint: str, epoch, checks: Dict[str, Optional[float]]) -> dict:
    """The contents of ``model.json``."""
    suffix = FORMATS[fmt]
    specs = file_specs(vae)
    files = {name + suffix: spec for name, spec in specs.items()}
    guide = vae.posterior_family
    flow = guide.name == "iaf"
    prior = vae.prior.name
    return {
        "format": fmt,
        "files": files,
        "model": "vae",
        "run": {"run_dir": str(run.folder.resolve()), "run_id": run.run_id, "checkpoint": checkpoint, "epoch": epoch},
        "x_dim": vae.x_dim,
        "z_dim": vae.z_dim,
        "image_shape": None if vae.image_shape is None else list(vae.image_shape),
        "arch": vae.arch,
        "preprocessing": preprocessing(vae, run.record.get("resolved") or {}),
        "likelihood": {**vae.likelihood.config(),
                       "parameters": {name: meaning for name, _, _, meaning in decoder_outputs(vae.likelihood)},
                       "units": "data units (standardization undone)" if vae.standardizer is not None else
                                "the data the likelihood scored"},
        "guide": {**guide.config(), "q": (f"z = flow(u), u ~ Normal(loc, scale): {'flow' + suffix}" if flow else
                                          "Normal(loc, scale), independent over the z_dim dimensions")},
        "prior": {**vae.prior.config(), "exported": False,
                  "note": ("p(z) = Normal(0, I): decode z drawn from it to sample from the model" if prior == "normal"
                           else f"the {prior} prior shapes p(z) only; the encoder and decoder do not depend on it; "
                                "its parameters stay in the run's checkpoint")},
        "exporter": ({"tool": "torch.onnx.export (TorchScript-based, dynamo=False)", "opset": OPSET,
                      "dynamic_axes": {BATCH: "the first axis of every input and output"}} if fmt == "onnx" else
                     {"tool": "torch.jit.trace", "dynamic_axes": {BATCH: "the first axis of every input and output"}}),
        "check": {"rows": CHECK_ROWS, "max_relative_difference": {name + suffix: value for name, value in checks.items()},
                  "of": "the file against PyTorch, |file - torch| / (1 + |torch|); null: not run (no onnxruntime)"},
        "versions": {"pyrovae": __version__, "torch": version("torch"), "onnx": version("onnx"),
                     "onnxruntime": version("onnxruntime")},
    }
