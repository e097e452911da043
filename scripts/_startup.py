"""What every script does before the libraries load (standard library only, so it acts at once):
SIGTERM stops the program as Ctrl-C does, a stop while torch and Pyro load is one line, and
OpenMP's idle threads sleep (``OMP_WAIT_POLICY=PASSIVE``, unless the environment sets it).

``run("pyrovae.cli", "main")`` imports the program's function and calls it; a module of
``benchmarks`` (the benchmarks and paper tables, which are not installed with the package) is
imported from this clone, the folder above ``scripts/``. Until the program
installs handlers of its own (a training run saves a checkpoint first), SIGINT and SIGTERM raise
``KeyboardInterrupt(signum)``; the command lines turn it into one line and exit status
128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM). While the libraries load, a signal
ends the process at once with that line. Later it is raised only where no code of torch or Pyro
is below it (C++ that calls Python back may abort the process on an exception it cannot pass on,
"terminate called after throwing pybind11::error_already_set"): inside their code it waits until
their call returns. A signal after the program returned, while the interpreter exits, is one line and the
same exit status once the exit handlers have run.

A process that torchrun started (one rank of ``--distributed``) ends with ``os._exit(0)`` once the
program has returned success: its files are written and its process group is destroyed by then, and the
interpreter's own teardown of libtorch's communication threads was seen to abort a rank that had
finished ("terminate called without an active exception", SIGABRT), which torchrun reports as a
failed run."""
import atexit
import importlib
import os
import signal
import sys

#: the libraries whose Python code C++ calls back (a KeyboardInterrupt raised there may reach a C++
#: frame that cannot pass it on: "terminate called after throwing pybind11::error_already_set", SIGABRT)
_LIBRARIES = ("torch", "pyro", "torchvision", "functorch", "torchgen")
_pending = []  # the signal whose KeyboardInterrupt waits for a safe place, if any
_late = []  # a signal that came after the program returned
#: until the program's function is called nothing has run or been written: from this module's import by
#: one of the scripts beside it, and in :func:`run`
_loading = [os.path.dirname(os.path.abspath(sys.argv[0] if sys.argv and sys.argv[0] else ""))
            == os.path.dirname(os.path.abspath(__file__))]


def _library_dirs() -> tuple:
    dirs = []
    for name in _LIBRARIES:
        found = getattr(sys.modules.get(name), "__file__", None)  # set before the module's code runs
        if found:
            dirs.append(os.path.dirname(found) + os.sep)
    return tuple(dirs)


def _in_library(frame) -> bool:
    """Whether ``frame`` or a frame below it runs the code of a library that C++ calls back, or
    Python's warnings (which C++ calls to emit its warnings)."""
    dirs = _library_dirs()
    if frame is not None and frame.f_code.co_filename.endswith(os.sep + "warnings.py"):
        return True
    while frame is not None:
        if dirs and frame.f_code.co_filename.startswith(dirs):
            return True
        frame = frame.f_back
    return False


def _interrupt(signum, frame):
    """SIGINT and SIGTERM: while the libraries load, the line that says nothing was run and the
    exit (at once: nothing to save); then ``KeyboardInterrupt(signum)``, raised where the program's own
    Python code runs; inside the libraries' code it waits, checked again every 20 ms, until their call returns."""
    if signum == getattr(signal, "SIGALRM", None):  # the check again
        if not _pending:
            return
        signum = _pending[0]
    elif _pending:  # a second signal while the first waits: the first stands
        return
    if _loading[0]:  # the libraries load: nothing to save or remove, so the process ends here and now
        _loaded_line(signum)
        os._exit(128 + signum)
    if hasattr(signal, "setitimer") and _in_library(frame):
        if not _pending:
            _pending.append(signum)
            signal.signal(signal.SIGALRM, _interrupt)
        signal.setitimer(signal.ITIMER_REAL, 0.02)
        return
    _pending.clear()
    raise KeyboardInterrupt(signum)


def _after(signum, frame):
    """A signal once the program has returned: noted, acted on by :func:`_exit_after` at the very end."""
    if not _late:
        _late.append(signum)


def _exit_after() -> None:
    """The last exit handler to run: a signal that came while the program exited ends it with one line
    and 128 + its number, after the other exit handlers ran undisturbed."""
    if _late:
        sys.stdout.flush()
        print(f"interrupted ({signal.Signals(_late[0]).name}) while exiting; the program had finished its work",
              file=sys.stderr, flush=True)
        os._exit(128 + _late[0])


def _install() -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupt)


_install()  # at once: the script imports this module first


def run(module: str, function: str) -> int:
    # OpenMP threads that wait for work sleep instead of spinning, unless the user says otherwise: on a machine
    # whose other cores are busy, spinning threads made two-thread PyTorch steps 5-60x slower (docs/performance.md)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    atexit.register(_exit_after)  # registered first, so it runs last
    if module.split(".")[0] == "benchmarks":
        # benchmarks/ is not installed with pyrovae: it is importable only from a clone. Its folder, the parent
        # of scripts/, goes right after scripts/ (sys.path[0]), so a benchmark imports this clone's benchmarks
        # and times this clone's pyrovae, even where another pyrovae is installed
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        if root not in sys.path:
            sys.path.insert(1, root)
    _loading[0] = True
    _install()
    try:
        main = getattr(importlib.import_module(module), function)
    except KeyboardInterrupt as stop:  # nothing has run or been written
        _quiet()
        signum = stop.args[0] if stop.args and isinstance(stop.args[0], int) else signal.SIGINT
        _loaded_line(signum)
        return 128 + signum
    _loading[0] = False
    try:
        code = main()
    finally:
        _quiet()
    if not code and "TORCHELASTIC_RUN_ID" in os.environ:  # a rank under torchrun that finished its work
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return code


def _loaded_line(signum: int) -> None:
    sys.stdout.flush()
    print(f"interrupted ({signal.Signals(signum).name}) while loading; nothing was run or written", file=sys.stderr,
          flush=True)


def _quiet() -> None:
    """From here on a signal is noted (:func:`_after`), never raised: the program has returned."""
    if hasattr(signal, "setitimer"):
        signal.setitimer(signal.ITIMER_REAL, 0)
    _pending.clear()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _after)
