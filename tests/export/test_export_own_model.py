"""A user's own model exports what its ``export_graphs(x)`` names, checked as the built-in models' files
are; without that method, or with one that returns something else, the export is refused in one line
that names it, and nothing is written; the command line, which cannot import a user's class, names the
Python call that exports it."""
import pyro
import pyro.distributions as dist
import pytest
import torch
from export_helpers import TINY, largest_difference, run_file

import pyrovae
from pyrovae.cli.common import _guarded
from pyrovae.cli.export import export_main
from pyrovae.export import export_run
from pyrovae.model.graphs import ClassifierGraph, ExportGraph, TensorSpec
from pyrovae.model.networks import Decoder, Encoder, mlp

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")


class Plain(pyrovae.Model):
    """A user's VAE with a classifier head beside it (trained by nothing: it is only exported)."""

    def __init__(self, x_dim=784, image_shape=(28, 28)):
        super().__init__(x_dim, image_shape)
        self.likelihood = pyrovae.get_likelihood("bernoulli")
        self.encoder, self.decoder = Encoder(x_dim, 3, (16,)), Decoder(3, x_dim, (16,))
        self.head = mlp([x_dim, 16, 10])

    def config(self):
        return {"x_dim": self.x_dim, "image_shape": list(self.image_shape)}

    def model(self, x=None, y=None):
        self.register("decoder", self.decoder)
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(x.new_zeros(len(x), 3), 1.0).to_event(1))
            pyro.sample("x", self.likelihood(self.decoder(z)), obs=self.likelihood.prepare(x))

    def guide(self, x, y=None):
        self.register("encoder", self.encoder)
        with pyro.plate("data", len(x)):
            pyro.sample("z", dist.Normal(*self.encoder(x)).to_event(1))


class Exportable(Plain):
    """The same model, saying what to export: one graph from pixels to class probabilities."""

    def export_graphs(self, x):
        probs = TensorSpec("probs", (10,), "class probabilities")
        return {"digits": ExportGraph(ClassifierGraph(None, self.head), (TensorSpec("x", (784,), "grey values"),),
                                      (probs,), (x,))}


class Wrong(Plain):
    def export_graphs(self, x):
        return {"digits": ExportGraph(ClassifierGraph(None, self.head), (TensorSpec("x", (784,), "grey values"),),
                                      (TensorSpec("probs", (10,), "class probabilities"),), (x[:1],))}


@pytest.fixture(scope="module")
def own_run(mnist_sample, tmp_path_factory):
    out = tmp_path_factory.mktemp("own") / "run"
    pyrovae.train(pyrovae.TrainConfig(**{**TINY, "out": str(out)}), model=Plain(), dataset=mnist_sample,
                  log=lambda s: None)
    return out


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_a_model_exports_what_its_export_graphs_names(own_run, mnist_sample, fmt, tmp_path):
    record = export_run(own_run, fmt, tmp_path / "out", model=Exportable, log=lambda s: None)
    suffix = ".onnx" if fmt == "onnx" else ".pt"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["digits" + suffix, "model.json"]
    assert record["model"] == "custom (test_export_own_model.Exportable)" and "likelihood" in record
    assert record["files"]["digits" + suffix]["outputs"] == [{"name": "probs", "shape": ["N", 10],
                                                              "dtype": "float32", "meaning": "class probabilities"}]
    model = pyrovae.load(own_run / "best.pt", model=Exportable)
    for n in (1, 7, 64):
        x = mnist_sample.test_x[:n]
        got = run_file(tmp_path / "out", "digits", {"x": x.numpy()})["probs"]
        with torch.no_grad():
            assert largest_difference(got, torch.softmax(model.head(x), -1).numpy()) <= 1e-5


def test_a_model_without_export_graphs_is_refused_naming_the_method(own_run, tmp_path, capsys):
    out = tmp_path / "out"
    assert _guarded(lambda: export_run(own_run, "onnx", out, model=Plain, log=lambda s: None), str(out)) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0] == (
        "error: Plain does not say which of its networks to export; give the class an export_graphs(x) method that "
        "returns them (see docs/export.md, \"Your own model\")")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_export_graphs_that_returns_the_wrong_examples_is_refused(own_run, tmp_path):
    with pytest.raises(pyrovae.ConfigError, match=r"^Wrong.export_graphs: the example of 'digits''s input 'x' is "
                                                  r"\(1, 784\) torch.float32, not \(2, 784\) float32"):
        export_run(own_run, "onnx", tmp_path / "out", model=Wrong, log=lambda s: None)
    assert list(tmp_path.iterdir()) == []


def test_the_command_line_names_the_python_call(own_run, tmp_path, capsys):
    assert export_main([str(own_run), "--format", "onnx", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "export.py cannot rebuild" in err[0] and err[0].endswith(
        f"from pyrovae.export import export_run; export_run({str(own_run)!r}, 'onnx', "
        f"{str(tmp_path / 'out')!r}, model=<that class>)")
    assert list(tmp_path.iterdir()) == []


def test_the_explorer_refuses_a_run_of_a_users_own_class_naming_the_python_export(own_run, tmp_path, capsys):
    from pyrovae.cli.explore import explore_main

    assert explore_main([str(own_run), "--out", str(tmp_path / "page"), "--no-fetch"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {own_run} is a run of a user's own model class; ")
    assert f"pyrovae.export.export_run({str(own_run)!r}, 'onnx', OUT, model=YourModel)" in err[0]
    assert not (tmp_path / "page").exists()
