"""Which of two implementations of the same arithmetic ``--fast`` runs: the faster on this machine, measured.

Where the compiled step (:mod:`pyrovae.infer.compiled`) can compute the same thing two ways,
which way is faster depends on the CPU: its float32 matrix products run on oneDNN's GEMM or on
the BLAS behind ``torch.mm``, and oneDNN is the faster on some processors and the slower on
others. :func:`choose` times the candidates on the run's own operands, a few interleaved
repetitions each (about a second in all), takes the median of each and picks the fastest; the
choice is kept in :data:`CACHE_FILE` in the user's cache folder
(:func:`pyrovae.environment.cache_dir`, the folder of every cache of pyrovae), keyed by the CPU
(:func:`~pyrovae.environment.cpu_model`), the torch version, the thread count and what was timed
(the operands' shapes), so later runs on the same machine and shapes use it without timing.

The cache is a convenience and never an error: a file that cannot be read, is not the cache's
JSON, or holds an entry that is not a choice is ignored (the candidates are timed again); a cache
folder or file that is a symbolic link is neither read nor written through; a folder that cannot
be created or written leaves the choice uncached. Writes replace the file whole
(:func:`pyrovae.atomic.replace_whole`)."""
import json
import math
import os
import stat
import statistics
import time
from pathlib import Path
from typing import Callable, Dict, Optional

import torch

from ..atomic import replace_whole
from ..environment import cache_dir, cpu_model

#: the cache's file in :func:`cache_dir`
CACHE_FILE = "fast_step.json"
CACHE_FORMAT = "pyrovae-fast-step-1"
#: choices kept in the file, the most recently made last (older ones are dropped first)
CACHE_ENTRIES = 64
#: a longer file is not the cache (it is ignored, and replaced by the next choice)
CACHE_BYTES = 1 << 20


def _folder(create: bool) -> Optional[Path]:
    """:func:`cache_dir` (created where ``create``) where it is a folder and not a symbolic link, else None."""
    folder = cache_dir()
    try:
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        return folder if stat.S_ISDIR(os.lstat(folder).st_mode) else None
    except (OSError, ValueError):
        return None


def read_cache() -> dict:
    """The cached choices, key to entry; empty where there is no readable cache file."""
    folder = _folder(create=False)
    if folder is None:
        return {}
    try:
        fd = os.open(folder / CACHE_FILE, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except (OSError, ValueError):
        return {}
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > CACHE_BYTES:
            return {}
        with os.fdopen(fd, "rb") as f:
            fd = None
            content = json.loads(f.read(CACHE_BYTES + 1).decode("utf-8"))
    except (OSError, ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return {}
    finally:
        if fd is not None:
            os.close(fd)
    if not (isinstance(content, dict) and content.get("format") == CACHE_FORMAT
            and isinstance(content.get("choices"), dict)):
        return {}
    return content["choices"]


def write_cache(key: str, entry: dict) -> bool:
    """Add ``entry`` under ``key`` to the cache file (replaced whole); False where it could not be written."""
    folder = _folder(create=True)
    if folder is None:
        return False
    choices = {k: v for k, v in read_cache().items() if k != key}
    choices = dict(list(choices.items())[-(CACHE_ENTRIES - 1):])
    choices[key] = entry
    text = json.dumps({"format": CACHE_FORMAT, "choices": choices}, indent=1)
    try:
        replace_whole(folder / CACHE_FILE, lambda f: f.write(text), mode="w")
    except OSError:
        return False
    return True


def fastest(candidates: Dict[str, Callable[[], object]], budget_s: float = 1.0, min_rounds: int = 3,
            max_rounds: int = 51, timer: Callable[[], float] = time.perf_counter):
    """``(name, seconds)``: the candidate with the lowest median time per call, and each one's
    median. After one warm-up call each, rounds call every candidate in an order rotated by one
    each round (so none always runs first, or after the same one); a sample is the mean of
    enough calls to take about 2 ms. Rounds stop after ``max_rounds``, or once ``min_rounds``
    are done and ``budget_s`` seconds have passed. Ties go to the first candidate."""
    names = list(candidates)
    start = timer()
    for name in names:
        candidates[name]()
    first = max(timer() - start, 1e-9) / len(names)
    repeat = max(1, min(100, int(0.002 / first)))
    samples = {name: [] for name in names}
    start = timer()
    for r in range(max_rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            t = timer()
            for _ in range(repeat):
                candidates[name]()
            samples[name].append((timer() - t) / repeat)
        if r + 1 >= min_rounds and timer() - start >= budget_s:
            break
    medians = {name: statistics.median(s) for name, s in samples.items()}
    return min(names, key=medians.__getitem__), medians


def _entry_ok(entry, names) -> bool:
    return (isinstance(entry, dict) and entry.get("choice") in names and isinstance(entry.get("ms"), dict)
            and set(entry["ms"]) == set(names)
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
                    for v in entry["ms"].values()))


def machine_key(what: str) -> str:
    """The cache key of timing ``what`` here: the CPU, the torch version, the thread count and ``what``."""
    threads = torch.get_num_threads()
    return f"{cpu_model()} | torch {torch.__version__} | {threads} thread{'s' * (threads != 1)} | {what}"


def choose(what: str, candidates: Dict[str, Callable[[], object]], budget_s: float = 1.0) -> dict:
    """The fastest of ``candidates`` (implementations of the same arithmetic, by name) for ``what``
    (a description of the work, its shapes included): from the cache where it holds a choice for
    :func:`machine_key`, else timed with :func:`fastest` and cached. Returns ``{"choice": name,
    "ms": {name: median milliseconds per call}, "from_cache": bool, "cpu": cpu_model(), "threads": n}``."""
    key = machine_key(what)
    names = list(candidates)
    entry = read_cache().get(key)
    from_cache = _entry_ok(entry, names)
    if not from_cache:
        name, seconds = fastest(candidates, budget_s=budget_s)
        entry = {"choice": name, "ms": {n: round(s * 1e3, 4) for n, s in seconds.items()}}
        write_cache(key, entry)
    return {"choice": entry["choice"], "ms": dict(entry["ms"]), "from_cache": from_cache, "cpu": cpu_model(),
            "threads": torch.get_num_threads()}
