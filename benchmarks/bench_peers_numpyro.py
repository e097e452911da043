"""The NumPyro row of ``scripts/bench_peers.py``: the same VAE in NumPyro, run in a process of
its own (its own ``PYTHONPATH``, its own thread pool), driven by the benchmark over a pipe.

This file imports only the standard library, NumPy, JAX and NumPyro (never torch or
pyrovae): the benchmark runs it by path, ``python bench_peers_numpyro.py``, with the
environment that has NumPyro and JAX. It reads one JSON object per line on stdin and
answers each with one JSON line on stdout:

* ``{"cmd": "init", "data": PATH, "batch": B, "hidden": [400], "z_dim": 50, "lr": 1e-3,
  "elbo": "trace", "steps": S}``: load the (N, D) uint8 rows of ``PATH`` (a ``.npy``), build
  the model and guide, ``SVI.init``; answers the versions, the thread settings seen, the
  cores the process may run on (``affinity``) and its threads after ``SVI.init``
  (``os_threads``, where ``/proc`` has them);
* ``{"cmd": "epoch", "seed": S}``: one training epoch, ``N // B`` minibatches (at most
  ``steps``) in the order
  ``numpy.random.RandomState(S).permutation(N)`` (the order every other row uses for epoch
  S), run as NumPyro's ``examples/vae.py`` runs it: one ``jit``-ted ``lax.fori_loop`` over
  ``svi.update``; answers wall and CPU seconds and the summed loss;
* ``{"cmd": "steps", "n": K}``: K calls of the ``jit``-ted ``svi.update`` from Python (the
  per-step timing), cycling through 8 fixed minibatches; answers wall and CPU seconds;
* ``{"cmd": "quit"}``.

The networks are ``jax.example_libraries.stax`` MLPs of the shapes the PyTorch rows use:
encoder D-400-(2 z), softplus hidden units, :math:`\\sigma = \\mathrm{softplus}(h) + 10^{-4}`;
decoder z-400-D giving Bernoulli logits; prior N(0, I); ``numpyro.optim.Adam``.
"""
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax import lax, random
from jax.example_libraries import stax
from numpyro.infer import SVI, Trace_ELBO, TraceMeanField_ELBO


def networks(x_dim: int, z_dim: int, hidden):
    enc = stax.serial(*[layer for h in hidden for layer in (stax.Dense(h), stax.Softplus)], stax.Dense(2 * z_dim))
    dec = stax.serial(*[layer for h in reversed(hidden) for layer in (stax.Dense(h), stax.Softplus)],
                      stax.Dense(x_dim))
    return enc, dec


def make_svi(x_dim: int, batch: int, z_dim: int, hidden, lr: float, elbo: str) -> SVI:
    encoder, decoder = networks(x_dim, z_dim, hidden)

    def model(x):
        decode = numpyro.module("decoder", decoder, (batch, z_dim))
        with numpyro.plate("data", x.shape[0]):
            z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([z_dim]).to_event(1))
            return numpyro.sample("x", dist.Bernoulli(logits=decode(z)).to_event(1), obs=x)

    def guide(x):
        encode = numpyro.module("encoder", encoder, (batch, x_dim))
        out = encode(x)
        loc, raw = out[:, :z_dim], out[:, z_dim:]
        with numpyro.plate("data", x.shape[0]):
            return numpyro.sample("z", dist.Normal(loc, jax.nn.softplus(raw) + 1e-4).to_event(1))

    loss = {"trace": Trace_ELBO, "meanfield": TraceMeanField_ELBO}[elbo]()
    return SVI(model, guide, numpyro.optim.Adam(lr), loss=loss)


class Worker:
    def init(self, data: str, batch: int, hidden, z_dim: int, lr: float, elbo: str = "trace", steps=None) -> dict:
        rows = np.load(data)
        self.n, x_dim = rows.shape
        self.batch, self.steps = batch, min(rows.shape[0] // batch, steps or rows.shape[0])
        self.x = jnp.asarray(rows, dtype=jnp.float32)  # (N, D) 0/1
        self.svi = make_svi(x_dim, batch, z_dim, hidden, lr, elbo)
        self.state = self.svi.init(random.PRNGKey(0), self.x[:batch])
        svi, steps, b = self.svi, self.steps, batch

        @jax.jit
        def epoch(state, x, order):  # x: (N, D); order: (steps * B,) int32
            def body(i, carry):
                total, state = carry
                rows = jnp.take(x, lax.dynamic_slice(order, (i * b,), (b,)), axis=0)  # (B, D)
                state, loss = svi.update(state, rows)
                return total + loss, state
            return lax.fori_loop(0, steps, body, (jnp.zeros(()), state))

        self.epoch_fn = epoch
        self.update = jax.jit(svi.update)
        g = np.random.RandomState(12345)
        self.fixed = [self.x[np.sort(g.choice(self.n, batch, replace=False))] for _ in range(8)]
        return {"affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
                "os_threads": len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else None,
                "versions": {"numpyro": numpyro.__version__, "jax": jax.__version__,
                             "jaxlib": getattr(jax.lib, "__version__", None) or _jaxlib_version(),
                             "numpy": np.__version__},
                "xla_flags": os.environ.get("XLA_FLAGS", ""), "devices": [str(d) for d in jax.devices()],
                "steps_per_epoch": steps}

    def epoch(self, seed: int) -> dict:
        order = np.random.RandomState(seed).permutation(self.n)[: self.steps * self.batch].astype(np.int32)
        order = jax.device_put(order)
        wall, cpu = time.perf_counter(), time.process_time()
        total, self.state = self.epoch_fn(self.state, self.x, order)
        total = float(jax.block_until_ready(total))
        return {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu, "loss_sum": total,
                "steps": self.steps}

    def run_steps(self, n: int) -> dict:
        wall, cpu = time.perf_counter(), time.process_time()
        state = self.state
        for i in range(n):
            state, loss = self.update(state, self.fixed[i % len(self.fixed)])
        jax.block_until_ready(loss)
        self.state = state
        return {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu, "steps": n}


def _jaxlib_version() -> str:
    import jaxlib

    return jaxlib.__version__


def main() -> int:
    worker = Worker()
    for line in sys.stdin:
        request = json.loads(line)
        cmd = request.pop("cmd")
        if cmd == "quit":
            break
        try:
            answer = {"init": worker.init, "epoch": worker.epoch, "steps": worker.run_steps}[cmd](**request)
        except Exception as error:  # noqa: BLE001 - the benchmark reports it and goes on without the row
            answer = {"error": f"{type(error).__name__}: {' '.join(str(error).split())[:300]}"}
        print(json.dumps(answer), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
