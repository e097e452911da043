"""What every script does before the libraries load (standard library only, so it acts at once):
SIGTERM stops the program as Ctrl-C does, a stop while torch and Pyro load is one line, and
OpenMP's idle threads sleep (``OMP_WAIT_POLICY=PASSIVE``, unless the environment sets it).

``run("pyrovae.cli", "main")`` imports the program's function and calls it. Until the program
installs handlers of its own (a training run saves a checkpoint first), SIGINT and SIGTERM raise
``KeyboardInterrupt(signum)``; the command lines turn it into one line and exit status
128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM).

A process that torchrun started (one rank of ``--distributed``) ends with ``os._exit(0)`` once the
program has returned success: its files are written and its process group is destroyed by then, and the
interpreter's own teardown of libtorch's communication threads was seen to abort a rank that had
finished ("terminate called without an active exception", SIGABRT), which torchrun reports as a
failed run."""
import importlib
import os
import signal
import sys


def _interrupt(signum, frame):
    raise KeyboardInterrupt(signum)


def run(module: str, function: str) -> int:
    # OpenMP threads that wait for work sleep instead of spinning, unless the user says otherwise: on a machine
    # whose other cores are busy, spinning threads made two-thread PyTorch steps 5-60x slower (docs/performance.md)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupt)
    try:
        main = getattr(importlib.import_module(module), function)
    except KeyboardInterrupt as stop:  # nothing has run or been written
        signum = stop.args[0] if stop.args and isinstance(stop.args[0], int) else signal.SIGINT
        print(f"interrupted ({signal.Signals(signum).name}) while loading; nothing was run or written", file=sys.stderr)
        return 128 + signum
    code = main()
    if not code and "TORCHELASTIC_RUN_ID" in os.environ:  # a rank under torchrun that finished its work
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return code
