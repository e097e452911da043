"""The exported files compute what PyTorch computes, on real rows and at any batch size: the
encoder ``vae.encode(x)``, the decoder the likelihood's parameters of ``vae.decoder(z)`` in data
units, an IAF guide's flow its transforms and log-determinant; and model.json says so."""
import json

import numpy as np
import onnx
import pytest
import torch
from export_helpers import (
    ATTRIBUTES,
    RUNS,
    TOLERANCE,
    encode,
    largest_difference,
    model_of,
    reference_decoder,
    run_file,
)

from pyrovae.export import export_run

# torch.jit.load, which reads the TorchScript files back, is deprecated in this torch; the files are what is tested
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")

BATCHES = (1, 7, 64)
VAE_RUNS = [name for name, (_, settings) in RUNS.items() if settings.get("model", "vae") == "vae"]


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("name", VAE_RUNS)
def test_the_files_give_the_encoder_and_decoder_of_pytorch_at_any_batch_size(name, fmt, trained, exported, datasets):
    vae, folder = model_of(trained(name)), exported(name, fmt)
    rows = datasets[RUNS[name][0]][1]  # (64, D) real rows in data units
    for n in BATCHES:
        x = np.ascontiguousarray(rows[:n])
        loc, scale = encode(vae, x)
        got = run_file(folder, "encoder", {"x": x})
        assert largest_difference(got["loc"], loc) <= TOLERANCE
        assert largest_difference(got["scale"], scale) <= TOLERANCE
        decoded, want = run_file(folder, "decoder", {"z": loc}), reference_decoder(vae, loc)
        assert list(decoded) == [*ATTRIBUTES[vae.likelihood.name], "mean"]
        for key, value in want.items():
            assert largest_difference(decoded[key], value) <= TOLERANCE, (key, n)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_the_flow_of_an_iaf_guide_gives_its_draws_and_log_density(fmt, trained, exported, datasets):
    vae, folder = model_of(trained("cb-iaf-vamp")), exported("cb-iaf-vamp", fmt)
    rows = datasets["mnist"][1]
    for n in BATCHES:
        loc, scale = (torch.from_numpy(a) for a in encode(vae, np.ascontiguousarray(rows[:n])))
        u = loc + scale * torch.randn(loc.shape, generator=torch.Generator().manual_seed(n))  # (n, K)
        got = run_file(folder, "flow", {"u": u.numpy(), "loc": loc.numpy(), "scale": scale.numpy()})
        with torch.no_grad():
            q = vae.posterior_family.distribution(loc, scale)
            z = u
            for transform in q.transforms:
                z = transform(z)
            log_q = q.log_prob(z)  # Pyro's TransformedDistribution
            base = torch.distributions.Normal(loc, scale).log_prob(u).sum(-1)
        assert largest_difference(got["z"], z.numpy()) <= TOLERANCE
        assert got["log_det"].shape == (n,)
        assert largest_difference(base.numpy() - got["log_det"], log_q.numpy()) <= TOLERANCE
        assert float(np.abs(got["log_det"]).max()) > 1e-3  # the flow is not the identity: the check can fail


def test_the_standardization_of_a_table_is_inside_the_graphs(trained, exported, datasets):
    vae, folder = model_of(trained("gaussian-table")), exported("gaussian-table", "onnx")
    x = datasets["cancer"][1]  # raw columns, up to about 4e3
    got = run_file(folder, "encoder", {"x": x})
    assert largest_difference(got["loc"], encode(vae, x)[0]) <= TOLERANCE
    with torch.no_grad():
        unstandardized = vae.encoder(torch.from_numpy(x))[0].numpy()
    assert largest_difference(got["loc"], unstandardized) > 0.1  # the graph does standardize
    mean = run_file(folder, "decoder", {"z": got["loc"]})["mean"]
    columns = x.mean(0)
    assert np.all(np.abs(mean.mean(0) - columns) < 3 * x.std(0))  # reconstructions in the columns' units
    spec = json.loads((folder / "model.json").read_text())["preprocessing"]["standardization"]
    assert np.allclose(spec["mean"], vae.standardizer.mean.numpy()) and np.allclose(spec["std"], vae.standardizer.std)


def test_onnx_files_declare_a_dynamic_batch_axis(exported):
    folder = exported("bernoulli-conv", "onnx")
    for name in ("encoder", "decoder"):
        graph = onnx.load(str(folder / f"{name}.onnx")).graph
        for value in [*graph.input, *graph.output]:
            dims = value.type.tensor_type.shape.dim
            assert dims[0].dim_param == "N" and all(d.dim_value > 0 for d in dims[1:]), (name, value.name)


def test_model_json_says_what_each_file_takes_and_gives(trained, exported):
    run, folder = trained("bernoulli-mlp"), exported("bernoulli-mlp", "onnx")
    spec = json.loads((folder / "model.json").read_text())
    config = json.loads((run / "config.json").read_text())
    assert sorted(p.name for p in folder.iterdir()) == ["decoder.onnx", "encoder.onnx", "model.json"]
    assert spec["run"]["run_id"] == config["run_id"] and spec["run"]["checkpoint"] == "best.pt"
    assert sorted(spec["run"]) == ["checkpoint", "epoch", "name", "run_id"] and spec["run"]["name"] == run.name
    assert spec["run"]["epoch"] == 1 and spec["z_dim"] == 4 and spec["x_dim"] == 784 and spec["image_shape"] == [28, 28]
    encoder = spec["files"]["encoder.onnx"]
    assert encoder["inputs"] == [{"name": "x", "shape": ["N", 784], "dtype": "float32",
                                  "meaning": "rows in data units (see preprocessing)"}]
    assert [t["shape"] for t in encoder["outputs"]] == [["N", 4], ["N", 4]]
    assert [t["name"] for t in spec["files"]["decoder.onnx"]["outputs"]] == ["logits", "probs", "mean"]
    pre = spec["preprocessing"]
    assert pre["binarize_in_training"] == "dynamic" and pre["levels"] == 256 and pre["standardization"] is None
    assert not pre["binarize_or_dequantize_in_graph"] and "grey values in [0, 1]" in pre["rows"]
    assert spec["likelihood"]["name"] == "bernoulli" and spec["exporter"]["opset"] == 17
    assert spec["versions"]["torch"] == torch.__version__ and spec["versions"]["onnx"] == onnx.__version__
    assert all(0 <= v <= 1e-4 for v in spec["check"]["max_relative_difference"].values())


def test_model_json_of_a_flow_guide_and_a_vampprior(exported):
    spec = json.loads((exported("cb-iaf-vamp", "torchscript") / "model.json").read_text())
    assert set(spec["files"]) == {"encoder.pt", "decoder.pt", "flow.pt"}
    assert spec["guide"]["name"] == "iaf" and "flow.pt" in spec["guide"]["q"]
    assert spec["prior"]["name"] == "vamp" and spec["prior"]["exported"] is False
    assert spec["preprocessing"]["dequantize_in_training"] == "uniform"
    assert "opset" not in spec["exporter"]


def test_the_last_checkpoint_on_request(trained, tmp_path):
    record = export_run(trained("bernoulli-mlp"), "torchscript", tmp_path / "last", checkpoint="last",
                        log=lambda s: None)
    assert record["run"]["checkpoint"] == "checkpoint.pt"
    assert json.loads((tmp_path / "last" / "model.json").read_text()) == record
