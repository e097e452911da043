"""--config FILE: every setting from a JSON or YAML file (or a run's config.json), the flags on the
command line over it; a bad file is one line naming the key and the file, with nothing written; a
run's own config.json trains the same run again."""
import json

import pytest

from pyrovae.cli import main
from pyrovae.cli.svi_train import _file_config, main_parser
from pyrovae.training.config import TrainConfig
from pyrovae.training.config_file import config_from_file

TINY = {"epochs": 1, "train_limit": 300, "test_limit": 60, "z_dim": 3, "hidden": [16], "download": False,
        "progress": False, "threads": 1}


def settings(tmp_path, **extra):
    return {**TINY, "data_dir": str(tmp_path / "no-mnist-here"), **extra}


def recorded(out):
    return json.loads((out / "config.json").read_text())["settings"]


def test_json_settings_with_flags_over_them(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps(settings(tmp_path, out=str(tmp_path / "from-file"), lr=0.002)))
    assert main(["--config", str(path), "--z-dim", "4", "--seed", "3"]) == 0
    got = recorded(tmp_path / "from-file")  # the file's out, its lr and hidden; the flags' z_dim and seed
    assert (got["z_dim"], got["seed"], got["lr"], got["hidden"], got["epochs"]) == (4, 3, 0.002, [16], 1)


def test_yaml_settings_with_numbers_as_yaml_1_2_writes_them(tmp_path):
    path = tmp_path / "run.yaml"
    lines = [f"{k}: {json.dumps(v)}" for k, v in settings(tmp_path).items()]
    path.write_text("\n".join(lines + ["lr: 2e-3  # a number, not a string", "valid_size: 50", "beta: 0.5", ""]))
    assert main(["--config", str(path), "--out", str(tmp_path / "yaml-run")]) == 0
    got = recorded(tmp_path / "yaml-run")
    assert (got["lr"], got["valid_size"], got["beta"], got["out"]) == (0.002, 50, 0.5, str(tmp_path / "yaml-run"))


def test_option_flags_replace_only_their_option(tmp_path):
    path = tmp_path / "options.json"
    path.write_text(json.dumps({"likelihood": "gaussian", "likelihood_options": {"scale": 0.5, "min_scale": 0.01},
                                "prior": "mog", "prior_options": {"components": 7}}))
    argv = ["--config", str(path), "--likelihood-scale", "0.25", "--prior-components", "3"]
    parser = main_parser()
    args = vars(parser.parse_args(argv))
    args.pop("config"), args.pop("resume")
    config = _file_config(parser, args, argv, str(path))
    assert config.likelihood_options == {"scale": 0.25, "min_scale": 0.01} and config.prior_options == {"components": 3}
    assert config.likelihood == "gaussian" and config.guide_options == {}


def test_a_runs_config_json_trains_the_same_run_again(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    assert main(["--epochs", "2", "--train-limit", "300", "--test-limit", "60", "--z-dim", "3", "--hidden", "16",
                 "--prior", "mog", "--prior-components", "3", "--data-dir", str(tmp_path / "no-mnist-here"),
                 "--no-download", "--no-progress", "--threads", "1", "--out", str(first)]) == 0
    assert main(["--config", str(first / "config.json"), "--out", str(second)]) == 0
    a, b = (json.loads((out / "metrics.json").read_text()) for out in (first, second))
    strip = lambda history: [{k: v for k, v in h.items() if k != "seconds"} for h in history]  # noqa: E731
    assert strip(a["history"]) == strip(b["history"]) and a["test_elbo"] == b["test_elbo"]
    assert all(h["kl_per_dim"]["z"] for h in b["history"])  # the Monte-Carlo KL per dimension too, exactly
    assert {**recorded(first), "out": None} == {**recorded(second), "out": None}
    # without --out it would replace the run it records: refused, the run left as it was
    before = (first / "metrics.json").read_bytes()
    assert main(["--config", str(first / "config.json")]) == 2
    assert (first / "metrics.json").read_bytes() == before


def test_a_record_from_before_a_setting_existed_keeps_what_it_trained_with(tmp_path):
    record = {"run_id": "x", "settings": {k: v for k, v in TrainConfig().to_dict().items()
                                          if k not in ("valid_size", "limit_rule", "beta")}}
    record["settings"]["likelihood_scale"] = None  # a key of older records, read as they were
    path = tmp_path / "config.json"
    path.write_text(json.dumps(record))
    config, is_record = config_from_file(path)
    assert is_record and (config.valid_size, config.limit_rule, config.beta) == (0, "first", 1.0)
    plain = tmp_path / "plain.json"  # a plain file leaves them at their defaults
    plain.write_text(json.dumps({"epochs": 2}))
    config, is_record = config_from_file(plain)
    assert not is_record and (config.valid_size, config.limit_rule, config.epochs) == (None, "evenly-spaced", 2)


BAD = [
    ("bad.json", '{"epochs": 1, "zdim": 3}', ["unknown setting 'zdim'", "did you mean 'z_dim'"]),
    ("bad.json", '{"z_dim": "8"}', ["setting 'z_dim' must be a whole number, got '8' (a string)"]),
    ("bad.json", '{"hidden": [16, "a"]}', ["setting 'hidden' must be a list of whole numbers"]),
    ("bad.json", '{"progress": "yes"}', ["setting 'progress' must be true or false"]),
    ("bad.json", '{"lr": true}', ["setting 'lr' must be a number, got True (a boolean)"]),
    ("bad.json", '{"valid_size": 1.5}', ["setting 'valid_size' must be a whole number or null"]),
    ("bad.json", '{"settings": {"epochs": 1, "bogus": 2}, "run_id": "r"}', ["unknown setting 'bogus'"]),
    ("bad.json", '{"epochs": 1,}', ["is not valid JSON", "line 1"]),
    ("bad.json", '[1, 2]', ["holds a list, not an object of settings"]),
    ("bad.yaml", "epochs: [1\n", ["is not valid YAML"]),
    ("bad.yml", "z_dim: 1.5\n", ["setting 'z_dim' must be a whole number, got 1.5 (a number)"]),
    ("bad.toml", "epochs = 1\n", ["--config takes a .json, .yaml or .yml file"]),
]


@pytest.mark.parametrize("name,text,fragments", BAD, ids=[f"{n}:{t[:20]}" for n, t, _ in BAD])
def test_a_bad_file_is_one_line_naming_it_and_writes_nothing(name, text, fragments, tmp_path, capsys):
    path = tmp_path / name
    path.write_text(text)
    assert main(["--config", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and str(path) in err[0], err
    for fragment in fragments:
        assert fragment in err[0], err[0]
    assert not (tmp_path / "run").exists()


def test_a_missing_file_and_a_resume_are_refused_in_one_line(tmp_path, capsys):
    assert main(["--config", str(tmp_path / "none.json"), "--out", str(tmp_path / "run")]) == 2
    assert "cannot read the config file" in capsys.readouterr().err and not (tmp_path / "run").exists()
    with pytest.raises(SystemExit) as stop:
        main(["--resume", str(tmp_path), "--config", str(tmp_path / "none.json")])
    assert stop.value.code == 2 and "drop --config" in capsys.readouterr().err
