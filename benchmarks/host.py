"""Where a benchmark ran, as every report of ``benchmarks`` states it: the CPU model with its
vector extensions (:func:`pyrovae.environment.cpu_model`), its logical CPUs, the threads
PyTorch uses, and the versions of the libraries timed; and the file-name slug of a CPU
model, so that records of different CPUs sit side by side."""
import contextlib
import os
import platform
import re
from typing import Optional

import torch

from pyrovae.environment import cpu_model

#: the library versions a report line names, where the result has them
NAMED_VERSIONS = ("torch", "pyro", "numpyro", "jax", "jaxlib", "python")
#: the settings of a process that change how it computes, recorded with a result
ENVIRONMENT = ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "GOMP_SPINCOUNT", "MKL_NUM_THREADS", "KMP_BLOCKTIME",
               "XLA_FLAGS", "ONEDNN_DEFAULT_FPMATH_MODE", "DNNL_MAX_CPU_ISA")


def host() -> dict:
    """``cpu`` (:func:`~pyrovae.environment.cpu_model`), ``logical_cpus`` (``os.cpu_count()``),
    ``usable_cpus`` (those this process may run on), ``torch_threads`` and ``platform``."""
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # no affinity masks on this platform
        usable = os.cpu_count()
    return {"cpu": cpu_model(), "logical_cpus": os.cpu_count(), "usable_cpus": usable,
            "torch_threads": torch.get_num_threads(), "platform": platform.platform()}


def machine(environment=ENVIRONMENT) -> dict:
    """:func:`host` and ``environment``: the variables of ``environment`` this process has, with their values."""
    return {**host(), "environment": {k: os.environ[k] for k in environment if k in os.environ}}


def describe(h: dict, versions: dict, threads: str = None) -> str:
    """``"AMD EPYC (avx2), 2 logical CPUs, torch threads 1 and 2; torch 2.14.1, pyro 1.9.2"``:
    ``h`` a :func:`host` record (an older record's ``cpu`` as it was recorded), ``threads`` the
    thread counts timed (default: the ``torch_threads`` of ``h``), then each version of
    :data:`NAMED_VERSIONS` that ``versions`` has."""
    cpus = h.get("logical_cpus")
    threads = threads or str(h.get("torch_threads", "?"))
    named = ", ".join(f"{k} {versions[k]}" for k in NAMED_VERSIONS if versions.get(k))
    return f"{h.get('cpu', 'unknown CPU')}, {cpus} logical CPU{'s' * (cpus != 1)}, torch threads {threads}; {named}"


def cpu_slug(cpu: str) -> str:
    """A file-name part for a CPU model: lower case, trademarks, ``CPU``/``Processor`` and the
    clock dropped, vector extensions kept, runs of anything else one ``-``:
    ``"AMD EPYC (avx2)"`` -> ``"amd-epyc-avx2"``, ``"Intel(R) Xeon(R) Platinum 8480+ (avx2,
    avx512f, amx_tile)"`` -> ``"intel-xeon-platinum-8480-avx2-avx512f-amx-tile"``."""
    s = re.sub(r"\((r|tm)\)|\b(cpu|processor)\b|@\s*[\d.]+\s*[gm]hz", " ", cpu.lower())
    return re.sub(r"[^a-z0-9]+", "-", s).strip("-") or "unknown-cpu"


def one_core() -> Optional[int]:
    """The first core this process may run on; None where this platform has no affinity masks."""
    try:
        return min(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


@contextlib.contextmanager
def held_to(core: Optional[int]):
    """The calling thread held to ``core`` inside the block (``os.sched_setaffinity``; nothing where
    ``core`` is None), its former mask restored after. Threads started inside inherit the mask."""
    if core is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {core})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)
