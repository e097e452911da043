"""The code blocks of the README and of every page under docs/ run as a reader runs them: each
page's shell (```bash, ```sh, ```console) and ```python blocks, in the order the page gives
them, in a fresh folder of their own that holds nothing but ``scripts/`` (a link to the
repository's), with the package importable and ``python`` meaning this interpreter. A
command ``python scripts/NAME.py ARGS`` (plain words, nothing for a shell to expand) and each
run of Python blocks is a process forked from one that has loaded torch, Pyro and the package
(``SERVER``), so that each costs its own work and not the seconds of those imports; any other
command runs under bash.

Every fence says what it holds: a block that is not a command (an output sample, a file's
contents, a tree) has another info string (```text, ```yaml); ```yaml file=NAME is a file
the page shows, written to NAME for the commands after it. Consecutive ```python blocks run
in one interpreter, one after the other, as a reader's session does; a ```python block after
a shell block starts a new one.

Two tables say what the test changes, and why: ``SKIPPED`` names the commands that need what
the suite cannot have (each with its reason, shown in the test's output), and ``TINY`` the
flags it sets to small values, because the docs' trainings are real ones (100 epochs over
every row) and this test must take seconds. The flags and the order of the commands are
otherwise the page's own."""
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import helpers

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.S | re.M)
SHELL = {"bash", "sh", "shell", "console"}
PYTHON = {"python"}
NOT_RUN = {"text", "yaml", "json", "toml"}  # output samples, files' contents, trees
TIMEOUT = 600  # seconds for one command or one run of Python blocks

#: commands the suite cannot run, by a pattern of the command (after ``make run`` became its
#: svi_train.py command), with the reason shown in the test's output
SKIPPED = {
    r"^torchrun\b": "starts several processes under torchrun (tests/infer/test_distributed.py launches them)",
    r"^make test\b": "runs this test suite itself",
    r"^python3 -m venv|\bpip install\b": "installs packages from the network; the suite runs in an environment "
                                        "that has them",
    r"--cuda\b|gpu_check\.sh": "needs a CUDA GPU (tests/test_cuda.py holds the GPU's tests)",
    r"\bDATA_DIR\b|RUN_DIR|\.\.\.|\[--": "a synopsis: placeholders for the reader's own folders and flags",
    r"--dataset (fashion-mnist|binarized-mnist|mnist-test|cifar10|svhn|kmnist|emnist-letters|celeba)\b":
        "needs a data set downloaded on a connected machine; the suite runs offline",
    r"\bmy_photos/": "a placeholder for the reader's own folder of images",
    r"\b(runs/nll|results/ssl)/": "works on the run of a training above that is skipped",
}


def _explorer_runtime_missing() -> bool:
    """Whether the explorer page's runtime is neither in the user's cache nor fetchable here (no npm)."""
    return shutil.which("npm") is None and not (helpers.USER_RUNTIME and helpers.USER_RUNTIME.is_dir())


if _explorer_runtime_missing():
    SKIPPED[r"\bscripts/explore\.py\b"] = "needs onnxruntime-web, which is not in the cache and npm is not installed"

#: ``make run`` is ``.venv/bin/python scripts/svi_train.py $ARGS`` after it made the environment
MAKE_RUN = re.compile(r'^make run(?: ARGS="([^"]*)")?$')

def epochs(n):
    """A page's number of epochs (the default 100 where none is given) as a small one, in the
    same order: 100 -> 4, 120 -> 5, so that ``--resume --epochs`` still trains on."""
    return str(math.ceil(int(100 if n is None else n) / 25))


#: the flags this test sets small, per program, because the pages' trainings and scores are real
#: ones: given flags get a small value, missing ones are added; a value is a function of the
#: page's value (None: the page gives none; a function returning None adds nothing)
TINY = {
    "svi_train": {"--epochs": epochs, "--train-limit": lambda n: "100", "--test-limit": lambda n: "50"},
    "svi_train --resume": {"--epochs": lambda n: None if n is None else epochs(n)},
    "evaluate": {"--num-samples": lambda k: str(min(int(k or 5000), 20))},
    "encode": {"--num-samples": lambda k: None if k is None else str(min(int(k), 10))},
}
COMMAND = re.compile(r"^(?:\.venv/bin/)?python scripts/(\w+)\.py\b")


@dataclass
class Block:
    number: int  # 1 = the page's first fence
    line: int
    info: str
    code: str

    @property
    def language(self) -> str:
        return self.info.split()[0] if self.info.split() else ""

    @property
    def file(self):
        """The NAME of ```yaml file=NAME: the page shows a file that later commands read."""
        found = re.search(r"\bfile=(\S+)", self.info)
        return found.group(1) if found else None


def blocks(page: Path) -> list:
    text = page.read_text(encoding="utf-8")
    return [Block(i, text.count("\n", 0, m.start()) + 1, m.group(1).strip(), m.group(2))
            for i, m in enumerate(FENCE.finditer(text), start=1)]


def _without_comment(line: str) -> str:
    """``line`` up to a ``#`` that starts a shell comment (outside quotes, after a blank)."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def shell_commands(block: Block) -> list:
    """The commands of a shell block, continuation lines joined, comments dropped
    (```console: the lines after ``$ ``)."""
    lines = block.code.splitlines()
    if block.language == "console":
        lines = [line[2:] for line in lines if line.startswith("$ ")]
    joined = re.sub(r"[ \t]*\\\n\s*", " ", "\n".join(lines))
    return [c for c in (_without_comment(line).strip() for line in joined.splitlines()) if c]


def skip_reason(command: str):
    return next((reason for pattern, reason in SKIPPED.items() if re.search(pattern, command)), None)


def tiny(command: str) -> str:
    """``command`` with the flags of ``TINY`` set small (given ones replaced, missing ones added)."""
    found = COMMAND.match(command)
    if not found:
        return command
    words = shlex.split(command)
    program = found.group(1) + (" --resume" if "--resume" in words else "")
    for flag, value in TINY.get(program, {}).items():
        if flag in words:
            i = words.index(flag) + 1
            words[i] = value(words[i])
        elif not (flag == "--epochs" and "--config" in words):  # a config file gives its own epochs
            new = value(None)
            if new is not None:
                words += [flag, new]
    return " ".join(w if re.fullmatch(r"[\w@%+=:,./*?-]+", w) else shlex.quote(w) for w in words)  # globs stay globs


def plan(page: Path) -> list:
    """(block, what, detail) in the page's order: what is ``run`` (detail: the command as run),
    ``python`` (the block's code), ``file`` (its name), or ``skip`` (detail: the reason)."""
    steps = []
    for block in blocks(page):
        if block.language in SHELL:
            for command in shell_commands(block):
                make = MAKE_RUN.match(command)
                if make:
                    command = f"python scripts/svi_train.py {make.group(1) or ''}".strip()
                reason = skip_reason(command)
                steps.append((block, "skip", f"{command}: {reason}") if reason else (block, "run", tiny(command)))
        elif block.language in PYTHON:
            steps.append((block, "python", block.code))
        elif block.file:
            steps.append((block, "file", block.file))
    return steps


#: the process every command of a program and every run of Python blocks starts from: it loads the
#: libraries once, then for each request (a line of JSON on stdin) forks a child that takes the page's
#: folder and environment, sends its output to a file and runs ``python scripts/NAME.py ARGS`` as that
#: command does (the script as ``__main__``) or the blocks in one namespace; the child's exit status
#: (a failed block: its number) is the reply. A fork is a new process with nothing of the previous
#: commands in it, as a reader's new ``python`` is, without the seconds of importing torch each time.
SERVER = r"""
import atexit, json, os, runpy, signal, sys, time, traceback
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as scripts/_startup.py sets it before the libraries load
import matplotlib.pyplot, onnxruntime, pyro, sklearn.datasets, torch, torchvision.datasets  # loaded once; every child has them
import pyrovae.cli, pyrovae.analysis.encode, pyrovae.analysis.evaluate, pyrovae.analysis.plot_latent, pyrovae.export

def child(request):
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    out = os.open(request["out"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    code = 0
    try:
        if request["kind"] == "script":
            sys.argv = list(request["argv"])
            sys.path[0] = os.path.dirname(os.path.abspath(sys.argv[0]))
            try:
                runpy.run_path(sys.argv[0], run_name="__main__")
            except SystemExit as end:
                if isinstance(end.code, str):
                    print(end.code, file=sys.stderr)
                code = end.code if isinstance(end.code, int) else int(end.code is not None)
        else:
            sys.argv = ["-c"]
            namespace = {"__name__": "__main__", "__builtins__": __builtins__}
            for number, text in request["blocks"]:
                print(f"--- block {number}", flush=True)
                try:
                    exec(compile(text, f"<block {number}>", "exec"), namespace)
                except BaseException:
                    traceback.print_exc()
                    code = number
                    break
    except BaseException:
        traceback.print_exc()
        code = 1
    try:
        atexit._run_exitfuncs()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

for line in sys.stdin:
    request = json.loads(line)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        try:
            child(request)
        finally:
            os._exit(1)
    deadline = time.monotonic() + request["timeout"]
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            code = "timed out"
            break
        time.sleep(0.01)
    print(json.dumps(code), flush=True)
"""

#: a command the server runs: a program of scripts/ with plain words (no quotes, globs, redirections
#: or variables, which only a shell would read); any other command runs under bash
PLAIN = re.compile(r"(?:\.venv/bin/)?python scripts/\w+\.py(?: [\w@%+=:,./-]+)*")


class Server:
    """The forking process of ``SERVER``, started once for this module's tests."""

    def __init__(self):
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
               "MPLBACKEND": "Agg"}
        self.process = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True, env=env, cwd=ROOT)

    def run(self, request: dict):
        """The exit status of the child that ran ``request`` (or "timed out")."""
        self.process.stdin.write(json.dumps({**request, "timeout": TIMEOUT}) + "\n")
        self.process.stdin.flush()
        reply = self.process.stdout.readline()
        assert reply, f"the command server ended (exit status {self.process.poll()}); see its output above"
        return json.loads(reply)

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=60)


@pytest.fixture(scope="module")
def server():
    started = Server()
    yield started
    started.close()


def environment(tmp_path: Path) -> dict:
    """The environment of every command: ``python`` (and ``.venv/bin/python``) is this
    interpreter, the package is importable, and a download fails at once (a proxy no one
    listens on) so that a page's program takes its offline path."""
    shims = tmp_path / "bin"
    shims.mkdir()
    for name in ("python", "python3"):
        (shims / name).write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
        (shims / name).chmod(0o755)
    closed = "http://127.0.0.1:9"
    return {**os.environ, "PATH": f"{shims}{os.pathsep}{os.environ.get('PATH', '')}", "PYTHONPATH": str(ROOT),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "MPLBACKEND": "Agg",
            "http_proxy": closed, "https_proxy": closed, "HTTP_PROXY": closed, "HTTPS_PROXY": closed,
            "no_proxy": "", "NO_PROXY": ""}


def run_page(page: Path, tmp_path: Path, server: Server) -> list:
    """Runs the page's plan in a fresh folder; returns the skipped commands with their reasons."""
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "scripts").symlink_to(ROOT / "scripts", target_is_directory=True)
    (folder / ".venv" / "bin").mkdir(parents=True)
    env = environment(tmp_path)
    (folder / ".venv" / "bin" / "python").symlink_to(tmp_path / "bin" / "python")
    name = page.relative_to(ROOT).as_posix()
    skipped, pending = [], []
    output = tmp_path / "output.txt"

    def fail(block, what, text):
        pytest.fail(f"{name}, block {block.number} (line {block.line}): {what} failed:\n{text[-4000:]}",
                    pytrace=False)

    def forked(request: dict):
        """The exit status and output of ``request`` run by the server in the page's folder."""
        output.write_text("")
        status = server.run({**request, "cwd": str(folder), "env": env, "out": str(output)})
        return status, output.read_text(errors="replace")

    def flush_python():
        if not pending:
            return
        status, text = forked({"kind": "python", "blocks": [(b.number, b.code) for b in pending]})
        if status:
            failed = next((b for b in pending if b.number == status), pending[-1])
            fail(failed, "its Python", text)
        pending.clear()

    for block, what, detail in plan(page):
        if what == "python":
            pending.append(block)
            continue
        flush_python()
        if what == "skip":
            skipped.append(f"block {block.number}: {detail}")
        elif what == "file":
            (folder / detail).write_text(block.code)
        elif PLAIN.fullmatch(detail):
            status, text = forked({"kind": "script", "argv": detail.split()[1:]})
            if status:
                fail(block, f"`{detail}` (exit status {status})", text)
        else:
            result = subprocess.run(["bash", "-c", detail], cwd=folder, env=env, capture_output=True, text=True,
                                    timeout=TIMEOUT)
            if result.returncode:
                fail(block, f"`{detail}` (exit status {result.returncode})", result.stdout + result.stderr)
    flush_python()
    return skipped


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_fence_says_what_it_holds(page):
    unknown = [f"block {b.number} (line {b.line}): ```{b.info}" for b in blocks(page)
               if b.language not in SHELL | PYTHON | NOT_RUN]
    assert unknown == [], "give each fence an info string: bash/python to be run, text/yaml for what is not a command"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_the_code_blocks_of_a_page_run_in_order_from_a_clean_folder(page, tmp_path, server, request):
    steps = plan(page)
    if not any(what in ("run", "python") for _, what, _ in steps):
        reasons = [f"block {b.number}: {d}" for b, what, d in steps if what == "skip"]
        pytest.skip("; ".join(reasons) or "no code to run")
    if any(what == "run" and "scripts/explore.py" in d for _, what, d in steps):
        request.getfixturevalue("with_explorer_runtime")  # in the page's cache folder: its commands fetch nothing
    skipped = run_page(page, tmp_path, server)
    print("\n".join(["skipped:", *skipped]) if skipped else "nothing skipped")  # shown by pytest -rP


def test_the_tables_are_used_and_do_what_they_say():
    """Every pattern of SKIPPED names a command of some page, and the rewriting keeps the
    pages' flags and order while making the trainings small."""
    commands = [d for page in PAGES for _, what, d in plan(page) if what == "skip"]
    for pattern in SKIPPED:
        assert any(re.search(pattern, c.split(": ")[0]) for c in commands), f"no command is skipped by {pattern!r}"
    assert tiny("python scripts/svi_train.py --z-dim 2 --out runs/x") == \
        "python scripts/svi_train.py --z-dim 2 --out runs/x --epochs 4 --train-limit 100 --test-limit 50"
    assert tiny(".venv/bin/python scripts/svi_train.py --resume runs/x --epochs 120") == \
        ".venv/bin/python scripts/svi_train.py --resume runs/x --epochs 5"
    assert tiny("python scripts/evaluate.py runs/x --num-samples 5000") == \
        "python scripts/evaluate.py runs/x --num-samples 20"
    assert tiny("ls runs") == "ls runs"
    code = "x = 1  # a comment\n"
    block = Block(1, 1, "bash", "python scripts/a.py \\\n    --b 'c # d'   # e\n# f\necho '#'\n")
    assert shell_commands(block) == ["python scripts/a.py --b 'c # d'", "echo '#'"]
    assert Block(1, 1, "yaml file=beta4.yaml", code).file == "beta4.yaml"
    assert skip_reason("python scripts/svi_train.py --cuda --fast") and not skip_reason("python scripts/svi_train.py")
