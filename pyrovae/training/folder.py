"""The run folder belongs to one run: its lock for the life of the run, and a checkpoint
that must be the run's own (its settings those of the folder's ``config.json``)."""
import contextlib
import json
import os
from pathlib import Path

from ..errors import CheckpointError, ConfigError
from .build import ensure_writable
from .files import RunLock, read_json


def locked(out: Path):
    """The run folder's lock (rank 0 only: the other ranks of a distributed run write nothing)."""
    if os.environ.get("RANK", "0") != "0":
        return contextlib.nullcontext()
    ensure_writable(out)
    return RunLock(out)


#: settings that ``--resume`` may change, and where the data lies: config.json and the checkpoint may differ in them
_CHANGEABLE = {"out", "epochs", "progress", "cuda", "distributed", "threads", "data_dir", "download"}


def check_own_checkpoint(run_dir: Path, recorded: dict) -> None:
    """Refuse a checkpoint whose settings are not those of the run's ``config.json``
    (a checkpoint copied in from another run)."""
    path = run_dir / "config.json"
    if not path.is_file():
        return
    settings = read_json(path, ("settings",))["settings"]
    if not isinstance(settings, dict):
        raise ConfigError(f"{path} has no settings object; the run folder is damaged")
    plain = lambda value: json.loads(json.dumps(value, default=str))  # noqa: E731 (tuples as lists)
    for key in sorted(set(settings) & set(recorded) - _CHANGEABLE):
        if plain(settings[key]) != plain(recorded[key]):
            raise CheckpointError(f"{run_dir / 'checkpoint.pt'} belongs to another run: its {key} is "
                                  f"{plain(recorded[key])!r}, but {path} says {plain(settings[key])!r}; "
                                  "put this run's own checkpoint back, or start a new run")
