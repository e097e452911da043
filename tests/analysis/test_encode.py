"""encode.py and pyrovae.infer.encoding.encode_dataset on a small real run: the latents are
vae.encode's, the scores pyrovae.elbo's and pyrovae.log_likelihood's, memory stays one chunk."""
import json
import tracemalloc

import numpy as np
import pytest
import torch

import pyrovae
from helpers import run_main, run_script
from pyrovae.data.prepare import TEST_SET_SEED, prepare_data
from pyrovae.data.transforms import binarize, dequantize, evenly_spaced_rows
from pyrovae.errors import ConfigError, DataError, Interrupted
from pyrovae.infer.encoding import encode_dataset, held_out_transform
from pyrovae.training.run import Run


@pytest.fixture(scope="module")
def run(mnist_sample, tmp_path_factory):
    """A one-epoch Bernoulli run on grey MNIST digits (dynamic binarization), 100 test digits."""
    path = tmp_path_factory.mktemp("encode")
    config = pyrovae.TrainConfig(epochs=1, train_limit=600, test_limit=100, hidden=(64,), z_dim=2, progress=False,
                                 data_dir=str(path / "no-mnist-here"), download=False, out=str(path / "run"))
    pyrovae.train(config, log=lambda s: None, dataset=mnist_sample)
    return path / "run"


@pytest.fixture(scope="module")
def loaded(run):
    with Run.open(run) as opened:
        vae, dataset = opened.model("best"), opened.dataset(log=lambda s: None)
        return vae, opened.config, dataset, prepare_data(opened.config, dataset, vae.likelihood)


def test_loc_and_scale_are_the_guides_and_do_not_depend_on_the_chunks(loaded, tmp_path):
    vae, _, dataset, _ = loaded
    x = dataset.test_x  # (100, 784) grey
    small = encode_dataset(vae, x, tmp_path / "a.npz", batch_size=7, labels=dataset.test_y)
    encode_dataset(vae, x.numpy(), tmp_path / "b.npz", batch_size=1000)
    a, b = np.load(tmp_path / "a.npz"), np.load(tmp_path / "b.npz")
    loc, scale = vae.encode(x)
    # BLAS may sum in another order for another batch size: equal to float32 rounding
    np.testing.assert_allclose(a["loc"], loc.detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(a["scale"], scale.detach().numpy(), rtol=1e-5)
    np.testing.assert_allclose(a["loc"], b["loc"], atol=1e-5)
    np.testing.assert_allclose(a["scale"], b["scale"], rtol=1e-5)
    assert a["loc"].dtype == np.float32 and a["loc"].shape == (100, 2)
    assert a["row"].dtype == np.int64 and a["row"].tolist() == list(range(100))
    assert a["y"].tolist() == dataset.test_y.tolist() and "y" not in b.files and "elbo" not in b.files
    assert small["rows"] == 100 and json.loads(str(a["info"]))["encoded"] == "rows as given (no noise)"


def test_image_shaped_uint8_rows_read_as_x_over_255(loaded, tmp_path):
    vae = loaded[0]
    images = np.random.default_rng(0).integers(0, 256, (30, 28, 28), dtype=np.uint8)
    encode_dataset(vae, images, tmp_path / "u8.npz", batch_size=8)
    loc, _ = vae.encode(torch.from_numpy(images.reshape(30, 784).astype(np.float32) / 255))
    np.testing.assert_allclose(np.load(tmp_path / "u8.npz")["loc"], loc.detach().numpy(), atol=1e-5)


def test_fixed_draws_are_the_same_in_any_chunks():
    x = torch.rand(101, 13)
    for step, kind in ((binarize, ("dynamic", "none")), (dequantize, ("none", "uniform"))):
        whole = step(x, torch.Generator().manual_seed(TEST_SET_SEED))
        transform = held_out_transform(*kind, seed=TEST_SET_SEED)
        assert torch.equal(torch.cat([transform(c) for c in x.split(7)]), whole)
    assert held_out_transform("none", "none") is None


def test_elbo_is_pyrovae_elbo_on_the_runs_binarized_test_set(loaded, tmp_path):
    vae, _, dataset, prepared = loaded
    encode_dataset(vae, dataset.test_x, tmp_path / "s.npz", score=True, num_particles=3, seed=5,
                   preprocess=held_out_transform("dynamic", "none", TEST_SET_SEED))
    torch.manual_seed(5)
    reference = pyrovae.elbo(vae, prepared.test_x, num_particles=3)  # the test digits the run scores
    scores = np.load(tmp_path / "s.npz")
    np.testing.assert_allclose(scores["elbo"], reference.elbo.numpy(), rtol=1e-5)
    np.testing.assert_allclose(scores["kl"], reference.kl.numpy(), rtol=1e-5)
    state = torch.get_rng_state()
    encode_dataset(vae, prepared.test_x, tmp_path / "t.npz", score=True, seed=5)  # binary rows, scored as they are
    assert torch.equal(torch.get_rng_state(), state)  # the caller's random state is left alone


def test_log_px_is_pyrovae_log_likelihood(loaded, tmp_path):
    vae, _, dataset, prepared = loaded
    encode_dataset(vae, dataset.test_x, tmp_path / "p.npz", num_samples=50, seed=3,
                   preprocess=held_out_transform("dynamic", "none", TEST_SET_SEED))
    torch.manual_seed(3)
    reference = pyrovae.log_likelihood(vae, prepared.test_x, num_samples=50)
    log_px = np.load(tmp_path / "p.npz")["log_px"]
    np.testing.assert_allclose(log_px, reference.numpy(), rtol=1e-5)
    # in other chunks the draws differ: the same estimate within Monte-Carlo error (K=50, z_dim=2)
    encode_dataset(vae, dataset.test_x, tmp_path / "q.npz", batch_size=9, score=True, num_samples=50,
                   preprocess=held_out_transform("dynamic", "none", TEST_SET_SEED))
    other = np.load(tmp_path / "q.npz")
    assert abs(other["log_px"].mean() - log_px.mean()) < 1.0
    assert other["log_px"].mean() > other["elbo"].mean()  # log p_K >= ELBO on average


class _Spy:
    """A memmap that records the largest slice read and refuses to be read whole."""

    def __init__(self, array):
        self.array, self.largest = array, 0
        self.shape, self.dtype = array.shape, array.dtype

    def __len__(self):
        return len(self.array)

    def __getitem__(self, where):
        chunk = self.array[where]
        self.largest = max(self.largest, len(chunk))
        return chunk

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole data set was read at once")


def test_memory_stays_one_chunk_over_a_memmap(loaded, tmp_path):
    vae = loaded[0]
    n = 4000
    path = tmp_path / "big.npy"
    data = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, 784))
    data[:] = np.random.default_rng(1).random((n, 784), dtype=np.float32)
    data.flush()
    del data
    rows = _Spy(np.load(path, mmap_mode="r", allow_pickle=False))
    tracemalloc.start()
    try:
        summary = encode_dataset(vae, rows, tmp_path / "big.npz", batch_size=64, score=True, num_particles=1,
                                 preprocess=held_out_transform("dynamic", "none"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    whole = n * 784 * 4  # 12.5 MB as float32
    assert rows.largest == 64 and summary["rows"] == n
    assert peak < whole / 10, f"peak traced allocation {peak} bytes for a {whole}-byte data set"
    assert np.load(tmp_path / "big.npz")["elbo"].shape == (n,)


def test_an_interrupted_encoding_leaves_the_old_file_and_no_parts(loaded, tmp_path):
    vae, _, dataset, _ = loaded
    out = tmp_path / "latents.npz"
    out.write_bytes(b"old")

    def stop(n):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        encode_dataset(vae, dataset.test_x, out, batch_size=10, progress=stop)
    assert out.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["latents.npz"]


def test_the_program_turns_ctrl_c_into_one_line(run, tmp_path, monkeypatch):
    import pyrovae.analysis.encode as program

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(program, "encode_dataset", interrupted)
    with pytest.raises(Interrupted, match="nothing was written to") as stop:
        program.encode_run(run, "test", tmp_path / "l.npz", log=lambda s: None)
    assert stop.value.exit_code == 130 and not (tmp_path / "l.npz").exists()


def test_bad_arguments_in_python(loaded, tmp_path):
    vae = loaded[0]
    with pytest.raises(DataError, match="rows hold 100 values .* x_dim=784"):
        encode_dataset(vae, np.zeros((5, 100), np.float32), tmp_path / "w.npz")
    with pytest.raises(ConfigError, match="does not exist"):
        encode_dataset(vae, np.zeros((5, 784), np.float32), tmp_path / "missing" / "w.npz")
    with pytest.raises(DataError, match="row 3 of the data has NaN"):
        encode_dataset(vae, np.full((5, 784), [0.5], np.float32) * np.array([1, 1, 1, np.nan, 1])[:, None],
                       tmp_path / "w.npz", batch_size=2)
    assert not list(tmp_path.iterdir())


def test_script_writes_the_latents_of_the_runs_data(run, loaded, mnist_sample, tmp_path):
    out = tmp_path / "latents.npz"
    result = run_script("encode.py", run, "all", "--out", out, "--num-samples", "5", "--batch-size", "64",
                        "--no-progress")
    assert result.returncode == 0, result.stderr
    latents = np.load(out, allow_pickle=False)
    dataset = loaded[2]
    n = len(dataset.train_x) + len(dataset.valid_x) + len(dataset.test_x)  # 600 + 100 + 100
    assert latents["loc"].shape == (n, 2) and latents["log_px"].shape == (n,) and "elbo" in latents.files
    parts = json.loads(str(latents["info"]))["parts"]
    assert [p["part"] for p in parts] == ["train", "valid", "test"] and parts[-1]["rows"] == [n - 100, n]
    # row: each row's place in the source's own split, whole, though the run kept 600 and 100 of its rows
    row, (a, b) = torch.from_numpy(latents["row"]), (600, 700)
    assert torch.equal(mnist_sample.train_x[row[:a]], dataset.train_x)
    assert torch.equal(mnist_sample.train_x[row[a:b]], dataset.valid_x)  # held out of the source's training split
    assert torch.equal(row[b:], evenly_spaced_rows(1000, 100))  # the test rows the limit kept of the 1,000
    assert torch.equal(mnist_sample.test_x[row[b:]], dataset.test_x) and latents["y"][b:].tolist() == \
        mnist_sample.test_y[row[b:]].tolist()


@pytest.mark.parametrize("case", ["no-run", "width", "pickle", "out-folder", "k"])
def test_script_bad_input_is_one_line(run, tmp_path, case):
    out = tmp_path / "latents.npz"
    data = tmp_path / "x.npy"
    np.save(data, np.zeros((4, 784), np.float32))
    args = {"no-run": [tmp_path / "no-run", data, "--out", out],
            "width": [run, tmp_path / "w.npy", "--out", out],
            "pickle": [run, tmp_path / "o.npy", "--out", out, "--score"],
            "out-folder": [run, data, "--out", tmp_path / "missing" / "l.npz"],
            "k": [run, data, "--out", out, "--num-samples", "0"]}[case]
    np.save(tmp_path / "w.npy", np.zeros((4, 100), np.float32))
    np.save(tmp_path / "o.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    result = run_main("encode.py", *args)
    expected = {"no-run": "does not exist", "width": "rows hold 100 values", "pickle": "pickle",
                "out-folder": "does not exist", "k": "--num-samples must be"}[case]
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and expected in lines[0], result.stderr
    assert not out.exists()
    if case == "width":
        assert "x_dim=784" in lines[0]
