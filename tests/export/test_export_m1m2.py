"""M1+M2 (``--model m1m2``) exports its whole classifier as one file, pixels to class probabilities
(M1's encoder mean, M2's standardization and q(y|z1)), computing what ``model.classify`` computes at
any batch size, and M2's decoder over M1's latent z1 and M1's decoder, which chained sample as
``model.sample`` does; model.json names every input and output and their units."""
import json

import numpy as np
import pytest
import torch
from export_helpers import TINY, TOLERANCE, largest_difference, model_of, reference_decoder, run_file

import pyrovae
from pyrovae.export import export_run

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")

BATCHES = (1, 7, 64)


@pytest.fixture(scope="module")
def run(datasets, tmp_path_factory):
    """A finished vae run (M1) on the MNIST sample, and an m1m2 run on it."""
    folder, mnist = tmp_path_factory.mktemp("m1m2"), datasets["mnist"][0]
    pyrovae.train(pyrovae.TrainConfig(**{**TINY, "elbo": "meanfield", "z_dim": 6, "out": str(folder / "m1")}),
                  dataset=mnist, log=lambda s: None)
    pyrovae.train(pyrovae.TrainConfig(**{**TINY, "model": "m1m2", "m1_run": str(folder / "m1"), "likelihood": "gaussian",
                                         "labels_per_class": 10, "alpha": 100.0, "z_dim": 3, "out": str(folder / "m1m2")}),
                  dataset=mnist, log=lambda s: None)
    return folder / "m1m2"


@pytest.fixture(scope="module")
def exported(run, tmp_path_factory):
    folders = {}

    def get(fmt):
        if fmt not in folders:
            folders[fmt] = tmp_path_factory.mktemp(f"m1m2-{fmt}") / "export"
            export_run(run, fmt, folders[fmt], log=lambda s: None)
        return folders[fmt]

    return get


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_the_classifier_file_takes_pixels_and_gives_what_classify_gives(fmt, run, exported, datasets):
    model, folder = model_of(run), exported(fmt)
    assert type(model) is pyrovae.M1M2
    for n in BATCHES:
        x = np.ascontiguousarray(datasets["mnist"][1][:n])  # (n, 784) real digits, grey values in [0, 1]
        probs = model.classify(torch.from_numpy(x)).numpy()
        got = run_file(folder, "classifier", {"x": x})
        assert list(got) == ["probs"] and largest_difference(got["probs"], probs) <= TOLERANCE
    assert np.unique(probs.argmax(1)).size > 1  # real digits, more than one class: the check can fail


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_the_decoders_give_m2s_p_z1_and_m1s_p_x_and_chained_sample_as_the_model(fmt, run, exported):
    model, folder = model_of(run), exported(fmt)
    m1, m2 = model.m1, model.m2
    for n in BATCHES:
        y = (np.arange(n) * 3 + 1) % model.num_classes
        z = torch.randn(n, m2.z_dim, generator=torch.Generator().manual_seed(n))
        with torch.no_grad():
            p_z1 = m2.decode(z, torch.from_numpy(y))
        z1 = run_file(folder, "m2_decoder", {"z": z.numpy(), "y": y})
        close = {k: largest_difference(v, w) for k, v, w in zip(z1, z1.values(), reference_decoder(m2, None, p_z1).values())}
        assert list(z1) == ["loc", "scale", "mean"] and max(close.values()) <= TOLERANCE, close
        x = run_file(folder, "m1_decoder", {"z1": z1["mean"]})
        want = reference_decoder(m1, z1["mean"])
        assert list(x) == list(want) and max(largest_difference(x[k], want[k]) for k in want) <= TOLERANCE
        sample = model.sample(n, torch.from_numpy(y), generator=torch.Generator().manual_seed(n))  # z as above
        assert largest_difference(x["mean"], sample.numpy()) <= TOLERANCE


def test_model_json_names_the_files_and_their_units(exported):
    spec = json.loads((exported("onnx") / "model.json").read_text())
    files = {file: ([(t["name"], t["shape"], t["dtype"]) for t in part["inputs"]],
                    [(t["name"], t["shape"]) for t in part["outputs"]]) for file, part in spec["files"].items()}
    assert files == {
        "classifier.onnx": ([("x", ["N", 784], "float32")], [("probs", ["N", 10])]),
        "m2_decoder.onnx": ([("z", ["N", 3], "float32"), ("y", ["N"], "int64")],
                            [("loc", ["N", 6]), ("scale", ["N", 6]), ("mean", ["N", 6])]),
        "m1_decoder.onnx": ([("z1", ["N", 6], "float32")], [("logits", ["N", 784]), ("probs", ["N", 784]),
                                                            ("mean", ["N", 784])])}
    assert spec["model"] == "m1m2" and spec["num_classes"] == 10 and spec["x_dim"] == 784
    assert "M1's posterior means" in spec["files"]["m2_decoder.onnx"]["outputs"][2]["meaning"]
    assert "M1's posterior mean of x" in spec["files"]["classifier.onnx"]["outputs"][0]["meaning"]
