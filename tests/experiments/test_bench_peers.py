"""scripts/bench_peers.py: a tiny run writes peers.md and peers.json with every row, the
NumPyro row skipped with its reason where NumPyro is not importable, the floor's products
counted as stated; bad flags are one line and exit status 2."""
import importlib.util
import json

import numpy as np
import pytest

from pyrovae.cli.bench_peers import bench_peers_main
from pyrovae.experiments.bench_peers import TORCH_SYSTEMS, flops, matmul_shapes
from pyrovae.experiments.bench_peers_report import FLOOR_MM, NUMPYRO, REFERENCE


def test_the_floor_counts_each_product_of_a_step():
    shapes = matmul_shapes(784, [400], 50, 256)
    assert len(shapes) == 11  # 4 layers: forward, weight gradient, input gradient but the first layer's
    assert shapes[:4] == [(256, 784, 400), (256, 400, 100), (256, 50, 400), (256, 400, 784)]
    f = flops(784, [400], 50, 256)
    assert f["forward"] == 2 * 256 * (784 * 400 + 400 * 100 + 50 * 400 + 400 * 784)
    assert f["backward_2x"] == 2 * f["forward"]
    assert f["step_needed"] == 3 * f["forward"] - 2 * 256 * 784 * 400


def test_a_tiny_run_writes_both_files(binary_batch, tmp_path, capsys):
    rows = tmp_path / "rows.npy"
    np.save(rows, binary_batch.numpy().astype(np.float32))  # 64 binary digits
    out = tmp_path / "out"
    code = bench_peers_main(["--dataset", str(rows), "--batch-size", "16", "--hidden", "8", "--z-dim", "2",
                             "--threads", "1", "--rounds", "1", "--steps-per-block", "2", "--max-steps", "2",
                             "--numpyro-path", str(tmp_path / "nothing-here"), "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    result = json.loads((out / "peers.json").read_text())
    md = (out / "peers.md").read_text()
    rows_timed = result["rounds"][0]["epochs"]["1"]
    assert set(TORCH_SYSTEMS) | {FLOOR_MM} <= set(rows_timed)
    assert all(r["wall_s"] > 0 for r in rows_timed.values())
    assert result["summary"]["1"]["rows"][REFERENCE]["ratio"]["median"] == 1.0
    assert result["protocol"]["steps_per_epoch"] == 2 and result["versions"]["torch"]
    if importlib.util.find_spec("numpyro") is None:  # not in this environment: the row says why
        assert not result["numpyro"]["ran"] and "not importable" in result["numpyro"]["reason"]
        assert NUMPYRO not in rows_timed and "NumPyro row skipped" in md
    assert "| PyTorch by hand (eager, torch.optim.Adam) |" in md and "Command: `python scripts/bench_peers.py" in md


@pytest.mark.parametrize("argv", [["--rounds", "0"], ["--threads", "0"], ["--batch-size", "-1"], ["--bogus"]])
def test_bad_flags_are_one_line(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        bench_peers_main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
