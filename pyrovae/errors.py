"""Errors a user can act on.

Every exception pyrovae raises for bad input derives from :class:`PyrovaeError`.
The command line prints its message as one line and exits non-zero; a traceback
is reserved for bugs in pyrovae itself. The checks of the built-in likelihoods', priors' and
guides' keyword options live here too (:func:`check_names`, :func:`count`), so that each of
those modules needs nothing else of the package.
"""
import inspect
import math
from typing import Iterable


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


def brief(value, limit: int = 60) -> str:
    """``repr(value)`` for a message, at most ``limit`` characters, built without walking all of
    a large or deeply nested value (a parsed file's lists may share one another many times over)."""
    import reprlib

    shown = reprlib.Repr()
    shown.maxlevel, shown.maxstring, shown.maxother = 3, limit, limit
    shown.maxlist = shown.maxtuple = shown.maxdict = shown.maxset = 6
    text = shown.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class CustomModelError(CheckpointError):
    """A checkpoint of a model of a user's own class, read without that class (``where``: the
    file). The message asks a Python caller for the class; :meth:`for_command` says what a
    command-line user can do instead, since no flag can give a class."""

    def __init__(self, where: str):
        self.where = where
        super().__init__(f"{where} holds a model of a user's own class, which a checkpoint cannot hold; "
                         "pass model=<that class> to load it")

    def for_command(self, program: str, python: str) -> str:
        """The refusal for ``program`` (e.g. ``evaluate.py``), naming the Python call ``python``
        that does its job with the class given again (``{checkpoint}`` in it: this file)."""
        python = python.replace("{checkpoint}", repr(str(self.where)))
        return (f"{self.where} holds a model of a user's own class, which a checkpoint cannot hold and {program} "
                f"cannot rebuild; run it from Python, where the class can be given: {python}")


def check_names(what: str, cls: type, options: dict, fixed: Iterable[str] = ()) -> None:
    """Refuse an option of ``options`` that ``cls.__init__`` does not take (``fixed``: arguments
    the caller passes itself, not options), naming ``what`` (e.g. ``the gaussian likelihood``)
    and the options it takes."""
    parameters = inspect.signature(cls.__init__).parameters.values()
    names = [p.name for p in parameters if p.name != "self" and p.name not in fixed
             and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for key in options:
        if key not in names:
            raise ConfigError(f"{what} takes no option named {brief(key)}; "
                              + (f"its options are {', '.join(names)}" if names else "it takes no options"))


def is_number(value) -> bool:
    """A real number (an int or a float, not a boolean)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def count(what: str, value) -> int:
    """``value`` as a positive whole number (``10.0`` is 10); anything else, NaN and infinity
    included, is refused naming ``what``."""
    if not (is_number(value) and math.isfinite(value) and value == int(value) and value >= 1):
        raise ConfigError(f"{what} must be a positive integer, got {brief(value)}")
    return int(value)


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
