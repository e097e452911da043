"""The command lines behind ``scripts/``: flags -> settings -> one library call.

* ``svi_train.py`` -> :func:`main` -> :func:`pyrovae.training.trainer.train` (``--resume``: :func:`pyrovae.training.trainer.resume`)
* ``compare_elbo.py`` -> :func:`compare_main` -> :func:`pyrovae.experiments.compare_elbo.compare_elbos`
* ``evaluate.py`` / ``plot_latent.py`` -> :mod:`pyrovae.experiments.evaluate` / :mod:`pyrovae.experiments.plot_latent`
* ``bench.py`` -> :func:`bench_main` -> :mod:`pyrovae.experiments.bench`
* ``bench_ddp.py`` -> :func:`bench_ddp_main` -> :mod:`pyrovae.experiments.bench_ddp`
* ``nll_table.py`` -> :func:`nll_table_main` -> :mod:`pyrovae.experiments.nll_table`
* ``encode.py`` -> :func:`encode_main` -> :mod:`pyrovae.experiments.encode`
* ``export.py`` -> :func:`pyrovae.cli.export.export_main` -> :func:`pyrovae.export.export_run`

``svi_train`` holds the training command lines, ``programs`` the others, ``common``
what they share. Each command imports its application (:mod:`pyrovae.experiments`) only when it runs.

Bad input ends with one line on stderr, ``error: <what was wrong and what to do>``, and
exit status 2; a finished job exits 0.
"""
from .programs import bench_ddp_main, bench_main, encode_main, evaluate_main, nll_table_main, plot_latent_main
from .svi_train import build_parser, compare_main, main

__all__ = ["main", "compare_main", "build_parser", "evaluate_main", "plot_latent_main", "bench_main",
           "bench_ddp_main", "nll_table_main", "encode_main"]
