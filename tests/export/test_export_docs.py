"""The exported files need neither pyrovae nor Pyro (ONNX: nor torch): docs/export.md's numpy and
onnxruntime examples run where importing torch or Pyro fails and give ``vae.encode``'s latents and
the m2 classifier's accuracy of encode.py, and the TorchScript files run where Pyro and pyrovae
cannot be imported."""
import re
import textwrap
from pathlib import Path

import numpy as np
import torch
from export_helpers import TOLERANCE, encode, largest_difference, model_of

from helpers import run_python

PAGE = Path(__file__).resolve().parents[2] / "docs" / "export.md"
MARKER, M2_MARKER = "<!-- numpy-and-onnxruntime-only -->", "<!-- numpy-and-onnxruntime-only: m2 -->"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def page_example(marker: str = MARKER) -> str:
    """The first ```python block after ``marker`` in docs/export.md."""
    text = PAGE.read_text(encoding="utf-8")
    assert marker in text, f"{PAGE} has no {marker}"
    return BLOCK.search(text, text.index(marker)).group(1)


def blocked_environment(folder: Path, modules) -> dict:
    """Environment variables under which importing any of ``modules`` fails: a sitecustomize.py in
    ``folder`` (first on PYTHONPATH) puts a finder first on sys.meta_path that refuses them."""
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(textwrap.dedent(f"""\
        import sys

        BLOCKED = {sorted(modules)!r}


        class Blocker:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"{{name}} is blocked: the exported files must run without it")
                return None


        sys.meta_path.insert(0, Blocker())
        """))
    return {"PYTHONPATH": str(folder)}


def test_the_blocker_blocks(tmp_path):
    env = blocked_environment(tmp_path / "site", ["torch", "pyro", "pyrovae"])
    for module in ("torch", "pyro", "pyrovae", "torch.nn"):
        result = run_python("-c", f"import {module}", cwd=tmp_path, env=env)
        assert result.returncode != 0 and "is blocked" in result.stderr, module
    assert run_python("-c", "import numpy, onnxruntime", cwd=tmp_path, env=env).returncode == 0


def test_the_pages_onnxruntime_example_encodes_as_pyrovae_does(trained, exported, datasets, tmp_path):
    """The example runs, with torch, Pyro and pyrovae unimportable, on an export and rows laid out
    as the page's first example leaves them, and saves vae.encode's loc."""
    vae = model_of(trained("bernoulli-mlp"))
    rows = datasets["mnist"][1][:10]  # (10, 784) real test digits, grey values in [0, 1]
    (tmp_path / "exported").mkdir()
    (tmp_path / "exported" / "mnist").symlink_to(exported("bernoulli-mlp", "onnx"), target_is_directory=True)
    np.save(tmp_path / "exported" / "digits.npy", rows)
    env = blocked_environment(tmp_path / "site", ["torch", "pyro", "pyrovae"])
    code = page_example() + "\nimport sys\nassert not {'torch', 'pyro', 'pyrovae'} & set(sys.modules)\n"
    result = run_python("-c", code, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "10 rows -> latents (10, 4)" in result.stdout
    latents = np.load(tmp_path / "exported" / "latents.npy")
    assert largest_difference(latents, encode(vae, rows)[0]) <= TOLERANCE


def test_the_pages_m2_example_classifies_as_encode_does(trained, exported, mnist_sample, tmp_path):
    """The m2 example, with torch, Pyro and pyrovae unimportable, on an m2 export, encode.py's file of
    the run's test rows and the test split, prints the accuracy of the classifier on those rows: that
    of encode.py's probs and of ``m2.classify``; and draws a digit of each class."""
    from pyrovae.cli.programs import encode_main

    run = trained("m2-mnist")
    (tmp_path / "exported").mkdir()
    (tmp_path / "exported" / "m2").symlink_to(exported("m2-mnist", "onnx"), target_is_directory=True)
    assert encode_main([str(run), "test", "--out", str(tmp_path / "exported" / "m2-test.npz"), "--no-progress"]) == 0
    np.save(tmp_path / "exported" / "mnist-test.npy", mnist_sample.test_x.numpy())  # the run's source's test split
    env = blocked_environment(tmp_path / "site", ["torch", "pyro", "pyrovae"])
    code = page_example(M2_MARKER) + "\nimport sys\nassert not {'torch', 'pyro', 'pyrovae'} & set(sys.modules)\n"
    result = run_python("-c", code, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    encoded = np.load(tmp_path / "exported" / "m2-test.npz")
    m2 = model_of(run)
    rows = mnist_sample.test_x[torch.from_numpy(encoded["row"])]  # (1000, 784) the run's test rows
    assert len(rows) == 1000 and np.array_equal(encoded["y"], mnist_sample.test_y[encoded["row"]].numpy())
    theirs = float(np.mean(encoded["probs"].argmax(1) == encoded["y"]))
    assert theirs == float(np.mean(m2.classify(rows).argmax(1).numpy() == encoded["y"]))
    assert 0.2 < theirs < 1  # better than chance after one epoch, and not all right: a wrong answer would show
    assert f"accuracy {theirs:.4f} on 1000 test rows (encode.py: {theirs:.4f})" in result.stdout
    digits = np.load(tmp_path / "exported" / "m2-digits.npy")
    assert digits.shape == (10, 28, 28) and np.ptp(digits, axis=0).max() > 0.1  # the class changes the digit


def test_torchscript_files_run_without_pyro_or_pyrovae(trained, exported, datasets, tmp_path):
    vae, folder = model_of(trained("gaussian-table")), exported("gaussian-table", "torchscript")
    rows = datasets["cancer"][1][:7]  # raw table rows
    np.save(tmp_path / "rows.npy", rows)
    env = blocked_environment(tmp_path / "site", ["pyro", "pyrovae"])
    code = textwrap.dedent(f"""\
        import numpy as np
        import torch

        encoder = torch.jit.load({str(folder / "encoder.pt")!r})
        loc, scale = encoder(torch.from_numpy(np.load("rows.npy")))
        np.save("loc.npy", loc.detach().numpy())
        """)
    result = run_python("-c", code, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert largest_difference(np.load(tmp_path / "loc.npy"), encode(vae, rows)[0]) <= TOLERANCE
