"""What a run folder holds: the files and folders a run writes, and the checks that keep a new
run from replacing them (:func:`check_new`); the folders a failed start made, found before it
starts (:func:`first_missing`) and removed after (:func:`remove_made`). Used by
:class:`~pyrovae.training.run.Run` and by every program that writes a folder of its own."""
import os
from pathlib import Path
from typing import Optional

from ..errors import ConfigError

#: the files a training run writes into its folder (figures included): a folder holding any of them, or
#: :data:`RUN_FOLDERS`, holds a run, or files of its user's that a run would overwrite (:func:`check_new`)
RUN_FILES = ("config.json", "metrics.json", "checkpoint.pt", "best.pt", "elbo_curves.png", "reconstructions.png",
             "samples.png", "kl_per_dim.png")
#: the folders a training run writes into its folder
RUN_FOLDERS = ("tensorboard",)
#: of those, the files of a run that has trained (a folder with ``config.json`` alone: a run that stopped before
#: its first checkpoint)
RECORD_FILES = ("checkpoint.pt", "best.pt", "metrics.json")
#: the files some program reads or writes in a run folder: the run's own, its lock, ``ssl_table.py``'s baseline
#: and ``plot_latent.py``'s figures; none of them may be a symbolic link
OWN_FILES = RUN_FILES + (".lock", "baseline.json", "latent.png", "manifold.png", "interpolations.png", "traversals.png")


def check_new(folder: Path) -> None:
    """Refuse a folder that holds a run, or a file a run writes (see :meth:`~pyrovae.training.run.Run.create`)."""
    present = [name for name in RUN_FILES + RUN_FOLDERS if os.path.lexists(folder / name)]
    if not present:
        return
    if set(present) & set(RECORD_FILES):
        listed = ", ".join(name for name in present if name in ("config.json", *RECORD_FILES))
        raise ConfigError(f"{folder} already holds a run ({listed}); a new run never replaces one: continue it with "
                          f"--resume {folder}, or give a new --out")
    if "config.json" in present:
        raise ConfigError(f"{folder} holds a run that stopped before its first checkpoint (config.json, no "
                          "checkpoint.pt); a new run never replaces one: remove that folder, or give a new --out")
    raise ConfigError(f"{folder} holds {present[0]}, which a run writes; a new run never replaces it: give a new "
                      "--out, or move that file away")


def first_missing(folder: Path) -> Optional[Path]:
    """The outermost folder of ``folder``'s path that does not exist yet (None: it exists)."""
    missing, path = None, folder.absolute()
    while not path.exists():
        missing, path = path, path.parent
    return missing


def remove_made(folder: Path, made: Optional[Path]) -> None:
    """Remove the folders from ``folder`` up to ``made`` that a failed start made, where empty."""
    if made is None:
        return
    path = folder.absolute()
    while True:
        try:
            path.rmdir()
        except OSError:
            return
        if path == made or path == path.parent:
            return
        path = path.parent
