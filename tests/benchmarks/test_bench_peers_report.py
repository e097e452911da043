"""The peers report from made-up rounds: the floor is the faster backend's and is named, each
row's threads used is its CPU seconds over its wall seconds, the goals are met or not by the
numbers, and the report names where it ran; CPU models give file names."""
import pytest

from benchmarks.bench_peers_report import (
    FAST,
    FAST_BEFORE,
    FAST_ONEDNN,
    FLOOR_MM,
    FLOOR_ONEDNN,
    NUMPYRO,
    REFERENCE,
    markdown,
    summarize,
)
from benchmarks.host import cpu_slug, describe


def _result(rows_1: dict, rows_2: dict) -> dict:
    """Two rounds at 1 and 2 threads; ``rows_t``: name -> (wall s, CPU s), the same in each round."""
    rounds = [{"round": i + 1, "epochs": {}, "steps": {}} for i in range(2)]
    for t, rows in ((1, rows_1), (2, rows_2)):
        for r in rounds:
            r["epochs"][t] = {n: {"wall_s": w, "cpu_s": c, "loss_sum": None} for n, (w, c) in rows.items()}
            r["steps"][t] = {n: {"wall_s": w / 10, "cpu_s": c / 10, "steps": 10} for n, (w, c) in rows.items()}
    return {"protocol": {"threads": [1, 2], "images_per_epoch": 100, "dataset": "d", "rows": 100, "batch_size": 10,
                         "hidden": [8], "z_dim": 2, "steps_per_epoch": 10, "rounds": 2, "steps_per_block": 10,
                         "optimizer": "Adam", "one_thread_core": 0},
            "warmup": {1: dict.fromkeys(rows_1), 2: dict.fromkeys(rows_2)}, "rounds": rounds,
            "versions": {"torch": "2.14", "pyro": "1.9", "python": "3.11", "numpyro": "0.22", "jax": "0.10"},
            "machine": {"cpu": "Some CPU (avx2)", "logical_cpus": 2, "environment": {}},
            "numpyro": {"ran": True}, "flops": {"forward": 1, "backward_2x": 2, "skipped_first_input_gradient": 0,
                                               "products_per_step": 1, "step_needed": 3},
            "load_average_start": [1.0], "load_average_end": [1.0], "gather_us": {"index_select": 1, "x[idx]": 2},
            "command": "python scripts/bench_peers.py"}


def test_the_floor_is_the_faster_backend_and_the_goals_follow_the_numbers():
    # 1 thread: oneDNN the faster floor; --fast 1.2x it (met); NumPyro uses 2 threads: faster in wall, slower in CPU
    one = {REFERENCE: (4.0, 4.0), FAST: (1.2, 1.2), FLOOR_MM: (2.0, 2.0), FLOOR_ONEDNN: (1.0, 1.0), NUMPYRO: (1.0, 2.0)}
    # 2 threads: torch.mm the faster floor; --fast 1.5x it (not met), slower than NumPyro in wall seconds (not met)
    two = {REFERENCE: (4.0, 4.0), FAST: (1.5, 1.5), FLOOR_MM: (1.0, 1.0), FLOOR_ONEDNN: (3.0, 3.0), NUMPYRO: (1.2, 1.2)}
    r = _result(one, two)
    r["summary"] = summary = summarize(r)
    assert summary[1]["floor"] == FLOOR_ONEDNN and summary[2]["floor"] == FLOOR_MM
    assert summary[1]["rows"][NUMPYRO]["threads_used"]["median"] == 2.0
    assert summary[1]["thread_use_differs"] == {"most": [NUMPYRO, 2.0], "least": [REFERENCE, 1.0]}
    assert summary[2]["thread_use_differs"] is None
    waited = _result({REFERENCE: (1.0, 0.5), FAST: (1.0, 0.9)}, {REFERENCE: (1.0, 0.5), FAST: (1.0, 1.2)})
    flagged = {t: s["thread_use_differs"] for t, s in summarize(waited).items()}  # below one: waited for a core
    assert flagged == {1: None, 2: {"most": [FAST, 1.2], "least": [REFERENCE, 0.5]}}
    (numpyro_1, floor_1), (numpyro_2, floor_2) = summary[1]["goals"]["targets"], summary[2]["goals"]["targets"]
    assert (numpyro_1["measure"], numpyro_1["ratio"]["median"], numpyro_1["met"]) == ("CPU seconds", 0.6, True)
    assert (floor_1["ratio"]["median"], floor_1["met"]) == (pytest.approx(1.2), True)
    assert (numpyro_2["measure"], numpyro_2["ratio"]["median"], numpyro_2["met"]) == ("wall seconds", 1.25, False)
    assert (floor_2["ratio"]["median"], floor_2["met"]) == (1.5, False)
    md = markdown(r)
    assert md.startswith("# pyrovae against its peers on Some CPU (avx2)\n")
    assert ("Ran on: Some CPU (avx2), 2 logical CPUs, torch threads 1 and 2; torch 2.14, pyro 1.9, numpyro 0.22, "
            "jax 0.10, python 3.11.") in md
    assert "every 1-thread row held to core 0" in md
    assert "| threads used (CPU s / s) |" in md and "x floor (oneDNN) |" in md and "x floor (torch.mm) |" in md
    assert f"| **{NUMPYRO}** | 1.00 (1.00-1.00) | 2.00 | 2.00 | 0.25x (0.25-0.25) | 0.50x | 1.00x | 2.00x |" in md
    assert "- Goal `--fast` <= NumPyro per epoch, in CPU seconds: **met**, 0.60x (0.60-0.60) (limit 1.0x)." in md
    assert ("- Goal `--fast` <= 1.3x the matmul floor (oneDNN), in wall seconds: **met**, 1.20x (1.20-1.20) "
            "(limit 1.3x).") in md
    assert "- Goal `--fast` <= NumPyro per epoch, in wall seconds: **not met**, 1.25x (1.25-1.25) (limit 1.0x)." in md
    assert ("- Goal `--fast` <= 1.3x the matmul floor (torch.mm), in wall seconds: **not met**, 1.50x (1.50-1.50) "
            "(limit 1.3x).") in md
    assert md.count("- The rows' thread use differs") == 1
    assert (f"- The rows' thread use differs, 1.00 ({REFERENCE}) to 2.00 ({NUMPYRO}) threads used: compare them in "
            "CPU seconds (the CPU columns).") in md


@pytest.mark.parametrize("chose, onednn_2, agrees, words", [
    ("mm", 1.1, True, "every round favours `torch.mm`: the choice agrees with the epoch-long timing"),
    ("onednn", 1.1, False, "every round favours `torch.mm`: the choice **disagrees** with the epoch-long timing"),
    ("mm", 0.9, None, "the rounds do not all favour one backend")])
def test_the_choice_of_gemm_is_checked_against_the_forced_epochs(chose, onednn_2, agrees, words):
    # round 1: --fast on oneDNN 1.2x its torch.mm epoch; round 2: onednn_2 x
    rows = {REFERENCE: (4.0, 4.0), FAST: (1.0, 1.0), FAST_BEFORE: (1.0, 1.0), FAST_ONEDNN: (1.2, 1.2)}
    r = _result(rows, rows)
    r["rounds"][1]["epochs"][2][FAST_ONEDNN] = {"wall_s": onednn_2, "cpu_s": onednn_2, "loss_sum": None}
    record = {"matmul": chose, "chosen_by": "measured", "ms": {"onednn": 10.8, "mm": 9.05}}
    r["warmup"][2][FAST] = {"wall_s": 1.0, "fast_step": record}
    r["summary"] = summary = summarize(r)
    assert summary[1]["goals"]["choice"] is None  # no record of the choice at 1 thread
    check = summary[2]["goals"]["choice"]
    assert check["chose"] == chose and check["agrees"] is agrees
    assert check["onednn_over_mm"] == {"median": (1.2 + onednn_2) / 2, "min": min(1.2, onednn_2),
                                       "max": max(1.2, onednn_2)}
    md = markdown(r)
    name = "`torch.mm`" if chose == "mm" else "oneDNN"
    assert (f"- `--fast`'s GEMM: it chose {name} (measured; `torch.mm` 9.05 ms, oneDNN 10.8 ms for the step's "
            f"products); `--fast` forced to each, oneDNN / `torch.mm` per epoch: ") in md
    assert f"; {words}.\n" in md and md.count("`--fast`'s GEMM") == 1


def test_a_missing_numpyro_row_is_a_goal_not_measured():
    rows = {REFERENCE: (4.0, 4.0), FAST: (1.0, 1.0), FLOOR_MM: (1.0, 1.0)}
    r = _result(rows, rows)
    r["numpyro"] = {"ran": False, "reason": "not asked for (--no-numpyro)"}
    r["summary"] = summarize(r)
    assert [g["met"] for g in r["summary"][1]["goals"]["targets"]] == [None, True]
    md = markdown(r)
    assert "- Goal `--fast` <= NumPyro per epoch, in CPU seconds: not measured, - (limit 1.0x)." in md
    assert "; NumPyro row skipped: not asked for (--no-numpyro)." in md


@pytest.mark.parametrize("cpu, slug", [
    ("AMD EPYC (avx2)", "amd-epyc-avx2"), ("AMD EPYC", "amd-epyc"),
    ("Intel(R) Xeon(R) Platinum 8480+ (avx2, avx512f, amx_tile)", "intel-xeon-platinum-8480-avx2-avx512f-amx-tile"),
    ("Intel(R) Xeon(R) CPU E5-2690 v4 @ 2.60GHz (avx2)", "intel-xeon-e5-2690-v4-avx2"),
    ("AMD Ryzen 9 7950X 16-Core Processor (avx2, avx512f)", "amd-ryzen-9-7950x-16-core-avx2-avx512f"),
    ("aarch64", "aarch64"), ("(R)", "unknown-cpu")])
def test_a_cpu_model_gives_a_file_name(cpu, slug):
    assert cpu_slug(cpu) == slug


def test_where_it_ran_names_cpu_threads_and_versions():
    line = describe({"cpu": "AMD EPYC (avx2)", "logical_cpus": 1, "torch_threads": 1}, {"torch": "2", "pyro": "1"})
    assert line == "AMD EPYC (avx2), 1 logical CPU, torch threads 1; torch 2, pyro 1"
