"""The command lines behind the user's programs in ``scripts/``: flags -> settings -> one library call.

* ``svi_train.py`` -> :func:`main` -> :func:`pyrovae.training.trainer.train` (``--resume``: :func:`pyrovae.training.resume.resume`)
* ``evaluate.py`` / ``plot_latent.py`` -> :mod:`pyrovae.analysis.evaluate` / :mod:`pyrovae.analysis.plot_latent`
* ``encode.py`` -> :func:`encode_main` -> :mod:`pyrovae.analysis.encode`
* ``export.py`` -> :func:`pyrovae.cli.export.export_main` -> :func:`pyrovae.export.export_run`
* ``explore.py`` -> :func:`pyrovae.cli.explore.explore_main` -> :func:`pyrovae.export.explore.build_explorer`

``svi_train`` holds the training command line, ``programs`` the others, ``common``
what they share. Each command imports its application (:mod:`pyrovae.analysis`) only when it runs.
The benchmarks and paper tables (``bench.py``, ``compare_elbo.py``, ``nll_table.py``, ...) are
programs of ``benchmarks/`` in a clone of the repository, not of the installed package.

Bad input ends with one line on stderr, ``error: <what was wrong and what to do>``, and
exit status 2; a finished job exits 0.
"""
from .programs import encode_main, evaluate_main, plot_latent_main
from .svi_train import build_parser, main

__all__ = ["main", "build_parser", "evaluate_main", "plot_latent_main", "encode_main"]
