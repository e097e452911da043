"""One door to a run folder: :class:`Run`.

Every program that starts, continues or reads a run goes through here: training
(:meth:`Run.create`), ``--resume``, ``evaluate.py`` and ``ssl_table.py``'s baselines
(``Run.open(folder, write=True)``: they write the run's files), ``encode.py``,
``plot_latent.py``, ``nll_table.py`` and ``export.py`` (``Run.open(folder)``: readers). Opening a run

* takes the folder's lock (:class:`~pyrovae.training.files.RunLock`), exclusive for a
  writer and shared for readers, so no program reads a run that another one is writing;
* reads ``config.json`` and rebuilds the run's :class:`~pyrovae.training.config.TrainConfig`
  from it, validated (:attr:`Run.config`; whether its data are still there is checked only
  when they are loaded, so a run's checkpoints are read without them);
* hands out a checkpoint only when it belongs to the run (:meth:`Run.checkpoint`): its
  ``run_id`` is that of ``config.json`` (a run recorded before run ids existed: its
  settings are those of ``config.json``);
* reloads the run's data from its recorded origin and refuses data that differ
  (:meth:`Run.dataset`; files, folders and the built-in sets by content hash).

A new run that stops before it has written ``config.json`` (bad input, a signal while the
data load) leaves no folder behind: :meth:`Run.create` removes the folders it made. A new run
never replaces a run, nor a file a run writes (:meth:`Run.create`).

Nothing in a run folder is read or written through a symbolic link: a folder whose files
(:data:`~pyrovae.training.folder.OWN_FILES`, :data:`~pyrovae.training.folder.RUN_FOLDERS`) are links, or are not files, is refused in one line
before anything is read or written, so a run folder received from someone else cannot make a
program write, or read, outside it (the folder itself may be a link).
"""
import uuid
from pathlib import Path
from typing import Callable, Optional

from ..errors import CheckpointError, ConfigError, one_line
from .build import ensure_writable
from .checkpoint import check_finite, model_from_state, read_checkpoint
from .config import TrainConfig, same_likelihood
from .files import RunLock, as_recorded, check_name, check_own_files, read_json, remove_stale_temporaries, write_json
from .folder import OWN_FILES, RUN_FOLDERS, check_new, first_missing, remove_made
from .parts import upgrade
from .rundata import run_dataset

#: a checkpoint by what it holds: the best epoch by the validation ELBO, or the last one
CHECKPOINTS = {"best": "best.pt", "last": "checkpoint.pt", "best.pt": "best.pt", "checkpoint.pt": "checkpoint.pt"}
#: settings that ``--resume`` may change, and where the data lies: config.json and a checkpoint may differ in them
CHANGEABLE = {"out", "epochs", "progress", "cuda", "distributed", "threads", "data_dir", "download"}
#: what a checkpoint needs to continue a run, with its type (after :func:`~pyrovae.training.parts.upgrade`)
RESUME_PARTS = {"optimizer": dict, "config": dict, "loop": dict, "selection": dict, "schedule": dict,
                "record": dict, "stop": dict, "rng": dict}


class Run:
    """A run folder, opened (or made) once; use it as a context manager, or call :meth:`close`."""

    def __init__(self, folder: Path, lock: Optional[RunLock], record: Optional[dict], run_id: Optional[str],
                 likelihood=None, made: Optional[Path] = None, model=None):
        self.folder, self.lock, self.record, self.run_id = folder, lock, record, run_id
        self._likelihood, self._made, self._config, self._model = likelihood, made, None, model
        self.removed = 0  # temporary files of writes a crash interrupted, removed on opening for writing

    # ------------------------------------------------------------------ opening
    @classmethod
    def create(cls, folder, main: bool = True) -> "Run":
        """The folder of a new run, made if needed and locked for writing (``main`` False: a
        rank of a distributed run other than rank 0, which writes nothing).

        A new run starts only in a folder that is missing, empty, or holds none of the files
        and folders a run writes (:data:`~pyrovae.training.folder.RUN_FILES`: ``config.json``, ``metrics.json``,
        ``checkpoint.pt``, ``best.pt``, the figures; :data:`~pyrovae.training.folder.RUN_FOLDERS`: ``tensorboard``),
        a symbolic link of one of those names included. Such a folder holds a run (any of
        ``config.json``, ``checkpoint.pt``, ``best.pt``, ``metrics.json``; ``config.json``
        alone: a run killed before its first checkpoint, which ``--resume`` cannot continue)
        or files of its user's that the run would overwrite, and is refused with
        :class:`~pyrovae.errors.ConfigError` in one line (continue a run with ``--resume``,
        or give a new ``--out``) before anything is written into it: not the lock, not a
        probe of its writability. Other files in the folder are left alone. The check is made
        again once the lock is held, so a run that started meanwhile is not replaced either.
        A folder in use by another run is refused first, naming its pid (its lock is only
        peeked at); a ``.lock`` that is a link, a name too long for the file system and a
        folder that cannot be written are refused in one line too. Under torchrun, rank 0
        refuses and torchrun stops the other ranks."""
        folder = Path(folder)
        if not main:
            return cls(folder, None, None, None)
        check_name(folder)
        RunLock(folder, new_run=True).check_free()  # a run at work here is named by its pid
        check_new(folder)
        made = first_missing(folder)
        ensure_writable(folder)
        try:
            lock = RunLock(folder, new_run=True).acquire()
        except BaseException:
            remove_made(folder, made)
            raise
        try:
            check_new(folder)  # a run that started between the first check and the lock
        except BaseException:
            lock.release()
            raise
        run = cls(folder, lock, None, uuid.uuid4().hex, made=made)
        run.removed = remove_stale_temporaries(folder)  # the lock is held: nobody else writes here
        return run

    @classmethod
    def open(cls, folder, write: bool = False, likelihood=None, lock: bool = True, model=None) -> "Run":
        """An existing run: ``write`` for a program that writes its files (resume,
        evaluation), else a reader. ``likelihood``: the callable of a run trained with a
        user's likelihood, and ``model``: the class of a run of a user's own model, which
        settings cannot hold. ``lock`` False: a rank of a distributed run other than rank 0.
        A folder whose files (:data:`~pyrovae.training.folder.OWN_FILES`, :data:`~pyrovae.training.folder.RUN_FOLDERS`) are symbolic links is
        refused before anything is read or written."""
        folder = Path(folder)
        check_name(folder)
        if not folder.is_dir():
            if folder.exists():
                raise ConfigError(f"{folder} is a file, not a run folder; name the folder that holds it "
                                  f"({folder.parent})")
            raise ConfigError(f"{folder} is not a run folder: it does not exist")
        check_own_files(folder, OWN_FILES, RUN_FOLDERS)
        held = RunLock(folder, shared=not write).acquire() if lock else None
        try:
            path = folder / "config.json"
            if not path.is_file():
                raise ConfigError(f"{folder} is not a finished run folder: config.json is missing")
            record = read_json(path, ("settings",))
            if not isinstance(record["settings"], dict):
                raise ConfigError(f"{path} holds a {type(record['settings']).__name__} where the settings belong, "
                                  "not an object; the run folder is damaged")
            run_id = record.get("run_id")
            if run_id is not None and not isinstance(run_id, str):
                raise ConfigError(f"{path} holds a run_id that is not a string; the run folder is damaged")
        except BaseException:
            if held is not None:
                held.release()
            raise
        run = cls(folder, held, record, run_id, likelihood, model=model)
        if write and held is not None:  # the lock is held: nobody else writes here
            run.removed = remove_stale_temporaries(folder)
        return run

    def started(self, record: dict) -> None:
        """The run has written ``config.json`` (``record``): its folder stays whatever happens next."""
        self.record, self._made = record, None

    def close(self, failed: bool = False) -> None:
        """Release the lock; ``failed`` before the run started: remove the folders it made."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None
        if failed and self.record is None and self._made is not None:
            remove_made(self.folder, self._made)

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, kind, error, traceback) -> bool:
        self.close(failed=kind is not None)
        return False

    # ----------------------------------------------------------------- settings
    @property
    def config(self) -> TrainConfig:
        """The run's settings from ``config.json``, validated (a user's likelihood given
        to :meth:`open` put in place of its recorded name)."""
        if self._config is None:
            self._config = TrainConfig.from_dict(self._settings(), source=self.folder / "config.json", paths=False)
        return self._config

    def _settings(self) -> dict:
        """``config.json``'s settings, a user's likelihood given to :meth:`open` in place of its name."""
        settings = self.record["settings"]
        if self._likelihood is not None:
            settings = {**settings, "likelihood": same_likelihood(self._likelihood, settings.get("likelihood"))}
        return settings

    def metrics(self) -> dict:
        """``metrics.json``: the run's record, written after every epoch."""
        path = self.folder / "metrics.json"
        if not path.is_file():
            raise ConfigError(f"{self.folder} is not a finished run folder: metrics.json is missing")
        return read_json(path, ("dataset",))

    def write_metrics(self, metrics: dict) -> None:
        if self.lock is None or self.lock.shared:
            raise ConfigError(f"{self.folder} was opened for reading; open it with write=True to change metrics.json")
        write_json(self.folder / "metrics.json", metrics)

    # -------------------------------------------------------------- checkpoints
    def path(self, which: Optional[str] = None) -> Path:
        """``best.pt`` or ``checkpoint.pt`` (``which``: ``best``, ``last``, or a file name;
        None: ``best.pt`` where the run kept one)."""
        if which is None:
            which = "best" if (self.folder / "best.pt").is_file() else "last"
        if which not in CHECKPOINTS:
            raise ConfigError(f"unknown checkpoint {which!r}; choose best or last")
        return self.folder / CHECKPOINTS[which]

    def checkpoint(self, which: Optional[str] = None, map_location="cpu") -> dict:
        """A checkpoint of the run (:meth:`path`), read without running pickled code and
        refused unless it is the run's own."""
        path = self.path(which)
        self.config  # noqa: B018 (the settings first: a checkpoint is checked against them)
        check_own_files(self.folder, (path.name,))  # never read through a link
        if not path.is_file():
            raise ConfigError(f"{self.folder} is not a finished run folder: {path.name} is missing")
        state = read_checkpoint(path, map_location)
        self._check_own(state, path)
        return state

    def model(self, which: Optional[str] = None, device="cpu", likelihood=None, state: Optional[dict] = None):
        """The run's trained model from a checkpoint of its own (``state``: that checkpoint,
        already read by :meth:`checkpoint`), on ``device``, in eval mode."""
        if state is None:
            state = self.checkpoint(which, str(device))
        return model_from_state(state, self.path(which), str(device),
                                likelihood if likelihood is not None else self._likelihood, self._model)

    def resume_state(self) -> dict:
        """``checkpoint.pt`` with every part a resume loads, checked: present, of its type,
        the weights finite."""
        path = self.folder / "checkpoint.pt"
        if not path.is_file():
            raise CheckpointError(f"no checkpoint at {path}; there is nothing to resume in {self.folder}")
        state = self.checkpoint("last")
        if "loop" not in state:
            raise CheckpointError(f"{path} holds weights only (no training state to resume)")
        try:
            state = upgrade(state)
        except (KeyError, TypeError, AttributeError) as error:
            raise CheckpointError(f"{path} is a damaged pyrovae checkpoint ({one_line(error, 80)}); "
                                  "resume from an intact copy, or start a new run") from None
        for key, kind in RESUME_PARTS.items():
            if not isinstance(state.get(key), kind):
                found = "no" if key not in state else f"a {type(state[key]).__name__}"
                raise CheckpointError(f"{path} is a damaged pyrovae checkpoint: it has {found} {key!r} part "
                                      f"(a {kind.__name__} is needed to resume); resume from an intact copy, or start "
                                      "a new run")
        check_finite(state["state_dict"], path)
        return state

    def _check_own(self, state: dict, path: Path) -> None:
        """Refuse a checkpoint that is not this run's (copied in from another run): its run id
        is not that of ``config.json``, or (runs recorded before run ids) a setting differs."""
        ours, theirs, config_path = self.run_id, state.get("run_id"), self.folder / "config.json"
        recorded = state.get("config")
        if not isinstance(recorded, dict):
            raise CheckpointError(f"{path} is a damaged pyrovae checkpoint: it has no settings ('config')")
        settings = self.record["settings"]
        differs = [key for key in sorted(set(settings) & set(recorded) - CHANGEABLE)
                   if as_recorded(settings[key]) != as_recorded(recorded[key])]
        if differs:
            key = differs[0]
            why = f"its {key} is {as_recorded(recorded[key])!r}, but {config_path} says {as_recorded(settings[key])!r}"
        elif (ours is not None or theirs is not None) and ours != theirs:
            why = f"its run id is {theirs or 'missing'}, but {config_path} says {ours or 'none'}"
        else:
            return
        raise CheckpointError(f"{path} belongs to another run: {why}; put this run's own checkpoint back, "
                              "or start a new run")

    # --------------------------------------------------------------------- data
    def trained_on(self) -> dict:
        """The summary of the data the run was trained on (``metrics.json``; before the first
        epoch ended, the record in ``checkpoint.pt``)."""
        if (self.folder / "metrics.json").is_file():
            return self.metrics()["dataset"]
        state = upgrade(self.checkpoint("last"))
        recorded = state.get("record", {}).get("dataset") if isinstance(state.get("record"), dict) else None
        if not isinstance(recorded, dict):
            raise ConfigError(f"{self.folder} is not a finished run folder: metrics.json is missing")
        return recorded

    def dataset(self, dataset=None, log: Callable[[str], None] = print, download: bool = False):
        """The run's own data, reloaded from its recorded source (or ``dataset``, given again
        in Python) and checked against what it was trained on, with the run's selection
        (validation hold-out, limits, labels)."""
        config = self.config
        if dataset is None:  # its data load from the recorded source: where they have gone is one line
            TrainConfig.from_dict(self._settings(), source=self.folder / "config.json")
        return run_dataset(config, dataset, log, recorded=self.trained_on(), download=download)
