"""SIGINT and SIGTERM at any moment end a program in its one line and 128 + the signal's number:
inside torch's own Python code (which C++ may have called, and where an exception could abort the
process) the KeyboardInterrupt waits until torch's call returns; after the program has returned,
while the interpreter exits, the exit handlers run undisturbed and one line follows."""
import signal
import subprocess
import sys
import textwrap
import time

from helpers import ROOT

DRIVER = "import sys; sys.path.insert(0, {scripts!r}); from _startup import run; sys.exit(run('prog', 'main'))"

INSIDE_TORCH = textwrap.dedent("""
    import os, signal, time
    import torch

    def main():
        events = []

        def hook(module, args):  # runs inside torch's Module.__call__
            os.kill(os.getpid(), signal.SIGINT)
            start = time.monotonic()
            while time.monotonic() - start < 0.3:  # Python work inside torch's call
                pass
            events.append("hook done")

        layer = torch.nn.Linear(2, 2)
        layer.register_forward_pre_hook(hook)
        try:
            layer(torch.zeros(1, 2))
            events.append("forward returned")
            start = time.monotonic()
            while time.monotonic() - start < 5:
                pass
            events.append("never interrupted")
        except KeyboardInterrupt as stop:
            events.append(f"interrupted {stop.args}")
        print(", ".join(events))
        return 0
""")

AT_EXIT = textwrap.dedent("""
    import atexit, os, signal, time

    def cleanup():  # an exit handler that a signal interrupts
        os.kill(os.getpid(), signal.{name})
        start = time.monotonic()
        while time.monotonic() - start < 0.3:
            pass
        print("cleanup done", flush=True)

    def main():
        atexit.register(cleanup)
        print("work done", flush=True)
        return 0
""")


def run_program(tmp_path, source, timeout=60):
    (tmp_path / "prog.py").write_text(source)
    return subprocess.run([sys.executable, "-c", DRIVER.format(scripts=str(ROOT / "scripts"))], cwd=tmp_path,
                          capture_output=True, text=True, timeout=timeout)


def test_a_signal_inside_torchs_code_is_raised_once_torchs_call_returns(tmp_path):
    result = run_program(tmp_path, INSIDE_TORCH)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"hook done, forward returned, interrupted ({int(signal.SIGINT)},)"


def test_a_signal_while_the_program_exits_is_one_line_after_the_exit_handlers(tmp_path):
    for name, code in (("SIGINT", 130), ("SIGTERM", 143)):
        result = run_program(tmp_path, AT_EXIT.format(name=name))
        assert result.returncode == code, result.stderr
        assert result.stdout.splitlines() == ["work done", "cleanup done"]
        assert result.stderr.splitlines() == [f"interrupted ({name}) while exiting; the program had finished its work"]


def test_sigint_at_any_moment_of_a_start_is_one_line(tmp_path):
    """Ctrl-C at moments spread over the loading of torch and Pyro and the start of the program (from
    0.3 s: the interpreter's own start, before the script's first line, is Python's)."""
    command = [sys.executable, str(ROOT / "scripts" / "svi_train.py"), "--help"]
    for delay in (0.3, 0.5, 0.7, 0.8, 0.9, 1.0, 1.3):
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
        if process.returncode == 0:  # it had finished
            continue
        assert process.returncode == 130 and len(err.strip().splitlines()) == 1, (delay, process.returncode, err)
        assert err.startswith("interrupted (SIGINT)"), (delay, err)
