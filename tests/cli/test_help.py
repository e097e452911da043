"""Every flag of every program says what it does in --help."""
import argparse

import pytest

import pyrovae.cli as cli
from pyrovae.cli.bench_peers import bench_peers_main
from pyrovae.cli.explore import explore_main
from pyrovae.cli.export import export_main
from pyrovae.cli.ssl import ssl_main
from pyrovae.experiments import bench_data, example_data

PROGRAMS = {"svi_train": cli.main, "compare_elbo": cli.compare_main, "evaluate": cli.evaluate_main,
            "plot_latent": cli.plot_latent_main, "bench": cli.bench_main, "bench_ddp": cli.bench_ddp_main,
            "nll_table": cli.nll_table_main, "encode": cli.encode_main, "export": export_main, "ssl_table": ssl_main,
            "bench_data": bench_data.main, "example_data": example_data.main, "bench_peers": bench_peers_main}
PROGRAMS["explore"] = explore_main


class _Parsed(Exception):
    pass


@pytest.mark.parametrize("name", list(PROGRAMS))
def test_every_flag_has_help(name, monkeypatch):
    seen = []

    def parse_args(self, args=None, namespace=None):
        seen.append(self)
        raise _Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_args)
    with pytest.raises(_Parsed):
        PROGRAMS[name]([])
    silent = [action.option_strings[0] for action in seen[0]._actions
              if action.option_strings and action.help in (None, "") and action.dest != "help"]
    assert not silent, f"{name}: flags without help: {silent}"
