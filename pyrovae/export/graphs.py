"""A :class:`~pyrovae.VAE`'s graphs, each built from the model (every model builds its own with
:meth:`pyrovae.Model.export_graphs`, from the modules of :mod:`pyrovae.model.graphs`)."""
from ..model.graphs import MEAN, PARAMETERS, ExportGraph, Head, TensorSpec, decoder_outputs
from ..model.graphs import DecoderGraph as _Decoder
from ..model.graphs import EncoderGraph as _Encoder
from ..model.graphs import FlowGraph as _Flow

__all__ = ["PARAMETERS", "MEAN", "decoder_outputs", "EncoderGraph", "DecoderGraph", "FlowGraph", "ExportGraph",
           "TensorSpec"]


def EncoderGraph(vae) -> _Encoder:  # noqa: N802 (a class's name: what it builds)
    """``x (N, D)`` in data units -> ``(loc, scale)``, each (N, K), as :meth:`pyrovae.VAE.encode`."""
    return _Encoder(vae.standardizer, vae.encoder)


def DecoderGraph(vae) -> _Decoder:  # noqa: N802
    """``z (N, K)`` -> the likelihood's parameters and mean, each (N, D), in data units."""
    return _Decoder(vae.decoder, Head(vae.likelihood, vae.standardizer))


def FlowGraph(vae) -> _Flow:  # noqa: N802
    """``(u, loc, scale)`` -> ``(z, log_det)`` of the VAE's flow guide."""
    return _Flow(vae.posterior_family)
