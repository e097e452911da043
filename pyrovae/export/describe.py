"""``model.json`` of an export: what each file takes and gives, and what the graphs expect of their rows."""
from typing import Dict, Optional

from .._version import __version__
from ..model.graphs import PARAMETERS, ExportGraph, TensorSpec, decoder_outputs
from ..model.registry import describe as model_name
from .writers import BATCH, CHECK_ROWS, FORMATS, OPSET, version


def tensor(spec: TensorSpec) -> dict:
    """One input or output as model.json gives it: its name, its shape (``N`` the batch size, any
    number of rows), dtype, meaning."""
    return {"name": spec.name, "shape": [BATCH, *spec.shape], "dtype": spec.dtype, "meaning": spec.meaning}


def file_spec(graph: ExportGraph) -> dict:
    """A graph's inputs and outputs, as model.json gives them."""
    return {"inputs": [tensor(t) for t in graph.inputs], "outputs": [tensor(t) for t in graph.outputs]}


def preprocessing(vae, resolved: dict) -> dict:
    """What the graphs that take rows (an input ``x``) expect of them, and what the run did to them in
    training only."""
    binarize, dequantize = resolved.get("binarize", "none"), resolved.get("dequantize", "none")
    levels = resolved.get("levels")
    noise = binarize != "none" or dequantize != "none"
    if vae.standardizer is not None:
        rows = ("rows in the table's own units, the columns as the run was trained on them; every graph that "
                "takes rows x standardizes them itself, (x - mean) / std with the mean and std of the run's training "
                "rows (inside its graph)")
    elif noise:
        rows = (f"grey values in [0, 1] as given ({levels} levels: pixel / {levels - 1})" if levels else
                "grey values in [0, 1] as given")
        rows += ("; the run's binarization or dequantization is noise drawn in training only: the graphs take the "
                 "grey values themselves, as pyrovae's encode.py does")
    else:
        rows = "rows in the units the run was trained on, as given"
        if vae.image_shape is not None:
            rows += " (pixels in [0, 1])"
    if vae.image_shape is not None:
        rows += f"; an image is flattened channel-first, row-major, to {vae.x_dim} values"
    standardization = None
    if vae.standardizer is not None:
        standardization = {"in_graph": "every input x: (x - mean) / std; the decoder's outputs: loc and mean * std + "
                                         "mean, scale * std",
                           "mean": vae.standardizer.mean.tolist(), "std": vae.standardizer.std.tolist()}
    return {"rows": rows, "levels": levels, "binarize_in_training": binarize, "dequantize_in_training": dequantize,
            "binarize_or_dequantize_in_graph": False, "standardization": standardization}


def describe(model, run, fmt: str, checkpoint: str, epoch, graphs: Dict[str, ExportGraph],
             checks: Dict[str, Optional[float]]) -> dict:
    """The contents of ``model.json``: the files, then what of the model they show (the sections of
    the parts a model does not have are left out)."""
    suffix = FORMATS[fmt]
    record = {
        "format": fmt,
        "files": {name + suffix: file_spec(graph) for name, graph in graphs.items()},
        "model": model_name(model),
        "run": {"name": run.folder.resolve().name, "run_id": run.run_id, "checkpoint": checkpoint, "epoch": epoch},
        "x_dim": model.x_dim,
        **{key: getattr(model, key) for key in ("z_dim", "z1_dim") if isinstance(getattr(model, key, None), int)},
        **({"num_classes": model.num_classes} if model.num_classes else {}),
        "image_shape": None if model.image_shape is None else list(model.image_shape),
        "arch": getattr(model, "arch", None),
        "preprocessing": preprocessing(model, run.record.get("resolved") or {}),
    }
    likelihood = getattr(model, "likelihood", None)
    if likelihood is not None and getattr(likelihood, "name", None) in PARAMETERS and getattr(likelihood, "fn", None) is None:
        record["likelihood"] = {**likelihood.config(),
                                "parameters": {name: meaning for name, _, _, meaning in decoder_outputs(likelihood)},
                                "units": "data units (standardization undone)" if model.standardizer is not None else
                                         "the data the likelihood scored"}
    family = getattr(model, "posterior_family", None)
    if family is not None:
        record["guide"] = {**family.config(), "q": _q(model, family.name == "iaf", suffix)}
    if getattr(model, "prior", None) is not None:
        record["prior"] = {**model.prior.config(), "exported": False, "note": _prior(model, suffix)}
    record.update({
        "exporter": ({"tool": "torch.onnx.export (TorchScript-based, dynamo=False)", "opset": OPSET,
                      "dynamic_axes": {BATCH: "the first axis of every input and output"}} if fmt == "onnx" else
                     {"tool": "torch.jit.trace", "dynamic_axes": {BATCH: "the first axis of every input and output"}}),
        "check": {"rows": CHECK_ROWS, "max_relative_difference": {name + suffix: value for name, value in checks.items()},
                  "of": "the file against PyTorch, |file - torch| / (1 + |torch|); null: not run (no onnxruntime)"},
        "versions": {"pyrovae": __version__, "torch": version("torch"), "onnx": version("onnx"),
                     "onnxruntime": version("onnxruntime")},
    })
    return record


def _q(model, flow: bool, suffix: str) -> str:
    """What the guide family makes of the encoder's loc and scale (of the top layer z2, for the hvae)."""
    site = "z2" if model.kind == "hvae" else "z"
    q = (f"{site} = flow(u), u ~ Normal(loc, scale): {'flow' + suffix}" if flow else
         f"Normal(loc, scale), independent over the {site} dimensions")
    if model.kind == "hvae":
        q += f", for the top layer z2 (encoder_z2{suffix}); q(z1|x,z2) = Normal(loc, scale) of encoder_z1{suffix}"
    return q


def _prior(model, suffix: str) -> str:
    """How to sample from the model with the exported files, or where its prior stays."""
    name = model.prior.name
    if model.kind == "hvae":
        draw = (f"draw z2 from Normal(0, I), z1 from Normal(loc, scale) of prior_z1{suffix} at z2, and decode "
                "(z1, z2) to sample from the model")
        return (f"p(z2) = Normal(0, I): {draw}" if name == "normal" else
                f"the {name} prior shapes p(z2); its parameters stay in the run's checkpoint; p(z1|z2) is "
                f"prior_z1{suffix}")
    if model.labels != "none":
        return "p(z) = Normal(0, I): decode z drawn from it with a class y to sample rows of class y"
    if name == "normal":
        return "p(z) = Normal(0, I): decode z drawn from it to sample from the model"
    return (f"the {name} prior shapes p(z) only; the encoder and decoder do not depend on it; its parameters stay "
            "in the run's checkpoint")
