"""Every bad input answered (property-based, hypothesis): any mix of command-line values
ends with exit 0 and a finished run, or with exactly one ``error:`` line and exit 2, never
a traceback; an invalid value is never accepted. Data handed to the library (NaN or
infinite pixels, wrong shapes or dtypes, values outside the likelihood's support, empty
sets, a batch larger than the data) gets a PyrovaeError or a correct result."""
import contextlib
import io
import json
import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

import pyrovae
import pyrovae.training.rundata
from pyrovae.cli import main
from pyrovae.data.datasets import Dataset, load_mnist_sample

SAMPLE = load_mnist_sample().limit(120, 40)

POSITIVE = ["z_dim", "hidden", "batch_size", "num_particles", "epochs", "test_frequency", "train_limit",
            "test_limit", "lr_patience", "threads"]
NON_NEGATIVE = ["valid_size", "checkpoint_every", "kl_warmup", "early_stopping"]
# valid values drawn about half the time, so that both outcomes are exercised
SMALL_INTS = st.one_of(st.sampled_from(["1", "2", "3"]), st.sampled_from(["-5", "-1", "0", "x", "1.5", "", "nan"]))
CHOICES = {
    "likelihood": ["bernoulli", "continuous-bernoulli", "gaussian", "laplace", "beta", "poisson"],
    "elbo": ["trace", "meanfield", "iwae", "renyi"],
    "binarize": ["auto", "dynamic", "static", "none", "sometimes"],
    "dequantize": ["auto", "uniform", "none", "gaussian"],
    "arch": ["mlp", "conv", "resnet"],
    "lr_schedule": ["constant", "cosine", "plateau", "step"],
}


def _is_int(text, low):
    try:
        return int(text) >= low
    except ValueError:
        return False


#: (value, valid): a likelihood option whose name some likelihood takes, with a good value, is valid (the
#: likelihood drawn may still take no such option: a clash); a malformed item or a bad value is not
LIKELIHOOD_OPTIONS = [("scale=0.1", True), ("min_scale=0.01", True), ("eps=0.01", True), ("scale", False),
                      ("=1", False), ("scale=x", False), ("scale=-1", False), ("scale=inf", False), ("eps=0.7", False)]
#: (value, valid) of --seed: 0 .. 2**32 - 1
SEEDS = [("0", True), ("3", True), (str(2**32 - 1), True), ("-1", False), (str(2**32), False), (str(2**64), False),
         ("x", False)]
#: --lr-min, drawn with --lr-schedule cosine: valid when finite, >= 0 and at most --lr
LR_MINS = ["0", "1e-5", "1e-3", "0.01", "-1", "nan", "inf"]


@st.composite
def command_lines(draw):
    """(argv, expected_valid): a random mix of flags with valid and invalid values."""
    argv, valid = [], True
    values = {}
    lr_min, schedule = None, "constant"
    names = POSITIVE + NON_NEGATIVE + list(CHOICES) + ["lr", "likelihood_scale", "likelihood_option", "seed", "lr_min"]
    for name in draw(st.lists(st.sampled_from(names), unique=True, max_size=5)):
        flag = "--" + name.replace("_", "-")
        if name in CHOICES:
            value = draw(st.one_of(st.sampled_from(CHOICES[name][:-1]), st.just(CHOICES[name][-1])))
            valid &= value in CHOICES[name][:-1]  # the last of each list is not a choice
            schedule = value if name == "lr_schedule" else schedule
        elif name in ("lr", "likelihood_scale"):
            value = draw(st.one_of(st.sampled_from(["1e-3", "0.5"]), st.sampled_from(["nan", "inf", "-1", "0", "abc"])))
            valid &= value in ("1e-3", "0.5")
        elif name in ("likelihood_option", "seed"):
            value, ok = draw(st.sampled_from(LIKELIHOOD_OPTIONS if name == "likelihood_option" else SEEDS))
            valid &= ok
        elif name == "lr_min":
            value = lr_min = draw(st.sampled_from(LR_MINS))
            argv += ["--lr-schedule", "cosine"]  # a schedule that uses it; a later --lr-schedule wins
            schedule = "cosine"
        else:
            value = draw(SMALL_INTS)
            valid &= _is_int(value, 1 if name in POSITIVE else 0)
        values[name] = value
        argv += [flag, value]
    if lr_min is not None:  # judged once the final --lr and --lr-schedule are known
        lr = float(values["lr"]) if values.get("lr") in ("1e-3", "0.5") else 1e-3
        low = float(lr_min)
        valid &= 0 <= low < math.inf and (schedule == "constant" or low <= lr)
        values["lr_schedule"] = schedule  # the one that wins
    return argv, valid, values


def run_main(argv):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as stop:  # argparse's own refusals
            code = stop.code
    return code, err.getvalue()


@pytest.fixture
def offline_sample(monkeypatch):
    real = pyrovae.training.rundata.load_dataset
    monkeypatch.setattr(pyrovae.training.rundata, "load_dataset",
                        lambda name, *a, **k: SAMPLE if name == "mnist" else real(name, *a, **k))


@pytest.fixture
def keep_threads():
    """--threads N sets torch's global thread count in this process: put it back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


#: the options each built-in likelihood takes (--likelihood-scale is its option "scale"), and the data it scores
TAKES = {"bernoulli": (), "continuous-bernoulli": (), "gaussian": ("scale", "min_scale"), "laplace": ("scale", "min_scale"),
         "beta": ("eps",)}
SCORES_BINARY = ("bernoulli",)


def expected_clash(values: dict):
    """The one line a command line of valid values must be refused with, when its values clash
    (each clash named by its exact text), or None: it must train."""
    likelihood = values.get("likelihood", "bernoulli")
    options = ([values["likelihood_option"].split("=")[0]] if "likelihood_option" in values else []) + (
        ["scale"] if "likelihood_scale" in values else [])
    if any(o not in TAKES[likelihood] for o in options):
        return f"error: the {likelihood} likelihood takes no option named "
    if values.get("elbo") == "iwae" and values.get("kl_warmup", "0") != "0":
        return "error: --elbo iwae cannot take --kl-warmup"
    binarize = values.get("binarize", "auto")
    if binarize in ("dynamic", "static") and likelihood not in SCORES_BINARY:
        return f"error: binarize={binarize} makes binary data, which the {likelihood} likelihood cannot score"
    if values.get("dequantize") == "uniform" and likelihood in SCORES_BINARY:
        return f"error: dequantize=uniform makes continuous data, which the {likelihood} likelihood cannot score"
    no_validation = values.get("valid_size") == "0"
    if no_validation and values.get("lr_schedule") == "plateau":
        return "error: --lr-schedule plateau needs a validation set"
    if no_validation and values.get("early_stopping", "0") != "0":
        return f"error: --early-stopping {values['early_stopping']} needs a validation set"
    if binarize == "none" and likelihood in SCORES_BINARY:  # the MNIST digits are grey
        return "error: the bernoulli likelihood needs binary data in {0, 1}, but the mnist training data has values"
    if values.get("lr") == "0.5":  # a step of 0.5 can overflow the decoder's logits
        return "error: the loss is not finite in epoch 1"
    return None


# 100 command lines (a third of them valid, most of which train), drawn the same on every run (conftest.py)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=command_lines())
@example(case=(["--lr-schedule", "cosine", "--lr-min", "0.01"], False, {}))
@example(case=(["--seed", "-1"], False, {}))
@example(case=(["--seed", str(2**64)], False, {}))
@example(case=(["--seed", str(2**32 - 1), "--likelihood-option", "scale=0.1", "--likelihood", "gaussian",
                "--threads", "1", "--valid-size", "3"], True, {"seed": str(2**32 - 1), "likelihood_option": "scale=0.1",
                                                               "likelihood": "gaussian", "threads": "1", "valid_size": "3"}))
@example(case=(["--likelihood-scale", "0.5", "--binarize", "none"], True, {"likelihood_scale": "0.5", "binarize": "none"}))
@example(case=(["--binarize", "none"], True, {"binarize": "none"}))
@example(case=(["--dequantize", "uniform"], True, {"dequantize": "uniform"}))
def test_any_command_line_ends_cleanly(case, offline_sample, keep_threads, tmp_path_factory):
    argv, valid, values = case
    out = tmp_path_factory.mktemp("cli")
    base = ["--epochs", "1", "--hidden", "8", "--z-dim", "2", "--train-limit", "64", "--test-limit", "32",
            "--no-progress", "--out", str(out / "run")]
    code, err = run_main(base + argv)  # the drawn flags come last and win
    lines = [line for line in err.splitlines() if line.strip()]
    event(f"{'valid' if valid else 'invalid'} values, exit {code}")
    if code == 0:
        assert valid, f"accepted invalid input {argv}"
        metrics = json.loads((out / "run" / "metrics.json").read_text())
        assert math.isfinite(metrics["test_elbo"])
    else:
        assert code == 2, (code, err)
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        assert "Traceback" not in err
    if valid:  # valid values train, unless they clash in a way named above
        clash = expected_clash(values)
        if clash is None:
            assert code == 0, f"valid input {argv} refused: {lines}"
        elif clash == "error: the loss is not finite in epoch 1":  # a too-large step may still train
            assert code == 0 or lines[0].startswith(clash), (argv, clash, lines)
        else:
            assert code == 2 and lines[0].startswith(clash), (argv, clash, lines)


@st.composite
def bad_arrays(draw):
    n = draw(st.one_of(st.sampled_from([1, 3]), st.just(0)))
    d = draw(st.one_of(st.just(784), st.just(10)))
    dtype = draw(st.one_of(st.sampled_from([np.float32, np.float64]), st.sampled_from([np.int64, np.uint8, np.bool_])))
    pixel = st.one_of(st.sampled_from([0.0, 1.0]), st.sampled_from([0.5, -1.0, 2.0, float("nan"), float("inf")]))
    fill = draw(st.lists(pixel, min_size=1, max_size=3))
    x = np.resize(np.array(fill, dtype=np.float64), (n, d))
    with np.errstate(invalid="ignore"):
        return torch.from_numpy(x.astype(dtype)), x


BINARY = np.resize(np.array([0.0, 1.0, 1.0]), (3, 784))
VALID_ARRAY = (torch.from_numpy(BINARY.astype(np.float32)), BINARY)


def _encodable(x: torch.Tensor, x64: np.ndarray) -> bool:
    """What encode() accepts: (N, 784) floating point, finite (N = 0 included)."""
    return (x.dim() == 2 and x.shape[1] == 784 and x.dtype in (torch.float32, torch.float64)
            and bool(np.isfinite(x64).all()))


def _scorable(x: torch.Tensor, x64: np.ndarray) -> bool:
    """What the Bernoulli VAE can score: encodable, at least one row, pixels in {0, 1}."""
    return _encodable(x, x64) and x.shape[0] > 0 and bool(np.isin(x64, [0.0, 1.0]).all())


@settings(max_examples=60, deadline=None)
@given(case=bad_arrays(), shape=st.one_of(st.just("2d"), st.sampled_from(["1d", "3d"])))
@example(case=VALID_ARRAY, shape="2d")
def test_library_data_is_checked(case, shape):
    x, x64 = case
    x = {"2d": x, "1d": x.reshape(-1), "3d": x.reshape(1, *x.shape)}[shape]
    torch.manual_seed(0)
    vae = pyrovae.VAE(x_dim=784, z_dim=2, hidden=(8,))
    uses = {"encode": (lambda: vae.encode(x), _encodable),
            "log_likelihood": (lambda: (pyrovae.log_likelihood(vae, x, num_samples=3),), _scorable),
            "elbo": (lambda: (pyrovae.elbo(vae, x).elbo,), _scorable)}
    for name, (use, accepts) in uses.items():
        expected = accepts(x, x64)
        event(f"{name}: {'accept' if expected else 'refuse'}")
        try:
            result = use()
        except pyrovae.PyrovaeError:
            assert not expected, f"{name} refused valid data"
            continue
        assert expected, f"{name} accepted bad data: {x.dtype} {tuple(x.shape)} {np.unique(x64)}"
        assert all(t.shape[0] == x.shape[0] and bool(torch.isfinite(t).all()) for t in result), name


@settings(max_examples=25, deadline=None)
@given(case=bad_arrays())
@example(case=VALID_ARRAY)
def test_training_data_is_checked(case, tmp_path_factory):
    x, x64 = case
    out = tmp_path_factory.mktemp("data")
    dataset = Dataset("custom", "test", x, x[: max(1, len(x))])
    # valid_size=0: a training set of one image has nothing to hold out for validation
    config = pyrovae.TrainConfig(epochs=1, z_dim=2, hidden=(8,), progress=False, out=str(out), binarize="none",
                                 valid_size=0)
    ok = _scorable(x, x64)
    event("accept" if ok else "refuse")
    try:
        metrics = pyrovae.train(config, log=lambda s: None, dataset=dataset)
    except pyrovae.PyrovaeError as error:
        assert not ok, f"valid data refused: {error}"
        return
    assert ok, f"bad data accepted: {x.dtype} {tuple(x.shape)}"
    assert math.isfinite(metrics["test_elbo"])


def test_batch_larger_than_the_data_trains(tmp_path):
    config = pyrovae.TrainConfig(epochs=2, z_dim=2, hidden=(8,), batch_size=10_000, progress=False, out=str(tmp_path))
    metrics = pyrovae.train(config, log=lambda s: None, dataset=SAMPLE)
    assert len(metrics["history"]) == 2 and math.isfinite(metrics["test_elbo"])
