"""Saving and loading: same encode() in a fresh process, weights_only files, bad files refused."""
import os
import pickle
import subprocess
import sys
import textwrap

import pytest
import torch

import pyrovae
from pyrovae.training.checkpoint import read_checkpoint, save_checkpoint


@pytest.fixture(scope="module")
def trained_run(mnist_sample, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    config = pyrovae.TrainConfig(epochs=1, z_dim=6, hidden=(32,), train_limit=500, test_limit=100,
                                 out=str(out), progress=False)
    pyrovae.train(config, log=lambda s: None, dataset=mnist_sample)
    return out


def test_checkpoint_is_plain_weights_only(trained_run):
    state = torch.load(trained_run / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 1
    assert state["vae"] == {"x_dim": 784, "z_dim": 6, "hidden": [32], "likelihood": {"name": "bernoulli"},
                            "arch": "mlp", "image_shape": [28, 28], "activation": "relu"}
    assert state["model"] == "vae"
    assert set(state) >= {"state_dict", "optimizer", "config", "history"}
    assert state["optimizer"]["state"], "Adam moments are saved"
    assert not [p for p in os.listdir(trained_run) if p.endswith(".tmp")], "no temporary files left"


def test_load_in_fresh_process_gives_same_encode(trained_run, mnist_sample, tmp_path):
    x = mnist_sample.test_x[:16]
    vae = pyrovae.load(trained_run / "checkpoint.pt")
    loc, scale = vae.encode(x)
    torch.save(x, tmp_path / "x.pt")
    code = textwrap.dedent(f"""
        import torch, pyrovae
        vae = pyrovae.load({str(trained_run / 'checkpoint.pt')!r}, map_location="cpu")
        x = torch.load({str(tmp_path / 'x.pt')!r}, weights_only=True)
        torch.save(vae.encode(x), {str(tmp_path / 'enc.pt')!r})
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    loc2, scale2 = torch.load(tmp_path / "enc.pt", weights_only=True)
    # The same weights, not bit for bit the same numbers: the fresh process may run another torch
    # thread count (this one's is whatever the tests before set), and a matrix product split over
    # other threads sums its 784 (then 32) products per output in another order. Two orders of a
    # float32 sum of n terms differ by at most about 2n ulps of its largest partial sum (measured:
    # 4 ulps between 1 and 2 threads); a weight loaded wrong changes loc by far more.
    eps, n = torch.finfo(torch.float32).eps, 2 * 784
    torch.testing.assert_close(loc2, loc, rtol=n * eps, atol=n * eps * float(loc.abs().max()))
    torch.testing.assert_close(scale2, scale, rtol=n * eps * max(1.0, float(scale.log().abs().max())), atol=0.0)


def test_roundtrip_with_custom_likelihood(tmp_path):
    def laplace_fixed(o):
        return torch.distributions.Laplace(o, 0.2)

    vae = pyrovae.VAE(x_dim=10, z_dim=2, hidden=(4,), likelihood=laplace_fixed)
    save_checkpoint(tmp_path / "c.pt", vae)
    with pytest.raises(pyrovae.CheckpointError, match="custom likelihood 'laplace_fixed'"):
        pyrovae.load(tmp_path / "c.pt")
    again = pyrovae.load(tmp_path / "c.pt", likelihood=laplace_fixed)
    x = torch.rand(3, 10)
    assert torch.equal(vae.encode(x)[0], again.encode(x)[0])


def test_pickle_that_runs_code_is_refused(code_running_checkpoint):
    path, target = code_running_checkpoint
    with pytest.raises(pyrovae.CheckpointError, match="refused"):
        pyrovae.load(path)
    assert not target.exists(), "loading ran the pickled code"


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", pickle.dumps({"a": 1})])
def test_broken_or_foreign_files_are_refused(tmp_path, content):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(pyrovae.CheckpointError):
        read_checkpoint(path)


def test_truncated_and_missing_files_are_refused(trained_run, tmp_path):
    data = (trained_run / "checkpoint.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(pyrovae.CheckpointError, match="not a readable checkpoint"):
        pyrovae.load(tmp_path / "cut.pt")
    with pytest.raises(pyrovae.CheckpointError, match="no checkpoint at"):
        pyrovae.load(tmp_path / "missing.pt")


def test_foreign_torch_file_is_refused(tmp_path):
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(pyrovae.CheckpointError, match="not a pyrovae checkpoint"):
        pyrovae.load(tmp_path / "other.pt")
