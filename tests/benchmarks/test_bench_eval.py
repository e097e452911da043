"""benchmarks/bench_eval.py runs on tiny models and writes its two reports (no timing is asserted)."""
import json

import pytest

from benchmarks import bench_eval


def test_writes_both_reports_with_positive_ratios(tmp_path, capsys):
    argv = ["--tiny", "--num-samples", "6", "--images", "1", "--rounds", "1", "--out", str(tmp_path)]
    assert bench_eval.main(argv) == 0
    report = json.loads((tmp_path / "eval.json").read_text())
    assert [k["kind"] for k in report["kinds"]] == list(bench_eval.KINDS)
    for kind in report["kinds"]:
        assert kind["products"] > 0
        rows = {row["system"]: row for row in kind["rows"]}
        assert set(rows) == {"pyrovae", "traced", "floor"}
        assert rows["floor"]["ratio_to_floor"] == 1.0 == rows["floor"]["cpu_ratio_to_floor"]
        for row in rows.values():
            assert row["ratio_to_floor"] > 0 and row["cpu_ratio_to_floor"] > 0
            assert row["s_per_image"] > 0 and row["cpu_s_per_image"] > 0
    assert report["threads"] == 1 and report["num_samples"] == 6 and report["cpu"]
    assert report["command"] == "python scripts/bench_eval.py " + " ".join(argv)
    md = (tmp_path / "eval.md").read_text()
    assert report["cpu"] in md.splitlines()[0] and md.count("| pyrovae |") == 4 and report["command"] in md
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval.json", "eval.md"]


@pytest.mark.parametrize("argv", [["--images", "0"], ["--stem", "../x"]])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, argv):
    with pytest.raises(SystemExit) as stop:
        bench_eval.main([*argv, "--out", str(tmp_path / "out")])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()
