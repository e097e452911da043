"""Export a run's trained networks (``scripts/export.py``): :func:`export_run`.

What is exported is what the run's model names (:meth:`pyrovae.Model.export_graphs`; checked by
:func:`check_graphs`).

The run folder is opened through :class:`~pyrovae.training.run.Run` (its lock, shared; a
checkpoint of its own). The files are written into a new folder beside ``out``, checked
(:func:`~pyrovae.export.writers.check_file`) and moved to ``out`` with one rename, so ``out``
either holds the whole export or is as it was: a refusal, an error or a signal midway leaves
nothing (the parent folders made for it are removed again). ``out`` must not exist, or be an
empty folder.

Every program that writes a folder of a run's files (``scripts/export.py``, ``scripts/explore.py``)
goes through the same doors: :func:`check_out` and :func:`check_exportable` refuse what cannot be
written, each message naming the program, and :func:`write_folder` writes the folder whole or not
at all.
"""
import fcntl
import os
import re
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Callable, Dict, Optional

import torch

from ..errors import ConfigError, Interrupted, WriteError, brief, one_line
from ..model.graphs import PARAMETERS, ExportGraph, TensorSpec
from ..model.registry import CUSTOM, MODELS
from ..training.files import check_name, write_json
from ..training.folder import first_missing, remove_made
from ..training.run import Run
from .describe import describe, file_spec
from .writers import CHECK_ROWS, FORMATS, TRACE_ROWS, check_file, write


def export_run(run_dir, fmt: str, out, checkpoint: Optional[str] = None, log: Callable[[str], None] = print,
               command: Optional[str] = None, model=None) -> dict:
    """Write the graphs of the run in ``run_dir`` that its model names
    (:meth:`pyrovae.Model.export_graphs`: a VAE's encoder and decoder, an IAF guide's flow, ...)
    as ``fmt`` files (``onnx`` or ``torchscript``) with ``model.json`` into the new folder ``out``;
    ``checkpoint``: ``best``, ``last`` or None (``best.pt`` where the run kept one); ``model``:
    the class of a run of a user's own model. Returns the contents of ``model.json``
    (``command``: the command line, recorded there)."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    out = check_out(out)  # before anything slow
    with Run.open(run_dir, model=model) as run:  # a reader: the run's lock, shared
        check_exportable(run)
        state = run.checkpoint(checkpoint)
        net = run.model(checkpoint, "cpu", state=state)
        name = run.path(checkpoint).name
        traced, checked = graphs_at(net, TRACE_ROWS, 0), graphs_at(net, CHECK_ROWS, 1)
        log(f"exporting {', '.join(traced)} of {run.folder / name} (epoch {state.get('epoch')}) as {fmt} into {out}")
        record = write_folder(out, lambda folder: _write_files(net, run, fmt, name, state.get("epoch"), traced,
                                                               checked, folder, command))
    log(f"wrote {out}: {', '.join(record['files'])}, model.json")
    return record


def check_out(out, program: str = "export") -> Path:
    """``out`` as a path, refused in one line unless it is new (or an empty folder) and its nearest
    existing folder is writable; a symbolic link is refused (never written through). ``program``:
    the command's name as the messages give it (``export``, ``explore``)."""
    out = Path(out)
    check_name(out)
    if out.is_symlink():
        raise ConfigError(f"--out {out} is a symbolic link; {program} writes a new folder: choose a path that is not "
                          "a link")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; {program} writes a folder: choose a new path")
    if out.is_dir() and any(out.iterdir()):
        raise ConfigError(f"--out {out} exists and is not empty; {program} writes a new folder: choose another "
                          "path, or remove that folder first")
    existing = out.absolute().parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"--out {out}: {existing} is a file, not a folder; choose another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise WriteError(f"--out {out}: {existing} is read-only or not writable; choose another path")
    return out


def check_exportable(run: Run, program: str = "export") -> None:
    """Refuse, before any checkpoint is read, a run of a model this pyrovae does not know or with a
    user's callable likelihood (``program``: the command's name, as for :func:`check_out`)."""
    settings = run.record["settings"]
    model = settings.get("model", "vae")
    if model not in MODELS and model != CUSTOM:
        raise ConfigError(f"{run.folder} is a run of the model {brief(model)}, which this pyrovae does not know "
                          f"({', '.join(MODELS)}, or a user's own class); the run folder is damaged or from a newer "
                          "pyrovae")
    likelihood = settings.get("likelihood")
    if isinstance(likelihood, dict) and likelihood.get("custom"):
        raise ConfigError(f"{run.folder} was trained with the likelihood {likelihood.get('name')!r}, a user's "
                          f"callable, which cannot be exported: {program} writes the parameters of the built-in "
                          f"likelihoods ({', '.join(PARAMETERS)})")


def graphs_at(model, rows: int, seed: int) -> Dict[str, ExportGraph]:
    """``model.export_graphs(x)`` at ``rows`` rows in data units (uniform in [0, 1], or about the
    columns' mean and std), with torch's random stream seeded by ``seed`` for the examples it draws
    (and left as it was); what it returns is checked (:func:`check_graphs`)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(rows, model.x_dim, generator=g)  # (rows, D)
    if model.standardizer is not None:
        x = model.standardizer.inverse(torch.randn(rows, model.x_dim, generator=g))
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        graphs = model.export_graphs(x)
    return check_graphs(type(model).__name__, graphs, rows)


def check_graphs(owner: str, graphs, rows: int) -> Dict[str, ExportGraph]:
    """Refuse in one line what ``owner.export_graphs`` returned unless it is a non-empty dict of
    plain file names to :class:`~pyrovae.model.graphs.ExportGraph` whose example inputs have
    ``rows`` rows of the declared shapes and dtypes, every tensor name used once per graph."""
    what = f"{owner}.export_graphs"
    if not isinstance(graphs, dict) or not graphs:
        raise ConfigError(f"{what} returned {brief(graphs)}; it returns a non-empty dict of file names to "
                          "pyrovae.model.graphs.ExportGraph")
    for name, graph in graphs.items():
        if not (isinstance(name, str) and re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,99}", name)):
            raise ConfigError(f"{what} names a graph {brief(name)}; a name is a file name without a suffix: letters, "
                              "digits, _ and -")
        if not isinstance(graph, ExportGraph) or not isinstance(graph.module, torch.nn.Module):
            raise ConfigError(f"{what} gives {name!r} as {brief(graph)}; give a pyrovae.model.graphs.ExportGraph "
                              "whose module is a torch.nn.Module")
        names = [t.name for t in (*graph.inputs, *graph.outputs)]
        if len(set(names)) != len(names) or not all(isinstance(t, TensorSpec) for t in (*graph.inputs, *graph.outputs)):
            raise ConfigError(f"{what}: {name!r} needs a TensorSpec of a name of its own for every input and output, "
                              f"got {brief(names)}")
        if len(graph.example) != len(graph.inputs):
            raise ConfigError(f"{what}: {name!r} has {len(graph.inputs)} inputs but {len(graph.example)} example "
                              "tensors; give one example batch per input")
        for spec, example in zip(graph.inputs, graph.example):
            want = (rows, *spec.shape)
            if not isinstance(example, torch.Tensor) or tuple(example.shape) != want or \
                    str(example.dtype) != f"torch.{spec.dtype}":
                found = f"{tuple(example.shape)} {example.dtype}" if isinstance(example, torch.Tensor) else brief(example)
                raise ConfigError(f"{what}: the example of {name!r}'s input {spec.name!r} is {found}, not {want} "
                                  f"{spec.dtype} for x of {rows} rows; each example has x's number of rows")
    return graphs


def _write_files(model, run: Run, fmt: str, checkpoint: str, epoch, traced: dict, checked: dict, folder: Path,
                 command: Optional[str]) -> dict:
    checks = {}
    for name, graph in traced.items():
        path, spec = folder / (name + FORMATS[fmt]), file_spec(graph)
        write(fmt, graph.module, graph.example, path, spec)
        checks[name] = check_file(fmt, graph.module, checked[name].example, path, spec)
    record = {**describe(model, run, fmt, checkpoint, epoch, traced, checks), "command": command}
    write_json(folder / "model.json", record)
    return record


def write_folder(out: Path, fill: Callable[[Path], dict], what: str = "the export") -> dict:
    """``fill(folder)`` into a new temporary folder beside ``out`` (its missing parent folders made),
    then the folder renamed to ``out``; what ``fill`` returns. On any failure, or a signal
    (:class:`~pyrovae.errors.Interrupted`, exit status 128 + its number), the temporary folder and
    the parent folders made for it are removed and ``out`` is as it was; an OSError is one line
    naming ``what`` is written (:class:`~pyrovae.errors.WriteError`)."""
    try:
        return _write_folder(out, fill, what)
    except KeyboardInterrupt as stop:  # SIGINT, or SIGTERM as scripts/_startup.py raises it
        signum = stop.args[0] if stop.args and isinstance(stop.args[0], int) else signal.SIGINT
        raise Interrupted(f"interrupted ({signal.Signals(signum).name}); nothing was written to {out}",
                          128 + signum) from None


def _write_folder(out: Path, fill: Callable[[Path], dict], what: str) -> dict:
    parent = out.absolute().parent
    made = first_missing(parent)
    try:
        parent.mkdir(parents=True, exist_ok=True)
        remove_stale_folders(out)
        folder = Path(tempfile.mkdtemp(dir=parent, prefix=f".{out.name}.", suffix=".tmp"))
    except OSError as error:
        remove_made(parent, made)
        raise WriteError(f"--out {out}: cannot make a folder beside it ({error.strerror or one_line(error)}); "
                         "choose another path") from None
    try:
        held = _hold(folder)  # locked while it is filled: no other writer takes it for stale
    except OSError:  # a file system without locks: nothing is removed for it then (a held folder is kept)
        held = None
    done = False
    try:
        os.chmod(folder, 0o755)  # mkdtemp's 0700 would hide the export from other users
        record = fill(folder)
        try:
            os.replace(folder, out)  # an empty folder at out is replaced; a non-empty one refuses
        except OSError as error:
            raise WriteError(f"--out {out}: cannot put {what} in place ({error.strerror or one_line(error)}); "
                             "nothing was written") from None
        done = True
        return record
    except OSError as error:
        raise WriteError(f"{error.strerror or one_line(error)} while writing {what} into {out}; "
                         "nothing was written") from None
    finally:
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
        if held is not None:
            os.close(held)
        if not done:
            remove_made(parent, made)


def _hold(folder: Path) -> int:
    """An open descriptor of ``folder`` with an exclusive lock on it, held until it is closed."""
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise
    return fd


def remove_stale_folders(out: Path) -> int:
    """Delete the temporary folders beside ``out`` (``.<name>.XXXXXXXX.tmp``, as :func:`write_folder`
    makes them) that no running export holds: what an export killed midway (SIGKILL, a power cut)
    left behind; their count."""
    parent, prefix = out.absolute().parent, f".{out.name}."
    removed = 0
    for path in parent.iterdir() if parent.is_dir() else ():
        name = path.name
        if not (name.startswith(prefix) and name.endswith(".tmp") and len(name) == len(prefix) + 12):
            continue
        if path.is_symlink() or not path.is_dir():
            continue
        try:
            fd = _hold(path)
        except OSError:  # held: an export running now
            continue
        try:
            shutil.rmtree(path, ignore_errors=True)
        finally:
            os.close(fd)
        removed += not path.exists()
    return removed
