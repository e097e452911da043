"""Files replaced whole or not at all, and held by one writer at a time: the mechanisms
behind every file pyrovae writes (a run's files through
:func:`pyrovae.training.files.atomic_write` and its folder's
:class:`~pyrovae.training.files.RunLock`, latents files through
:func:`pyrovae.infer.encoding.encode_dataset`).

Neither follows a symbolic link: :func:`replace_whole` creates its temporary file with
``O_CREAT | O_EXCL | O_NOFOLLOW`` (``tempfile.mkstemp``) and renames it over the path, which
replaces a link there instead of writing through it; :class:`Lock` opens its file with
``O_NOFOLLOW`` and refuses a link, anything but a regular file, and a file with other names
(a hard link), so a lock file planted in a folder received from someone else never makes
pyrovae write elsewhere."""
import errno
import fcntl
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, Callable, Optional, Union

from .errors import ConfigError, RunInUse, WriteError

#: errors of a folder that may not be written: a read-only file system, or no permission
UNWRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM)


def replace_whole(path: Union[str, Path], write: Callable[[Any], None], mode: str = "wb") -> None:
    """Write ``path`` through ``write(file)`` into a temporary file beside it, fsync it, move
    it into place with one ``os.replace`` and fsync the folder; on any error the temporary
    file is removed and ``path`` is left as it was (the error propagates). A symbolic link at
    ``path`` is replaced by the file, never written through."""
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
    the holder goes on unlocked; an exclusive holder that cannot create the file (a
    read-only file system, no permission) gets :class:`~pyrovae.errors.WriteError` with
    ``unwritable(reason)``. A ``path`` that is a symbolic link, not a regular file, or a
    file with other names (a hard link) is refused with :class:`~pyrovae.errors.ConfigError`
    before anything is written (the file is opened with ``O_NOFOLLOW``)."""

    def __init__(self, path: Union[str, Path], shared: bool = False,
                 busy: Optional[Callable[[str], str]] = None, unwritable: Optional[Callable[[str], str]] = None):
        self.path, self.shared = Path(path), shared
        self.busy = busy or (lambda holder: f"{self.path} is held by another process (pid {holder or 'unknown'})")
        self.unwritable = unwritable or (lambda reason: f"cannot create the lock file {self.path} ({reason}); "
                                                        "choose a writable place")
        self.fd = None

    def _open(self) -> Optional[int]:
        """The lock file, opened (made if missing) without following a link; None: a reader
        that may not create it."""
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(self.path, flags, 0o644)
        except OSError as error:
            if error.errno == errno.ELOOP or os.path.islink(self.path):
                raise ConfigError(not_own(self.path)) from None
            if error.errno == errno.ENAMETOOLONG:
                raise ConfigError(too_long(self.path)) from None
            if error.errno in UNWRITABLE:
                if self.shared:  # a reader of a folder it may not write: nobody can be writing it through us
                    return None
                raise WriteError(self.unwritable(f"{(error.strerror or str(error)).lower()}: {self.path}")) from None
            raise
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:
            os.close(fd)
            raise ConfigError(not_own(self.path))
        return fd

    def acquire(self) -> "Lock":
        while True:
            fd = self._open()
            if fd is None:
                return self
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
                same = os.stat(self.path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
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

    def check_free(self) -> None:
        """Refuse, as :meth:`acquire` would, while another process holds the lock exclusively,
        writing nothing: the file, where it exists, is opened read-only (never through a link,
        which is refused) and share-locked and unlocked at once."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise ConfigError(not_own(self.path)) from None
            return  # missing, or not readable: acquire() decides
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:
                raise ConfigError(not_own(self.path))
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunInUse(self.busy(os.read(fd, 32).decode(errors="replace").strip())) from None
            except OSError:  # a file system without flock
                pass
        finally:
            os.close(fd)  # closing drops the lock

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


def not_own(path: Union[str, Path]) -> str:
    """The refusal of a file that is not a regular file of its own at ``path``: a symbolic link
    (naming where it points), something other than a file, or a file with other names."""
    path = Path(path)
    try:
        info = os.lstat(path)
    except OSError:
        return f"{path} cannot be examined; remove it"
    if stat.S_ISLNK(info.st_mode):
        return (f"{path} is a symbolic link (to {os.readlink(path)}); pyrovae neither reads nor writes through links "
                "in the folders it writes: remove the link, or put the file itself in its place")
    if not stat.S_ISREG(info.st_mode):
        return f"{path} is not a regular file; remove it"
    return (f"{path} is a hard link (the file has {info.st_nlink} names); pyrovae never writes into a file another "
            "name shares: remove it")


def too_long(path: Union[str, Path]) -> str:
    """The refusal of a path the file system cannot hold, its long names shortened in the message."""
    path = Path(path)
    longest = max(len(part) for part in path.parts)
    shown = Path(*(part if len(part) <= 40 else f"{part[:24]}...{part[-8:]}" for part in path.parts))
    return (f"{shown} is too long for the file system (its longest name has {longest} characters; a name may have "
            "at most 255 bytes, a path 4096); choose a shorter name")


def check_name(path: Union[str, Path]) -> None:
    """Refuse, in one line, a path the file system cannot hold (a name over its length limit)."""
    try:
        os.lstat(path)
    except OSError as error:
        if error.errno == errno.ENAMETOOLONG:
            raise ConfigError(too_long(path)) from None
