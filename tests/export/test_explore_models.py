"""scripts/explore.py for each built-in model: the cvae's and m2's class input and the class each test image's z
is taken at, the hvae's two layers, and the refusal of an m1m2 run (one line naming what is supported). The
page itself runs in tests/export/test_explore_browser.py; the runtime here is a stand-in (conftest.py)."""
import json

import numpy as np
import pytest
import torch
from export_helpers import TINY, model_of
from test_explore import refused, run_dataset

import pyrovae
from pyrovae.cli.explore import explore_main
from pyrovae.model.labelled import join


def spec_of(run, out, runtime, *flags) -> dict:
    assert explore_main([str(run), "--out", str(out), "--runtime", str(runtime), *map(str, flags)]) == 0
    return json.loads((out / "explorer.json").read_text())


@pytest.mark.parametrize("name", ["cvae-mlp", "m2-mnist"])
def test_a_labelled_run_feeds_a_class_and_each_test_image_has_one(name, trained, fake_runtime, tmp_path):
    run = trained(name)
    spec = spec_of(run, tmp_path / "page", fake_runtime, "--test-images", 6)
    model = model_of(run)
    assert spec["model"] == name.split("-")[0] and spec["latent"] == "z"
    assert spec["labels"] == {"input": "y", "dtype": "int64", "classes": 10, "one_hot": False}
    assert spec["decoder"]["latent"] == "z" and [t["name"] for t in spec["decoder"]["inputs"]] == ["z", "y"]
    images, dataset = spec["test"]["images"], run_dataset(run)
    rows = [i["row"] for i in images]
    x, labels = dataset.test_x[rows].reshape(len(rows), -1), dataset.test_y[rows]
    assert [i["label"] for i in images] == labels.tolist()
    with torch.no_grad():
        if name == "m2-mnist":  # the class the classifier finds most probable, not the label
            want = model.classify(x).argmax(-1)
            assert spec["test"]["class"].startswith("the class the classifier q(y|x) finds most probable")
        else:
            want = labels
            assert spec["test"]["class"].startswith("its label")
        loc = model.encoder(join(x, model.one_hot(want)))[0]
    assert [i["class"] for i in images] == want.tolist()
    assert np.allclose([i["z"] for i in images], loc.numpy(), atol=1e-6, rtol=0)
    assert spec["start"] == images[0]["z"] and spec["start_class"] == images[0]["class"]


def test_an_hvae_run_explores_z2_with_z1_following_p_z1_given_z2(trained, fake_runtime, tmp_path):
    run = trained("hvae-conv-iaf")
    spec = spec_of(run, tmp_path / "page", fake_runtime, "--test-images", 3, "--sliders", 2)
    hvae = model_of(run)
    assert spec["model"] == "hvae" and spec["latent"] == "z2" and spec["z_dim"] == hvae.z_dim == 4
    assert spec["decoder"]["latent"] == "z2" and [t["name"] for t in spec["decoder"]["inputs"]] == ["z1", "z2"]
    assert spec["labels"] is None and spec["sliders"] == 2
    lower = spec["lower"]
    assert lower["input"] == "z1" and lower["z_dim"] == hvae.z1_dim == 4
    assert lower["prior"] == {"file": "model/prior_z1.onnx", "input": "z2", "output": "loc"}
    assert sorted(d["index"] for d in lower["dims"]) == [0, 1, 2, 3]
    assert all(d["low"] < d["mean"] < d["high"] for d in lower["dims"])
    assert (tmp_path / "page" / "model" / "prior_z1.onnx").is_file()
    images = spec["test"]["images"]
    x = run_dataset(run).test_x[[i["row"] for i in images]].reshape(len(images), -1)
    with torch.no_grad():
        z2 = hvae._top_mean(x)  # through the IAF flow: the z2 a reconstruction decodes
        z1 = hvae._lower(x, z2)[0]
    assert np.allclose([i["z"] for i in images], z2.numpy(), atol=1e-5, rtol=0)
    assert np.allclose([i["z1"] for i in images], z1.numpy(), atol=1e-5, rtol=0)
    assert spec["start_is"] == "the posterior mean q(z2|x) of test row 0, z1 at the mean of p(z1|z2)"


def test_an_m1m2_run_is_refused_in_one_line_naming_what_is_explored(trained, mnist_sample, fake_runtime, tmp_path,
                                                                    capsys):
    run = tmp_path / "run"
    pyrovae.train(pyrovae.TrainConfig(**{**TINY, "model": "m1m2", "m1_run": str(trained("bernoulli-mlp")),
                                         "likelihood": "gaussian", "labels_per_class": 10, "out": str(run)}),
                  dataset=mnist_sample, log=lambda line: None)
    line = refused([run, "--out", tmp_path / "page", "--runtime", fake_runtime], capsys)
    assert line == (f"error: {run} is an m1m2 run, whose M2 decodes M1's standardized latent features, not images; "
                    "the explorer draws the images of vae, hvae, cvae and m2 runs: explore the vae run it was trained "
                    "on (its --m1-run)")
    assert not (tmp_path / "page").exists()
