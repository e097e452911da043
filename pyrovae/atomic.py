"""Files replaced whole or not at all, and held by one writer at a time: the mechanisms
behind every file pyrovae writes (a run's files through
:func:`pyrovae.training.files.atomic_write` and its folder's
:class:`~pyrovae.training.files.RunLock`, latents files through
:func:`pyrovae.infer.encoding.encode_dataset`)."""
import fcntl
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Optional, Union

from .errors import RunInUse


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


class Lock:
    """An ``fcntl.flock`` on the file ``path`` for as long as it is held: exclusive (one
    holder, whose pid the file holds) or ``shared`` (any number of readers, no writer). A
    holder the lock refuses gets :class:`~pyrovae.errors.RunInUse` with ``busy(holder)``,
    a message naming the pid of an exclusive holder. The kernel drops the lock when its
    process dies, so a killed holder frees it at once; the file is removed on release by
    the last holder. On a file system without flock, or a folder a reader may not write,
    the holder goes on unlocked."""

    def __init__(self, path: Union[str, Path], shared: bool = False,
                 busy: Optional[Callable[[str], str]] = None):
        self.path, self.shared = Path(path), shared
        self.busy = busy or (lambda holder: f"{self.path} is held by another process (pid {holder or 'unknown'})")
        self.fd = None

    def acquire(self) -> "Lock":
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError:
                if self.shared:  # a reader of a folder it may not write: nobody can be writing it through us
                    return self
                raise
            try:
                fcntl.flock(fd, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode(errors="replace").strip()
                os.close(fd)
                raise RunInUse(self.busy(holder)) from None
            except OSError:  # a file system without flock: go on unlocked
                os.close(fd)
                return self
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:  # not a file its last holder removed while we opened it
                break
            os.close(fd)
        if not self.shared:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            if self.shared:  # the last reader removes the file: only when no one else holds it
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self.path.unlink(missing_ok=True)
        except OSError:
            pass  # another reader still holds it: it stays
        finally:
            os.close(self.fd)  # closing drops the lock
            self.fd = None

    def __enter__(self) -> "Lock":
        return self.acquire()

    def __exit__(self, *exc) -> bool:
        self.release()
        return False
