"""compare_elbo.py and nll_table.py on small real runs."""
import json
import math

import pytest

from helpers import run_main, run_script, tiny_run
from pyrovae.analysis.evaluate import evaluate_run


@pytest.fixture(scope="module")
def bernoulli_run(mnist_sample, tmp_path_factory):
    return tiny_run(tmp_path_factory.mktemp("bern"), mnist_sample, z_dim=2)


def test_compare_elbo_script_small(tmp_path):
    out = tmp_path / "study"
    result = run_script("compare_elbo.py", "--dataset", "mnist", "--no-download", "--data-dir", tmp_path / "none",
                        "--train-limit", 300, "--test-limit", 100, "--epochs", 2, "--seeds", 2, "--nll-samples", 20,
                        "--nll-test-limit", 50, "--grad-repeats", 5, "--z-dim", 4, "--hidden", 32, "--out", out)
    assert result.returncode == 0, result.stderr
    assert {"table.md", "metrics.json", "curves.png", "grad_variance.png", "runs"} <= {p.name for p in out.iterdir()}
    metrics = json.loads((out / "metrics.json").read_text())
    assert [(r["elbo"], r["seed"]) for r in metrics["runs"]] == [("trace", 0), ("meanfield", 0), ("trace", 1), ("meanfield", 1)]
    assert metrics["dataset"]["num_train"] == 300 and metrics["nll"] == {"num_samples": 20, "num_test_images": 50}
    ratios = metrics["summary"]["grad_variance_ratio_trace_over_meanfield"]
    assert set(ratios) == {f"{g}_epoch{e}" for g in ("encoder", "decoder") for e in (0, 1, 2)}
    # the decoder's gradient does not involve the KL term: same draws, same gradient
    assert all(math.isclose(ratios[f"decoder_epoch{e}"]["mean"], 1.0, rel_tol=1e-6) for e in (0, 1, 2))
    table = (out / "table.md").read_text()
    assert "Trace_ELBO (Monte-Carlo KL)" in table and "TraceMeanField_ELBO (analytic KL)" in table


def test_nll_table_lists_evaluated_runs_beside_the_anchors(bernoulli_run, tmp_path):
    evaluate_run(bernoulli_run, num_samples=20, log=lambda s: None, command="python scripts/evaluate.py RUN")
    result = run_script("nll_table.py", bernoulli_run, "--out", tmp_path / "table")
    assert result.returncode == 0, result.stderr
    table = json.loads((tmp_path / "table.json").read_text())
    [row] = table["rows"]
    assert row["architecture"] == "mlp, hidden [64], z 2" and row["num_samples"] == 20 and row["epochs"] == 2
    assert row["evaluate_command"] == "python scripts/evaluate.py RUN"
    text = (tmp_path / "table.md").read_text()
    assert "88.71" in text and f"**{row['test_nll']:.2f}**" in text
    assert row["weights"] == str(bernoulli_run / "best.pt") and f"weights: `{row['weights']}`" in text


def test_nll_table_refuses_an_unscored_run(tmp_path, mnist_sample):
    run = tiny_run(tmp_path, mnist_sample, z_dim=2)
    result = run_main("nll_table.py", run, "--out", tmp_path / "table")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {run} has no test NLL yet; run python scripts/evaluate.py {run} first"]
