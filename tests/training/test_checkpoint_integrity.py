"""Checkpoints whose bytes or contents are broken are refused with one line, before
anything is built from them: a flipped bit (CRC-32), missing or mistyped parts, an
architecture that does not fit the stored tensors (checked on the meta device, so a
crafted ``hidden`` cannot allocate gigabytes), non-finite weights."""
import shutil
import struct
import zipfile
from pathlib import Path

import pytest
import torch

import pyrovae
from helpers import run_script
from pyrovae.training.checkpoint import read_checkpoint


@pytest.fixture(scope="module")
def run_dir(mnist_sample, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    config = pyrovae.TrainConfig(epochs=1, z_dim=4, hidden=(16,), train_limit=300, test_limit=50, valid_size=50,
                                 out=str(out), progress=False)
    pyrovae.train(config, log=lambda s: None, dataset=mnist_sample)
    return out


def flip_a_bit_in_the_largest_tensor(path: Path) -> None:
    with zipfile.ZipFile(path) as archive:
        info = max((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    data = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26: info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len  # the entry's stored bytes
    data[start + info.file_size // 2] ^= 0x10
    path.write_bytes(bytes(data))


def test_a_flipped_bit_is_caught_by_the_crc(run_dir, tmp_path):
    broken = tmp_path / "run"
    shutil.copytree(run_dir, broken)
    flip_a_bit_in_the_largest_tensor(broken / "checkpoint.pt")
    with pytest.raises(pyrovae.CheckpointError, match="does not match its CRC-32"):
        pyrovae.load(broken / "checkpoint.pt")
    result = run_script("svi_train.py", "--resume", broken, "--no-progress")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and "CRC-32" in line


def rewrite(src: Path, dst: Path, change) -> Path:
    state = torch.load(src, weights_only=True)
    change(state)
    torch.save(state, dst)
    return dst


@pytest.mark.parametrize("change,message", [
    (lambda s: s.pop("vae"), "has no 'vae' entry"),
    (lambda s: s.pop("state_dict"), "has no 'state_dict' entry"),
    (lambda s: s.update(config="not a dict"), "its 'config' entry is a str"),
    (lambda s: s.update(loop=[1, 2]), "its 'loop' entry is a list"),
    (lambda s: s["state_dict"].update(extra=3), "holds more than tensors"),
    (lambda s: s["vae"].pop("likelihood"), "names no likelihood"),
])
def test_broken_parts_are_named(run_dir, tmp_path, change, message):
    path = rewrite(run_dir / "checkpoint.pt", tmp_path / "checkpoint.pt", change)
    with pytest.raises(pyrovae.CheckpointError, match=message):
        pyrovae.load(path)


def test_a_crafted_huge_architecture_is_refused_before_allocating(run_dir, tmp_path):
    path = rewrite(run_dir / "checkpoint.pt", tmp_path / "checkpoint.pt",
                   lambda s: s["vae"].update(hidden=[10**7, 10**7]))  # 31 GB of float32 weights if built
    with pytest.raises(pyrovae.CheckpointError, match="does not match its recorded architecture"):
        pyrovae.load(path)


def test_non_finite_weights_are_refused(run_dir, tmp_path):
    def poison(state):
        next(iter(state["state_dict"].values())).view(-1)[0] = float("nan")

    path = rewrite(run_dir / "best.pt", tmp_path / "best.pt", poison)
    with pytest.raises(pyrovae.CheckpointError, match="NaN or infinite weights"):
        pyrovae.load(path)


def test_intact_checkpoints_still_load(run_dir):
    assert read_checkpoint(run_dir / "checkpoint.pt")["epoch"] == 1
    vae = pyrovae.load(run_dir / "best.pt")
    assert vae.z_dim == 4 and all(torch.isfinite(p).all() for p in vae.parameters())
