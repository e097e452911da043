"""scripts/bench_threads.py: each wait policy's worker gets its own OpenMP environment, a worker
trains with --fast and reports its epochs, the busy processes run and are stopped, the rounds
become ratios to the first setting within each round, and bad flags are one line."""
import json
import os
import statistics

import numpy as np
import pytest

from benchmarks import bench_threads
from benchmarks.bench_threads import SETTINGS, busy, main, markdown, stop, summarize, worker


def test_each_setting_gets_its_own_wait_policy(monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")  # as scripts/_startup.py leaves it in the parent
    assert bench_threads._environment("passive")["OMP_WAIT_POLICY"] == "PASSIVE"
    assert bench_threads._environment("active")["OMP_WAIT_POLICY"] == "ACTIVE"
    assert "OMP_WAIT_POLICY" not in bench_threads._environment("default")  # libgomp's own: spin, then sleep
    assert bench_threads._environment("default")["PYTHONPATH"].split(os.pathsep)[0] == str(bench_threads._ROOT)


def test_a_worker_trains_with_fast_and_reports_its_epochs(binary_batch, tmp_path, capsys):
    rows = tmp_path / "rows.npy"
    np.save(rows, binary_batch.numpy().astype(np.float32))
    request = {"dataset": str(rows), "data_dir": str(tmp_path), "batch_size": 16, "hidden": [8], "z_dim": 2,
               "threads": 1, "epochs": 2, "max_steps": 2}
    assert worker([json.dumps(request)]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["mode"] == "compiled" and record["fast_step"]["threads"] == 1
    assert len(record["epochs"]) == 2 and all(w > 0 and c > 0 for w, c in record["epochs"])


def test_busy_processes_run_until_stopped():
    processes = busy(2)
    assert all(p.poll() is None for p in processes)
    stop(processes)
    assert all(p.returncode is not None for p in processes)


def _result(epochs: dict) -> dict:
    """``epochs``: round -> condition -> setting -> wall seconds of its epochs (CPU: twice those), or an error."""
    rounds = [{c: {s: ({"error": e} if isinstance(e, str) else {"epochs": [[w, 2 * w] for w in e]})
                   for s, e in settings.items()} for c, settings in r.items()} for r in epochs]
    return {"protocol": {"settings": ["passive", "default"], "conditions": ["quiet", "busy"], "dataset": "d",
                         "hidden": [8], "z_dim": 2, "batch_size": 16, "steps": 2, "epochs": 2, "rounds": len(rounds),
                         "busy": 1, "threads": 2},
            "rounds": rounds, "machine": {"cpu": "Some CPU (avx2)", "logical_cpus": 2, "torch_threads": 2},
            "versions": {"torch": "2.14"}, "load_average_start": [1.0], "load_average_end": [1.0],
            "command": "python scripts/bench_threads.py"}


def test_the_ratios_are_taken_within_each_round():
    r = _result([{"quiet": {"passive": [2.0, 4.0], "default": [1.5, 1.5]}, "busy": {"passive": [3.0, 3.0],
                                                                                    "default": "not finished in 9 s"}},
                 {"quiet": {"passive": [1.0, 1.0], "default": [1.0, 1.0]}, "busy": {"passive": [3.0, 3.0],
                                                                                    "default": [9.0, 9.0]}}])
    r["summary"] = s = summarize(r)
    quiet, loaded = s["quiet"], s["busy"]
    assert quiet["passive"]["ratio"] == {"median": 1.0, "min": 1.0, "max": 1.0}
    assert quiet["default"]["ratio"] == {"median": statistics.median([0.5, 1.0]), "min": 0.5, "max": 1.0}
    assert quiet["passive"]["epoch_s"] == {"median": 1.5, "min": 1.0, "max": 4.0}
    assert quiet["default"]["threads_used"] == {"median": 2.0, "min": 2.0, "max": 2.0}
    assert loaded["default"]["ratio"] == {"median": 3.0, "min": 3.0, "max": 3.0}  # the stopped worker's round left out
    assert loaded["default"]["failed"] == ["not finished in 9 s"] and loaded["default"]["modes"] == ["compiled"]
    md = markdown(r)
    assert md.startswith("# OpenMP's wait policy and the `--fast` epoch on Some CPU (avx2)\n")
    assert f"| {SETTINGS['default'][0]} | 1.25 (1.00-1.50) | 2.50 (2.00-3.00) | 2.00 (2.00-2.00) | 0.75x (0.50-1.00) |" in md
    assert f"| {SETTINGS['default'][0]} (1 failed: not finished in 9 s) | 9.00 (9.00-9.00) |" in md
    r["rounds"][0]["quiet"]["default"]["mode"] = "eager"  # a worker whose compiled step fell back
    r["summary"] = summarize(r)
    assert f"| {SETTINGS['default'][0]} (the step ran compiled and eager) | 1.25 (1.00-1.50) |" in markdown(r)


def test_a_worker_without_a_record_is_a_failed_row(monkeypatch):
    class Done:
        returncode, stdout, stderr = 0, "", ""
    monkeypatch.setattr(bench_threads.subprocess, "run", lambda *a, **k: Done())
    assert bench_threads.run_worker("passive", {}, 5) == {"error": "the worker printed no record"}


@pytest.mark.parametrize("argv", [["--rounds", "0"], ["--busy", "-1"], ["--settings", "passive", "passive"],
                                  ["--settings", "spinning"], ["--bogus"]])
def test_bad_flags_are_one_line(argv, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
