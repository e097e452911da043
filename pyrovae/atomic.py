"""Files replaced whole or not at all: the one mechanism behind every file pyrovae writes
(a run's files through :func:`pyrovae.training.files.atomic_write`, latents files through
:func:`pyrovae.infer.encoding.encode_dataset`)."""
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Union


def replace_whole(path: Union[str, Path], write: Callable[[Any], None], mode: str = "wb") -> None:
    """Write ``path`` through ``write(file)`` into a temporary file beside it, fsync it, move
    it into place with one ``os.replace`` and fsync the folder; on any error the temporary
    file is removed and ``path`` is left as it was (the error propagates)."""
    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide results from other users
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
