"""Errors a user can act on.

Every exception pyrovae raises for bad input derives from :class:`PyrovaeError`.
The command line prints its message as one line and exits non-zero; a traceback
is reserved for bugs in pyrovae itself.
"""


class PyrovaeError(Exception):
    """Base class: the message says what was wrong and what to do."""


class DataError(PyrovaeError, ValueError):
    """Data that a likelihood cannot score, or a data set that cannot be read."""


class ConfigError(PyrovaeError, ValueError):
    """A setting that is out of range or inconsistent with another one."""


class CheckpointError(PyrovaeError):
    """A checkpoint file that is missing, truncated, foreign or unsafe."""


def one_line(error: BaseException, limit: int = 200) -> str:
    """An exception's message folded onto one line (for messages that quote another error),
    at most ``limit`` characters, shortened at a word boundary so that no number or name
    is cut in two."""
    text = " ".join(str(error).split()) or type(error).__name__
    if len(text) <= limit:
        return text
    cut = text[: limit - 2]  # one more than fits: a word ending exactly at the limit stays whole
    cut = cut.rsplit(" ", 1)[0] if " " in cut else cut[:-1]
    return cut.rstrip(",;:") + "..."


class WriteError(PyrovaeError):
    """A file of a run could not be written (full disk, file size limit, read-only
    folder); the message names the reason, the file and the last good checkpoint."""


class RunInUse(PyrovaeError):
    """Another process holds the run folder's lock."""


class TrainingError(PyrovaeError):
    """Training cannot go on (for example the loss stopped being finite)."""


class Interrupted(PyrovaeError):
    """SIGINT or SIGTERM stopped a run after it saved a checkpoint; the message says how
    to resume. ``exit_code`` is the conventional 128 + signal number."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code
