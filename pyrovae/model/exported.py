"""What each built-in model exports (its :meth:`~pyrovae.Model.export_graphs`): the graphs of
:mod:`pyrovae.model.graphs`, their inputs and outputs, and example inputs computed from rows.

* ``vae``: ``encoder`` x -> loc, scale of q(z|x); ``decoder`` z -> the likelihood's parameters;
* ``hvae``: ``encoder_z2`` x -> q(z2|x); ``encoder_z1`` (x, z2) -> q(z1|x,z2); ``prior_z1``
  z2 -> p(z1|z2); ``decoder`` (z1, z2) -> p(x|z1,z2);
* ``cvae``: ``encoder`` (x, y) -> q(z|x,y); ``decoder`` (z, y) -> p(x|z,y);
* ``m2``: ``classifier`` x -> q(y|x); ``encoder`` and ``decoder`` as the cvae's;
* ``m1m2``: ``classifier`` x -> q(y|f(x)) through M1's encoder mean; ``m2_decoder`` (z, y) -> M2's
  p(z1|z,y) over M1's latent z1; ``m1_decoder`` z1 -> M1's p(x|z1);
* a flow guide (IAF) adds ``flow`` (u, loc, scale) -> z, log_det, on the layer it acts on.

The example inputs are the model's own: latent codes drawn from the encoders at the given rows,
labels 0, 1, ... K - 1 in turn, from torch's global random stream.
"""
from typing import Dict

import torch

from . import graphs as g
from .graphs import ExportGraph, Head, TensorSpec, decoder_outputs, decoder_specs

ROWS = "rows in data units (see preprocessing)"
LABEL = "class labels, integers 0 to num_classes - 1 (one-hot inside the graph)"


def _draw(loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return loc + scale * torch.randn(loc.shape)


def _normal(k: int, of: str) -> tuple:
    return (TensorSpec("loc", (k,), f"mean of {of}"), TensorSpec("scale", (k,), f"standard deviation of {of}"))


def _flow(model, site: str, u: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor, of: str) -> ExportGraph:
    """The guide family's flow on the latent ``site`` (K values)."""
    k = model.posterior_family.z_dim
    return ExportGraph(
        g.FlowGraph(model.posterior_family),
        (TensorSpec("u", (k,), f"a draw of the base Normal: loc + scale * eps, eps ~ N(0, I), loc and scale of {of}"),
         TensorSpec("loc", (k,), f"{of}'s loc for the same rows"),
         TensorSpec("scale", (k,), f"{of}'s scale for the same rows")),
        (TensorSpec(site, (k,), f"a draw of q({site}|x): the flow's image of u"),
         TensorSpec("log_det", (), "sum over the flow's steps of log|det dz_t/dz_(t-1)|: "
                                   f"log q({site}|x) = log Normal(u; loc, scale) - log_det")),
        (u, loc, scale))


def vae_graphs(vae, x: torch.Tensor) -> Dict[str, ExportGraph]:
    """``encoder``, ``decoder`` (and ``flow`` for an IAF guide) of a :class:`~pyrovae.VAE` at rows ``x``."""
    k, flow = vae.z_dim, vae.posterior_family.name == "iaf"
    base = "q(z|x)" + ("'s base Normal" if flow else "")
    encoder = g.EncoderGraph(vae.standardizer, vae.encoder)
    loc, scale = encoder(x)
    u = _draw(loc, scale)
    graphs = {"encoder": ExportGraph(encoder, (TensorSpec("x", (vae.x_dim,), ROWS),), _normal(k, base), (x,)),
              "decoder": ExportGraph(g.DecoderGraph(vae.decoder, Head(vae.likelihood, vae.standardizer)),
                                     (TensorSpec("z", (k,), "latent codes"),), decoder_specs(vae), (u,))}
    if flow:
        graphs["flow"] = _flow(vae, "z", u, loc, scale, "the encoder")
    return graphs


def hvae_graphs(hvae, x: torch.Tensor) -> Dict[str, ExportGraph]:
    """``encoder_z2``, ``encoder_z1``, ``prior_z1``, ``decoder`` (and ``flow`` of z2 for an IAF
    guide) of a :class:`~pyrovae.HVAE` at rows ``x``."""
    k2, k1, flow = hvae.z_dim, hvae.z1_dim, hvae.posterior_family.name == "iaf"
    top = g.EncoderGraph(hvae.standardizer, hvae.encoder)
    lower = g.LowerEncoderGraph(hvae.standardizer, hvae.encoder1, hvae.arch == "conv")
    loc2, scale2 = top(x)
    u = _draw(loc2, scale2)
    z2 = g.FlowGraph(hvae.posterior_family)(u, loc2, scale2)[0] if flow else u
    z1 = _draw(*lower(x, z2))
    rows = TensorSpec("x", (hvae.x_dim,), ROWS)
    latent2 = TensorSpec("z2", (k2,), "codes of the top layer (a draw of q(z2|x) or of p(z2))")
    graphs = {
        "encoder_z2": ExportGraph(top, (rows,), _normal(k2, "q(z2|x)" + ("'s base Normal" if flow else "")),
                                  (x,)),
        "encoder_z1": ExportGraph(lower, (rows, latent2), _normal(k1, "q(z1|x,z2)"), (x, z2)),
        "prior_z1": ExportGraph(g.EncoderGraph(None, hvae.prior1), (latent2,), _normal(k1, "p(z1|z2)"), (z2,)),
        "decoder": ExportGraph(g.DecoderGraph(hvae.decoder, Head(hvae.likelihood, hvae.standardizer)),
                               (TensorSpec("z1", (k1,), "codes of the lower layer"), latent2), decoder_specs(hvae),
                               (z1, z2)),
    }
    if flow:
        graphs["flow"] = _flow(hvae, "z2", u, loc2, scale2, "encoder_z2")
    return graphs


def labelled_graphs(model, x: torch.Tensor, y: torch.Tensor) -> Dict[str, ExportGraph]:
    """``encoder`` (x, y) -> q(z|x,y) and ``decoder`` (z, y) -> p(x|z,y) of a labelled model at rows
    ``x`` of classes ``y``."""
    k, classes = model.z_dim, model.num_classes
    encoder = g.LabelledEncoderGraph(model.standardizer, model.encoder, classes)
    rows, labels = TensorSpec("x", (model.x_dim,), ROWS), TensorSpec("y", (), LABEL, "int64")
    z = _draw(*encoder(x, y))
    return {"encoder": ExportGraph(encoder, (rows, labels), _normal(k, "q(z|x,y)"), (x, y)),
            "decoder": ExportGraph(g.LabelledDecoderGraph(model.decoder, Head(model.likelihood, model.standardizer),
                                                        classes),
                                   (TensorSpec("z", (k,), "latent codes"), labels), decoder_specs(model), (z, y))}


def cvae_graphs(cvae, x: torch.Tensor) -> Dict[str, ExportGraph]:
    """The :class:`~pyrovae.CVAE`'s graphs (:func:`labelled_graphs`) at rows ``x``, labels 0..K-1 in turn."""
    return labelled_graphs(cvae, x, torch.arange(len(x)) % cvae.num_classes)


def m2_graphs(m2, x: torch.Tensor) -> Dict[str, ExportGraph]:
    """``classifier`` x -> q(y|x), then the :class:`~pyrovae.M2`'s ``encoder`` and ``decoder``
    (:func:`labelled_graphs`) at rows ``x``, labels 0..K-1 in turn."""
    classifier = g.ClassifierGraph(m2.standardizer, m2.classifier)
    probs = TensorSpec("probs", (m2.num_classes,), "q(y|x): the probability of each class 0..num_classes - 1")
    return {"classifier": ExportGraph(classifier, (TensorSpec("x", (m2.x_dim,), ROWS),), (probs,), (x,)),
            **labelled_graphs(m2, x, torch.arange(len(x)) % m2.num_classes)}


def m1m2_graphs(model, x: torch.Tensor) -> Dict[str, ExportGraph]:
    """The graphs of an :class:`~pyrovae.M1M2` at rows ``x``: ``classifier`` x -> q(y|f(x)), the whole
    classifier from rows in data units (M1's standardization and encoder mean, M2's standardization of
    those means and its classifier network), what ``model.classify`` gives; ``m2_decoder`` (z, y) ->
    M2's p(z1|z,y), in the units of M1's posterior means (M2's standardization undone); ``m1_decoder``
    z1 -> M1's p(x|z1) in data units. Chained at z ~ Normal(0, I), they sample as ``model.sample``."""
    m1, m2, classes = model.m1, model.m2, model.num_classes
    probs = TensorSpec("probs", (classes,), "q(y|x): the probability of each class 0..num_classes - 1, of M2's "
                                            "classifier at M1's posterior mean of x")
    z1 = m1.encode(x)[0]  # (N, m1.z_dim): M1's posterior means, the rows M2 models
    y = torch.arange(len(x)) % classes
    z = _draw(*g.LabelledEncoderGraph(m2.standardizer, m2.encoder, classes)(z1, y))
    units = "of z1, M1's latent code (the units of M1's posterior means: M2's standardization undone)"
    latent1 = TensorSpec("z1", (m1.z_dim,), "codes of M1's latent z1 (what m2_decoder's mean gives)")
    return {
        "classifier": ExportGraph(g.ClassifierGraph(None, model.pixel_classifier()),
                                  (TensorSpec("x", (model.x_dim,), ROWS),), (probs,), (x,)),
        "m2_decoder": ExportGraph(g.LabelledDecoderGraph(m2.decoder, Head(m2.likelihood, m2.standardizer), classes),
                                  (TensorSpec("z", (m2.z_dim,), "M2's latent codes"),
                                   TensorSpec("y", (), LABEL, "int64")),
                                  tuple(TensorSpec(name, (m2.x_dim,), f"{meaning}, {units}")
                                        for name, _, _, meaning in decoder_outputs(m2.likelihood)), (z, y)),
        "m1_decoder": ExportGraph(g.DecoderGraph(m1.decoder, Head(m1.likelihood, m1.standardizer)), (latent1,),
                                  decoder_specs(m1), (z1,)),
    }
