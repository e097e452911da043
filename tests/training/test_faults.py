"""Faults around a run's files (issue 13): a kill between the checkpoint and metrics.json,
stale temporaries, a disk that refuses writes, two writers in one folder, a damaged
config.json, a signal while the figures are drawn. Each fault is injected into a real
training subprocess; each must end in files that agree with the checkpoint, or in one
``error:`` line and exit status 2."""
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from helpers import ROOT, run_main, run_python, run_script
from pyrovae.training.checkpoint import read_checkpoint

FAULTS = textwrap.dedent("""
    import os, resource, signal, sys, time
    import pyrovae.training.report as report
    import pyrovae.training.trainer as run
    from pyrovae.cli import main

    mode, arg = sys.argv[1], sys.argv[2]
    if mode == "kill-before-metrics":  # SIGKILL instead of the arg-th write of metrics.json
        real, count = run.write_json, [0]

        def write_json(path, obj):
            if os.path.basename(str(path)) == "metrics.json":
                count[0] += 1
                if count[0] == int(arg):
                    os.kill(os.getpid(), signal.SIGKILL)
            return real(path, obj)

        run.write_json = write_json
    elif mode == "fsize":  # after the first checkpoint, no file may grow past arg bytes
        real = run.save_checkpoint

        def save_checkpoint(path, *args, **kwargs):
            real(path, *args, **kwargs)
            if os.path.basename(str(path)) == "checkpoint.pt":
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death
                resource.setrlimit(resource.RLIMIT_FSIZE, (int(arg), resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

        run.save_checkpoint = save_checkpoint
    elif mode == "hold":  # after the first step: touch arg + ".started", wait for arg + ".go"
        original, count = run.run_epoch, [0]

        def run_epoch(*args, after_step=None, **kwargs):
            def hook(state):
                count[0] += 1
                if count[0] == 1:
                    open(arg + ".started", "w").close()
                    deadline = time.time() + 120
                    while not os.path.exists(arg + ".go") and time.time() < deadline:
                        time.sleep(0.05)
                return after_step(state)
            return original(*args, after_step=hook, **kwargs)

        run.run_epoch = run_epoch
    elif mode == "term-in-figures":  # SIGTERM as the first figure is drawn
        real_plot = report.plot_elbo_curves

        def plot_elbo_curves(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGTERM)
            return real_plot(*args, **kwargs)

        report.plot_elbo_curves = plot_elbo_curves
    sys.exit(main(sys.argv[3:]))
""")
EPOCHS = 2


def args(tmp_path, out, *extra):
    return ["--dataset", "mnist", "--no-download", "--data-dir", str(tmp_path / "no-mnist"), "--train-limit", "600",
            "--test-limit", "100", "--valid-size", "100", "--z-dim", "4", "--hidden", "32", "--batch-size", "50",
            "--epochs", str(EPOCHS), "--lr-schedule", "plateau", "--lr-patience", "1", "--checkpoint-every", "5",
            "--no-progress", "--threads", "1", "--out", str(out), *extra]


def driver(tmp_path) -> Path:
    path = tmp_path / "faults.py"
    path.write_text(FAULTS)
    return path


def inject(tmp_path, mode, arg, argv):
    return run_python(driver(tmp_path), mode, arg, *argv, timeout=600)


def resume(tmp_path, out):
    # in this process (no subprocess's imports): --threads 1 sets its thread count for the test, so the
    # resumed run sums in the order of the injected ones
    return run_main("svi_train.py", "--resume", str(out), "--no-progress", "--threads", "1")


def one_error_line(result) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def strip_seconds(metrics: dict) -> dict:
    return {**metrics, "history": [{k: v for k, v in h.items() if k != "seconds"} for h in metrics["history"]],
            "resumes": None, "command": None}


def trained(tmp_path, *extra) -> Path:
    """A finished run in ``tmp_path/run``, without faults."""
    finished = inject(tmp_path, "none", 0, args(tmp_path, tmp_path / "run", *extra))
    assert finished.returncode == 0, finished.stderr
    return tmp_path / "run"


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    return trained(tmp_path_factory.mktemp("whole"))


# 1 -------------------------------------------------------------------------------------
def test_kill_between_last_checkpoint_and_metrics_then_resume_rewrites_metrics(uninterrupted, tmp_path):
    out = tmp_path / "run"
    killed = inject(tmp_path, "kill-before-metrics", EPOCHS, args(tmp_path, out))
    assert killed.returncode == -9
    assert read_checkpoint(out / "checkpoint.pt")["epoch"] == EPOCHS  # the last checkpoint is whole
    assert len(json.loads((out / "metrics.json").read_text())["history"]) == EPOCHS - 1  # metrics.json lags
    resumed = resume(tmp_path, out)
    assert resumed.returncode == 0, resumed.stderr
    assert "final test ELBO" in resumed.stdout
    got, want = (json.loads((d / "metrics.json").read_text()) for d in (out, uninterrupted))
    assert strip_seconds(got) == strip_seconds(want)
    assert got["resumes"][0]["epoch"] == EPOCHS


# 11 ------------------------------------------------------------------------------------
def test_a_fresh_start_removes_stale_temporaries_of_the_atomic_writer_only(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / ".checkpoint.pt.k2j_x9qa.tmp").write_bytes(b"half a checkpoint")
    (out / ".notes.tmp").write_text("not the writer's")  # not the writer's name pattern
    result = inject(tmp_path, "none", 0, args(tmp_path, out, "--epochs", "1"))
    assert result.returncode == 0, result.stderr
    assert "removed 1 temporary file(s)" in result.stdout
    assert not (out / ".checkpoint.pt.k2j_x9qa.tmp").exists()
    assert (out / ".notes.tmp").exists()


# 6 -------------------------------------------------------------------------------------
def test_a_refused_write_is_one_line_naming_reason_file_and_last_checkpoint(tmp_path):
    out = tmp_path / "run"
    result = inject(tmp_path, "fsize", 100_000, args(tmp_path, out))  # checkpoints are ~600 kB
    line = one_error_line(result)
    assert line.startswith("error: file size limit exceeded") and "while writing " in line, line
    assert f"the last good checkpoint is {out / 'checkpoint.pt'}" in line, line
    state = read_checkpoint(out / "checkpoint.pt")  # the first one, whole
    assert state["loop"]["global_step"] == 5
    assert not [p for p in os.listdir(out) if p.endswith(".tmp")]


def test_a_refused_figure_is_one_line_too(tmp_path):
    """The figures go through the same writer: a folder that refuses them mid-run."""
    code = textwrap.dedent(f"""
        import errno, sys
        import matplotlib.figure
        from pyrovae.cli import main

        def savefig(self, *args, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device")

        matplotlib.figure.Figure.savefig = savefig
        sys.exit(main({args(tmp_path, tmp_path / 'run', '--epochs', '1')!r}))
    """)
    line = one_error_line(run_python("-c", code))
    assert line == (f"error: no space left on device while writing {tmp_path / 'run' / 'elbo_curves.png'}; "
                    f"the last good checkpoint is {tmp_path / 'run' / 'checkpoint.pt'}")


# 8 -------------------------------------------------------------------------------------
@pytest.mark.parametrize("content,message", [
    ("", "is not readable JSON"),
    ("{not json", "is not readable JSON"),
    ("[1, 2]", "holds a JSON list, not an object"),
    ("{}", "has no 'settings' entry"),
    ('{"settings": [1]}', "holds a list where the settings belong"),
    ('{"settings": {"z_dim": -3}}', "holds settings pyrovae cannot use"),
])
def test_evaluate_a_run_with_a_damaged_config_json_is_one_line(uninterrupted, tmp_path, content, message):
    out = tmp_path / "run"
    out.mkdir()
    for name in ("checkpoint.pt", "metrics.json"):
        (out / name).write_bytes((uninterrupted / name).read_bytes())
    (out / "config.json").write_text(content)
    line = one_error_line(run_main("evaluate.py", out, "--num-samples", "2"))
    assert message in line and str(out / "config.json") in line, line


# 5 -------------------------------------------------------------------------------------
def test_a_second_writer_in_a_running_folder_is_refused_with_the_holders_pid(tmp_path):
    out, marker = tmp_path / "run", tmp_path / "marker"
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    first = subprocess.Popen([sys.executable, str(driver(tmp_path)), "hold", str(marker), *args(tmp_path, out)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                             cwd=ROOT)
    try:
        deadline = time.time() + 120
        while not Path(str(marker) + ".started").exists():
            assert first.poll() is None and time.time() < deadline, first.communicate()
            time.sleep(0.05)
        for second in (run_main("svi_train.py", *args(tmp_path, out)),  # refused before any work: in this process
                       run_main("svi_train.py", "--resume", str(out))):
            line = one_error_line(second)
            assert f"is in use by another run (pid {first.pid} holds" in line, line
    finally:
        Path(str(marker) + ".go").touch()
        stdout, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    assert "final test ELBO" in stdout
    assert not (out / ".lock").exists()
    again = resume(tmp_path, out)  # the lock is free once its run ended
    assert again.returncode == 0, again.stderr


def test_a_checkpoint_from_another_run_is_refused_on_resume(uninterrupted, tmp_path):
    out = trained(tmp_path, "--epochs", "1", "--hidden", "16")
    (out / "checkpoint.pt").write_bytes((uninterrupted / "checkpoint.pt").read_bytes())
    line = one_error_line(resume(tmp_path, out))
    assert f"{out / 'checkpoint.pt'} belongs to another run: its hidden is [32]" in line, line


# 9 -------------------------------------------------------------------------------------
def test_sigterm_while_the_figures_are_drawn_is_the_promised_line(uninterrupted, tmp_path):
    out = tmp_path / "run"
    stopped = inject(tmp_path, "term-in-figures", 0, args(tmp_path, out))
    assert stopped.returncode == 143, stopped.stderr
    assert stopped.stderr.strip().splitlines() == [
        f"SIGTERM: stopped after step {EPOCHS * 12} and saved {out / 'checkpoint.pt'}; "
        f"resume with: python scripts/svi_train.py --resume {out}"]
    resumed = resume(tmp_path, out)  # draws the figures
    assert resumed.returncode == 0, resumed.stderr
    assert all((out / name).is_file() for name in ("elbo_curves.png", "reconstructions.png", "samples.png"))
    got, want = (json.loads((d / "metrics.json").read_text()) for d in (out, uninterrupted))
    assert strip_seconds(got) == strip_seconds(want)


# 9, 10 ----------------------------------------------------------------------------------
def test_ctrl_c_while_the_libraries_load_is_one_line(tmp_path):
    """A KeyboardInterrupt raised by the import of torch (what Ctrl-C during the first
    seconds does), made certain by an import hook in sitecustomize."""
    (tmp_path / "sitecustomize.py").write_text(textwrap.dedent("""
        import sys

        class Interrupt:
            def find_spec(self, name, path=None, target=None):
                if name == "torch":
                    raise KeyboardInterrupt

        sys.meta_path.insert(0, Interrupt())
    """))
    for script in ("svi_train.py", "evaluate.py", "bench.py"):
        result = run_script(script, "--help", env={"PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"})
        assert result.returncode == 130, (script, result.stderr)
        assert result.stderr.strip().splitlines() == ["interrupted (SIGINT) while loading; nothing was run or written"]


def test_a_non_finite_loss_before_any_checkpoint_says_there_is_none(tmp_path):
    out = tmp_path / "run"
    result = run_script("svi_train.py", *args(tmp_path, out), "--lr", "1e10")  # no --checkpoint-every
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: the loss is not finite in epoch 1") and line.endswith("no checkpoint was written yet")
    assert not (out / "checkpoint.pt").exists()
