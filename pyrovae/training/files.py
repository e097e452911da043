"""A run's files: every write goes through :func:`atomic_write`, the folder is held by
:class:`RunLock`, JSON is read back with :func:`read_json`.

:func:`atomic_write` writes a temporary ``.<name>.<random>.tmp`` in the same folder,
flushes, fsyncs and moves it over the file with ``os.replace``, so a crash leaves the old
file or the new one. A write the disk refuses (no space, ``ulimit -f``, a read-only folder)
becomes one :class:`~pyrovae.errors.WriteError` naming the reason, the file and the last
good checkpoint, instead of PyTorch's ``[enforce fail at inline_container.cc]``."""
import errno
import json
import os
import re
import resource
import stat
from pathlib import Path
from typing import Any, Callable, Iterable, Union

from ..atomic import Lock, check_name, not_own, replace_whole  # noqa: F401 (check_name: public here)
from ..errors import ConfigError, WriteError, one_line

#: the temporary files :func:`atomic_write` makes (mkstemp's 8 random characters)
TEMPORARY = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")

_REASONS = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
            errno.EFBIG: "file size limit exceeded", errno.EROFS: "read-only or not writable",
            errno.EACCES: "read-only or not writable", errno.EPERM: "read-only or not writable"}
#: what PyTorch's zip writer says when the file under it refuses a write
_TORCH_WRITER = ("inline_container", "PytorchStreamWriter", "unexpected pos", "file write failed")


def last_checkpoint(folder: Path) -> str:
    checkpoint = Path(folder) / "checkpoint.pt"
    return f"the last good checkpoint is {checkpoint}" if checkpoint.is_file() else "no checkpoint was written yet"


def _reason(error: BaseException, folder: Path) -> str:
    for cause in (error, error.__cause__, error.__context__):
        if isinstance(cause, OSError) and cause.errno is not None:
            return _REASONS.get(cause.errno, cause.strerror or one_line(cause, 120))
    # PyTorch's writer keeps no errno: tell from the folder and the limits
    try:
        if os.statvfs(folder).f_bavail == 0:
            return "no space left on device"
    except OSError:
        pass
    if resource.getrlimit(resource.RLIMIT_FSIZE)[0] != resource.RLIM_INFINITY:
        return "file size limit exceeded (ulimit -f)"
    if not os.access(folder, os.W_OK):
        return "read-only or not writable"
    return f"the write failed ({one_line(error, 120)})"


def _is_write_failure(error: BaseException) -> bool:
    return isinstance(error, OSError) or (isinstance(error, RuntimeError)
                                          and any(mark in str(error) for mark in _TORCH_WRITER))


def atomic_write(path: Union[str, Path], write: Callable[[Any], None], mode: str = "wb") -> None:
    """Write ``path`` through ``write(file)`` so it is replaced whole or not at all; a
    refused write raises :class:`~pyrovae.errors.WriteError`."""
    path = Path(path)
    try:
        replace_whole(path, write, mode)
    except Exception as error:
        if _is_write_failure(error):
            raise WriteError(f"{_reason(error, path.parent)} while writing {path}; "
                             f"{last_checkpoint(path.parent)}") from None
        raise


def write_json(path: Union[str, Path], obj: Any) -> None:
    atomic_write(path, lambda f: json.dump(obj, f, indent=2, sort_keys=False), mode="w")


def as_recorded(value: Any) -> Any:
    """``value`` as a JSON file records it (tuples as lists, other objects as their str): two
    settings compare equal exactly when their records do."""
    return json.loads(json.dumps(value, default=str))


def write_report(folder: Union[str, Path], stem: str, result: dict, text: str) -> Path:
    """A program's results as ``<folder>/<stem>.json`` (``result``) and ``<stem>.md`` (``text``), each
    written whole; the folder is made if needed. The path of the ``.md``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / f"{stem}.json", result)
    atomic_write(folder / f"{stem}.md", lambda f: f.write(text), mode="w")
    return folder / f"{stem}.md"


def read_json(path: Union[str, Path], keys: tuple = ()) -> dict:
    """A JSON object from ``path`` that has ``keys``, read without following a symbolic link;
    anything else is a :class:`~pyrovae.errors.ConfigError` in one line."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO: no wait
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise ConfigError(not_own(path)) from None
        raise ConfigError(f"{path} is not readable JSON ({one_line(error, 120)}); the run folder is damaged") from None
    try:
        with os.fdopen(fd, "rb") as f:
            value = json.loads(f.read().decode())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ConfigError(f"{path} is not readable JSON ({one_line(error, 120)}); "
                          "the run folder is damaged") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{path} holds a JSON {type(value).__name__}, not an object; the run folder is damaged")
    missing = [key for key in keys if key not in value]
    if missing:
        raise ConfigError(f"{path} has no {missing[0]!r} entry; the run folder is damaged")
    return value


def remove_stale_temporaries(folder: Union[str, Path]) -> int:
    """Delete the temporary files of writes that a crash interrupted (only names
    :func:`atomic_write` makes); their count."""
    stale = [p for p in Path(folder).glob(".*.tmp") if TEMPORARY.match(p.name) and p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def check_own_files(folder: Union[str, Path], names: Iterable[str], folders: Iterable[str] = ()) -> None:
    """Refuse, in one line, a folder whose entries ``names`` (files) or ``folders`` are symbolic
    links, or are not files (folders) where they exist: nothing is read or written through them."""
    folder = Path(folder)
    for name, kind in [*((n, stat.S_ISREG) for n in names), *((n, stat.S_ISDIR) for n in folders)]:
        try:
            info = os.lstat(folder / name)
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(info.st_mode) or not kind(info.st_mode):
            if kind is stat.S_ISDIR and not stat.S_ISLNK(info.st_mode):
                raise ConfigError(f"{folder / name} is not a folder; remove it")
            raise ConfigError(not_own(folder / name))


class RunLock(Lock):
    """The lock of a run folder, ``<folder>/.lock``: exclusive for a program that writes the
    run (training, resume, evaluation), shared for programs that only read it. A second
    writer, or a writer beside readers, gets :class:`~pyrovae.errors.RunInUse`; a writer on a
    read-only folder :class:`~pyrovae.errors.WriteError`; a ``.lock`` that is a link, or not a
    file of its own, :class:`~pyrovae.errors.ConfigError`. ``new_run``: the lock of a new
    run, whose refusal suggests another ``--out`` (the only program that has one)."""

    def __init__(self, folder: Union[str, Path], shared: bool = False, new_run: bool = False):
        folder = Path(folder)

        def busy(holder: str) -> str:
            if holder:  # an exclusive holder wrote its pid
                return (f"{folder} is in use by another run (pid {holder} holds {folder / '.lock'}); wait for it to "
                        "end" + (", or choose another --out" if new_run else ""))
            return f"{folder} is in use by another program reading it ({folder / '.lock'}); wait for it to end"

        def unwritable(reason: str) -> str:
            return (f"{folder} cannot be written ({reason}); a program that changes a run (--resume, evaluate.py) "
                    "writes into its folder: copy the folder to a writable place and use the copy")

        super().__init__(folder / ".lock", shared, busy, unwritable)
