"""What every script does before the libraries load (standard library only, so it acts at once):
SIGTERM stops the program as Ctrl-C does, and a stop while torch and Pyro load is one line.

``run("pyrovae.cli", "main")`` imports the program's function and calls it. Until the program
installs handlers of its own (a training run saves a checkpoint first), SIGINT and SIGTERM raise
``KeyboardInterrupt(signum)``; the command lines turn it into one line and exit status
128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM)."""
import importlib
import signal
import sys


def _interrupt(signum, frame):
    raise KeyboardInterrupt(signum)


def run(module: str, function: str) -> int:
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupt)
    try:
        main = getattr(importlib.import_module(module), function)
    except KeyboardInterrupt as stop:  # nothing has run or been written
        signum = stop.args[0] if stop.args and isinstance(stop.args[0], int) else signal.SIGINT
        print(f"interrupted ({signal.Signals(signum).name}) while loading; nothing was run or written", file=sys.stderr)
        return 128 + signum
    return main()
