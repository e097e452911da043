"""Every flag of every program says what it does in --help: the programs of the package and the
benchmarks and paper tables of benchmarks/, each as its script in scripts/ calls it."""
import argparse
import importlib
import re
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
PROGRAMS = sorted(p.stem for p in SCRIPTS.glob("*.py") if not p.stem.startswith("_"))


def program(name: str):
    """The function ``scripts/<name>.py`` hands to ``run(MODULE, FUNCTION)``."""
    found = re.search(r'\brun\("([\w.]+)", "(\w+)"\)', (SCRIPTS / f"{name}.py").read_text(encoding="utf-8"))
    assert found, f"scripts/{name}.py does not call run(MODULE, FUNCTION)"
    return getattr(importlib.import_module(found.group(1)), found.group(2))


class _Parsed(Exception):
    pass


def test_every_program_is_checked():
    assert {"svi_train", "compare_elbo", "evaluate", "plot_latent", "bench", "bench_ddp", "nll_table", "encode",
            "export", "ssl_table", "bench_data", "example_data", "bench_peers"} <= set(PROGRAMS)


@pytest.mark.parametrize("name", PROGRAMS)
def test_every_flag_has_help(name, monkeypatch):
    seen = []

    def parse_args(self, args=None, namespace=None):
        seen.append(self)
        raise _Parsed

    main = program(name)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_args)
    with pytest.raises(_Parsed):
        main([])
    silent = [action.option_strings[0] for action in seen[0]._actions
              if action.option_strings and action.help in (None, "") and action.dest != "help"]
    assert not silent, f"{name}: flags without help: {silent}"
