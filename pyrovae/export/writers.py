"""Writing a graph (:class:`pyrovae.model.graphs.ExportGraph`) as an ONNX or a TorchScript file, and reading
the file back to check it computes what PyTorch computes.

* ONNX: ``torch.onnx.export`` with ``dynamo=False`` (the TorchScript-based exporter: the
  ``torch.export``-based one needs the ``onnxscript`` package), opset :data:`OPSET`, the first
  axis of every input and output dynamic, named ``N``.
* TorchScript: ``torch.jit.trace``, then ``save``; ``torch.jit.load`` reads it with torch alone.

Both trace the graph once on an example batch of :data:`TRACE_ROWS` rows; :func:`check_file`
then runs the written file on :data:`CHECK_ROWS` other rows (ONNX through onnxruntime, where it
is installed), so a size frozen into the graph, or any other difference, is caught at export.
"""
import importlib
import warnings
from pathlib import Path
from typing import Optional, Tuple

import numpy as np
import torch

from ..errors import ConfigError, PyrovaeError, one_line

#: the ai.onnx opset of the ONNX files (onnxruntime runs opsets 7 to 21 and above)
OPSET = 17
#: the dynamic batch axis: its name in the ONNX files and in model.json's shapes
BATCH = "N"
#: rows of the example batch the graphs are traced on, and of the batch the written files are checked on
TRACE_ROWS, CHECK_ROWS = 2, 3
#: how far a written file may be from PyTorch, relative to 1 + |value| (float32 rounding is about 1e-7 of it)
CHECK_TOLERANCE = 1e-4
FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}


class ExportError(PyrovaeError):
    """An exported file does not compute what the model computes."""


def version(module: str) -> Optional[str]:
    """The installed version of ``module`` (None: not installed)."""
    try:
        return importlib.import_module(module).__version__
    except ImportError:
        return None


def write(fmt: str, graph: torch.nn.Module, example: Tuple[torch.Tensor, ...], path: Path, spec: dict) -> None:
    """Write ``graph``, traced on ``example``, to ``path`` in format ``fmt`` (onnx or torchscript);
    ``spec``: its ``inputs`` and ``outputs`` (name and shape of each, as in model.json)."""
    inputs, outputs = names(spec["inputs"]), names(spec["outputs"])
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # both exporters are deprecated in favour of torch.export, and say so
        if fmt == "torchscript":
            torch.jit.trace(graph, example).save(str(path))
            return
        onnx = _onnx()
        torch.onnx.export(graph, example, str(path), dynamo=False, input_names=inputs, output_names=outputs,
                          opset_version=OPSET, dynamic_axes={name: {0: BATCH} for name in [*inputs, *outputs]})
    model = onnx.load(str(path))
    for value, tensor in zip([*model.graph.input, *model.graph.output], [*spec["inputs"], *spec["outputs"]]):
        _declare(value, tensor["shape"])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def names(tensors) -> list:
    return [t["name"] for t in tensors]


def outputs(values) -> tuple:
    """A graph's outputs as a tuple (a graph of one output may give the tensor itself)."""
    return (values,) if isinstance(values, torch.Tensor) else tuple(values)


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ConfigError("--format onnx needs the onnx package: pip install onnx (or pip install "
                          "\"pyrovae[export]\")") from None
    return onnx


def _declare(value, shape) -> None:
    """Set the shape an ONNX graph declares for an input or output: the batch axis named, the others
    sized (a conv network's reshape leaves its outputs' width unknown to the exporter)."""
    dims = value.type.tensor_type.shape.dim
    del dims[:]
    for size in shape:
        dim = dims.add()
        if isinstance(size, str):
            dim.dim_param = size
        else:
            dim.dim_value = size


def check_file(fmt: str, graph: torch.nn.Module, example: Tuple[torch.Tensor, ...], path: Path,
               spec: dict) -> Optional[float]:
    """The largest difference between the file at ``path`` and ``graph`` on ``example``, relative to
    1 + |value|; None where the file cannot be run here (ONNX without onnxruntime). A difference
    above :data:`CHECK_TOLERANCE` or a wrong output shape is an :class:`ExportError`."""
    with torch.no_grad():
        expected = [t.numpy() for t in outputs(graph(*example))]
    try:
        found = _run_file(fmt, path, example, names(spec["inputs"]))
    except Exception as error:  # onnxruntime's errors derive from Exception alone
        raise ExportError(f"{path.name} fails on {len(example[0])} rows where the model runs ({one_line(error, 160)}); "
                          "the export is wrong, nothing was written") from None
    if found is None:
        return None
    worst = 0.0
    for tensor, want, got in zip(spec["outputs"], expected, found):
        name = tensor["name"]
        if got.shape != want.shape or list(got.shape[1:]) != tensor["shape"][1:]:
            raise ExportError(f"{path.name} gives {name} of shape {got.shape} for {len(example[0])} rows where the "
                              f"model gives {want.shape} (model.json: {tensor['shape']}); the export is wrong, "
                              "nothing was written")
        worst = max(worst, float(np.max(np.abs(got - want) / (1 + np.abs(want)), initial=0.0)))
    if not worst <= CHECK_TOLERANCE:
        raise ExportError(f"{path.name} differs from the model by {worst:.3g} (relative to 1 + |value|) on "
                          f"{len(example[0])} rows; the export is wrong, nothing was written")
    return worst


def _run_file(fmt: str, path: Path, example, inputs):
    if fmt == "torchscript":
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            return [t.numpy() for t in outputs(torch.jit.load(str(path))(*example))]
    try:
        import onnxruntime
    except ImportError:
        return None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {name: t.numpy() for name, t in zip(inputs, example)})
