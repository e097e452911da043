"""Every ```python block of README.md runs, in order, as a user would run it after the
README's training command (here: a tiny run into the same default folder)."""
import re
import subprocess
import sys
from pathlib import Path

import pyrovae

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run(mnist_sample, tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 2, "the README shows the Python API"
    code = "\n".join(blocks)
    assert "pyrovae.load(" in code and "vae.encode(" in code and "vae.posterior(" in code
    # what `python scripts/svi_train.py` leaves behind, made small
    config = pyrovae.TrainConfig(epochs=1, train_limit=300, test_limit=50, progress=False,
                                 out=str(tmp_path / "runs" / "mnist-bernoulli-trace"))
    pyrovae.train(config, log=lambda s: None, dataset=mnist_sample)
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
