"""Running pyrovae's programs in subprocesses, as a user runs them."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_python(*args, cwd=ROOT, env=None, cuda: bool = False, timeout: int = 300) -> subprocess.CompletedProcess:
    """``python ARGS`` (a script, ``-m module`` or ``-c code``) with this interpreter, in ``cwd``
    (the repository root by default), text output captured. The GPU is hidden unless ``cuda``,
    so a test means the same on a machine that has one; ``env`` adds variables."""
    environment = dict(os.environ, **(env or {}))
    if not cuda:
        environment["CUDA_VISIBLE_DEVICES"] = ""
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env=environment, timeout=timeout)


def run_script(name: str, *args, **kwargs) -> subprocess.CompletedProcess:
    """``python scripts/NAME ARGS``; keywords as for :func:`run_python`."""
    return run_python(ROOT / "scripts" / name, *args, **kwargs)
