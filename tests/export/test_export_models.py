"""Every built-in model exports its networks, each file computing what PyTorch computes on real rows at
any batch size: the hvae's encoder of each layer, p(z1|z2) and decoder, the cvae's and m2's encoder and
decoder with an integer class as input, m2's classifier; chained, the files reconstruct as the model's
``reconstruct`` does; model.json names every input and output."""
import json

import numpy as np
import pytest
import torch
from export_helpers import RUNS, TOLERANCE, largest_difference, model_of, reference_decoder, run_file

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")

BATCHES = (1, 7, 64)
FORMATS = ["onnx", "torchscript"]


def close(got: dict, want: dict) -> None:
    assert list(got) == list(want), (list(got), list(want))
    for key, value in want.items():
        assert largest_difference(got[key], value) <= TOLERANCE, key


def rows_of(name, datasets, n):
    return np.ascontiguousarray(datasets[RUNS[name][0]][1][:n])  # (n, D) real rows in data units


def numpy(*tensors):
    return [t.numpy() for t in tensors]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", ["hvae-gated-table", "hvae-conv-iaf"])
def test_the_hvae_files_give_each_layer_of_pytorch(name, fmt, trained, exported, datasets):
    hvae, folder = model_of(trained(name)), exported(name, fmt)
    for n in BATCHES:
        x = rows_of(name, datasets, n)
        with torch.no_grad():
            x_model = hvae.to_model_space(torch.from_numpy(x))
            loc2, scale2 = hvae.encoder(x_model)
            z2 = loc2 + scale2 * torch.randn(loc2.shape, generator=torch.Generator().manual_seed(n))
            loc1, scale1 = hvae._lower(x_model, z2)
            prior_loc, prior_scale = hvae.prior1(z2)
            z1 = loc1 + scale1 * torch.randn(loc1.shape, generator=torch.Generator().manual_seed(n + 1))
            p_x = hvae.likelihood(hvae.decoder(torch.cat([z1, z2], dim=-1)))
        close(run_file(folder, "encoder_z2", {"x": x}), dict(zip(("loc", "scale"), numpy(loc2, scale2))))
        close(run_file(folder, "encoder_z1", {"x": x, "z2": z2.numpy()}), dict(zip(("loc", "scale"),
                                                                                     numpy(loc1, scale1))))
        close(run_file(folder, "prior_z1", {"z2": z2.numpy()}), dict(zip(("loc", "scale"),
                                                                         numpy(prior_loc, prior_scale))))
        decoded = run_file(folder, "decoder", {"z1": z1.numpy(), "z2": z2.numpy()})
        close(decoded, reference_decoder(hvae, None, p_x))
    spec = json.loads((folder / "model.json").read_text())
    suffix = ".onnx" if fmt == "onnx" else ".pt"
    flow = ["flow" + suffix] if name == "hvae-conv-iaf" else []
    assert list(spec["files"]) == [n + suffix for n in ("encoder_z2", "encoder_z1", "prior_z1", "decoder")] + flow
    assert spec["model"] == "hvae" and spec["z1_dim"] == spec["z_dim"] == 4


def test_the_hvae_files_chained_reconstruct_as_the_model_does(trained, exported, datasets):
    hvae, folder = model_of(trained("hvae-gated-table")), exported("hvae-gated-table", "onnx")
    x = rows_of("hvae-gated-table", datasets, 64)  # a table's raw columns: the standardization is in the graphs
    z2 = run_file(folder, "encoder_z2", {"x": x})["loc"]
    z1 = run_file(folder, "encoder_z1", {"x": x, "z2": z2})["loc"]
    mean = run_file(folder, "decoder", {"z1": z1, "z2": z2})["mean"]
    assert largest_difference(mean, hvae.reconstruct(torch.from_numpy(x)).numpy()) <= TOLERANCE


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_flow_of_an_hvae_iaf_guide_acts_on_the_top_layer(fmt, trained, exported, datasets):
    hvae, folder = model_of(trained("hvae-conv-iaf")), exported("hvae-conv-iaf", fmt)
    x = rows_of("hvae-conv-iaf", datasets, 7)
    with torch.no_grad():
        loc, scale = hvae.encoder(torch.from_numpy(x))
        u = loc + scale * torch.randn(loc.shape, generator=torch.Generator().manual_seed(0))
        q = hvae.posterior_family.distribution(loc, scale)
        z2 = u
        for transform in q.transforms:
            z2 = transform(z2)
        log_q = q.log_prob(z2)
        base = torch.distributions.Normal(loc, scale).log_prob(u).sum(-1)
    got = run_file(folder, "flow", {"u": u.numpy(), "loc": loc.numpy(), "scale": scale.numpy()})
    assert list(got) == ["z2", "log_det"] and largest_difference(got["z2"], z2.numpy()) <= TOLERANCE
    assert largest_difference(base.numpy() - got["log_det"], log_q.numpy()) <= TOLERANCE
    assert float(np.abs(got["log_det"]).max()) > 1e-3  # the flow is not the identity: the check can fail


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", ["cvae-mlp", "m2-mnist", "m2-gated-table"])
def test_the_labelled_files_take_the_class_as_an_integer(name, fmt, trained, exported, datasets):
    model, folder = model_of(trained(name)), exported(name, fmt)
    for n in BATCHES:
        x = rows_of(name, datasets, n)
        y = (np.arange(n) * 3 + 1) % model.num_classes  # every class, not in order
        with torch.no_grad():
            latents = model.latents(torch.from_numpy(x), torch.from_numpy(y))  # q(z|x,y) at the given classes
            z = latents["loc"] + latents["scale"] * torch.randn(latents["loc"].shape,
                                                                generator=torch.Generator().manual_seed(n))
            p_x = model.decode(z, torch.from_numpy(y))
        close(run_file(folder, "encoder", {"x": x, "y": y}), {"loc": latents["loc"].numpy(),
                                                               "scale": latents["scale"].numpy()})
        close(run_file(folder, "decoder", {"z": z.numpy(), "y": y}), reference_decoder(model, None, p_x))
        if model.kind == "m2":
            close(run_file(folder, "classifier", {"x": x}), {"probs": model.classify(torch.from_numpy(x)).numpy()})
        other = run_file(folder, "decoder", {"z": z.numpy(), "y": (y + 1) % model.num_classes})["mean"]
        assert largest_difference(other, reference_decoder(model, None, p_x)["mean"]) > 1e-3  # the class matters


@pytest.mark.parametrize("name", ["cvae-mlp", "m2-gated-table"])
def test_the_labelled_files_chained_reconstruct_as_the_model_does(name, trained, exported, datasets):
    model, folder = model_of(trained(name)), exported(name, "onnx")
    x = rows_of(name, datasets, 64)
    y = np.arange(64) % model.num_classes
    loc = run_file(folder, "encoder", {"x": x, "y": y})["loc"]
    mean = run_file(folder, "decoder", {"z": loc, "y": y})["mean"]
    assert largest_difference(mean, model.reconstruct(torch.from_numpy(x), torch.from_numpy(y)).numpy()) <= TOLERANCE


@pytest.mark.parametrize("name", ["cvae-mlp", "m2-mnist"])
def test_model_json_of_a_labelled_model_names_every_input_and_output(name, exported):
    spec = json.loads((exported(name, "onnx") / "model.json").read_text())
    files = {file: ([(t["name"], t["shape"], t["dtype"]) for t in part["inputs"]],
                    [(t["name"], t["shape"]) for t in part["outputs"]]) for file, part in spec["files"].items()}
    want = {"encoder.onnx": ([("x", ["N", 784], "float32"), ("y", ["N"], "int64")], [("loc", ["N", 4]),
                                                                                      ("scale", ["N", 4])]),
            "decoder.onnx": ([("z", ["N", 4], "float32"), ("y", ["N"], "int64")],
                             [("logits", ["N", 784]), ("probs", ["N", 784]), ("mean", ["N", 784])])}
    if name == "m2-mnist":
        want = {"classifier.onnx": ([("x", ["N", 784], "float32")], [("probs", ["N", 10])]), **want}
    assert files == want
    assert spec["model"] == name.split("-")[0] and spec["num_classes"] == 10 and "guide" not in spec
    assert "one-hot inside the graph" in spec["files"]["decoder.onnx"]["inputs"][1]["meaning"]
    assert "with a class y" in spec["prior"]["note"]
