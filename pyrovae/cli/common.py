"""What every command line shares: the parser that answers bad flags in one line, the
command recorded with a run, and :func:`guarded`, which turns bad input into one
``error:`` line and exit status 2."""
import argparse
import errno
import os
import re
import shlex
import signal
import sys
from pathlib import Path
from typing import Callable, List, Optional, Tuple

import torch

from ..atomic import too_long
from ..errors import CustomModelError, Interrupted, PyrovaeError, one_line
from ..training.files import last_checkpoint


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's defaults in the help, except where they would read wrong: on-off flags
    (the flag's presence is the setting), None (no value), and help that states its own
    default."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.nargs == 0 or action.default is None or "default" in text:
            return text
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not argparse's usage block
        self.exit(2, f"error: {message} (see --help)\n")


def _threads_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads for PyTorch, torch.set_num_threads(N) (default: PyTorch's own choice); on a "
                        "shared, loaded 2-core machine 1 thread was measured 3x faster per epoch than 2")


def _checkpoint_flag(p: argparse.ArgumentParser, choices: Tuple[str, ...] = ("best", "last")) -> None:
    p.add_argument("--checkpoint", choices=choices, default=None,
                   help="best.pt (the best epoch by the validation ELBO) or checkpoint.pt (the last); "
                        "default: best.pt where the run kept one")


def _run_dir_parser(description: str) -> argparse.ArgumentParser:
    p = _Parser(description=description, formatter_class=_Help)
    p.add_argument("run_dir", help="a folder written by scripts/svi_train.py")
    p.add_argument("--cuda", action="store_true", help="compute on the GPU")
    _threads_flag(p)
    return p


def _set_threads(p: argparse.ArgumentParser, threads: Optional[int]) -> None:
    """``torch.set_num_threads(threads)`` unless None; a non-positive count is refused."""
    if threads is not None:
        if threads <= 0:
            p.error(f"--threads must be a positive integer, got {threads}")
        torch.set_num_threads(threads)


def _command(script: str, argv: Optional[List[str]]) -> str:
    return shlex.join(["python", script, *map(str, sys.argv[1:] if argv is None else argv)])


def _guarded(job: Callable[[], None], out: str, python: Optional[Tuple[str, str]] = None) -> int:
    """Run ``job``; bad input becomes one ``error:`` line and exit status 2, a signal one
    line saying how to resume and 128 + its number. ``python``: (the program, the Python call
    that does its job) for a run of a user's own model class, which no flag can give. Under torchrun a signal reaches every rank and
    rank 0 alone says so; a refusal is said by every rank that refuses (a rank that refuses and
    exits first gets the others stopped by torchrun, perhaps before rank 0 has said anything). A path
    too long for the file system, or a write refused by a read-only file system, that no check before
    it caught is one line and exit status 2 too."""
    say = (lambda line: print(line, file=sys.stderr)) if os.environ.get("RANK", "0") == "0" else (lambda line: None)
    refuse = lambda line: print(line, file=sys.stderr)  # noqa: E731
    try:
        job()
    except Interrupted as stop:
        say(str(stop))
        return stop.exit_code
    except CustomModelError as error:
        refuse(f"error: {error.for_command(*python) if python else error}")
        return 2
    except PyrovaeError as error:
        refuse(f"error: {error}")
        return 2
    except OSError as error:
        if error.errno == errno.ENAMETOOLONG and error.filename:
            refuse(f"error: {too_long(error.filename)}")
        elif error.errno == errno.EROFS:
            refuse(f"error: {error.filename or 'a file'} cannot be written (read-only file system); choose a "
                   "writable place")
        else:
            raise
        return 2
    except (MemoryError, RuntimeError) as error:
        if not _out_of_memory(error):
            raise
        refuse(f"error: out of memory ({_allocation(error)}); lower --batch-size, --num-particles or the network sizes; "
            + last_checkpoint(Path(out)))
        return 2
    except KeyboardInterrupt as stop:  # SIGINT, or SIGTERM before a run set its own handlers (scripts/_startup.py)
        signum = stop.args[0] if stop.args and isinstance(stop.args[0], int) else signal.SIGINT
        say(f"interrupted ({signal.Signals(signum).name}); {last_checkpoint(Path(out))}")
        return 128 + signum
    return 0


def _allocation(error: BaseException) -> str:
    """What an out-of-memory error tried: the size it names, whole, else its message
    shortened at a word boundary."""
    size = re.search(r"allocate (?:memory: you tried to allocate )?(\d[\d.,]*(?: ?(?:bytes|[KMGTP]i?B))?)", str(error))
    return f"tried to allocate {size.group(1)}" if size else one_line(error, 120)


def _out_of_memory(error: BaseException) -> bool:
    return (isinstance(error, (MemoryError, torch.OutOfMemoryError))
            or "can't allocate memory" in str(error) or "out of memory" in str(error))


