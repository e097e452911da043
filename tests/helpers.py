"""Running pyrovae's programs in subprocesses, as a user runs them."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: the explorer page's runtime folder in the user's own cache (conftest.py sets it before the tests
#: get a cache folder of their own); it may not exist
USER_RUNTIME = None


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


def assert_log_p_not_below_elbo(log_p, elbo, sigmas: float = 4.0) -> float:
    """log p(x) >= ELBO, for Monte-Carlo estimates of both on the same rows: each row's importance
    estimate log p_K (K >= 1 draws) has an expectation at or above the row's ELBO (the K = 1 case),
    so the mean of the paired differences d_i = log p_K(x_i) - ELBO(x_i) is below zero only by
    Monte-Carlo error. Its standard error, std(d) / sqrt(n), also holds the rows' spread around
    their own expectations, so it bounds that error from above: a mean more than ``sigmas`` of it
    below zero (chance under 1 in 30,000 at 4) fails. The same holds for any pair of per-row estimates
    whose expectations are so ordered (the exact log p(x) and its importance estimate). Returns that
    standard error."""
    import math

    d = (log_p - elbo).double().flatten()
    se = d.std().item() / math.sqrt(len(d))
    assert d.mean().item() >= -sigmas * se, (d.mean().item(), se)
    return se


def tiny_run(path, mnist_sample, **settings):
    """A 2-epoch run of the default VAE (hidden 64) on 600 training and 100 test rows of
    ``mnist_sample``, in ``path/run``, with ``settings`` on top; returns the run folder."""
    import pyrovae

    config = pyrovae.TrainConfig(epochs=2, train_limit=600, test_limit=100, hidden=(64,), progress=False,
                                 data_dir=str(path / "no-mnist-here"), download=False, out=str(path / "run"),
                                 **settings)
    pyrovae.train(config, log=lambda s: None, dataset=mnist_sample)
    return path / "run"
