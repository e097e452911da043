"""scripts/bench_ddp.py: one process and two torchrun ranks train, and their throughput is tabled
with the CPU it ran on."""
import json

from helpers import run_main
from pyrovae.environment import cpu_model


def test_bench_ddp_script_writes_its_table(tmp_path):
    result = run_main("bench_ddp.py", "--dataset", "mnist", "--data-dir", tmp_path / "no-mnist", "--epochs", "2",
                      "--hidden", "16", "--processes", "2", "--reference-threads", "1", "--out", tmp_path / "bench")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads((tmp_path / "bench" / "ddp.json").read_text())["rows"]
    assert [r["processes"] for r in rows] == [1, 2] and rows[0]["speedup"] == 1.0
    assert all(r["images_per_s"] > 0 for r in rows)
    md = (tmp_path / "bench" / "ddp.md").read_text()
    assert "| torchrun --distributed, 2 processes | 2 | 1 |" in md
    assert f"\n\nRan on: {cpu_model()}, " in md and ", torch threads as in the table; torch " in md
