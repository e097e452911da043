"""scripts/bench_data.py: each placement is timed on the same losses; the report names the CPU,
threads and versions; bad flags are one line."""
from benchmarks.bench_data import markdown, measure
from benchmarks.host import machine
from helpers import run_main
from pyrovae.environment import cpu_model, versions


def test_the_benchmark_times_both_placements_on_the_same_losses(mnist_sample, tmp_path):
    result = measure(mnist_sample.train_x[:300], "cpu", batch_size=64, epochs=2, hidden=(32,), log=lambda line: None)
    assert [r["placement"] for r in result["rows"]] == ["device", "host, streamed", "host, naive"]
    assert all(r["same_losses_as_device"] and r["seconds_per_epoch"] > 0 for r in result["rows"])
    text = markdown({**result, "command": "c", "device": "cpu", "dataset": "mnist", "num_rows": 300, "x_dim": 784,
                     "batch_size": 64, "epochs": 2, "hidden": [32], "data_bytes": 300 * 784 * 4,
                     "free_device_bytes": None, "device_fraction": 0.5, "auto_placement": "device", "note": "moot",
                     "machine": {**machine(), "logical_cpus": 2, "torch_threads": 1}, "versions": versions()})
    assert "| host, streamed | no |" in text and "Note: moot." in text
    v = versions()
    assert f"\n\nRan on: {cpu_model()}, 2 logical CPUs, torch threads 1; torch {v['torch']}, pyro {v['pyro']}, " in text


def test_bad_flags_are_one_line(tmp_path):
    result = run_main("bench_data.py", "--epochs", "1", "--out", tmp_path / "bench")
    assert result.returncode == 2 and not (tmp_path / "bench").exists()
    assert result.stderr.splitlines() == [
        "error: sizes must be positive and --epochs at least 2 (the first is not timed) (see --help)"]
