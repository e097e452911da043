"""Input that used to end in a traceback, a hang or a misleading line: each is now one ``error:``
line on stderr, exit status 2, nothing written (no run folder left) and no traceback. Config
files that are not settings (not a regular file, too large, nested too deeply, objects without a
name, values that are not numbers), sizes no memory can hold (from flags, a config file and
Python alike), and messages that named the wrong thing."""
import json
import os
import signal

import numpy as np
import pytest

import pyrovae
import pyrovae.training.rundata
from pyrovae.cli import encode_main, evaluate_main, main, plot_latent_main
from pyrovae.data.datasets import load_mnist_sample

SAMPLE = load_mnist_sample().limit(120, 40)
HUGE = 10**23
TINY = ["--epochs", "1", "--hidden", "8", "--z-dim", "2", "--train-limit", "64", "--test-limit", "32",
        "--no-progress", "--threads", "1"]
#: with a config file: the flags that do not compete with the file's settings
SHORT = ["--epochs", "1", "--train-limit", "64", "--test-limit", "32", "--no-progress", "--threads", "1"]


@pytest.fixture
def offline_sample(monkeypatch):
    """mnist is the 120-row sample: no download, no 5,000-row read."""
    real = pyrovae.training.rundata.load_dataset
    monkeypatch.setattr(pyrovae.training.rundata, "load_dataset",
                        lambda name, *a, **k: SAMPLE if name == "mnist" else real(name, *a, **k))


@pytest.fixture
def deadline():
    """A case that used to hang (a FIFO read, a loop over 1e23 flow steps) fails after 15 s."""
    def expire(signum, frame):
        raise TimeoutError("still running after 15 s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(15)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def refused(program, argv, capsys) -> str:
    """The one line ``program`` answers ``argv`` with, after checking exit status 2 and no traceback."""
    try:
        code = program([str(a) for a in argv])
    except SystemExit as stop:  # argparse's own refusals
        code = stop.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (code, err)
    assert "Traceback" not in err
    return lines[0]


def _write(path, text) -> str:
    path.write_text(text)
    return str(path)


# ----------------------------------------------------------------------------- config files
CONFIG_FILES = {
    "likelihood-object-without-name": ("c.json", '{"likelihood": {}}',
                                       ['a likelihood given as an object needs its "name"', "bernoulli"]),
    "unknown-likelihood-in-object": ("c.json", '{"likelihood": {"name": "poisson"}}',
                                     ["unknown likelihood 'poisson'; choose one of bernoulli"]),
    "custom-likelihood-in-object": ("c.json", '{"likelihood": {"name": "gaussian", "custom": true}}',
                                    ["the likelihood 'gaussian', a callable of its user's",
                                     "pyrovae.resume(run_dir, likelihood=<that callable>)"]),
    "bad-option-in-object": ("c.json", '{"likelihood": {"name": "gaussian", "bogus": 1}}',
                             ["the gaussian likelihood takes no option named 'bogus'; its options are scale, "
                              "min_scale"]),
    "nan-components": ("c.yaml", "prior: mog\nprior_options: {components: .nan}\n",
                       ["mog components must be a positive integer, got nan"]),
    "inf-flow-steps": ("c.yaml", "guide: iaf\nguide_options: {steps: .inf}\n",
                       ["iaf steps must be a positive integer, got inf"]),
    "huge-z-dim": ("c.json", '{"z_dim": 100000000000000000000000000}',
                   ["need at least", "of memory", "more than this machine's", "z_dim 1e+26"]),
    "scale-not-a-number": ("c.json", '{"likelihood": "gaussian", "likelihood_options": {"scale": "abc"}}',
                           ["gaussian scale must be a positive finite number, got 'abc'"]),
    "json-200k-deep": ("c.json", "[" * 200_000 + "]" * 200_000,
                       ["c.json nests lists or objects too deeply to be a file of settings"]),
    "yaml-20k-deep": ("c.yaml", "a: " + "[" * 20_000 + "]" * 20_000,
                      ["c.yaml nests lists or objects too deeply to be a file of settings"]),
}


@pytest.mark.parametrize("name", CONFIG_FILES)
def test_a_config_file_that_is_not_settings_is_one_line(name, tmp_path, monkeypatch, capsys, offline_sample):
    """No --out: the default run folder, under the working directory, is never made."""
    file_name, text, fragments = CONFIG_FILES[name]
    monkeypatch.chdir(tmp_path)
    line = refused(main, ["--config", _write(tmp_path / file_name, text), *SHORT], capsys)
    for fragment in fragments:
        assert fragment in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == [file_name]


@pytest.mark.parametrize("kind", ["device", "fifo", "folder", "too-large"])
def test_a_config_file_must_be_a_small_regular_file(kind, tmp_path, capsys, deadline):
    path = tmp_path / "settings.json"
    if kind == "device":  # /dev/zero, read whole, never ends: the same refusal, tested without the risk
        path.symlink_to("/dev/null")
    elif kind == "fifo":
        os.mkfifo(path)  # opened for reading, it waits for a writer that never comes
    elif kind == "folder":
        path.mkdir()
    else:
        with open(path, "wb") as file:  # 17 MiB, sparse
            file.truncate(17 * 2**20)
    line = refused(main, ["--config", path, *SHORT, "--out", tmp_path / "run"], capsys)
    assert line == (f"error: the config file {path} is larger than 16 MiB, far more than any run's settings take; "
                    "give a file of settings" if kind == "too-large" else
                    f"error: the config file {path} is not a regular file; give a .json or .yaml file of settings")
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- sizes
SIZES = {
    "z-dim": (["--z-dim", HUGE], "x (z_dim 1e+23 + hidden [8] + 1))"),
    "hidden": (["--hidden", HUGE], "x (z_dim 2 + hidden [1e+23] + 1))"),
    "batch-size": (["--batch-size", HUGE], "(batch_size 1e+23 x num_particles 1 x (z_dim 2 + hidden [8] + 1))"),
    "num-particles": (["--num-particles", HUGE], "(batch_size 128 x num_particles 1e+23 x (z_dim 2"),
    "flow-steps": (["--guide", "iaf", "--flow-steps", HUGE], "the iaf guide (1e+23 flow steps of MADE networks [8, 8]"),
    "prior-components": (["--prior", "mog", "--prior-components", HUGE], "the mog prior (1e+23 components of z_dim 2)"),
    "channels": (["--arch", "conv", "--channels", HUGE, 8], "the conv networks (z_dim 2, hidden 8, channels [1e+23, 8])"),
}


@pytest.mark.parametrize("name", SIZES)
def test_sizes_no_memory_holds_are_refused_before_anything_is_built(name, tmp_path, capsys, offline_sample, deadline):
    flags, largest = SIZES[name]
    line = refused(main, [*TINY, *flags, "--out", tmp_path / "run"], capsys)
    assert line.startswith("error: these settings need at least ") and "more than this machine's" in line, line
    assert largest in line.split("; most of it is ")[1] and line.endswith("; lower those sizes"), line
    assert not (tmp_path / "run").exists()


def test_every_entry_refuses_the_same_sizes(tmp_path, capsys, offline_sample):
    """Flags, a config file and TrainConfig in Python: the same refusal, word for word."""
    flags = refused(main, [*TINY, "--num-particles", HUGE, "--out", tmp_path / "a"], capsys)
    settings = {"epochs": 1, "hidden": [8], "z_dim": 2, "train_limit": 64, "test_limit": 32, "progress": False,
                "threads": 1, "num_particles": HUGE}
    path = _write(tmp_path / "settings.json", json.dumps(settings))
    from_file = refused(main, ["--config", path, "--out", tmp_path / "b"], capsys)
    with pytest.raises(pyrovae.ConfigError) as python:
        pyrovae.train(pyrovae.TrainConfig(**settings, out=str(tmp_path / "c")), log=lambda line: None)
    assert flags == from_file == f"error: {python.value}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["settings.json"]


@pytest.mark.parametrize("settings", [
    dict(arch="mlp", hidden=(5, 3), z_dim=2),
    dict(arch="gated", hidden=(4,), z_dim=3),
    dict(arch="mlp", hidden=(6,), z_dim=2, guide="iaf", guide_options={"steps": 3}),
    dict(arch="mlp", hidden=(6,), z_dim=2, guide="iaf", guide_options={"hidden": [5, 7]}),
    dict(arch="mlp", hidden=(6,), z_dim=2, prior="mog", prior_options={"components": 4}),
    dict(arch="conv", hidden=(6,), z_dim=2, channels=(3, 5), image_size=4, prior="vamp",
         prior_options={"components": 3}),
])
def test_the_parameter_bound_is_the_vae_s_own_count(settings):
    """The bound counts exactly the parameters of the VAE the settings describe on the smallest
    data (one column; 4 x 4 pixels for conv), and at most those of the hvae, which holds more."""
    from pyrovae.training.sizes import network_parameters

    config = pyrovae.TrainConfig(**settings)
    side = settings.get("image_size")
    options = dict(hidden=config.hidden, arch=config.arch, image_shape=(side, side) if side else None,
                   channels=config.channels, prior=config.prior, prior_options=config.prior_options,
                   guide=config.guide, guide_options=config.guide_options)
    x_dim = side * side if side else 1
    bound = sum(n for n, _ in network_parameters(config))
    vae = pyrovae.VAE(x_dim, config.z_dim, likelihood="bernoulli", **options)
    assert bound == sum(p.numel() for p in vae.parameters())
    hvae = pyrovae.HVAE(x_dim, config.z_dim, likelihood="bernoulli", **options)
    assert bound < sum(p.numel() for p in hvae.parameters())


# ----------------------------------------------------------------------------- messages
def test_a_component_count_beyond_memory_is_not_called_an_unknown_option(tmp_path, capsys, offline_sample):
    line = refused(main, [*TINY, "--prior", "vamp", "--prior-components", HUGE, "--out", tmp_path / "run"], capsys)
    assert "takes no option" not in line and "most of it is the vamp prior (1e+23 pseudo-inputs)" in line, line


def test_labels_per_class_needs_a_model_that_learns_from_labels(tmp_path, capsys, offline_sample):
    line = refused(main, [*TINY, "--labels-per-class", "5", "--out", tmp_path / "run"], capsys)
    assert line == ("error: --labels-per-class keeps the labels of a few rows for a model that learns from labels "
                    "(--model m2); --model vae uses no labels: drop --labels-per-class")
    assert not (tmp_path / "run").exists()


def test_hidden_labels_in_the_data_do_not_blame_a_flag_never_given(tmp_path, capsys):
    rows = np.random.default_rng(0).random((200, 16)) > 0.5
    labels = np.arange(200) % 3
    labels[:40] = -1  # -1 marks a hidden label (any other negative value is not a class number: refused as such)
    np.savez(tmp_path / "labelled.npz", x=rows.astype(np.float32), y=labels)
    line = refused(main, ["--dataset", tmp_path / "labelled.npz", "--model", "cvae", *TINY,
                          "--out", tmp_path / "run"], capsys)
    assert "--labels-per-class" not in line, line
    assert line.startswith("error: the cvae model needs every training row's label, but ") and line.endswith(
        "training rows have a negative label, which marks a hidden one; give those rows their class, or use "
        "--model m2, which learns from rows whose labels are hidden"), line
    assert not (tmp_path / "run").exists()


def test_listed_files_of_a_folder_that_holds_no_images_are_told_apart(tmp_path, capsys, trained_run):
    for sub in ("a", "b"):
        (tmp_path / "data" / sub).mkdir(parents=True)
        (tmp_path / "data" / sub / "notes.txt").write_text("not an image")
    line = refused(encode_main, [trained_run, tmp_path / "data", "--out", tmp_path / "z.npz"], capsys)
    assert "; found a/notes.txt, b/notes.txt; it is not a data set" in line, line
    assert not (tmp_path / "z.npz").exists()


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A finished 2-epoch run of the sample."""
    out = tmp_path_factory.mktemp("trained") / "run"
    config = pyrovae.TrainConfig(epochs=2, hidden=(8,), z_dim=2, progress=False, threads=1, out=str(out))
    pyrovae.train(config, log=lambda line: None, dataset=SAMPLE)
    return out


def test_resuming_to_fewer_epochs_than_the_run_has_is_refused(trained_run, capsys):
    before = {p.name: p.read_bytes() for p in trained_run.iterdir()}
    line = refused(main, ["--resume", trained_run, "--epochs", "1", "--no-progress"], capsys)
    assert line == (f"error: {trained_run} has finished 2 epochs, past --epochs 1, so resuming would train nothing; "
                    "give --epochs above 2 to train more")
    assert {p.name: p.read_bytes() for p in trained_run.iterdir()} == before


class OwnVAE(pyrovae.VAE):
    """A user's own model class: its runs record it as custom."""


@pytest.fixture(scope="module")
def own_model_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("own") / "run"
    config = pyrovae.TrainConfig(epochs=1, progress=False, threads=1, out=str(out))
    pyrovae.train(config, log=lambda line: None, dataset=SAMPLE, model=OwnVAE(784, 2, (8,)))
    return out


@pytest.mark.parametrize("program, argv, python", [
    (evaluate_main, ["--num-samples", "2"], "from pyrovae.analysis.evaluate import evaluate_run; "
                                            "evaluate_run('{run}', model=<that class>)"),
    (encode_main, ["test", "--out", "{tmp}/z.npz"], "vae = pyrovae.load('{checkpoint}', model=<that class>), "
                                                   "then pyrovae.encode_dataset(vae, rows, out_path)"),
    (plot_latent_main, ["--out", "{tmp}/figures"], "vae = pyrovae.load('{checkpoint}', model=<that class>), "
                                                   "then plot from its encode and decode"),
], ids=["evaluate", "encode", "plot_latent"])
def test_a_run_of_a_users_own_model_tells_a_shell_user_what_to_run(program, argv, python, own_model_run, tmp_path,
                                                                   capsys):
    name = {evaluate_main: "evaluate.py", encode_main: "encode.py", plot_latent_main: "plot_latent.py"}[program]
    line = refused(program, [own_model_run, *(a.format(tmp=tmp_path) for a in argv)], capsys)
    checkpoint = own_model_run / ("checkpoint.pt" if program is plot_latent_main else "best.pt")  # the one it reads
    assert line == (f"error: {checkpoint} holds a model of a user's own class, which a checkpoint "
                    f"cannot hold and {name} cannot rebuild; run it from Python, where the class can be given: "
                    + python.format(run=own_model_run, checkpoint=checkpoint)), line
    assert "pass model=" not in line and list(tmp_path.iterdir()) == []
