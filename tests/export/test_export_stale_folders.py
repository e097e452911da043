"""An export killed midway (SIGKILL) leaves its hidden temporary folder beside --out; the next
export to that --out removes such folders of its own naming, and only those no running export holds."""
import fcntl
import os
import signal
import subprocess
import sys
import time

from helpers import ROOT
from pyrovae.cli.export import export_main


def test_the_next_export_removes_what_a_killed_one_left(trained, tmp_path, capsys):
    out = tmp_path / "out"
    stale = tmp_path / ".out.k1ll3d00.tmp"  # as a killed export leaves it: files half written
    stale.mkdir()
    (stale / "encoder.onnx").write_bytes(b"half")
    running = tmp_path / ".out.runn1ng0.tmp"  # an export running now holds its folder
    running.mkdir()
    other = [tmp_path / ".outer.abcd1234.tmp", tmp_path / ".out.note.txt"]  # not of this --out's naming
    other[0].mkdir()
    other[1].write_text("mine")
    fd = os.open(running, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        assert export_main([str(trained("bernoulli-mlp")), "--format", "torchscript", "--out", str(out)]) == 0
    finally:
        os.close(fd)
    capsys.readouterr()
    assert not stale.exists() and running.is_dir() and all(p.exists() for p in other)
    assert (out / "model.json").is_file()


def test_a_sigkilled_export_script_is_cleaned_up_by_the_next(trained, tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, str(ROOT / "scripts" / "export.py"), str(trained("bernoulli-mlp")), "--format",
               "onnx", "--out", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert process.stdout.readline().startswith("exporting ")  # its folder is made right after this line
        deadline = time.monotonic() + 60
        while not any(p.name.startswith(".out.") for p in tmp_path.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    left = [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.")]
    if out.exists():  # it finished before the kill: nothing to clean up this time
        return
    assert left, "the kill should leave the temporary folder"
    assert subprocess.run(command, capture_output=True, text=True).returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
