"""A run's trained networks outside the training stack (``scripts/export.py``).

:func:`export_run` writes the graphs a run's model names (:meth:`pyrovae.Model.export_graphs`):
a VAE's encoder, ``x (N, D) -> loc, scale (N, z_dim)`` of q(z|x), and decoder, ``z (N, z_dim) ->``
the likelihood's parameters; the hvae's encoder and p(z1|z2) per layer; the cvae's and m2's
encoder and decoder with a class label as input, and m2's classifier q(y|x); an IAF guide's
flow. They are written as ONNX files (run with onnxruntime, no torch or Pyro needed) or
TorchScript files (``torch.jit.load``, no Pyro or pyrovae needed), with ``model.json`` saying
what each input and output is. The standardization of a table is part of the graphs, so they
take and give data units (:mod:`pyrovae.model.graphs`).
"""
from .exporter import export_run
from .writers import FORMATS, ExportError

__all__ = ["export_run", "FORMATS", "ExportError"]
