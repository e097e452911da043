"""Every model trains through the same machinery: cvae and m2 resume bit for bit after a kill,
evaluate, encode and load; a user's own model (the very code of docs/own-model.md) trains,
resumes bit for bit and loads by class; M2 learns to classify real digits from a few labels;
what a model cannot do, and labels that are not there, are refused in one line before
anything is written."""
import json
import re
from pathlib import Path

import numpy as np
import pyro
import pytest
import torch
from sklearn.datasets import load_digits

import pyrovae
from helpers import ROOT, assert_log_p_not_below_elbo, run_main, run_python, run_script
from pyrovae.analysis.encode import encode_run
from pyrovae.analysis.evaluate import evaluate_run
from resume_checks import DRIVER, assert_same_run

quiet = lambda line: None  # noqa: E731
STEPS_PER_EPOCH = 12  # 600 rows in minibatches of 50 (m2: its hidden-label rows, fewer)


def train_args(tmp_path, out, model, *extra):
    return ["--model", model, "--dataset", "mnist", "--no-download", "--data-dir", str(tmp_path / "no-mnist"),
            "--train-limit", "600", "--test-limit", "100", "--valid-size", "100", "--z-dim", "4", "--hidden", "32",
            "--batch-size", "50", "--epochs", "3", "--kl-warmup", "2", "--checkpoint-every", "5", "--no-progress",
            "--threads", "1", "--out", str(out), *extra]


def drive(tmp_path, mode, at, args):
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    return run_python(driver, mode, at, *args, timeout=600)


@pytest.mark.parametrize("model, extra", [("cvae", ()), ("m2", ("--labels-per-class", "5", "--labelled-batch", "20"))])
def test_labelled_models_resume_bit_for_bit_after_a_kill(mnist_sample, tmp_path, model, extra):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert drive(tmp_path, "none", 0, train_args(tmp_path, whole, model, *extra)).returncode == 0
    stopped = drive(tmp_path, "SIGKILL", STEPS_PER_EPOCH + 3, train_args(tmp_path, killed, model, *extra))
    assert stopped.returncode == -9
    # resumed in this process (--threads 1 there too: the same order of sums as the driven runs)
    resumed = run_main("svi_train.py", "--resume", str(killed), "--no-progress", "--threads", "1")
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(whole, killed)
    metrics = json.loads((killed / "metrics.json").read_text())
    assert metrics["model"] == model and metrics["resumes"]
    if model == "m2":
        assert 0 <= metrics["test_accuracy"] <= 1 and all("valid_accuracy" in h for h in metrics["history"])
        assert metrics["dataset"]["labels"]["per_class"] == 5
    # evaluate, encode and load take every model
    result = evaluate_run(killed, num_samples=20, log=quiet)
    # log p(x) above the ELBO, up to Monte-Carlo error: its size from the same estimates, row by row,
    # on the 100 test rows scored (the labelled models score them given their labels)
    scored = pyrovae.load(killed / "best.pt")
    x = torch.bernoulli(mnist_sample.test_x[::10], generator=torch.Generator().manual_seed(1))
    given = mnist_sample.test_y[::10] if scored.labels == "required" else None
    se = assert_log_p_not_below_elbo(pyrovae.log_likelihood(scored, x, num_samples=20, y=given),
                                     pyrovae.elbo(scored, x, num_particles=10, y=given).elbo)
    assert result["test_nll"] <= -result["test_elbo"] + 4 * se
    encode_run(killed, "test", tmp_path / "z.npz", score=True, log=quiet)
    with np.load(tmp_path / "z.npz", allow_pickle=False) as saved:
        assert saved["loc"].shape == (100, 4) and len(saved["y"]) == 100
        assert ("probs" in saved.files) == (model == "m2")
    loaded = pyrovae.load(killed / "best.pt")
    assert type(loaded).__name__ == model.upper()


OWN_MODEL = ROOT / "docs" / "own-model.md"


def _own_model_code() -> str:
    """The class of docs/own-model.md, exactly as the page shows it (its first python block)."""
    return re.findall(r"```python\n(.*?)```", OWN_MODEL.read_text(), flags=re.S)[0]


def test_the_own_model_page_trains_resumes_bit_for_bit_and_loads(mnist_sample, tmp_path):
    namespace = {}
    exec(compile(_own_model_code(), str(OWN_MODEL), "exec"), namespace)  # the page's code, as a user pastes it
    StudentTVAE = namespace["StudentTVAE"]

    def config(out, epochs):
        return pyrovae.TrainConfig(epochs=epochs, train_limit=300, test_limit=60, valid_size=60, batch_size=50,
                                   kl_warmup=2, progress=False, out=str(out))

    def built():  # the model's first weights come from the random state when it is built: seed it first
        pyro.set_rng_seed(0)
        return StudentTVAE()

    whole = pyrovae.train(config(tmp_path / "whole", 3), log=quiet, dataset=mnist_sample, model=built())
    pyrovae.train(config(tmp_path / "part", 2), log=quiet, dataset=mnist_sample, model=built())
    resumed = pyrovae.resume(tmp_path / "part", epochs=3, log=quiet, dataset=mnist_sample, model=StudentTVAE)
    assert_same_run(tmp_path / "whole", tmp_path / "part")
    assert resumed["model"] == whole["model"] and re.fullmatch(r"custom \(.*StudentTVAE\)", whole["model"])
    assert json.loads((tmp_path / "whole" / "config.json").read_text())["settings"]["model"] == "custom"
    loaded = pyrovae.load(tmp_path / "whole" / "best.pt", model=StudentTVAE)
    assert isinstance(loaded, StudentTVAE) and loaded.df == 3.0
    with pytest.raises(pyrovae.CheckpointError, match="pass model=<that class> to load it"):
        pyrovae.load(tmp_path / "whole" / "best.pt")
    line = run_script("evaluate.py", tmp_path / "whole", "--num-samples", "5").stderr.strip()
    assert line.startswith("error: ") and "user's own class" in line and "\n" not in line


def test_m2_learns_digits_from_five_labels_per_class(tmp_path):
    """scikit-learn's 1,797 real 8x8 digits, 5 labels per class (50 of 1,455 training rows): M2's
    test accuracy is far above chance (10%) after a CI-sized run."""
    digits = load_digits()
    data = pyrovae.Dataset.from_arrays(digits.images.astype(np.float32) / 16.0, train_y=digits.target, levels=17,
                                       test_size=0.1)
    config = pyrovae.TrainConfig(model="m2", labels_per_class=5, epochs=25, hidden=(64,), z_dim=8, batch_size=64,
                                 lr=3e-3, progress=False, out=str(tmp_path))
    metrics = pyrovae.train(config, log=quiet, dataset=data)
    assert metrics["dataset"]["labels"]["per_class"] == 5 and metrics["dataset"]["num_test"] == 180
    assert metrics["test_accuracy"] > 0.6, metrics["test_accuracy"]


BAD = [
    (["--model", "m2", "--dataset", "{unlabelled}"], "needs class labels"),
    (["--model", "cvae", "--dataset", "{labelled}", "--labels-per-class", "2"], "needs every training row's label"),
    (["--model", "m2", "--dataset", "{labelled}", "--labels-per-class", "500"], "has training rows"),
    (["--model", "m2", "--dataset", "{table}", "--label-column", "nope", "--likelihood", "gaussian"], "nope"),
    (["--model", "m2", "--dataset", "{table}", "--label-column", "label", "--likelihood", "gaussian"],
     "not an integer class label"),
    (["--model", "m2", "--dataset", "{labelled}", "--fast"], "drop --fast for --model m2"),
    (["--model", "cvae", "--dataset", "{labelled}", "--distributed"], "drop --distributed for --model cvae"),
    (["--model", "m2", "--dataset", "{labelled}", "--elbo", "meanfield"], "use --elbo trace"),
    (["--model", "cvae", "--dataset", "{labelled}", "--arch", "conv"], "takes --arch mlp or gated"),
    (["--model", "m2", "--dataset", "{labelled}", "--prior", "vamp"], "drop --prior and --guide"),
    (["--model", "m2", "--dataset", "{labelled}", "--alpha", "-1"], "alpha must be a non-negative number"),
]


@pytest.mark.parametrize("args, message", BAD, ids=[m for _, m in BAD])
def test_what_a_model_cannot_take_is_one_line_and_writes_nothing(tmp_path, args, message):
    digits = load_digits()
    files = {"unlabelled": tmp_path / "digits.npy", "labelled": tmp_path / "digits.npz", "table": tmp_path / "t.csv"}
    np.save(files["unlabelled"], digits.images[:300].astype(np.float32) / 16.0)
    np.savez(files["labelled"], x=digits.images[:300].astype(np.float32) / 16.0, y=digits.target[:300])
    table = np.column_stack([digits.data[:300, :8], digits.target[:300] + 0.5])  # labels that are not integers
    files["table"].write_text("," .join([f"c{i}" for i in range(8)] + ["label"]) + "\n"
                              + "\n".join(",".join(f"{v:g}" for v in row) for row in table) + "\n")
    out = tmp_path / "runs" / "run"
    argv = [a.format(**{k: str(v) for k, v in files.items()}) for a in args]
    result = run_main("svi_train.py", *argv, "--epochs", "1", "--no-progress", "--out", out)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert not (tmp_path / "runs").exists()


def test_the_cli_names_the_model_and_its_classes(tmp_path):
    digits = load_digits()
    path = tmp_path / "digits.npz"
    np.savez(path, x=digits.images[:400].astype(np.float32) / 16.0, y=digits.target[:400])
    result = run_script("svi_train.py", "--model", "cvae", "--dataset", path, "--epochs", "1", "--hidden", "16",
                        "--z-dim", "2", "--no-progress", "--threads", "1", "--out", tmp_path / "run")
    assert result.returncode == 0, result.stderr
    assert "model cvae (10 classes)" in result.stdout.splitlines()[0]
    samples = tmp_path / "run" / "samples.png"
    assert samples.is_file() and samples.stat().st_size > 1000
    assert Path(tmp_path / "run" / "best.pt").is_file() and torch.load(tmp_path / "run" / "best.pt",
                                                                       weights_only=True)["model"] == "cvae"
