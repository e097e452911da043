"""The benchmark's side of the NumPyro row: one process of :mod:`.bench_peers_numpyro` per
thread count, started with the ``PYTHONPATH`` that has NumPyro and JAX (the one-thread
process held to one core from its start where a core is given), or the reason there is no
such row."""
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from .bench_peers_report import NUMPYRO

WORKER = Path(__file__).with_name("bench_peers_numpyro.py")
PROBE = "import jax, numpyro; print(numpyro.__version__, jax.__version__)"


def xla_flags(threads: int) -> str:
    """XLA's CPU setting for ``threads``: one thread turns Eigen's multi-threading off; more
    threads leave XLA's pool as it comes. XLA has no flag that bounds its threads (``XLA_FLAGS``
    refuses ``--intra_op_parallelism_threads``; without the dashes it is ignored): what holds
    the one-thread process to one core is its affinity (:class:`NumPyroWorkers`' ``core``)."""
    return "--xla_cpu_multi_thread_eigen=false" if threads == 1 else ""


class _Row:
    """The NumPyro row at one thread count: ``epoch`` and ``steps`` as the PyTorch rows have them."""

    name = NUMPYRO
    loop = "numpyro"

    def __init__(self, workers: "NumPyroWorkers", threads: int):
        self.workers, self.threads = workers, threads

    def epoch(self, x, seed, order, batch) -> dict:
        return self.workers.ask(self.threads, cmd="epoch", seed=seed)

    def steps(self, batches, n) -> dict:
        return self.workers.ask(self.threads, cmd="steps", n=n)


class NumPyroWorkers:
    """``status``: ``{"ran": bool, "reason": str}`` and, per thread count, the ``xla_flags``, the
    ``affinity`` (cores) and ``os_threads`` each process reported after its start; ``versions``:
    numpyro's, jax's, jaxlib's. ``core``: the core the one-thread process is held to, from
    before it starts (``taskset``'s way: each thread XLA starts is held too); None: not held."""

    def __init__(self, wanted: bool, path: Optional[str], x, workdir: Path, args, steps: int, log=print,
                 core: Optional[int] = None):
        self.status: dict = {"ran": False, "reason": None, "pythonpath": path}
        self.versions: dict = {}
        self.procs: Dict[int, subprocess.Popen] = {}
        self.workdir = workdir
        if not wanted:
            self.status["reason"] = "not asked for (--no-numpyro)"
            return
        self.env = {**os.environ, "JAX_PLATFORMS": "cpu"}
        if path:
            self.env["PYTHONPATH"] = path
        probe = subprocess.run([sys.executable, "-c", PROBE], env=self.env, capture_output=True, text=True, timeout=300)
        if probe.returncode != 0:
            last = (probe.stderr.strip().splitlines() or ["no output"])[-1]
            self.status["reason"] = (f"NumPyro/JAX not importable ({last}); pip install 'pyrovae[bench]' or give "
                                     "--numpyro-path")
            log(f"NumPyro row skipped: {self.status['reason']}")
            return
        rows = workdir / "rows.npy"
        np.save(rows, x.numpy().astype(np.uint8))
        for t in args.threads:
            env = {**self.env, "XLA_FLAGS": (os.environ.get("XLA_FLAGS", "") + " " + xla_flags(t)).strip()}
            stderr = open(workdir / f"numpyro-{t}.log", "w")
            pin = None if core is None or t != 1 else (lambda: os.sched_setaffinity(0, {core}))
            self.procs[t] = subprocess.Popen([sys.executable, str(WORKER)], env=env, stdin=subprocess.PIPE,
                                             stdout=subprocess.PIPE, stderr=stderr, text=True, preexec_fn=pin)
            stderr.close()
            answer = self.ask(t, cmd="init", data=str(rows), batch=args.batch_size, hidden=list(args.hidden),
                              z_dim=args.z_dim, lr=1e-3, elbo="trace", steps=steps)
            if "error" in answer:
                self.status["reason"] = f"the NumPyro process failed: {answer['error']}"
                log(f"NumPyro row skipped: {self.status['reason']}")
                self.close()
                return
            self.versions = {k: v for k, v in answer["versions"].items() if k != "numpy"}
            for key in ("xla_flags", "affinity", "os_threads"):
                self.status.setdefault(key, {})[t] = answer.get(key)
        self.status["ran"] = True

    @property
    def running(self) -> bool:
        return bool(self.procs)

    def system(self, threads: int) -> _Row:
        return _Row(self, threads)

    def ask(self, threads: int, **request) -> dict:
        proc = self.procs[threads]
        try:
            proc.stdin.write(json.dumps(request) + "\n")
            proc.stdin.flush()
            line = proc.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if not line:
            log = (self.workdir / f"numpyro-{threads}.log").read_text(errors="replace").strip().splitlines()
            return {"error": f"exited with {proc.poll()}: {(log or ['no output'])[-1]}"}
        return json.loads(line)

    def close(self) -> None:
        for proc in self.procs.values():
            try:
                proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                proc.stdin.close()
                proc.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()
        self.procs = {}
