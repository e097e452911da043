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


def run_main(name: str, *args) -> subprocess.CompletedProcess:
    """``python scripts/NAME ARGS`` run in this process: the script's function of pyrovae.cli called
    with ARGS, its stdout and stderr captured, as :func:`run_script` returns them (argparse's exit
    is its exit status). For what ends before any work (a refusal, --help) without a subprocess's
    2-3 s of imports; what a real process adds (signals, the exit of a torchrun rank) needs
    :func:`run_script`. A ``--threads`` given sets torch's thread count of this process, which
    tests/conftest.py restores after each test."""
    import contextlib
    import importlib
    import io
    import re

    module, function = re.search(r'run\("([\w.]+)", "(\w+)"\)', (ROOT / "scripts" / name).read_text()).groups()
    main = getattr(importlib.import_module(module), function)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    return subprocess.CompletedProcess([name, *map(str, args)], code, out.getvalue(), err.getvalue())
