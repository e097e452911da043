"""The exported files need neither pyrovae nor Pyro (ONNX: nor torch): docs/export.md's numpy and
onnxruntime example runs where importing torch or Pyro fails and gives ``vae.encode``'s latents,
and the TorchScript files run where Pyro and pyrovae cannot be imported."""
import re
import textwrap
from pathlib import Path

import numpy as np
from export_helpers import TOLERANCE, encode, largest_difference, model_of

from helpers import run_python

PAGE = Path(__file__).resolve().parents[2] / "docs" / "export.md"
MARKER = "<!-- numpy-and-onnxruntime-only -->"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def page_example() -> str:
    """The first ```python block after the marker in docs/export.md."""
    text = PAGE.read_text(encoding="utf-8")
    assert MARKER in text, f"{PAGE} has no {MARKER}"
    return BLOCK.search(text, text.index(MARKER)).group(1)


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
