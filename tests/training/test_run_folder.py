"""A run folder has one door (pyrovae.training.run.Run): every program takes its lock (shared for
readers, exclusive for writers), refuses a checkpoint that is not the run's own, and refuses a
damaged checkpoint on resume in one line; a run refused before it starts leaves no folder; a
stop while the libraries or the data load is one line; two encodes never write one file."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import pyrovae
from helpers import ROOT, run_main, run_python, run_script
from pyrovae.analysis.encode import encode_run
from pyrovae.analysis.evaluate import evaluate_run
from pyrovae.errors import CheckpointError, DataError, RunInUse
from pyrovae.training.files import RunLock

quiet = lambda line: None  # noqa: E731


def tiny(out: Path, mnist_sample, **settings) -> Path:
    config = pyrovae.TrainConfig(epochs=1, train_limit=200, test_limit=40, valid_size=40, z_dim=4, hidden=(16,),
                                 batch_size=50, progress=False, out=str(out), **settings)
    pyrovae.train(config, log=quiet, dataset=mnist_sample)
    return out


@pytest.fixture(scope="module")
def two_runs(mnist_sample, tmp_path_factory):
    """Two runs with the same settings (and so the same weights), in two folders."""
    root = tmp_path_factory.mktemp("two")
    return tiny(root / "a", mnist_sample), tiny(root / "b", mnist_sample)


def one_error_line(result, code: int = 2) -> str:
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


# the lock ---------------------------------------------------------------------------------
def test_readers_share_the_lock_and_a_writer_holds_it_alone(tmp_path):
    first, second = RunLock(tmp_path, shared=True).acquire(), RunLock(tmp_path, shared=True).acquire()
    with pytest.raises(RunInUse, match="in use by another program reading it"):
        RunLock(tmp_path).acquire()
    first.release()
    second.release()
    assert not (tmp_path / ".lock").exists()  # the last reader removes the file
    with RunLock(tmp_path):
        with pytest.raises(RunInUse, match=f"in use by another run \\(pid {os.getpid()} holds"):
            RunLock(tmp_path, shared=True).acquire()
    assert not (tmp_path / ".lock").exists()


def test_programs_take_the_lock_of_the_run(two_runs):
    out = two_runs[0]
    with RunLock(out):  # a run (this process) writes the folder: readers and writers are refused
        for script, args in (("evaluate.py", ("--num-samples", "2")), ("encode.py", ("test", "--out", str(out.parent / "z.npz"))),
                             ("plot_latent.py", ())):
            line = one_error_line(run_main(script, out, *args))
            assert f"{out} is in use by another run (pid {os.getpid()} holds" in line, (script, line)
    with RunLock(out, shared=True):  # a reader: another reader goes on, a writer waits
        assert run_main("encode.py", out, "test", "--out", str(out.parent / "z.npz")).returncode == 0
        line = one_error_line(run_main("evaluate.py", out, "--num-samples", "2"))
        assert "is in use by another program reading it" in line
        line = one_error_line(run_main("svi_train.py", "--resume", out))
        assert "is in use by another program reading it" in line


# a checkpoint of another run -------------------------------------------------------------------
@pytest.mark.parametrize("name", ["checkpoint.pt", "best.pt"])
def test_another_runs_checkpoint_with_the_same_settings_is_refused_everywhere(two_runs, tmp_path, name):
    a, b = two_runs
    own = tmp_path / "a"
    own.mkdir()
    for f in ("config.json", "metrics.json", "checkpoint.pt", "best.pt"):
        (own / f).write_bytes((a / f).read_bytes())
    (own / name).write_bytes((b / name).read_bytes())  # same settings, same weights, another run
    before = (own / "metrics.json").read_bytes()
    which = "last" if name == "checkpoint.pt" else "best"
    with pytest.raises(CheckpointError, match=f"{own / name} belongs to another run: its run id is"):
        evaluate_run(own, num_samples=2, checkpoint=which, log=quiet)
    with pytest.raises(CheckpointError, match="belongs to another run"):
        encode_run(own, "test", tmp_path / "z.npz", checkpoint=which, log=quiet)
    assert (own / "metrics.json").read_bytes() == before  # nothing written into this run
    assert not (tmp_path / "z.npz").exists()
    line = one_error_line(run_main("evaluate.py", own, "--num-samples", "2", "--checkpoint", which))
    assert "belongs to another run" in line
    if name == "checkpoint.pt":
        with pytest.raises(CheckpointError, match="belongs to another run"):
            pyrovae.resume(own, log=quiet, dataset=None)


# resume on a damaged checkpoint ---------------------------------------------------------------
def _crafted(run: Path, folder: Path, change) -> Path:
    folder.mkdir()
    for f in ("config.json", "metrics.json", "best.pt"):
        (folder / f).write_bytes((run / f).read_bytes())
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    change(state)
    torch.save(state, folder / "checkpoint.pt")
    return folder


def _nan_weights(state):
    key = next(k for k, v in state["state_dict"].items() if v.is_floating_point())
    state["state_dict"][key] = torch.full_like(state["state_dict"][key], float("nan"))


CRAFTED = {
    "broken loop": (lambda s: s.__setitem__("loop", {"epoch": "one"}), "its 'loop' part cannot be loaded"),
    "loop without its counters": (lambda s: s.__setitem__("loop", {}), "its 'loop' part cannot be loaded"),
    "no config": (lambda s: s.pop("config"), "it has no settings ('config')"),
    "no record": (lambda s: s.pop("record"), "it has no 'record' part"),
    "no rng": (lambda s: s.pop("rng"), "it has no 'rng' part"),
    "rng of a wrong shape": (lambda s: s["rng"].__setitem__("torch", torch.zeros(3, dtype=torch.uint8)),
                             "its 'rng' part cannot be loaded"),
    "NaN weights": (_nan_weights, "holds NaN or infinite weights"),
}


@pytest.mark.parametrize("case", list(CRAFTED))
def test_resume_refuses_a_damaged_checkpoint_in_one_line(two_runs, tmp_path, case, mnist_sample):
    change, message = CRAFTED[case]
    folder = _crafted(two_runs[0], tmp_path / "run", change)
    with pytest.raises(CheckpointError, match=message.replace("(", "\\(").replace(")", "\\)")):
        pyrovae.resume(folder, log=quiet, dataset=mnist_sample)
    if case == "NaN weights":  # through the command line too: one line, exit 2, no figures drawn
        line = one_error_line(run_main("svi_train.py", "--resume", folder))
        assert message in line


# a refused start leaves nothing ------------------------------------------------------------------
def test_a_run_refused_before_it_starts_leaves_no_folder(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not data")
    out = tmp_path / "runs" / "deep" / "run"
    result = run_main("svi_train.py", "--dataset", text, "--out", out, "--no-progress")
    assert "not a data set pyrovae reads" in one_error_line(result)
    assert not (tmp_path / "runs").exists()
    kept = tmp_path / "mine"
    kept.mkdir()  # a folder the user made stays, empty
    with pytest.raises(DataError):
        pyrovae.train(pyrovae.TrainConfig(dataset=str(text), out=str(kept), progress=False), log=quiet)
    assert kept.is_dir() and not any(kept.iterdir())


SIGTERM_IN_DATA = textwrap.dedent("""
    import os, signal, sys, time
    sys.path.insert(0, {scripts!r})
    import _startup
    signal.signal(signal.SIGTERM, _startup._interrupt)  # what scripts/_startup.py does first
    import pyrovae.training.rundata as rundata

    def load_dataset(*args, **kwargs):  # SIGTERM while the data are read
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)

    rundata.load_dataset = load_dataset
    from pyrovae.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def test_sigterm_while_the_data_load_is_one_line_and_leaves_no_folder(tmp_path):
    driver = tmp_path / "driver.py"
    driver.write_text(SIGTERM_IN_DATA.format(scripts=str(ROOT / "scripts")))
    out = tmp_path / "runs" / "run"
    line = one_error_line(run_python(driver, "--out", out, "--no-progress"), code=143)
    assert line == "interrupted (SIGTERM); no checkpoint was written yet"
    assert not (tmp_path / "runs").exists()


def test_sigterm_while_the_libraries_load_is_one_line(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(textwrap.dedent("""
        import os, signal, sys

        class Terminate:  # SIGTERM the moment torch starts to load
            def find_spec(self, name, path=None, target=None):
                if name == "torch":
                    os.kill(os.getpid(), signal.SIGTERM)

        sys.meta_path.insert(0, Terminate())
    """))
    for script in ("svi_train.py", "encode.py"):
        result = run_script(script, "--help", env={"PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"})
        assert one_error_line(result, code=143) == "interrupted (SIGTERM) while loading; nothing was run or written"


# two encodes, one output ------------------------------------------------------------------------
HOLD_ENCODE = textwrap.dedent("""
    import os, sys, time
    import pyrovae.infer.encoding as encoding
    from pyrovae.cli import encode_main

    marker, real = sys.argv[1], encoding._read

    def _read(*args, **kwargs):  # the first chunk waits until the test says go
        if not os.path.exists(marker + ".started"):
            open(marker + ".started", "w").close()
            deadline = time.time() + 120
            while not os.path.exists(marker + ".go") and time.time() < deadline:
                time.sleep(0.05)
        return real(*args, **kwargs)

    encoding._read = _read
    sys.exit(encode_main(sys.argv[2:]))
""")


def test_a_second_encode_into_one_file_is_refused_and_a_killed_ones_leftovers_go(two_runs, tmp_path):
    run, out, marker = two_runs[0], tmp_path / "latents.npz", tmp_path / "marker"
    driver = tmp_path / "hold.py"
    driver.write_text(HOLD_ENCODE)
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    first = subprocess.Popen([sys.executable, str(driver), str(marker), str(run), "test", "--out", str(out),
                              "--batch-size", "8", "--no-progress"], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not Path(str(marker) + ".started").exists():
            assert first.poll() is None and time.time() < deadline, first.communicate()
            time.sleep(0.05)
        # a second run's guide into the same file: refused while the first writes it
        line = one_error_line(run_main("encode.py", two_runs[1], "test", "--out", out, "--no-progress"))
        assert line == f"error: {out} is being written by another encode (pid {first.pid}); wait for it to end, " \
                       "or choose another output"
        first.send_signal(signal.SIGKILL)  # killed mid-write: its temporary folder stays behind
        first.wait(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    assert list(tmp_path.glob(".latents.npz.*.parts")), "the killed encode left no temporary folder"
    assert not out.exists()
    again = run_main("encode.py", run, "test", "--out", out, "--no-progress")
    assert again.returncode == 0, again.stderr
    assert not list(tmp_path.glob(".latents.npz.*")), "leftovers of the killed encode remain"
    with np.load(out, allow_pickle=False) as saved:
        assert saved["loc"].shape == (40, 4)
        assert json.loads(str(saved["info"]))["run_dir"] == str(run.resolve())


# the run's own data ------------------------------------------------------------------------------
def test_a_changed_built_in_data_file_is_refused_by_every_program(binarized_mnist_dir, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    with np.load(binarized_mnist_dir / "binarized_mnist.npz") as real:  # real digits under the built-in name
        parts = {k: real[k] for k in ("train", "valid", "test")}
    np.savez(data / "binarized_mnist.npz", **parts)
    out = tmp_path / "run"
    trained = run_main("svi_train.py", "--dataset", "binarized-mnist", "--data-dir", data, "--epochs", 1,
                       "--hidden", 16, "--z-dim", 4, "--batch-size", 50, "--no-progress", "--threads", 1, "--out", out)
    assert trained.returncode == 0, trained.stderr
    parts["train"][7, 3] ^= 0b00010000  # one pixel of one training image flipped
    np.savez(data / "binarized_mnist.npz", **parts)
    for result in (run_main("svi_train.py", "--resume", out, "--epochs", 2),
                   run_main("evaluate.py", out, "--num-samples", 2),
                   run_main("encode.py", out, "test", "--out", tmp_path / "z.npz")):
        line = one_error_line(result)
        assert "loads now (its origin.sha256 differs); give the run the data it was trained on" in line, line
    assert not (tmp_path / "z.npz").exists()


def test_encode_refuses_rows_that_training_refuses(two_runs, binarized_mnist_dir, tmp_path):
    """A Bernoulli run on grey digits in [0, 1]: the same digits as floats 0..255 are refused
    by training and by encode alike, in one line."""
    packed = np.load(binarized_mnist_dir / "binarized_mnist.npz")["test"][:20]  # unpack to 0/1 digits, then 0..255
    rows = np.unpackbits(packed, axis=1)[:, :784].astype(np.float32) * 255.0
    path = tmp_path / "bytes_as_floats.npy"
    np.save(path, rows)
    trained = run_main("svi_train.py", "--dataset", path, "--epochs", 1, "--no-progress",
                       "--out", tmp_path / "refused")
    assert "values outside [0, 1]" in one_error_line(trained)
    assert not (tmp_path / "refused").exists()
    line = one_error_line(run_main("encode.py", two_runs[0], path, "--out", tmp_path / "z.npz"))
    assert "rows 0..19 of the data has values outside [0, 1] (min 0, max 255)" in line, line
    assert not (tmp_path / "z.npz").exists()
    np.save(path, rows / 255.0)  # the same rows in the run's units are encoded
    assert run_main("encode.py", two_runs[0], path, "--out", tmp_path / "z.npz").returncode == 0
