"""A run's trained networks outside the training stack (``scripts/export.py``).

:func:`export_run` writes a run's encoder, ``x (N, D) -> loc, scale (N, z_dim)`` of q(z|x),
and decoder, ``z (N, z_dim) ->`` the likelihood's parameters, as ONNX files (run with
onnxruntime, no torch or Pyro needed) or TorchScript files (``torch.jit.load``, no Pyro or
pyrovae needed), with ``model.json`` saying what each input and output is. The
standardization of a table is part of the graphs, so both take and give data units
(:mod:`pyrovae.export.graphs`).
"""
from .exporter import export_run
from .writers import FORMATS, ExportError

__all__ = ["export_run", "FORMATS", "ExportError"]
