"""Continuing a run: :func:`resume` opens the run's folder, checks what may change (``--epochs``,
the device, the processes, the threads, the display) against the checkpoint, and hands the
checkpoint's state to the :class:`~pyrovae.training.trainer.Trainer`, which restores every part
of it, so the resumed run is the run that was interrupted."""
from typing import Callable, Optional, Sequence

from ..data.datasets import Dataset
from ..errors import CheckpointError, ConfigError, one_line
from .checkpoint import model_from_state
from .config import TrainConfig, same_likelihood
from .parts import upgrade
from .run import Run
from .trainer import Trainer, rank_zero


def resume(run_dir, log: Callable[[str], None] = print, dataset: Optional[Dataset] = None,
           command: Optional[str] = None, epochs: Optional[int] = None, progress: Optional[bool] = None,
           cuda: Optional[bool] = None, distributed: Optional[bool] = None, threads: Optional[int] = None,
           on_epoch_end: Sequence[Callable] = (), likelihood=None, model=None) -> dict:
    """Continue the run in ``run_dir`` from its ``checkpoint.pt`` with its own settings
    (``epochs`` may raise the number of epochs; ``progress``, ``cuda``, ``distributed``
    and ``threads`` change only the display, the device, the number of processes and
    the number of CPU threads). A run trained on arrays given in Python needs them again as
    ``dataset``, one trained with a callable likelihood needs it again as ``likelihood``, and
    one of a user's own model class needs that class again as ``model``.
    Network weights, optimizer and schedule state, counters,
    history, the unfinished epoch and every random state come back, so the resumed run
    is the run that was interrupted."""
    with Run.open(run_dir, write=True, likelihood=likelihood, lock=rank_zero()) as run:
        state = run.resume_state()
        given = None if model is None else model_from_state(state, run.path("last"), model=model)
        return _resume(run, state, log, dataset, command, epochs, progress, cuda, distributed, threads,
                       on_epoch_end, likelihood, given)


def _resume(run, state, log, dataset, command, epochs, progress, cuda, distributed, threads, on_epoch_end,
            likelihood, given):
    try:
        config = TrainConfig.from_dict(state["config"])
    except TypeError as error:  # a setting the settings do not have, or of a wrong kind
        raise CheckpointError(f"{run.path('last')} holds settings pyrovae cannot use ({one_line(error, 120)}); "
                              "resume from an intact copy, or start a new run") from None
    if likelihood is not None:
        config.likelihood = same_likelihood(likelihood, config.likelihood)
    config.out = str(run.folder)
    if epochs is not None:
        _check_epochs(epochs, state, run.folder)
        config.epochs = epochs
    if progress is not None:
        config.progress = progress
    if cuda is not None:
        config.cuda = cuda
    if distributed is not None:
        config.distributed = distributed
    if threads is not None:
        config.threads = threads
    config.validate(new=False)  # settings it trained with once: none refused for this machine's memory
    return Trainer(config, log, dataset, command, run, resume_from=state, model=given).loop(on_epoch_end)


def _check_epochs(epochs, state: dict, folder) -> None:
    """Refuse an ``epochs`` to resume to that the run is already past: fewer than the epochs it
    has finished, or as many while it is inside the next one (its unfinished epoch would be lost)."""
    try:
        loop = upgrade(state)["loop"]
        done, inside = int(loop["epoch"]), loop.get("epoch_state") is not None
    except (KeyError, TypeError, ValueError, AttributeError):
        return  # a damaged checkpoint: its restore says so
    if isinstance(epochs, int) and not isinstance(epochs, bool) and (epochs < done or (epochs == done and inside)):
        at = f"has finished {done} epoch{'s' if done != 1 else ''}" + (f" and is inside epoch {done + 1}" if inside else "")
        raise ConfigError(f"{folder} {at}, past --epochs {epochs}, so resuming would train nothing; give --epochs "
                          f"above {done} to train more")
