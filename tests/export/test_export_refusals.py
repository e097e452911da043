"""scripts/export.py on bad input: one ``error:`` line, exit status 2, and nothing written; an export
that fails or is interrupted midway leaves no folder behind."""
import json
import os
import shutil

import pytest
import torch
import torch.distributions as td
from export_helpers import TINY

import pyrovae
from helpers import run_script
from pyrovae.cli.export import export_main
from pyrovae.export import ExportError, exporter


def refused(argv, capsys) -> str:
    """The one line export.py answers ``argv`` with, after checking its exit status is 2."""
    code = export_main([str(a) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: "), (code, err)
    return err[0]


def leftovers(folder) -> list:
    """The temporary folders an export left in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp"))


def test_the_script_exports_a_run(trained, tmp_path):
    out = tmp_path / "exports" / "mnist"  # missing parent folders are made
    result = run_script("export.py", trained("bernoulli-mlp"), "--format", "torchscript", "--out", out)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["decoder.pt", "encoder.pt", "model.json"]
    assert json.loads((out / "model.json").read_text())["command"].startswith("python scripts/export.py ")
    assert leftovers(tmp_path / "exports") == []


def test_not_a_run_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert "does not exist" in refused([tmp_path / "missing", "--format", "onnx", "--out", tmp_path / "a"], capsys)
    assert "config.json is missing" in refused([tmp_path / "empty", "--format", "onnx", "--out", tmp_path / "b"],
                                               capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]
    result = run_script("export.py", tmp_path / "missing", "--format", "onnx", "--out", tmp_path / "c")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")


def test_an_existing_folder_that_holds_anything_is_refused_and_kept(trained, tmp_path, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert "exists and is not empty" in refused([trained("bernoulli-mlp"), "--format", "onnx", "--out", out], capsys)
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_text() == "mine"
    (tmp_path / "file").write_text("x")
    assert "is a file" in refused([trained("bernoulli-mlp"), "--format", "onnx", "--out", tmp_path / "file"], capsys)
    assert "is a file, not a folder" in refused([trained("bernoulli-mlp"), "--format", "onnx", "--out",
                                                 tmp_path / "file" / "inside"], capsys)
    empty = tmp_path / "empty"
    empty.mkdir()  # an empty folder is taken
    assert export_main([str(trained("bernoulli-mlp")), "--format", "onnx", "--out", str(empty)]) == 0
    assert (empty / "encoder.onnx").is_file() and leftovers(tmp_path) == []


def test_an_unwritable_out(trained, tmp_path, capsys):
    if os.geteuid() == 0:  # root writes anywhere a mode allows: a folder of /proc takes no new entry
        out = "/proc/pyrovae-export"
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        out = locked / "exported"
    line = refused([trained("bernoulli-mlp"), "--format", "onnx", "--out", out], capsys)
    assert "pyrovae-export" in line or "exported" in line
    assert not os.path.exists(out)


def test_a_run_with_a_callable_likelihood_is_refused_naming_it(digit_images, tmp_path, capsys):
    def student_t(out):  # two decoder outputs per pixel
        loc, raw = out.chunk(2, dim=-1)
        return td.StudentT(4.0, loc, torch.nn.functional.softplus(raw) + 1e-3)

    likelihood = pyrovae.model.likelihoods.CallableLikelihood(student_t, outputs_per_pixel=2)
    run = tmp_path / "run"
    pyrovae.train(pyrovae.TrainConfig(**{**TINY, "likelihood": likelihood, "out": str(run)}),
                  dataset=pyrovae.Dataset.from_arrays(digit_images.reshape(len(digit_images), -1)), log=lambda s: None)
    line = refused([run, "--format", "onnx", "--out", tmp_path / "out"], capsys)
    assert "'student_t'" in line and "callable" in line and not (tmp_path / "out").exists()


def test_a_run_of_a_model_this_pyrovae_does_not_know_is_refused(trained, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained("bernoulli-mlp"), run)
    record = json.loads((run / "config.json").read_text())
    record["settings"]["model"] = "vq-vae"
    (run / "config.json").write_text(json.dumps(record))
    line = refused([run, "--format", "torchscript", "--out", tmp_path / "out"], capsys)
    assert "the model 'vq-vae', which this pyrovae does not know (vae, hvae, cvae, m2, m1m2, or a user's own class)" in line
    assert not (tmp_path / "out").exists()


def test_an_export_that_fails_midway_leaves_nothing(trained, tmp_path, monkeypatch, capsys):
    calls = []

    def failing(fmt, graph, example, path, spec):
        calls.append(path.name)
        if len(calls) == 2:  # the encoder is written and checked; the decoder's check fails
            raise ExportError(f"{path.name} differs from the model")
        return 0.0

    monkeypatch.setattr(exporter, "check_file", failing)
    out = tmp_path / "new" / "parents" / "out"  # the parent folders made for it go too
    assert "decoder.onnx differs" in refused([trained("bernoulli-mlp"), "--format", "onnx", "--out", out], capsys)
    assert calls == ["encoder.onnx", "decoder.onnx"] and os.listdir(tmp_path) == []


def test_an_interrupted_export_leaves_nothing(trained, tmp_path, monkeypatch, capsys):
    def interrupted(*args):
        raise KeyboardInterrupt(15)  # SIGTERM, as scripts/_startup.py raises it

    monkeypatch.setattr(exporter, "describe", interrupted)
    out = tmp_path / "out"
    assert export_main([str(trained("bernoulli-mlp")), "--format", "onnx", "--out", str(out)]) == 128 + 15
    assert "nothing was written" in capsys.readouterr().err
    assert not out.exists() and leftovers(tmp_path) == []


def test_refused_before_any_file_is_read(tmp_path, capsys):
    """An unknown format is refused by the parser; the library refuses it too."""
    with pytest.raises(SystemExit) as stop:
        export_main([str(tmp_path), "--format", "tflite", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1 and "invalid choice: 'tflite'" in err
    with pytest.raises(pyrovae.ConfigError, match="unknown export format"):
        pyrovae.export.export_run(tmp_path, "tflite", tmp_path / "o")
    assert os.listdir(tmp_path) == []
